//! Reads the page cache can answer at once, done on the calling thread with
//! `preadv2(RWF_NOWAIT)` instead of being handed to another thread. The `thread` backend
//! does this for every unlinked read it is given; the `uring` backend, with an SQPOLL
//! kernel thread, for a share of them while that thread reads the rest.

use std::os::fd::RawFd;

use crate::Operation;

/// Remembers whether the last descriptor asked about was opened with `O_DIRECT`: a run of
/// reads is mostly on one file, and one `fcntl` per run is cheaper than one per read.
#[derive(Debug, Default)]
pub struct DirectIoMemo {
  last: Option<(RawFd, bool)>,
}

impl DirectIoMemo {
  /// Forgets the last answer: call it between runs, since a descriptor number can be
  /// closed and reused for another file.
  pub fn forget(&mut self) {
    self.last = None;
  }

  /// Whether `fd` was opened with `O_DIRECT` (see [`crate::opened_with_direct_io`]).
  pub fn is_direct(&mut self, fd: RawFd) -> bool {
    match self.last {
      Some((last, answer)) if last == fd => answer,
      _ => {
        let answer = crate::opened_with_direct_io(fd);
        self.last = Some((fd, answer));
        answer
      }
    }
  }
}

/// Whether this build can read without waiting at all (64-bit Linux): elsewhere
/// [`read_if_cached`] always says no.
pub const READS_IF_CACHED: bool = cfg!(all(target_os = "linux", target_pointer_width = "64"));

/// `preadv2(RWF_NOWAIT)`: the bytes if the page cache has all of them (or the read ends at
/// end of file), `None` when the read must be done the waiting way: not cached, a kernel
/// or file system without `RWF_NOWAIT`, or any error, which the waiting read then reports
/// as it stands; and `None` for a read at [`AT_CURSOR`](crate::AT_CURSOR), which only the
/// waiting read may do. Not for files opened with `O_DIRECT`, whose reads wait for the device even
/// so: [`read_if_cached_unless_direct`] leaves those out.
///
/// # Safety
/// `op.buf` is valid for `op.len` bytes and nobody else touches them meanwhile (the buffer
/// rule, crate docs).
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
pub unsafe fn read_if_cached(op: &Operation) -> Option<i64> {
  // A read at the file position must move it once, by what it read: never try it twice.
  if op.offset == crate::AT_CURSOR {
    return None;
  }
  let iov = libc::iovec {
    iov_base: op.buf.cast(),
    iov_len: op.len as usize,
  };
  // The raw system call, not glibc's wrapper, which older glibc lacks: on 64-bit kernels the
  // offset is the low word and the high word is ignored.
  // SAFETY: one iovec over the caller's `op.len` exclusive bytes.
  let rc = unsafe {
    libc::syscall(
      libc::SYS_preadv2,
      op.fd,
      &iov as *const libc::iovec,
      1,
      op.offset as libc::c_long,
      0 as libc::c_long,
      libc::RWF_NOWAIT,
    )
  };
  if rc < 0 {
    return None;
  }
  let count = rc as u64;
  if count == u64::from(op.len) || count == 0 {
    // All of it, or nothing at end of file (uncached data refuses with EAGAIN instead).
    return Some(rc as i64);
  }
  // Short: the end of the file, or only part of the range in the cache — or, for anything
  // but a regular file, whose size says nothing about where its data ends, a device that
  // stopped early because it may not wait (`/dev/zero` does when the thread should yield).
  // SAFETY: `stat` is plain data the call fills.
  let mut stat: libc::stat = unsafe { std::mem::zeroed() };
  // SAFETY: a valid out-pointer; a bad descriptor just fails.
  if unsafe { libc::fstat(op.fd, &mut stat) } == 0
    && stat.st_mode & libc::S_IFMT == libc::S_IFREG
    && op.offset + count >= stat.st_size as u64
  {
    return Some(rc as i64);
  }
  None
}

/// [`read_if_cached`], unless `op.fd` was opened with `O_DIRECT` (asked of `direct`, which
/// remembers the answer for a run of reads on one descriptor): then `None` without a read.
/// A direct read bypasses the page cache, so `RWF_NOWAIT` has no cached bytes to answer it
/// with and the read waits for the device even so, which would stall the calling thread
/// that this read is meant to spare. Such reads belong to whatever does the waiting reads.
///
/// # Safety
/// `op.buf` is valid for `op.len` bytes and nobody else touches them meanwhile (the buffer
/// rule, crate docs).
pub unsafe fn read_if_cached_unless_direct(
  op: &Operation,
  direct: &mut DirectIoMemo,
) -> Option<i64> {
  if direct.is_direct(op.fd) {
    return None;
  }
  // SAFETY: the caller upholds the buffer rule for `op.buf`/`op.len`, as this function's
  // own contract demands.
  unsafe { read_if_cached(op) }
}

/// Elsewhere every read is done the waiting way.
///
/// # Safety
/// None needed: it touches nothing.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
pub unsafe fn read_if_cached(_op: &Operation) -> Option<i64> {
  None
}

#[cfg(test)]
mod tests {
  use std::fs::{File, OpenOptions};
  use std::io::Write;
  use std::os::fd::AsRawFd;
  use std::path::PathBuf;

  use super::*;
  use crate::{Opcode, Share};

  /// A file of `contents` in the temporary directory, removed when dropped.
  struct TempFile {
    path: PathBuf,
    file: File,
  }

  impl TempFile {
    fn new(name: &str, contents: &[u8]) -> TempFile {
      let path = std::env::temp_dir().join(format!("caio-core-{name}-{}", std::process::id()));
      let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
      file.write_all(contents).unwrap();
      TempFile { path, file }
    }
  }

  impl Drop for TempFile {
    fn drop(&mut self) {
      let _ = std::fs::remove_file(&self.path);
    }
  }

  fn read_of(fd: RawFd, buf: &mut [u8]) -> Operation {
    Operation {
      opcode: Opcode::Read,
      fd,
      offset: 0,
      buf: buf.as_mut_ptr(),
      len: buf.len() as u32,
      token: 1,
      priority: 0,
      link: false,
      share: Share::Here,
    }
  }

  #[test]
  fn reads_a_buffered_descriptor_as_read_if_cached_does() {
    let temp = TempFile::new("buffered", b"cached bytes");
    let mut buf = [0u8; 12];
    let op = read_of(temp.file.as_raw_fd(), &mut buf);
    let mut direct = DirectIoMemo::default();
    // SAFETY: `buf` outlives both calls and nothing else touches it.
    let (answered, plain) = unsafe {
      (
        read_if_cached_unless_direct(&op, &mut direct),
        read_if_cached(&op),
      )
    };
    // A file system without RWF_NOWAIT answers neither; one with it, both.
    assert_eq!(answered, plain);
    if answered.is_some() {
      assert_eq!(answered, Some(12));
      assert_eq!(&buf, b"cached bytes");
    }
  }

  #[test]
  fn leaves_a_direct_descriptor_to_the_waiting_read_without_touching_the_buffer() {
    let temp = TempFile::new("direct", b"cached bytes");
    let fd = temp.file.as_raw_fd();
    let mut buf = [0u8; 12];
    let op = read_of(fd, &mut buf);
    // The memo's answer is what decides: a file system without O_DIRECT (tmpfs) cannot
    // give this test a direct descriptor, so the memo is told one.
    let mut direct = DirectIoMemo {
      last: Some((fd, true)),
    };
    // SAFETY: `buf` outlives the call and nothing else touches it.
    let answered = unsafe { read_if_cached_unless_direct(&op, &mut direct) };
    assert_eq!(answered, None);
    assert_eq!(buf, [0u8; 12], "a direct read is not tried here");
  }

  #[test]
  fn the_memo_asks_again_after_forgetting() {
    let temp = TempFile::new("memo", b"");
    let fd = temp.file.as_raw_fd();
    let mut direct = DirectIoMemo {
      last: Some((fd, true)),
    };
    assert!(direct.is_direct(fd), "remembered");
    direct.forget();
    assert!(
      !direct.is_direct(fd),
      "asked the descriptor: opened without O_DIRECT"
    );
  }

  #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
  #[test]
  fn a_device_that_stops_early_is_never_taken_for_end_of_file() {
    // /dev/zero answers an RWF_NOWAIT read short whenever the thread ought to yield; its
    // size (0) says nothing about where its data ends, so such an answer is no answer.
    let zero = File::open("/dev/zero").unwrap();
    let mut buf = vec![0xAAu8; 8 << 20];
    for _ in 0..64 {
      // SAFETY: `buf` outlives the call.
      let result = unsafe { read_if_cached(&read_of(zero.as_raw_fd(), &mut buf)) };
      assert!(
        matches!(result, None | Some(0x80_0000)),
        "a short read of /dev/zero taken as final: {result:?}"
      );
    }
  }
}
