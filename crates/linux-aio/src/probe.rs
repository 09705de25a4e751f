//! Whether kernel AIO can serve a context here, and why not in words a user can act on.

use std::io;

use caio_core::sys::kernel_version;

use crate::syscalls::{io_destroy, io_setup};

/// Checks that kernel AIO can serve a context of `capacity` operations here: Linux 4.18 or
/// newer (for `IOCB_CMD_FSYNC`), and an `io_setup` that succeeds. The error says why not
/// and what to do, ready to show a user.
pub fn probe(capacity: usize) -> Result<(), String> {
  if let Some((major, minor)) = kernel_version() {
    if (major, minor) < (4, 18) {
      return Err(format!(
        "kernel AIO with fsync needs Linux 4.18 or newer; this kernel is {major}.{minor}"
      ));
    }
  }
  match io_setup(capacity.max(1)) {
    Ok(ctx) => {
      io_destroy(ctx);
      Ok(())
    }
    Err(error) => Err(setup_error_message(&error)),
  }
}

/// Explains an `io_setup` failure (from [`AioBackend::new`](crate::AioBackend::new) or
/// [`probe`]) to a user.
pub fn setup_error_message(error: &io::Error) -> String {
  match error.raw_os_error() {
    Some(libc::ENOSYS) => "kernel AIO is not available (io_setup: ENOSYS — seccomp filter or a \
                           kernel built without CONFIG_AIO)"
      .to_string(),
    Some(libc::EAGAIN) => {
      let usage = match aio_headroom() {
        Some((used, max)) => format!(": {used} of {max} in use"),
        None => String::new(),
      };
      format!(
        "fs.aio-max-nr is exhausted{usage} (read /proc/sys/fs/aio-nr and aio-max-nr); lower \
         maxRequests or raise the sysctl"
      )
    }
    _ => format!("io_setup failed: {error}"),
  }
}

/// The system-wide count of AIO requests reserved by contexts and the most allowed:
/// `/proc/sys/fs/aio-nr` and `/proc/sys/fs/aio-max-nr`. `None` when either is unreadable.
pub fn aio_headroom() -> Option<(u64, u64)> {
  let read =
    |path: &str| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
  Some((
    read("/proc/sys/fs/aio-nr")?,
    read("/proc/sys/fs/aio-max-nr")?,
  ))
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::AioBackend;

  #[test]
  fn probe_succeeds_here() {
    assert_eq!(probe(512), Ok(()));
    let (used, max) = aio_headroom().unwrap();
    assert!(max > 0 && used <= max);
  }

  #[test]
  fn setup_errors_are_explained() {
    let nosys = setup_error_message(&io::Error::from_raw_os_error(libc::ENOSYS));
    assert!(nosys.starts_with("kernel AIO is not available (io_setup: ENOSYS"));
    let again = setup_error_message(&io::Error::from_raw_os_error(libc::EAGAIN));
    assert!(again.starts_with("fs.aio-max-nr is exhausted: "), "{again}");
    assert!(again.ends_with("lower maxRequests or raise the sysctl"));
    let other = setup_error_message(&io::Error::from_raw_os_error(libc::ENOMEM));
    assert!(other.starts_with("io_setup failed: "));
    // More than fs.aio-max-nr allows in one context.
    let (_, max) = aio_headroom().unwrap();
    let huge = AioBackend::new(max as usize + 1).err().unwrap();
    assert_eq!(huge.raw_os_error(), Some(libc::EAGAIN));
    assert!(probe(max as usize + 1)
      .unwrap_err()
      .starts_with("fs.aio-max-nr is exhausted: "));
  }
}
