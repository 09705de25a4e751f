//! OS error numbers named the way Node.js names them.
//!
//! The codes and messages are libuv's (what `util.getSystemErrorMap()` returns in Node),
//! so an error from a native backend reads exactly like one from `node:fs`.

/// `(errno, code, message)` for every error Node knows by name on this platform.
///
/// Rows whose constant the platform's C library lacks are compiled only where it has it:
/// `ENONET`, `EREMOTEIO` and `EUNATCH` are Linux's own (libuv gives them numbers of its own
/// elsewhere), and Windows' C runtime has no `EHOSTDOWN`, `ESHUTDOWN` or `ESOCKTNOSUPPORT`.
pub const ERRORS: &[(i32, &str, &str)] = &[
  (libc::E2BIG, "E2BIG", "argument list too long"),
  (libc::EACCES, "EACCES", "permission denied"),
  (libc::EADDRINUSE, "EADDRINUSE", "address already in use"),
  (
    libc::EADDRNOTAVAIL,
    "EADDRNOTAVAIL",
    "address not available",
  ),
  (
    libc::EAFNOSUPPORT,
    "EAFNOSUPPORT",
    "address family not supported",
  ),
  (libc::EAGAIN, "EAGAIN", "resource temporarily unavailable"),
  (libc::EALREADY, "EALREADY", "connection already in progress"),
  (libc::EBADF, "EBADF", "bad file descriptor"),
  (libc::EBUSY, "EBUSY", "resource busy or locked"),
  (libc::ECANCELED, "ECANCELED", "operation canceled"),
  (
    libc::ECONNABORTED,
    "ECONNABORTED",
    "software caused connection abort",
  ),
  (libc::ECONNREFUSED, "ECONNREFUSED", "connection refused"),
  (libc::ECONNRESET, "ECONNRESET", "connection reset by peer"),
  (
    libc::EDESTADDRREQ,
    "EDESTADDRREQ",
    "destination address required",
  ),
  (libc::EEXIST, "EEXIST", "file already exists"),
  (
    libc::EFAULT,
    "EFAULT",
    "bad address in system call argument",
  ),
  (libc::EFBIG, "EFBIG", "file too large"),
  (libc::EHOSTUNREACH, "EHOSTUNREACH", "host is unreachable"),
  (libc::EINTR, "EINTR", "interrupted system call"),
  (libc::EINVAL, "EINVAL", "invalid argument"),
  (libc::EIO, "EIO", "i/o error"),
  (libc::EISCONN, "EISCONN", "socket is already connected"),
  (libc::EISDIR, "EISDIR", "illegal operation on a directory"),
  (libc::ELOOP, "ELOOP", "too many symbolic links encountered"),
  (libc::EMFILE, "EMFILE", "too many open files"),
  (libc::EMSGSIZE, "EMSGSIZE", "message too long"),
  (libc::ENAMETOOLONG, "ENAMETOOLONG", "name too long"),
  (libc::ENETDOWN, "ENETDOWN", "network is down"),
  (libc::ENETUNREACH, "ENETUNREACH", "network is unreachable"),
  (libc::ENFILE, "ENFILE", "file table overflow"),
  (libc::ENOBUFS, "ENOBUFS", "no buffer space available"),
  (libc::ENODEV, "ENODEV", "no such device"),
  (libc::ENOENT, "ENOENT", "no such file or directory"),
  (libc::ENOMEM, "ENOMEM", "not enough memory"),
  #[cfg(target_os = "linux")]
  (libc::ENONET, "ENONET", "machine is not on the network"),
  (libc::ENOPROTOOPT, "ENOPROTOOPT", "protocol not available"),
  (libc::ENOSPC, "ENOSPC", "no space left on device"),
  (libc::ENOSYS, "ENOSYS", "function not implemented"),
  (libc::ENOTCONN, "ENOTCONN", "socket is not connected"),
  (libc::ENOTDIR, "ENOTDIR", "not a directory"),
  (libc::ENOTEMPTY, "ENOTEMPTY", "directory not empty"),
  (libc::ENOTSOCK, "ENOTSOCK", "socket operation on non-socket"),
  // libuv's ENOTSUP is the C library's ENOTSUP: the same number as EOPNOTSUPP on Linux, a
  // different one on macOS.
  (
    libc::ENOTSUP,
    "ENOTSUP",
    "operation not supported on socket",
  ),
  (
    libc::EOVERFLOW,
    "EOVERFLOW",
    "value too large for defined data type",
  ),
  (libc::EPERM, "EPERM", "operation not permitted"),
  (libc::EPIPE, "EPIPE", "broken pipe"),
  (libc::EPROTO, "EPROTO", "protocol error"),
  (
    libc::EPROTONOSUPPORT,
    "EPROTONOSUPPORT",
    "protocol not supported",
  ),
  (
    libc::EPROTOTYPE,
    "EPROTOTYPE",
    "protocol wrong type for socket",
  ),
  (libc::ERANGE, "ERANGE", "result too large"),
  (libc::EROFS, "EROFS", "read-only file system"),
  #[cfg(unix)]
  (
    libc::ESHUTDOWN,
    "ESHUTDOWN",
    "cannot send after transport endpoint shutdown",
  ),
  (libc::ESPIPE, "ESPIPE", "invalid seek"),
  (libc::ESRCH, "ESRCH", "no such process"),
  (libc::ETIMEDOUT, "ETIMEDOUT", "connection timed out"),
  (libc::ETXTBSY, "ETXTBSY", "text file is busy"),
  (libc::EXDEV, "EXDEV", "cross-device link not permitted"),
  (libc::ENXIO, "ENXIO", "no such device or address"),
  (libc::EMLINK, "EMLINK", "too many links"),
  #[cfg(unix)]
  (libc::EHOSTDOWN, "EHOSTDOWN", "host is down"),
  #[cfg(target_os = "linux")]
  (libc::EREMOTEIO, "EREMOTEIO", "remote I/O error"),
  (libc::ENOTTY, "ENOTTY", "inappropriate ioctl for device"),
  (libc::EILSEQ, "EILSEQ", "illegal byte sequence"),
  #[cfg(unix)]
  (
    libc::ESOCKTNOSUPPORT,
    "ESOCKTNOSUPPORT",
    "socket type not supported",
  ),
  (libc::ENODATA, "ENODATA", "no data available"),
  #[cfg(target_os = "linux")]
  (libc::EUNATCH, "EUNATCH", "protocol driver not attached"),
];

/// The code Node gives `errno` (positive), or `"UNKNOWN"` for one it has no name for.
pub fn code(errno: i32) -> &'static str {
  lookup(errno).map_or("UNKNOWN", |(_, code, _)| code)
}

/// Node's message for `errno` (positive), such as `"bad file descriptor"`.
pub fn message(errno: i32) -> &'static str {
  lookup(errno).map_or("unknown error", |(_, _, message)| message)
}

fn lookup(errno: i32) -> Option<&'static (i32, &'static str, &'static str)> {
  ERRORS.iter().find(|(number, _, _)| *number == errno)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn names_the_errors_a_file_operation_meets() {
    assert_eq!(code(libc::EBADF), "EBADF");
    assert_eq!(message(libc::EBADF), "bad file descriptor");
    assert_eq!(code(libc::EISDIR), "EISDIR");
    assert_eq!(message(libc::EISDIR), "illegal operation on a directory");
    assert_eq!(code(libc::ENOSPC), "ENOSPC");
    assert_eq!(code(libc::ECANCELED), "ECANCELED");
    assert_eq!(code(libc::ESPIPE), "ESPIPE");
  }

  #[test]
  fn unknown_errors_are_named_unknown() {
    assert_eq!(code(100_000), "UNKNOWN");
    assert_eq!(message(100_000), "unknown error");
  }

  #[test]
  fn every_errno_appears_once() {
    let mut seen = std::collections::HashSet::new();
    for (errno, _, _) in ERRORS {
      assert!(seen.insert(errno), "errno {errno} listed twice");
    }
  }
}
