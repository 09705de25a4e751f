//! The words every caio backend speaks, and nothing else.
//!
//! An [`Operation`] is one read, write, fsync or fdatasync on a file descriptor at an
//! offset, or one operation on a file by its path (open, stat, unlink, …); a [`Completion`] is its outcome, matched to it by a token. A [`Backend`]
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
pub mod local;
#[cfg(unix)]
mod notifier;
#[cfg(unix)]
pub mod paths;
#[cfg(unix)]
pub mod sys;
#[cfg(all(unix, feature = "testing"))]
pub mod testing;

#[cfg(unix)]
use std::io;
#[cfg(unix)]
use std::os::fd::RawFd;
#[cfg(not(unix))]
/// A file descriptor number, as the C runtime knows it.
pub type RawFd = i32;

#[cfg(unix)]
pub use notifier::Notifier;

/// What an [`Operation`] does.
///
/// The path operations name their file by a NUL-terminated path in the operation's buffer,
/// relative to the working directory; their offset field carries their flags. Every
/// backend does every opcode, natively where the kernel has an opcode for it, else on a
/// pool thread; [`crate::sys::perform_blocking`] is what each one means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
  /// `pread`: fill the buffer from the file at the offset (`read` at [`AT_CURSOR`]).
  Read = 0,
  /// `pwrite`: write the buffer to the file at the offset (`write` at [`AT_CURSOR`]).
  Write = 1,
  /// `fsync`: flush data and metadata.
  Fsync = 2,
  /// `fdatasync`: flush data and the metadata needed to read it back.
  Fdatasync = 3,
  /// `openat(AT_FDCWD, path, flags, mode)`: the buffer holds the path, the offset
  /// `flags | mode << 32`; the result is the new descriptor.
  Open = 4,
  /// `close(fd)`.
  Close = 5,
  /// `statx(AT_FDCWD, path, flags, STATX_BASIC_STATS | STATX_BTIME)`: the buffer holds
  /// [`STATX_SIZE`] bytes for the answer, then the path; the offset holds the `AT_*` flags.
  Stat = 6,
  /// `statx(fd, "", AT_EMPTY_PATH, …)` into the [`STATX_SIZE`] bytes of the buffer.
  Fstat = 7,
  /// `unlinkat(AT_FDCWD, path, flags)`: the offset holds `AT_REMOVEDIR` for `rmdir`.
  Unlink = 8,
  /// `renameat(AT_FDCWD, from, AT_FDCWD, to)`: the buffer holds both paths, one after the
  /// other.
  Rename = 9,
  /// `mkdirat(AT_FDCWD, path, mode)`: the offset holds the mode.
  Mkdir = 10,
  /// `ftruncate(fd, length)`: the offset holds the length.
  Ftruncate = 11,
  /// `faccessat(AT_FDCWD, path, mode, 0)`: the offset holds the mode.
  Access = 12,
  /// Copies a whole file, as libuv's `uv_fs_copyfile` does: the buffer holds the source
  /// and destination paths, the offset the `COPYFILE_*` flags of Node.
  Copyfile = 13,
  /// A small file read whole in one go, as the first step of `readFile`: opens the path
  /// (the offset holds the open flags, as for `Open`), and if it is a regular file that fits
  /// the buffer after the path's NUL, reads it there and closes it; the result is its
  /// length. Otherwise the result is `room + 1 + fd` (`room` being the bytes after the NUL)
  /// for a descriptor still open at position 0, and the caller reads on from there: a file
  /// too big, empty (procfs files say so and are not), not regular, or whose read failed
  /// (the caller's own read then reports it).
  /// Only the open's failure comes back as an errno.
  ReadSmall = 14,
}

/// The offset of a read or write that uses and advances the descriptor's file position,
/// as `read(2)`/`write(2)` do, instead of a position of its own.
pub const AT_CURSOR: u64 = u64::MAX;

/// Bytes of a `Stat`/`Fstat` buffer that the kernel's `struct statx` fills.
pub const STATX_SIZE: usize = 256;

impl Opcode {
  /// Every opcode, in wire order.
  pub const ALL: [Opcode; 15] = [
    Opcode::Read,
    Opcode::Write,
    Opcode::Fsync,
    Opcode::Fdatasync,
    Opcode::Open,
    Opcode::Close,
    Opcode::Stat,
    Opcode::Fstat,
    Opcode::Unlink,
    Opcode::Rename,
    Opcode::Mkdir,
    Opcode::Ftruncate,
    Opcode::Access,
    Opcode::Copyfile,
    Opcode::ReadSmall,
  ];

  /// Decodes the number JavaScript passes for an opcode.
  pub fn from_u32(value: u32) -> Option<Opcode> {
    Opcode::ALL.get(usize::try_from(value).ok()?).copied()
  }

  /// The name of the system call this operation stands for, as Node's fs errors say it.
  pub fn syscall(self) -> &'static str {
    match self {
      Opcode::Read => "read",
      Opcode::Write => "write",
      Opcode::Fsync => "fsync",
      Opcode::Fdatasync => "fdatasync",
      Opcode::Open => "open",
      Opcode::Close => "close",
      Opcode::Stat => "stat",
      Opcode::Fstat => "fstat",
      Opcode::Unlink => "unlink",
      Opcode::Rename => "rename",
      Opcode::Mkdir => "mkdir",
      Opcode::Ftruncate => "ftruncate",
      Opcode::Access => "access",
      Opcode::Copyfile => "copyfile",
      Opcode::ReadSmall => "open",
    }
  }

  /// Whether the operation moves file data through its buffer (a read or a write), rather
  /// than passing a path or a stat area through it, or having none.
  pub fn uses_buffer(self) -> bool {
    matches!(self, Opcode::Read | Opcode::Write)
  }

  /// Whether the operation has a buffer at all: its data, its paths or its stat area.
  pub fn has_buffer(self) -> bool {
    !matches!(
      self,
      Opcode::Fsync | Opcode::Fdatasync | Opcode::Close | Opcode::Ftruncate
    )
  }

  /// Whether the operation names its file by a path, so that the kernel checks the
  /// caller's credentials for it (`Close` and the descriptor operations check none).
  pub fn checks_credentials(self) -> bool {
    matches!(
      self,
      Opcode::Open
        | Opcode::Stat
        | Opcode::Unlink
        | Opcode::Rename
        | Opcode::Mkdir
        | Opcode::Access
        | Opcode::Copyfile
        | Opcode::ReadSmall
    )
  }
}

/// Which thread a read of a batch should be done on, when a backend can do it on more than
/// one. The scheduler marks every second unlinked read of a batch [`Share::Here`] and the
/// others [`Share::Elsewhere`], so that a backend with a second thread at hand (an SQPOLL
/// kernel thread, a pool worker) can keep both cores copying while the batch's submitter,
/// which waits for all of it, has nothing else to do. A hint: it never changes a result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Share {
  /// Not part of a batch, or not a read that may move: do it as the backend always does.
  #[default]
  Alone,
  /// This one on the submitting thread, if the page cache has its bytes.
  Here,
  /// This one on the other thread.
  Elsewhere,
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
  /// Byte offset in the file: at most `i64::MAX`, or [`AT_CURSOR`]. Ignored by syncs; the
  /// flags, mode or length of the operations that have no offset (see [`Opcode`]).
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
  /// one fails, the rest of the chain completes with `-ECANCELED`. Only backends that
  /// declare [`Traits::links`] are ever pushed a linked operation.
  pub link: bool,
  /// Where a batch read may best be done (see [`Share`]).
  pub share: Share,
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
      share: Share::Alone,
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

/// Where a backend keeps an operation it was pushed (its slot index, for most), so that a
/// cancel finds it without a search.
pub type Place = u32;

/// An operation could not be taken because the backend is at capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// What a backend is, declared once when it is made. The scheduler decides from it how to
/// feed the backend; the backend is never told how to tune itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Traits {
  /// The most operations that may be pushed and not yet reaped.
  pub capacity: usize,
  /// The backend runs linked chains itself (io_uring's `IOSQE_IO_LINK`, a pool worker
  /// running a chain in order). Without it the scheduler pushes a chain's operations one
  /// at a time, each after the one before succeeded.
  pub links: bool,
  /// A submit costs about one system call and wakes no thread, so that submitting a few
  /// operations at a time as they start costs little more than one submit per tick.
  pub cheap_submit: bool,
}

/// What a [`Backend::submit`] tells the scheduler about the completions to come.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Submitted {
  /// Another thread (an SQPOLL kernel thread, a pool worker given cached reads) is about
  /// to post completions of this submit within microseconds: waiting a moment for them
  /// (polling [`Backend::ready`]) is cheaper than being woken by the event loop.
  pub completions_soon: bool,
}

#[cfg(unix)]
/// The contract between the scheduler and one way of doing I/O.
///
/// Every operation pushed produces exactly one [`Completion`], eventually, even when it
/// was cancelled or refused; per-operation failures arrive as completions with a negative
/// errno, never as an `Err` from these methods. Nothing here may block on a device.
pub trait Backend {
  /// What this backend is.
  fn traits(&self) -> Traits;

  /// Queues one operation for the next [`Backend::submit`] and returns where the backend
  /// keeps it (a [`Place`], for [`Backend::cancel`]). A linked chain (only for backends
  /// that declare [`Traits::links`]) is pushed without other pushes in between and only
  /// when there is room for all of it. Returns [`Full`] when `capacity` operations are
  /// already outstanding.
  ///
  /// # Safety
  /// The caller upholds the buffer rule (crate docs) for `op.buf`/`op.len`.
  unsafe fn push(&mut self, op: Operation) -> Result<Place, Full>;

  /// Hands everything pushed since the last call to the kernel or the pool. With
  /// `reap_follows`, the caller reaps right after and the notifier need not be signalled
  /// for completions until [`Backend::signal_completions`] turns signalling back on.
  fn submit(&mut self, reap_follows: bool) -> io::Result<Submitted>;

  /// Appends every completion that is ready to `out`. Never blocks.
  fn reap(&mut self, out: &mut Vec<Completion>);

  /// Whether a [`Backend::reap`] would find completions now: a few loads, no system call.
  fn ready(&self) -> bool;

  /// Asks for the outstanding operation `token`, which `push` put at `place`, to be
  /// cancelled. Its completion still arrives: `-ECANCELED` if the cancellation worked, its
  /// real result otherwise. A token that is no longer at `place` (already reaped) is
  /// ignored: the backend checks, so a late cancel can never hit another operation.
  fn cancel(&mut self, token: u64, place: Place);

  /// Ends a `reap_follows` submit's quiet: completions signal the notifier again, and if
  /// any are waiting unreaped it is signalled now, so that none is ever missed.
  fn signal_completions(&mut self);

  /// The notifier that becomes readable whenever completions are ready.
  fn notifier(&self) -> &Notifier;
}

/// Whether `result` of a completion is an error, and which.
pub fn result_errno(result: i64) -> Option<i32> {
  if result < 0 {
    i32::try_from(-result).ok()
  } else {
    None
  }
}

#[cfg(unix)]
pub use sys::opened_with_direct_io;

/// Whether `fd` was opened with `O_DIRECT` (never, where there is no such flag).
#[cfg(not(unix))]
pub fn opened_with_direct_io(_fd: RawFd) -> bool {
  false
}
