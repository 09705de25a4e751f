//! The file descriptor a context's event loop watches for "completions are ready".

use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// A level-triggered "something is ready" flag backed by a file descriptor: an eventfd on
/// Linux (which io_uring and kernel AIO can signal by themselves), a pipe elsewhere.
///
/// Signalling is idempotent until cleared, so any number of producers may signal for the
/// same batch and the watcher wakes once.
#[derive(Debug)]
pub struct Notifier {
  read_fd: RawFd,
  write_fd: RawFd,
}

impl Notifier {
  /// Creates a cleared, non-blocking notifier.
  pub fn new() -> io::Result<Notifier> {
    #[cfg(target_os = "linux")]
    {
      // SAFETY: eventfd takes no pointers; the returned fd is owned by the Notifier.
      let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
      if fd < 0 {
        return Err(io::Error::last_os_error());
      }
      Ok(Notifier {
        read_fd: fd,
        write_fd: fd,
      })
    }
    #[cfg(not(target_os = "linux"))]
    {
      let mut fds = [0 as libc::c_int; 2];
      // SAFETY: `fds` has room for the two descriptors pipe writes.
      if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
      }
      for fd in fds {
        // SAFETY: fcntl on descriptors this function just created.
        unsafe {
          libc::fcntl(
            fd,
            libc::F_SETFL,
            libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
          );
          libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
      }
      Ok(Notifier {
        read_fd: fds[0],
        write_fd: fds[1],
      })
    }
  }

  /// The descriptor that becomes readable once signalled. For Linux this is the eventfd
  /// itself, suitable for `IORING_REGISTER_EVENTFD` and `IOCB_FLAG_RESFD`.
  pub fn fd(&self) -> RawFd {
    self.read_fd
  }

  /// Marks the notifier ready. Safe to call from any thread.
  pub fn signal(&self) {
    let one: u64 = 1;
    loop {
      // SAFETY: writes 8 bytes from a live local; the fd is open for the Notifier's life.
      let n = unsafe { libc::write(self.write_fd, (&one as *const u64).cast(), 8) };
      // EAGAIN means the counter (or pipe) is already full: it is signalled, which is
      // all we need.
      if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
        return;
      }
    }
  }

  /// Clears the ready state. Returns whether it was set.
  pub fn clear(&self) -> bool {
    let mut sink = [0u8; 64];
    let mut was_set = false;
    loop {
      // SAFETY: reads at most sink.len() bytes into a live local buffer.
      let n = unsafe { libc::read(self.read_fd, sink.as_mut_ptr().cast(), sink.len()) };
      if n > 0 {
        was_set = true;
        // An eventfd is drained by one read; a pipe may hold more.
        if cfg!(target_os = "linux") {
          return true;
        }
        continue;
      }
      if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
        continue;
      }
      return was_set;
    }
  }
}

impl Notifier {
  /// A second handle on the same notifier (duplicated descriptors): a signal through
  /// either is seen by both, so that two producers of completions can share one.
  pub fn try_clone(&self) -> io::Result<Notifier> {
    let dup = |fd: RawFd| {
      // SAFETY: F_DUPFD_CLOEXEC takes no pointer; a bad fd just fails.
      let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
      if copy < 0 {
        Err(io::Error::last_os_error())
      } else {
        Ok(copy)
      }
    };
    let read_fd = dup(self.read_fd)?;
    if self.write_fd == self.read_fd {
      return Ok(Notifier {
        read_fd,
        write_fd: read_fd,
      });
    }
    match dup(self.write_fd) {
      Ok(write_fd) => Ok(Notifier { read_fd, write_fd }),
      Err(error) => {
        // SAFETY: the copy was made above and is not used elsewhere.
        unsafe { libc::close(read_fd) };
        Err(error)
      }
    }
  }
}

impl AsRawFd for Notifier {
  fn as_raw_fd(&self) -> RawFd {
    self.read_fd
  }
}

impl Drop for Notifier {
  fn drop(&mut self) {
    // SAFETY: both descriptors are owned by this Notifier and closed exactly once.
    unsafe {
      libc::close(self.read_fd);
      if self.write_fd != self.read_fd {
        libc::close(self.write_fd);
      }
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn signal_then_clear_reports_ready_once() {
    let n = Notifier::new().unwrap();
    assert!(!n.clear(), "a new notifier is clear");
    n.signal();
    n.signal();
    assert!(n.clear());
    assert!(!n.clear());
  }

  #[test]
  fn signal_makes_the_fd_readable() {
    let n = Notifier::new().unwrap();
    let mut pfd = libc::pollfd {
      fd: n.fd(),
      events: libc::POLLIN,
      revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 0);
    n.signal();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 1);
  }

  #[test]
  fn signal_from_another_thread() {
    let n = std::sync::Arc::new(Notifier::new().unwrap());
    let m = n.clone();
    std::thread::spawn(move || m.signal()).join().unwrap();
    assert!(n.clear());
  }
}
