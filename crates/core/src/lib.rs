//! The words every caio backend speaks, and nothing else.
//!
//! An [`Operation`] is one read, write, fsync or fdatasync on a file descriptor at an
//! offset; a [`Completion`] is its outcome, matched to it by a token. A [`Backend`]
//! accepts operations and hands back completions, and signals a [`Notifier`] whenever
//! completions are ready, so that an event loop can watch one file descriptor per
//! context. The [`errno`] module names OS errors the way Node.js does.
//!
//! # The buffer rule
//!
//! An operation carries a raw pointer and a length instead of an owned buffer, because
//! the memory belongs to the caller (in caio, a JavaScript `ArrayBuffer`). Whoever pushes
//! an operation into a backend promises that the `len` bytes at `buf` stay valid, and are
//! not read or written by anybody else, **from the push until the completion carrying the
//! operation's token has been reaped** — not until it was cancelled, not until the
//! context was closed: until it was reaped. Every backend relies on this rule and every
//! `unsafe` block that touches operation memory points here.

#[cfg(unix)]
pub mod cached;
pub mod errno;
#[cfg(unix)]
mod notifier;
pub mod spin;

#[cfg(unix)]
use std::io;
#[cfg(unix)]
use std::os::fd::RawFd;
#[cfg(not(unix))]
/// A file descriptor number, as the C runtime knows it.
pub type RawFd = i32;
#[cfg(unix)]
use std::time::Duration;

#[cfg(unix)]
pub use notifier::Notifier;

/// What an [`Operation`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
  /// `pread`: fill the buffer from the file at the offset.
  Read = 0,
  /// `pwrite`: write the buffer to the file at the offset.
  Write = 1,
  /// `fsync`: flush data and metadata.
  Fsync = 2,
  /// `fdatasync`: flush data and the metadata needed to read it back.
  Fdatasync = 3,
}

impl Opcode {
  /// Decodes the number JavaScript passes for an opcode.
  pub fn from_u32(value: u32) -> Option<Opcode> {
    match value {
      0 => Some(Opcode::Read),
      1 => Some(Opcode::Write),
      2 => Some(Opcode::Fsync),
      3 => Some(Opcode::Fdatasync),
      _ => None,
    }
  }

  /// The name of the system call this operation stands for, as Node's fs errors say it.
  pub fn syscall(self) -> &'static str {
    match self {
      Opcode::Read => "read",
      Opcode::Write => "write",
      Opcode::Fsync => "fsync",
      Opcode::Fdatasync => "fdatasync",
    }
  }

  /// Whether the operation moves bytes through a buffer.
  pub fn uses_buffer(self) -> bool {
    matches!(self, Opcode::Read | Opcode::Write)
  }
}

/// One I/O request. Plain data: copying it copies the pointer, never the bytes.
///
/// See the crate docs for the buffer rule that `buf` lives under.
#[derive(Clone, Copy, Debug)]
pub struct Operation {
  /// What to do.
  pub opcode: Opcode,
  /// The file descriptor to do it on.
  pub fd: RawFd,
  /// Byte offset in the file (ignored by syncs). At most `i64::MAX`.
  pub offset: u64,
  /// Start of the caller's buffer (null for syncs).
  pub buf: *mut u8,
  /// Length of the buffer in bytes (0 for syncs).
  pub len: u32,
  /// Chosen by the caller, returned unchanged in the [`Completion`].
  pub token: u64,
  /// I/O priority in the `ioprio` encoding; 0 means the default. Backends without a
  /// notion of priority ignore it.
  pub priority: u16,
  /// When set, the next operation pushed starts only after this one succeeded; if this
  /// one fails, the rest of the chain completes with `-ECANCELED`.
  pub link: bool,
  /// Part of a batch, whose submitter waits for all of it (one Promise for many) and has
  /// nothing else to do meanwhile: a backend that hands work to another thread may do a
  /// share of such operations on the submitting thread instead. A hint; changes no result.
  pub in_batch: bool,
}

impl Operation {
  /// A sync (`Fsync`/`Fdatasync`) needs neither buffer nor offset.
  pub fn sync(opcode: Opcode, fd: RawFd, token: u64) -> Operation {
    Operation {
      opcode,
      fd,
      offset: 0,
      buf: std::ptr::null_mut(),
      len: 0,
      token,
      priority: 0,
      link: false,
      in_batch: false,
    }
  }
}

// SAFETY: an Operation is a request, not an owner: the memory behind `buf` is governed by
// the buffer rule (crate docs), which the pusher upholds for whichever thread runs it.
unsafe impl Send for Operation {}

/// The outcome of one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
  /// The token of the operation this completes.
  pub token: u64,
  /// Bytes moved (0 for a sync), or a negative errno.
  pub result: i64,
}

/// An operation could not be taken because the backend is at capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

#[cfg(unix)]
/// The contract between the Node adapter and one way of doing I/O.
///
/// Every operation pushed produces exactly one [`Completion`], eventually, even when it
/// was cancelled or refused; per-operation failures arrive as completions with a negative
/// errno, never as an `Err` from these methods.
pub trait Backend {
  /// The most operations that may be pushed and not yet reaped.
  fn capacity(&self) -> usize;

  /// Queues one operation for the next [`Backend::submit`]. A chain of linked operations
  /// must be pushed without other pushes in between and only when there is room for all
  /// of it. Returns [`Full`] when `capacity` operations are already outstanding.
  ///
  /// # Safety
  /// The caller upholds the buffer rule (crate docs) for `op.buf`/`op.len`.
  unsafe fn push(&mut self, op: Operation) -> Result<(), Full>;

  /// Hands everything pushed since the last call to the kernel or the pool.
  fn submit(&mut self) -> io::Result<()>;

  /// Appends every completion that is ready to `out`. Never blocks.
  fn reap(&mut self, out: &mut Vec<Completion>);

  /// Asks for an outstanding operation to be cancelled. Its completion still arrives:
  /// `-ECANCELED` if the cancellation worked, its real result otherwise.
  fn cancel(&mut self, token: u64);

  /// The notifier that becomes readable whenever completions are ready.
  fn notifier(&self) -> &Notifier;

  /// Tells the backend that the caller is about to reap right after submitting, so the
  /// notifier need not be signalled for completions that arrive meanwhile (signalling is not
  /// free: it wakes the event loop's poller). Turning quiet off signals the notifier if
  /// completions are already waiting, so that none is ever missed. By default, nothing.
  fn set_quiet(&mut self, quiet: bool) {
    let _ = quiet;
  }

  /// Whether a submit costs about one system call and wakes no thread, so that submitting a
  /// few operations at a time as they are pushed costs little more than one submit for all.
  /// By default, no.
  fn submits_cheaply(&self) -> bool {
    false
  }

  /// Waits a few microseconds for a completion of what was submitted, where completions are
  /// made by another thread that usually finishes that soon (an SQPOLL kernel thread), so
  /// that the caller can reap them inline instead of through a wake-up of its event loop.
  /// Returns whether a completion is ready. By default, no wait and false.
  fn await_inline(&mut self) -> bool {
    false
  }

  /// Blocks until a completion may be ready or `timeout` passed. For shutdown and tests;
  /// the event loop never calls it.
  fn wait(&mut self, timeout: Duration);
}

/// Whether `result` of a completion is an error, and which.
pub fn result_errno(result: i64) -> Option<i32> {
  if result < 0 {
    i32::try_from(-result).ok()
  } else {
    None
  }
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
