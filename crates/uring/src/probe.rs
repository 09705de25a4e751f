//! Whether io_uring can really be used on this machine, and if not, the reason in words a
//! user can act on.

use caio_core::sys::kernel_version;
use caio_core::Opcode;
use io_uring::{opcode, IoUring, Probe};

/// The reason given when `io_uring_setup` does not exist for this process.
const BLOCKED: &str =
  "io_uring is blocked (seccomp filter of a container?) — see README Troubleshooting";
/// The reason given when the `kernel.io_uring_disabled` sysctl refuses us.
const DISABLED: &str = "io_uring is disabled by kernel.io_uring_disabled";

/// The operations the backend issues, with the names the kernel headers give them.
const REQUIRED: [(u8, &str); 4] = [
  (opcode::Read::CODE, "IORING_OP_READ"),
  (opcode::Write::CODE, "IORING_OP_WRITE"),
  (opcode::Fsync::CODE, "IORING_OP_FSYNC"),
  (opcode::AsyncCancel::CODE, "IORING_OP_ASYNC_CANCEL"),
];

/// The `caio_core::Opcode`s `ring` does, one bit each: the data operations always (the
/// probe made sure), each path and storage-engine operation when the kernel has its
/// opcode, and the registrations where registering does not quiesce the ring
/// (`IORING_FEAT_RSRC_TAGS`, 5.13: see the `registered` module). `access` and the
/// whole-file copy have none.
pub(crate) fn supported_opcodes(ring: &IoUring) -> u32 {
  let data = [
    Opcode::Read,
    Opcode::Write,
    Opcode::Fsync,
    Opcode::Fdatasync,
  ];
  let mut bits = data.iter().fold(0, |bits, &op| bits | 1 << op as u32);
  if ring.params().is_feature_resource_tagging() {
    let registrations = [
      Opcode::RegisterBuffers,
      Opcode::UnregisterBuffers,
      Opcode::RegisterFiles,
      Opcode::UnregisterFiles,
    ];
    bits = registrations
      .iter()
      .fold(bits, |bits, &op| bits | 1 << op as u32);
  }
  let mut probe = Probe::new();
  if ring.submitter().register_probe(&mut probe).is_err() {
    return bits;
  }
  let by_kernel = [
    (Opcode::Open, opcode::OpenAt::CODE),
    (Opcode::Close, opcode::Close::CODE),
    (Opcode::Stat, opcode::Statx::CODE),
    (Opcode::Fstat, opcode::Statx::CODE),
    (Opcode::Unlink, opcode::UnlinkAt::CODE),
    (Opcode::Rename, opcode::RenameAt::CODE),
    (Opcode::Mkdir, opcode::MkDirAt::CODE),
    (Opcode::Ftruncate, opcode::Ftruncate::CODE),
    (Opcode::Readv, opcode::Readv::CODE),
    (Opcode::Writev, opcode::Writev::CODE),
    (Opcode::Fallocate, opcode::Fallocate::CODE),
    (Opcode::SyncRange, opcode::SyncFileRange::CODE),
    (Opcode::Fadvise, opcode::Fadvise::CODE),
  ];
  for (op, code) in by_kernel {
    if probe.is_supported(code) {
      bits |= 1 << op as u32;
    }
  }
  bits
}

/// Tries io_uring for real: sets up a tiny ring and asks it which operations it supports.
///
/// `Ok` means a [`UringBackend`](crate::UringBackend) can be created and every operation it
/// issues is known to the kernel. `Err` carries the reason, one of:
/// - `io_uring needs Linux 5.6 or newer; this kernel is X.Y`;
/// - `io_uring is blocked (seccomp filter of a container?) — see README Troubleshooting`, when
///   `io_uring_setup` fails with `ENOSYS`, or with `EPERM` while the
///   `kernel.io_uring_disabled` sysctl reads 0 (Docker's default profile answers `EPERM`);
/// - `io_uring is disabled by kernel.io_uring_disabled`, for any other `EPERM`;
/// - `io_uring_setup failed: <error>`, for anything else;
/// - a sentence naming the operations the kernel's probe says are missing.
pub fn probe() -> Result<(), String> {
  let version = kernel_version();
  if let Some(version) = version {
    if version < (5, 6) {
      return Err(too_old(version));
    }
  }
  let ring = IoUring::new(8).map_err(|err| {
    setup_error(
      err.raw_os_error(),
      sysctl_io_uring_disabled(),
      &err.to_string(),
    )
  })?;
  let mut probe = Probe::new();
  ring
    .submitter()
    .register_probe(&mut probe)
    .map_err(|err| format!("io_uring cannot list its operations (IORING_REGISTER_PROBE: {err})"))?;
  let missing: Vec<&str> = REQUIRED
    .iter()
    .filter(|(code, _)| !probe.is_supported(*code))
    .map(|(_, name)| *name)
    .collect();
  if missing.is_empty() {
    return Ok(());
  }
  let kernel = version.map_or_else(
    || "unknown".to_owned(),
    |(major, minor)| format!("{major}.{minor}"),
  );
  Err(format!(
    "io_uring on this kernel ({kernel}) lacks {}",
    missing.join(", ")
  ))
}

fn too_old((major, minor): (u32, u32)) -> String {
  format!("io_uring needs Linux 5.6 or newer; this kernel is {major}.{minor}")
}

/// Words for a failed `io_uring_setup`. `sysctl` is the value of `kernel.io_uring_disabled`,
/// when that file exists and could be read.
fn setup_error(errno: Option<i32>, sysctl: Option<u32>, error: &str) -> String {
  match errno {
    Some(libc::ENOSYS) => BLOCKED.to_owned(),
    // The sysctl allows everybody, so the EPERM came from elsewhere: a seccomp profile.
    Some(libc::EPERM) if sysctl == Some(0) => BLOCKED.to_owned(),
    Some(libc::EPERM) => DISABLED.to_owned(),
    _ => format!("io_uring_setup failed: {error}"),
  }
}

fn sysctl_io_uring_disabled() -> Option<u32> {
  std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
    .ok()?
    .trim()
    .parse()
    .ok()
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn io_uring_works_here() {
    assert_eq!(probe(), Ok(()));
  }

  #[test]
  fn explains_each_failure() {
    assert_eq!(
      too_old((5, 4)),
      "io_uring needs Linux 5.6 or newer; this kernel is 5.4"
    );
    assert_eq!(setup_error(Some(libc::ENOSYS), None, "x"), BLOCKED);
    assert_eq!(setup_error(Some(libc::EPERM), Some(2), "x"), DISABLED);
    assert_eq!(setup_error(Some(libc::EPERM), None, "x"), DISABLED);
    assert_eq!(setup_error(Some(libc::EPERM), Some(0), "x"), BLOCKED);
    assert_eq!(
      setup_error(
        Some(libc::ENOMEM),
        Some(0),
        "Cannot allocate memory (os error 12)"
      ),
      "io_uring_setup failed: Cannot allocate memory (os error 12)"
    );
  }
}
