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
//!
//! The buffer of a vectored operation ([`Opcode::Readv`], [`Opcode::Writev`]) is an array
//! of `iovec`s, and the rule covers the memory each of them describes as well: all of it
//! stays valid, and untouched by anybody else, until the completion is reaped.
//!
//! # The registration rule
//!
//! [`Opcode::RegisterBuffers`] hands a backend `iovec`s that it may give the kernel to keep
//! (io_uring's registered buffers). Whoever pushes it promises more than the buffer rule:
//! the memory those `iovec`s describe stays valid **until the completion of a later
//! [`Opcode::UnregisterBuffers`] has been reaped, or the backend has been dropped**. A
//! backend may then do a read or write whose buffer lies inside that memory on the
//! registered copy of it (`READ_FIXED`/`WRITE_FIXED`); it finishes an `UnregisterBuffers`
//! only once no operation that does so is outstanding.

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
/// relative to the working directory; their offset field carries their flags. The vectored
/// operations carry `iovec`s in their buffer, and the range operations their length and
/// flags ([`RangeArgs`]). Every
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
  /// `preadv`: fill the buffers the `iovec` array in the buffer describes, in order, from
  /// the file at the offset. `len` is the array's size in bytes ([`IOVEC_SIZE`] each).
  Readv = 15,
  /// `pwritev`: write the buffers the `iovec` array in the buffer describes, in order, to
  /// the file at the offset.
  Writev = 16,
  /// `fallocate(fd, mode, offset, length)`: the buffer holds the [`RangeArgs`] (length and
  /// `FALLOC_FL_*` mode).
  Fallocate = 17,
  /// `sync_file_range(fd, offset, nbytes, flags)`: the buffer holds the [`RangeArgs`]
  /// (`nbytes`, 0 for "to the end of the file", and `SYNC_FILE_RANGE_*` flags).
  SyncRange = 18,
  /// `posix_fadvise(fd, offset, len, advice)`: the buffer holds the [`RangeArgs`] (`len`,
  /// 0 for "to the end of the file", and the `POSIX_FADV_*` advice).
  Fadvise = 19,
  /// Registers the buffers the `iovec` array in the buffer describes (`len` is the array's
  /// size in bytes), so that reads and writes inside them may use the registered copy (see
  /// the registration rule in the crate docs). A backend without registered buffers does
  /// ordinary I/O on the same memory and answers 0.
  RegisterBuffers = 20,
  /// Lets go of the registered buffers once no operation uses them any more; 0 when none
  /// were registered.
  UnregisterBuffers = 21,
  /// Registers the descriptors in the buffer (native-endian `i32`s), so that operations on
  /// them may use the registered file; every one must be open (`EBADF`). A backend without
  /// registered files answers 0 once it has checked them.
  RegisterFiles = 22,
  /// Lets go of the registered descriptors once no operation uses them any more.
  UnregisterFiles = 23,
}

/// The offset of a read or write that uses and advances the descriptor's file position,
/// as `read(2)`/`write(2)` do, instead of a position of its own.
pub const AT_CURSOR: u64 = u64::MAX;

/// Bytes of a `Stat`/`Fstat` buffer that the kernel's `struct statx` fills.
pub const STATX_SIZE: usize = 256;

/// Bytes of one `struct iovec` in a vectored operation's buffer (8 on 32-bit targets).
#[cfg(unix)]
pub const IOVEC_SIZE: usize = std::mem::size_of::<libc::iovec>();

/// Bytes of the argument area of `Fallocate`, `SyncRange` and `Fadvise`: three native-endian
/// `u32` words, the length's low and high halves and the flags (mode, advice), and one
/// unused word.
pub const RANGE_ARGS_SIZE: usize = 16;

/// The arguments of `Fallocate`, `SyncRange` and `Fadvise` that do not fit in the
/// operation's offset field, as their buffer holds them ([`RANGE_ARGS_SIZE`] bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeArgs {
  /// Bytes from the offset on that the call covers.
  pub length: u64,
  /// `FALLOC_FL_*`, `SYNC_FILE_RANGE_*` or `POSIX_FADV_*`.
  pub flags: u32,
}

impl RangeArgs {
  /// Decodes an argument area: `None` when it is shorter than [`RANGE_ARGS_SIZE`].
  pub fn decode(area: &[u8]) -> Option<RangeArgs> {
    let word = |i: usize| -> Option<u32> {
      Some(u32::from_ne_bytes(
        area.get(4 * i..4 * i + 4)?.try_into().ok()?,
      ))
    };
    if area.len() < RANGE_ARGS_SIZE {
      return None;
    }
    Some(RangeArgs {
      length: u64::from(word(0)?) | u64::from(word(1)?) << 32,
      flags: word(2)?,
    })
  }

  /// The argument area that [`RangeArgs::decode`] reads back as `self`.
  pub fn encode(self) -> [u8; RANGE_ARGS_SIZE] {
    let mut area = [0u8; RANGE_ARGS_SIZE];
    area[0..4].copy_from_slice(&(self.length as u32).to_ne_bytes());
    area[4..8].copy_from_slice(&((self.length >> 32) as u32).to_ne_bytes());
    area[8..12].copy_from_slice(&self.flags.to_ne_bytes());
    area
  }

  /// The arguments of `op`, one of the range opcodes: `None` when its buffer is too short.
  ///
  /// # Safety
  /// `op.buf` is valid for `op.len` bytes (the buffer rule).
  pub unsafe fn of(op: &Operation) -> Option<RangeArgs> {
    if op.buf.is_null() || (op.len as usize) < RANGE_ARGS_SIZE {
      return None;
    }
    // SAFETY: the caller guarantees `op.len` (at least RANGE_ARGS_SIZE) readable bytes.
    let area = unsafe { std::slice::from_raw_parts(op.buf, RANGE_ARGS_SIZE) };
    RangeArgs::decode(area)
  }
}

impl Opcode {
  /// Every opcode, in wire order.
  pub const ALL: [Opcode; 24] = [
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
    Opcode::Readv,
    Opcode::Writev,
    Opcode::Fallocate,
    Opcode::SyncRange,
    Opcode::Fadvise,
    Opcode::RegisterBuffers,
    Opcode::UnregisterBuffers,
    Opcode::RegisterFiles,
    Opcode::UnregisterFiles,
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
      // Node's own `fs.readv`/`fs.writev` errors say `read` and `write`.
      Opcode::Readv => "read",
      Opcode::Writev => "write",
      Opcode::Fallocate => "fallocate",
      Opcode::SyncRange => "sync_file_range",
      Opcode::Fadvise => "fadvise",
      Opcode::RegisterBuffers
      | Opcode::UnregisterBuffers
      | Opcode::RegisterFiles
      | Opcode::UnregisterFiles => "io_uring_register",
    }
  }

  /// Whether the operation registers or unregisters buffers or descriptors.
  pub fn is_registration(self) -> bool {
    matches!(
      self,
      Opcode::RegisterBuffers
        | Opcode::UnregisterBuffers
        | Opcode::RegisterFiles
        | Opcode::UnregisterFiles
    )
  }

  /// Whether the operation's buffer is an array of `iovec`s that the caller's memory fills
  /// in: the vectored operations' and `RegisterBuffers`'.
  pub fn holds_iovecs(self) -> bool {
    self.is_vectored() || self == Opcode::RegisterBuffers
  }

  /// Whether the operation's buffer is an array of `iovec`s (`Readv`, `Writev`).
  pub fn is_vectored(self) -> bool {
    matches!(self, Opcode::Readv | Opcode::Writev)
  }

  /// Whether the operation's buffer is a [`RangeArgs`] area (`Fallocate`, `SyncRange`,
  /// `Fadvise`).
  pub fn takes_range(self) -> bool {
    matches!(
      self,
      Opcode::Fallocate | Opcode::SyncRange | Opcode::Fadvise
    )
  }

  /// Whether the operation works on a descriptor's data or its allocation (the reads and
  /// writes, the syncs, and the storage-engine operations), rather than on a file by path,
  /// a descriptor's metadata or its life: what a batch takes.
  pub fn is_data(self) -> bool {
    matches!(
      self,
      Opcode::Read
        | Opcode::Write
        | Opcode::Fsync
        | Opcode::Fdatasync
        | Opcode::Ftruncate
        | Opcode::Readv
        | Opcode::Writev
        | Opcode::Fallocate
        | Opcode::SyncRange
        | Opcode::Fadvise
    )
  }

  /// Whether the operation moves file data through its buffer (a read or a write), rather
  /// than passing a path, a stat area, `iovec`s or arguments through it, or having none.
  pub fn uses_buffer(self) -> bool {
    matches!(self, Opcode::Read | Opcode::Write)
  }

  /// Whether the operation has a buffer at all: its data, its paths or its stat area.
  pub fn has_buffer(self) -> bool {
    !matches!(
      self,
      Opcode::Fsync
        | Opcode::Fdatasync
        | Opcode::Close
        | Opcode::Ftruncate
        | Opcode::UnregisterBuffers
        | Opcode::UnregisterFiles
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

/// How many operations a backend started on registered resources: io_uring's fixed buffers
/// (`READ_FIXED`/`WRITE_FIXED`) and fixed files (`IOSQE_FIXED_FILE`). Zero for a backend
/// that has none; what a test looks at to see that they are really used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FixedUse {
  /// Reads and writes started on a registered buffer.
  pub buffers: u64,
  /// Operations started on a registered descriptor.
  pub files: u64,
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

  /// Whether this backend runs `op` inside a linked chain itself, as it runs every
  /// operation when it declares [`Traits::links`]. A backend that hands some operations to
  /// another queue (`caio_thread::Offload`'s pool) says no for those, and the scheduler then
  /// feeds that operation's chain one operation at a time, as for a backend without links.
  fn links_itself(&self, op: &Operation) -> bool {
    let _ = op;
    self.traits().links
  }

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

  /// How many operations this backend started on registered resources so far.
  fn fixed_use(&self) -> FixedUse {
    FixedUse::default()
  }
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
