//! Talking to the kernel's queues: setting the ring up, building submission queue entries,
//! getting them into the submission queue and entering the kernel for them.

use std::io;

use caio_core::{Opcode, Operation, RangeArgs, AT_CURSOR, IOVEC_SIZE, STATX_SIZE};
use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::table::Fixed;
use crate::UringBackend;

/// `$entry` with `$target` bound to the operation's file: its registered index when it has
/// one (the builder then sets `IOSQE_FIXED_FILE`), else its descriptor. One arm per target
/// type, since the builders take either.
macro_rules! on_file {
  ($file:expr, $fd:expr, |$target:ident| $entry:expr) => {
    match $file {
      Some(index) => {
        let $target = types::Fixed(index);
        $entry
      }
      None => {
        let $target = types::Fd($fd);
        $entry
      }
    }
  };
}

/// How long an SQPOLL kernel thread spins without work before it sleeps.
pub(crate) const SQPOLL_IDLE_MS: u32 = 50;

/// Sets up the ring, with an SQPOLL thread when asked and granted. Returns whether it has one.
pub(crate) fn build_ring(sq_entries: u32, sqpoll: bool) -> io::Result<(IoUring, bool)> {
  let mut builder = IoUring::<squeue::Entry, cqueue::Entry>::builder();
  builder.setup_cqsize(2 * sq_entries);
  if sqpoll {
    let mut polled = builder.clone();
    polled.setup_sqpoll(SQPOLL_IDLE_MS);
    // EPERM before 5.11 without CAP_SYS_ADMIN; other refusals are as good a reason to fall
    // back. Before 5.11 an SQPOLL ring also takes registered files only, useless here.
    if let Ok(ring) = polled.build(sq_entries) {
      if ring.params().is_feature_sqpoll_nonfixed() {
        return Ok((ring, true));
      }
    }
  }
  // Completions of work the kernel finished away from this thread (io-wq, the block layer)
  // wait as task work for the next reap's enter, instead of interrupting the thread once
  // each; and a linked chain's next operation is issued there too. 6.1 and later; SQPOLL
  // cannot have it.
  let mut deferred = builder.clone();
  deferred
    .setup_single_issuer()
    .setup_defer_taskrun()
    .setup_taskrun_flag();
  if let Ok(ring) = deferred.build(sq_entries) {
    return Ok((ring, false));
  }
  Ok((builder.build(sq_entries)?, false))
}

/// The submission queue entry for `op`, one of the opcodes [`UringBackend::performs`]
/// accepts (the others are never pushed), on the registered buffer and file `fixed` names.
#[inline]
pub(crate) fn build_entry(op: &Operation, fixed: Fixed, user_data: u64) -> squeue::Entry {
  let file = fixed.file;
  // u64::MAX is -1 to the kernel: "at the file position", which only AT_CURSOR asks for.
  // Clamp any other offset, and the kernel refuses it with EINVAL as pread would.
  let offset = if op.offset == AT_CURSOR {
    AT_CURSOR
  } else {
    op.offset.min(i64::MAX as u64)
  };
  let entry = match (op.opcode, fixed.buffer) {
    (Opcode::Read, None) => on_file!(file, op.fd, |fd| opcode::Read::new(fd, op.buf, op.len)
      .offset(offset)
      .ioprio(op.priority)
      .build()),
    (Opcode::Write, None) => on_file!(file, op.fd, |fd| opcode::Write::new(fd, op.buf, op.len)
      .offset(offset)
      .ioprio(op.priority)
      .build()),
    (Opcode::Read, Some(index)) => on_file!(file, op.fd, |fd| opcode::ReadFixed::new(
      fd, op.buf, op.len, index
    )
    .offset(offset)
    .ioprio(op.priority)
    .build()),
    (Opcode::Write, Some(index)) => on_file!(file, op.fd, |fd| opcode::WriteFixed::new(
      fd, op.buf, op.len, index
    )
    .offset(offset)
    .ioprio(op.priority)
    .build()),
    (Opcode::Fsync, _) => on_file!(file, op.fd, |fd| opcode::Fsync::new(fd).build()),
    (Opcode::Fdatasync, _) => on_file!(file, op.fd, |fd| opcode::Fsync::new(fd)
      .flags(types::FsyncFlags::DATASYNC)
      .build()),
    (
      Opcode::Readv | Opcode::Writev | Opcode::Fallocate | Opcode::SyncRange | Opcode::Fadvise,
      _,
    ) => build_storage_entry(op, file, offset),
    _ => build_path_entry(op),
  }
  .user_data(user_data);
  if op.link {
    entry.flags(squeue::Flags::IO_LINK)
  } else {
    entry
  }
}

/// The entry of a vectored or range operation, on registered file `file` if it has one.
/// `performs` made sure that a range operation's buffer holds its arguments and that its
/// length fits the entry.
#[cold]
fn build_storage_entry(op: &Operation, file: Option<u32>, offset: u64) -> squeue::Entry {
  let iovecs = (op.len as usize / IOVEC_SIZE) as u32;
  // SAFETY: the pusher upholds the buffer rule for the argument area (checked by
  // `performs` to be long enough); a vectored operation's buffer is not read here.
  let args = unsafe { RangeArgs::of(op) }.unwrap_or(RangeArgs {
    length: 0,
    flags: 0,
  });
  let iov = op.buf.cast::<libc::iovec>();
  match op.opcode {
    Opcode::Readv => on_file!(file, op.fd, |fd| opcode::Readv::new(fd, iov, iovecs)
      .offset(offset)
      .ioprio(op.priority)
      .build()),
    Opcode::Writev => on_file!(file, op.fd, |fd| opcode::Writev::new(fd, iov, iovecs)
      .offset(offset)
      .ioprio(op.priority)
      .build()),
    Opcode::Fallocate => on_file!(file, op.fd, |fd| opcode::Fallocate::new(fd, args.length)
      .offset(offset)
      .mode(args.flags as i32)
      .build()),
    Opcode::SyncRange => on_file!(file, op.fd, |fd| opcode::SyncFileRange::new(
      fd,
      args.length as u32
    )
    .offset(offset)
    .flags(args.flags)
    .build()),
    _ => on_file!(file, op.fd, |fd| opcode::Fadvise::new(
      fd,
      args.length as libc::off_t,
      args.flags as i32
    )
    .offset(offset)
    .build()),
  }
}

/// The entry of a path operation (see `caio_core::Opcode` for where each keeps what).
#[cold]
fn build_path_entry(op: &Operation) -> squeue::Entry {
  let here = types::Fd(libc::AT_FDCWD);
  let path = op.buf as *const libc::c_char;
  let low = (op.offset & 0xffff_ffff) as u32;
  let statx_mask = libc::STATX_BASIC_STATS | libc::STATX_BTIME;
  match op.opcode {
    Opcode::Open => opcode::OpenAt::new(here, path)
      .flags(low as i32)
      .mode((op.offset >> 32) as libc::mode_t)
      .build(),
    Opcode::Close => opcode::Close::new(types::Fd(op.fd)).build(),
    Opcode::Stat => opcode::Statx::new(
      here,
      // SAFETY: `performs` checked that the path follows the STATX_SIZE answer area.
      unsafe { path.add(STATX_SIZE) },
      op.buf.cast(),
    )
    .flags(low as i32)
    .mask(statx_mask)
    .build(),
    Opcode::Fstat => opcode::Statx::new(types::Fd(op.fd), c"".as_ptr(), op.buf.cast())
      .flags(libc::AT_EMPTY_PATH)
      .mask(statx_mask)
      .build(),
    Opcode::Unlink => opcode::UnlinkAt::new(here, path).flags(low as i32).build(),
    Opcode::Rename => {
      // SAFETY: `performs` checked that the buffer holds two NUL-terminated paths.
      let second = unsafe { second_path(op) };
      opcode::RenameAt::new(here, path, here, second).build()
    }
    Opcode::Mkdir => opcode::MkDirAt::new(here, path).mode(low & 0o7777).build(),
    Opcode::Ftruncate => {
      opcode::Ftruncate::new(types::Fd(op.fd), op.offset.min(i64::MAX as u64)).build()
    }
    // Never pushed (`performs` sends them to the side pool, `push` does the registrations
    // itself): a harmless entry the kernel answers with EBADF should one get here all the
    // same.
    Opcode::Read
    | Opcode::Write
    | Opcode::Fsync
    | Opcode::Fdatasync
    | Opcode::Readv
    | Opcode::Writev
    | Opcode::Fallocate
    | Opcode::SyncRange
    | Opcode::Fadvise
    | Opcode::Access
    | Opcode::Copyfile
    | Opcode::ReadSmall
    | Opcode::RegisterBuffers
    | Opcode::UnregisterBuffers
    | Opcode::RegisterFiles
    | Opcode::UnregisterFiles => opcode::Ftruncate::new(types::Fd(-1), u64::MAX).build(),
  }
}

/// Where the second path of a two-path buffer starts: just after the first one's NUL.
///
/// # Safety
/// The buffer holds a NUL within its `len` bytes (the buffer rule, and `performs`' check).
unsafe fn second_path(op: &Operation) -> *const libc::c_char {
  // SAFETY: the caller guarantees `op.len` readable bytes holding a NUL.
  let bytes = unsafe { std::slice::from_raw_parts(op.buf, op.len as usize) };
  let nul = bytes.iter().position(|&b| b == 0).unwrap_or(0);
  // SAFETY: `nul + 1 <= len`: the first NUL lies inside the buffer.
  unsafe { op.buf.add(nul + 1) as *const libc::c_char }
}

impl UringBackend {
  /// Whether a linked chain is still being pushed, so that nothing else may enter the
  /// submission queue (it would join the chain) nor the kernel see it (it would split).
  pub(crate) fn chain_open(&self) -> bool {
    !self.closing && (self.linked_tail || !self.chain.is_empty())
  }

  /// Copies one entry into the submission queue, making room first if it is full.
  ///
  /// # Safety
  /// Any buffer the entry points at obeys the buffer rule (crate docs of `caio_core`).
  #[inline]
  pub(crate) unsafe fn push_entry(&mut self, entry: &squeue::Entry) -> bool {
    // SAFETY: the caller guarantees the entry's buffer stays valid until it is reaped.
    if unsafe { self.ring.submission().push(entry) }.is_ok() {
      return true;
    }
    self.make_room();
    // SAFETY: as above.
    unsafe { self.ring.submission().push(entry) }.is_ok()
  }

  /// SQPOLL: moves a completely pushed chain into the submission queue in one go.
  pub(crate) fn publish_chain(&mut self) -> bool {
    for _ in 0..2 {
      // SAFETY: the entries were built from outstanding operations, whose pushers uphold
      // the buffer rule until their completions are reaped.
      if unsafe { self.ring.submission().push_multiple(&self.chain) }.is_ok() {
        self.chain.clear();
        return true;
      }
      self.make_room();
    }
    false
  }

  /// Frees submission queue entries. Never needed while the sizing invariants hold.
  #[cold]
  fn make_room(&mut self) {
    let _ = self.enter();
    if self.sqpoll && self.ring.submission().is_full() {
      // Blocks until the kernel thread consumed something (5.10 and later; else EINVAL).
      let _ = self.ring.submitter().squeue_wait();
    }
  }

  /// One `io_uring_enter` for everything in the submission queue (none when it is empty, or
  /// when an SQPOLL thread is awake to take it). `EINTR` is retried; `EAGAIN`/`EBUSY` leave
  /// the entries queued and mark the ring stalled, to be tried again by the next reap.
  pub(crate) fn enter(&mut self) -> io::Result<()> {
    loop {
      if self.ring.submission().is_empty() {
        self.linked_tail = false;
        self.stalled = false;
        return Ok(());
      }
      match self.ring.submit() {
        Ok(_) if self.sqpoll => {
          self.stalled = false;
          return Ok(());
        }
        Ok(0) => {
          self.stall();
          return Ok(());
        }
        // Without SUBMIT_ALL the kernel stops after an entry it could not even prepare
        // (posting that one's failure); the loop hands it the rest.
        Ok(_) => {}
        Err(err) => match err.raw_os_error() {
          Some(libc::EINTR) => {}
          Some(libc::EAGAIN | libc::EBUSY) => {
            self.stall();
            return Ok(());
          }
          _ => return Err(err),
        },
      }
    }
  }

  /// Remembers that entries wait in the submission queue, and makes sure a reap comes.
  #[cold]
  fn stall(&mut self) {
    self.stalled = true;
    self.notifier.signal();
  }
}
