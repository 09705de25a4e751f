//! The system-call helpers every backend shares: the blocking call of one operation (with
//! its `EINTR` retry), the credentials path operations run with, waiting for a notifier, the kernel's version, and descriptor flags.

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::{Opcode, Operation, AT_CURSOR};

/// The calling thread's `errno` after a failed call, as a negative completion result.
pub fn last_error() -> i64 {
  -i64::from(
    io::Error::last_os_error()
      .raw_os_error()
      .unwrap_or(libc::EIO),
  )
}

/// Calls `call` until it is not interrupted by a signal: its non-negative result, or the
/// negated `errno` of its failure.
pub fn retry_eintr(mut call: impl FnMut() -> i64) -> i64 {
  loop {
    let rc = call();
    if rc >= 0 {
      return rc;
    }
    let error = last_error();
    if error != -i64::from(libc::EINTR) {
      return error;
    }
  }
}

/// Runs `op` with the blocking system call (`pread`, `pwrite`, `fsync`, `fdatasync`; `read`
/// and `write` at [`AT_CURSOR`]; `preadv`, `pwritev`, `fallocate`, `sync_file_range`,
/// `posix_fadvise`; the path operations' own, see [`crate::paths`]), retrying
/// `EINTR`: the bytes moved (or the new descriptor, or 0), or a negative errno.
///
/// # Safety
/// `op.buf` is valid for `op.len` bytes and nobody else touches them meanwhile (the buffer
/// rule, crate docs).
pub unsafe fn perform_blocking(op: &Operation) -> i64 {
  if op.opcode.is_registration() {
    // SAFETY: the caller upholds the buffer rule, which is that function's contract too.
    return unsafe { check_registration(op) };
  }
  if op.opcode.is_vectored() || op.opcode.takes_range() {
    // SAFETY: the caller upholds the buffer rule, which is that function's contract too.
    return unsafe { perform_storage_operation(op) };
  }
  if !op.opcode.uses_buffer() && !matches!(op.opcode, Opcode::Fsync | Opcode::Fdatasync) {
    // SAFETY: the caller upholds the buffer rule, which is that function's contract too.
    return unsafe { crate::paths::perform_path_operation(op) };
  }
  let at_cursor = op.offset == AT_CURSOR;
  let offset = op.offset.min(i64::MAX as u64) as libc::off_t;
  let (buf, len) = (op.buf.cast(), op.len as usize);
  retry_eintr(|| {
    // SAFETY: the caller guarantees `op.buf` spans `op.len` valid, exclusive bytes.
    unsafe {
      match op.opcode {
        Opcode::Read if at_cursor => libc::read(op.fd, buf, len) as i64,
        Opcode::Write if at_cursor => libc::write(op.fd, buf, len) as i64,
        Opcode::Read => libc::pread(op.fd, buf, len, offset) as i64,
        Opcode::Write => libc::pwrite(op.fd, buf, len, offset) as i64,
        Opcode::Fsync => libc::fsync(op.fd) as i64,
        _ => fdatasync(op.fd) as i64,
      }
    }
  })
}

/// A registration where there is nothing to register with: the same memory and descriptors
/// are used as they are, so the answer is 0 — once every descriptor of a `RegisterFiles`
/// was found open (`EBADF` otherwise, as `io_uring_register` answers).
///
/// # Safety
/// The buffer rule: a `RegisterFiles` buffer holds `op.len` readable bytes.
unsafe fn check_registration(op: &Operation) -> i64 {
  if op.opcode != Opcode::RegisterFiles || op.buf.is_null() {
    return 0;
  }
  let count = op.len as usize / std::mem::size_of::<i32>();
  for i in 0..count {
    // SAFETY: `i * 4 + 4 <= op.len` readable bytes (the caller's guarantee); unaligned, since
    // nothing promises the facade's array an alignment here.
    let fd = unsafe { op.buf.cast::<i32>().add(i).read_unaligned() };
    // SAFETY: takes no pointer; asks about a descriptor number.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
      return -i64::from(
        io::Error::last_os_error()
          .raw_os_error()
          .unwrap_or(libc::EBADF),
      );
    }
  }
  0
}

/// Runs one vectored or range operation (`Readv`, `Writev`, `Fallocate`, `SyncRange`,
/// `Fadvise`) with its blocking system call, retrying `EINTR`: the bytes moved, or 0, or a
/// negative errno. A buffer too short for its arguments is refused with `EINVAL`.
///
/// # Safety
/// The buffer rule (crate docs), for the buffer and, of a vectored operation, for the
/// memory its `iovec`s describe.
#[cfg(target_os = "linux")]
unsafe fn perform_storage_operation(op: &Operation) -> i64 {
  const EINVAL: i64 = -(libc::EINVAL as i64);
  if op.opcode.is_vectored() {
    let count = (op.len as usize / crate::IOVEC_SIZE) as libc::c_int;
    let iov = op.buf.cast::<libc::iovec>().cast_const();
    let at_cursor = op.offset == AT_CURSOR;
    // Past i64::MAX (AT_CURSOR aside) the kernel refuses the offset with EINVAL.
    let offset = op.offset.min(i64::MAX as u64) as libc::off_t;
    // SAFETY: the caller guarantees `count` iovecs at `op.buf` (the facade made the area
    // aligned), each describing memory that stays valid and exclusive until the completion
    // is reaped: the buffer rule for vectored operations.
    return retry_eintr(|| unsafe {
      match (op.opcode, at_cursor) {
        (Opcode::Readv, true) => libc::readv(op.fd, iov, count) as i64,
        (Opcode::Readv, false) => libc::preadv(op.fd, iov, count, offset) as i64,
        (_, true) => libc::writev(op.fd, iov, count) as i64,
        (_, false) => libc::pwritev(op.fd, iov, count, offset) as i64,
      }
    });
  }
  if op.offset > i64::MAX as u64 {
    return EINVAL;
  }
  let offset = op.offset as libc::off_t;
  // SAFETY: the caller upholds the buffer rule for the argument area.
  let Some(args) = (unsafe { crate::RangeArgs::of(op) }) else {
    return EINVAL;
  };
  if args.length > i64::MAX as u64 {
    return EINVAL;
  }
  let length = args.length as libc::off_t;
  let flags = args.flags;
  match op.opcode {
    Opcode::Fallocate => retry_eintr(|| {
      // SAFETY: takes no pointer; the descriptor is the caller's to name.
      unsafe { libc::fallocate(op.fd, flags as libc::c_int, offset, length) as i64 }
    }),
    Opcode::SyncRange => retry_eintr(|| {
      // SAFETY: takes no pointer.
      unsafe { libc::sync_file_range(op.fd, offset, length, flags) as i64 }
    }),
    // posix_fadvise returns its error rather than setting errno.
    _ => loop {
      // SAFETY: takes no pointer.
      match unsafe { libc::posix_fadvise(op.fd, offset, length, flags as libc::c_int) } {
        libc::EINTR => continue,
        error => break -i64::from(error),
      }
    },
  }
}

/// The storage-engine operations are Linux system calls (`preadv` aside, which the thread
/// backend elsewhere does not offer yet): elsewhere they answer `ENOSYS`.
///
/// # Safety
/// None needed; the signature matches the Linux one.
#[cfg(not(target_os = "linux"))]
unsafe fn perform_storage_operation(_op: &Operation) -> i64 {
  -(libc::ENOSYS as i64)
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
unsafe fn fdatasync(fd: libc::c_int) -> libc::c_int {
  // SAFETY: takes no pointers.
  unsafe { libc::fdatasync(fd) }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
unsafe fn fdatasync(fd: libc::c_int) -> libc::c_int {
  // macOS has no fdatasync; fsync is the stronger promise.
  // SAFETY: takes no pointers.
  unsafe { libc::fsync(fd) }
}

/// Blocks until `fd` is readable or `timeout` passed (a signal ends the wait early);
/// returns whether it is readable. For shutdown, tests, and the completion thread of the
/// runtimes without libuv; the JS thread never waits here.
pub fn wait_readable(fd: RawFd, timeout: Duration) -> bool {
  let mut pfd = libc::pollfd {
    fd,
    events: libc::POLLIN,
    revents: 0,
  };
  let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
  // SAFETY: one valid pollfd; a bad descriptor just fails.
  let ready = unsafe { libc::poll(&mut pfd, 1, millis) };
  ready > 0 && pfd.revents & libc::POLLIN != 0
}

/// The running kernel's major and minor version, from `uname(2)`.
pub fn kernel_version() -> Option<(u32, u32)> {
  // SAFETY: utsname is plain bytes; all zeroes is a valid value.
  let mut name: libc::utsname = unsafe { std::mem::zeroed() };
  // SAFETY: uname fills the struct we own and nothing else.
  if unsafe { libc::uname(&mut name) } != 0 {
    return None;
  }
  // SAFETY: uname NUL-terminates `release`, which lives as long as `name`.
  let release = unsafe { CStr::from_ptr(name.release.as_ptr()) };
  parse_release(&release.to_string_lossy())
}

/// `"6.18.44-fc-v657"` → `(6, 18)`.
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
  let mut parts = release.split(|c: char| !c.is_ascii_digit());
  let major = parts.next()?.parse().ok()?;
  let minor = parts.next()?.parse().ok()?;
  Some((major, minor))
}

/// Whether `fd` was opened with `O_DIRECT`, so that an `EINVAL` from a read or write on it
/// most likely means a misaligned buffer, offset or length.
#[cfg(target_os = "linux")]
pub fn opened_with_direct_io(fd: RawFd) -> bool {
  // SAFETY: F_GETFL takes no pointer; a bad fd just fails.
  let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
  flags >= 0 && flags & libc::O_DIRECT != 0
}

/// Whether `fd` was opened with `O_DIRECT` (never, where there is no such flag).
#[cfg(not(target_os = "linux"))]
pub fn opened_with_direct_io(_fd: RawFd) -> bool {
  false
}

/// Whether `fd` is in non-blocking mode, so that `EAGAIN` is its answer rather than a
/// reason to try again.
pub fn is_nonblocking(fd: RawFd) -> bool {
  // SAFETY: F_GETFL takes no pointer; a bad fd just fails.
  let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
  flags >= 0 && flags & libc::O_NONBLOCK != 0
}

/// Maps `len` bytes (at least 1) of private anonymous memory, for one large buffer that
/// should not live on the allocator's heap. Free it with [`unmap`].
pub fn map_anonymous(len: usize) -> io::Result<*mut u8> {
  // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
  let at = unsafe {
    libc::mmap(
      std::ptr::null_mut(),
      len.max(1),
      libc::PROT_READ | libc::PROT_WRITE,
      libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
      -1,
      0,
    )
  };
  if at == libc::MAP_FAILED {
    Err(io::Error::last_os_error())
  } else {
    Ok(at.cast())
  }
}

/// Frees what [`map_anonymous`] mapped.
///
/// # Safety
/// `at` and `len` are one `map_anonymous` mapping's, and nothing uses it any more.
pub unsafe fn unmap(at: *mut u8, len: usize) {
  // SAFETY: the caller's guarantee.
  unsafe { libc::munmap(at.cast(), len.max(1)) };
}

/// The identity the kernel checks a path operation against: real, effective and saved
/// user and group ids, and the supplementary groups. A kernel thread working for an
/// io_uring (its SQPOLL thread) keeps the identity the ring was set up with, so a backend
/// compares this with its set-up's before it lets that thread open or remove a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
  users: [libc::uid_t; 3],
  groups: [libc::gid_t; 3],
  supplementary: Vec<libc::gid_t>,
}

impl Credentials {
  /// The calling thread's credentials (on Linux, glibc keeps every thread's the same).
  #[cfg(target_os = "linux")]
  pub fn current() -> Credentials {
    let mut users = [0; 3];
    let mut groups = [0; 3];
    let [ruid, euid, suid] = &mut users;
    let [rgid, egid, sgid] = &mut groups;
    // SAFETY: three out-pointers each, to locals.
    unsafe {
      libc::getresuid(ruid, euid, suid);
      libc::getresgid(rgid, egid, sgid);
    }
    let mut supplementary = vec![0; 64];
    loop {
      let room = supplementary.len() as libc::c_int;
      // SAFETY: `room` entries of writable memory.
      let count = unsafe { libc::getgroups(room, supplementary.as_mut_ptr()) };
      if count >= 0 {
        supplementary.truncate(count as usize);
        break;
      }
      // EINVAL: more groups than room.
      // SAFETY: a zero size asks for the count only.
      let needed = unsafe { libc::getgroups(0, std::ptr::null_mut()) }.max(0) as usize;
      supplementary.resize(needed.max(supplementary.len() * 2), 0);
    }
    Credentials {
      users,
      groups,
      supplementary,
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn parses_kernel_releases() {
    assert_eq!(parse_release("6.18.44-fc-v657"), Some((6, 18)));
    assert_eq!(parse_release("4.18.0-553.el8_10.x86_64"), Some((4, 18)));
    assert_eq!(parse_release("5.10"), Some((5, 10)));
    assert_eq!(parse_release("garbage"), None);
    assert!(kernel_version().is_some());
  }

  #[test]
  fn blocking_calls_report_errno() {
    let mut byte = [0u8; 1];
    let op = Operation {
      buf: byte.as_mut_ptr(),
      len: 1,
      ..Operation::sync(Opcode::Read, -1, 0)
    };
    // SAFETY: `byte` outlives the call.
    assert_eq!(unsafe { perform_blocking(&op) }, -i64::from(libc::EBADF));
    let fsync = Operation::sync(Opcode::Fsync, -1, 0);
    // SAFETY: a sync touches no buffer.
    assert_eq!(unsafe { perform_blocking(&fsync) }, -i64::from(libc::EBADF));
  }
}
