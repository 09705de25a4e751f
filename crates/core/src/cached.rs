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
/// as it stands. Not for files opened with `O_DIRECT` (see [`DirectIoMemo`]), whose reads
/// wait for the device even so.
///
/// # Safety
/// `op.buf` is valid for `op.len` bytes and nobody else touches them meanwhile (the buffer
/// rule, crate docs).
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
pub unsafe fn read_if_cached(op: &Operation) -> Option<i64> {
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
  // Short: the end of the file, or only part of the range in the cache.
  // SAFETY: `stat` is plain data the call fills.
  let mut stat: libc::stat = unsafe { std::mem::zeroed() };
  // SAFETY: a valid out-pointer; a bad descriptor just fails.
  if unsafe { libc::fstat(op.fd, &mut stat) } == 0 && op.offset + count >= stat.st_size as u64 {
    return Some(rc as i64);
  }
  None
}

/// Elsewhere every read is done the waiting way.
///
/// # Safety
/// None needed: it touches nothing.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
pub unsafe fn read_if_cached(_op: &Operation) -> Option<i64> {
  None
}
