//! What every backend crate's tests need (the `testing` feature, for dev-dependencies):
//! operations over test buffers, temporary files, reaping until a count arrived, and in
//! [`contract`] the checks of what every backend promises.

pub mod contract;

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::{Backend, Completion, Opcode, Operation, Share};

/// An unlinked operation over all of `buf`.
pub fn op(opcode: Opcode, fd: RawFd, offset: u64, buf: &mut [u8], token: u64) -> Operation {
  Operation {
    opcode,
    fd,
    offset,
    buf: buf.as_mut_ptr(),
    len: buf.len() as u32,
    token,
    priority: 0,
    link: false,
    share: Share::Alone,
  }
}

/// `op`, linked to the next one pushed.
pub fn linked(op: Operation) -> Operation {
  Operation { link: true, ..op }
}

/// A completion, for comparing against.
pub fn done(token: u64, result: i64) -> Completion {
  Completion { token, result }
}

/// An unnamed temporary file holding `contents`.
pub fn temp_file(contents: &[u8]) -> File {
  let mut file = tempfile::tempfile().expect("a temporary file");
  file.write_all(contents).expect("writing a temporary file");
  file
}

/// (read end, write end) of a new pipe, both blocking.
pub fn pipe() -> (File, File) {
  let mut fds = [0 as libc::c_int; 2];
  // SAFETY: `fds` has room for the two descriptors pipe writes.
  assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
  // SAFETY: both descriptors were just created and are owned by nobody else.
  unsafe {
    (
      File::from(OwnedFd::from_raw_fd(fds[0])),
      File::from(OwnedFd::from_raw_fd(fds[1])),
    )
  }
}

/// Waits, reaps, and returns once `count` completions arrived (10 s at most), sorted by
/// token.
pub fn run_until_done(backend: &mut dyn Backend, count: usize) -> Vec<Completion> {
  let mut out = Vec::new();
  let deadline = Instant::now() + Duration::from_secs(10);
  while out.len() < count {
    assert!(
      Instant::now() < deadline,
      "timed out waiting for completions: {} of {count} came",
      out.len()
    );
    if !backend.ready() {
      crate::sys::wait_readable(backend.notifier().fd(), Duration::from_millis(20));
    }
    backend.notifier().clear();
    backend.reap(&mut out);
  }
  assert_eq!(out.len(), count, "more completions than operations");
  out.sort_by_key(|c| c.token);
  out
}

/// Waits (10 s at most) until a reap would find something, without reaping.
pub fn wait_until_ready(backend: &dyn Backend) {
  let deadline = Instant::now() + Duration::from_secs(10);
  while !backend.ready() {
    assert!(Instant::now() < deadline, "nothing became ready");
    std::thread::sleep(Duration::from_millis(1));
  }
}

/// Whether `backend`'s notifier is readable now; neither waits nor clears it.
pub fn notifier_is_readable(backend: &dyn Backend) -> bool {
  let mut pfd = libc::pollfd {
    fd: backend.notifier().fd(),
    events: libc::POLLIN,
    revents: 0,
  };
  // SAFETY: one valid pollfd, on a descriptor the notifier keeps open while `backend` is
  // borrowed; a timeout of 0 never waits.
  unsafe { libc::poll(&mut pfd, 1, 0) == 1 }
}

/// Reaps for a while (50 ms) and asserts that nothing completes.
pub fn assert_nothing_completes(backend: &mut dyn Backend) {
  let mut out = Vec::new();
  for _ in 0..5 {
    crate::sys::wait_readable(backend.notifier().fd(), Duration::from_millis(10));
    backend.reap(&mut out);
  }
  assert_eq!(out, []);
}

/// Results of `done`, in its order.
pub fn results(done: &[Completion]) -> Vec<i64> {
  done.iter().map(|c| c.result).collect()
}

/// xorshift64*: reproducible bytes, offsets and choices without a dependency.
pub struct Rng(pub u64);

impl Rng {
  /// The next number of the sequence (a seed of 0 stays 0).
  pub fn next_u64(&mut self) -> u64 {
    self.0 ^= self.0 >> 12;
    self.0 ^= self.0 << 25;
    self.0 ^= self.0 >> 27;
    self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
  }
}
