//! The `uring` backend: Linux io_uring, through the `io-uring` crate.
//!
//! [`Backend::push`] writes one submission queue entry (SQE) straight into the ring shared
//! with the kernel; [`Backend::submit`] hands everything pushed since the last call over
//! with one `io_uring_enter`; [`Backend::reap`] drains the completion queue without a
//! system call. The kernel signals the context's [`Notifier`] (an eventfd registered with
//! `IORING_REGISTER_EVENTFD`) for every completion it posts.
//!
//! Each operation lives in a slot of a fixed table from push until its completion is
//! reaped; the kernel's `user_data` names the slot (and a generation, so that a late cancel
//! request never hits the slot's next tenant). Nothing is allocated per operation.
//!
//! What the caller sees, beyond the [`Backend`] contract:
//! - `-EAGAIN` and `-EINTR` completions are retried, not surfaced, except for a file
//!   descriptor in non-blocking mode (whose `-EAGAIN` is its answer, as `pread` gives it) and
//!   for an operation that links to a next one (the kernel already cancelled the rest of its
//!   chain, so retrying it alone would break the chain's promise).
//! - Offsets beyond `i64::MAX` reach the kernel as `i64::MAX`, which it refuses with
//!   `-EINVAL`, rather than as `-1`, which io_uring reads as "at the file position".
//! - `priority` applies to reads and writes; syncs have no priority in io_uring.
//! - With SQPOLL, one unlinked read of a batch (`Operation::in_batch`) in [`HELD_SHARE`] is
//!   held back from the ring and, when the caller reaps right after submitting
//!   (`Backend::set_quiet`), done by `submit` itself on the calling thread if the page cache
//!   has its bytes (`preadv2(RWF_NOWAIT)`), beside the kernel thread doing the rest: both
//!   cores copy. What the cache cannot answer goes into the ring after all. Such a read
//!   never waits for the device, so its `priority` has nothing to order; once submitted it
//!   is done, as a read the kernel already finished cannot be cancelled either.

#![cfg(target_os = "linux")]

mod probe;

use std::io;
use std::time::{Duration, Instant};

use caio_core::cached::{read_if_cached, DirectIoMemo, READS_IF_CACHED};
use caio_core::spin::InlineSpin;
use caio_core::{Backend, Completion, Full, Notifier, Opcode, Operation};
use io_uring::{cqueue, opcode, squeue, types, IoUring};

pub use probe::probe;

/// The most operations one ring can have outstanding: the kernel's largest submission queue.
pub const MAX_CAPACITY: usize = 32768;

/// The smallest submission queue we set up.
const MIN_SQ_ENTRIES: usize = 8;
/// How long an SQPOLL kernel thread spins without work before it sleeps.
const SQPOLL_IDLE_MS: u32 = 50;
/// Set in the `user_data` of cancel requests, whose completions are swallowed.
const CANCEL_TAG: u64 = 1 << 31;
/// The slot index in a `user_data`; the generation is in the upper 32 bits.
const INDEX_MASK: u64 = CANCEL_TAG - 1;
/// How many times in a row one operation is resubmitted after `-EAGAIN`/`-EINTR` before the
/// error is surfaced after all: a safety net against a live-lock, never reached in practice.
const MAX_RETRIES: u16 = 1000;
/// How often dropping re-sends cancel requests to operations that are still running.
const DROP_RECANCEL: Duration = Duration::from_secs(1);
/// With SQPOLL: one unlinked batch read in this many is held back for the submitting thread
/// to do itself while the kernel thread does the others. Otherwise the caller of a batch
/// only spins until the kernel thread, the bottleneck, is done: submits of 64 cached 4 KiB
/// reads, 1 submit in flight, did 718 k reads/s with all of them in the ring (the JS thread
/// spinning 30 % of its time), 996 k with every second one held (1 in 3: 851 k). Single
/// operations are never held: each settles a Promise whose reaction is JavaScript's work,
/// so the JS thread is busy, and taking reads from the kernel thread made 8 and 64 in flight
/// 18 % slower.
pub const HELD_SHARE: u32 = 2;

/// How to set up a [`UringBackend`]'s ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UringOptions {
  /// Ask for a kernel thread that polls the submission queue (`IORING_SETUP_SQPOLL`), so that
  /// submitting costs no system call while that thread is awake. When the kernel refuses, the
  /// backend quietly uses a normal ring; [`UringBackend::sqpoll_active`] tells which it got.
  pub sqpoll: bool,
}

/// Where a slot's operation stands with respect to cancellation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CancelState {
  /// Nobody asked.
  None,
  /// Asked for, but the cancel request is not in the ring yet.
  Deferred,
  /// A cancel request is in the ring or was processed.
  Sent,
}

/// One outstanding operation.
#[derive(Clone, Copy)]
struct Slot {
  op: Operation,
  /// Bumped on every reuse, so `user_data` from an earlier tenant never matches.
  generation: u32,
  busy: bool,
  cancel: CancelState,
  /// Consecutive `-EAGAIN`/`-EINTR` resubmissions.
  retries: u16,
}

/// The slot table and the counts that keep the rings from overflowing.
struct Table {
  slots: Box<[Slot]>,
  /// Indices of free slots, used as a stack.
  free: Vec<u32>,
  /// Slots whose operation came back with `-EAGAIN`/`-EINTR` and waits to be resubmitted.
  retry: Vec<u32>,
  /// Pushed and not yet reaped.
  outstanding: usize,
  /// Cancel requests pushed whose own completion was not reaped yet.
  cancels_in_flight: usize,
  /// Slots in [`CancelState::Deferred`].
  deferred_cancels: usize,
}

/// An io_uring instance used as a caio [`Backend`].
///
/// Sizes: the submission queue has `capacity` entries rounded up to a power of two (at
/// least 8); the completion queue twice that. At most `capacity` operations and at most as
/// many cancel requests as the submission queue has entries are ever outstanding, so the
/// completion queue cannot overflow.
///
/// Dropping it cancels every outstanding operation and blocks until the kernel has
/// completed all of them, as the buffer rule (see `caio_core`) demands: an operation the
/// kernel will not give up (a read stuck on a hung NFS server, say) blocks the drop.
pub struct UringBackend {
  ring: IoUring,
  table: Table,
  capacity: usize,
  /// Entries of the submission queue.
  sq_entries: usize,
  sqpoll: bool,
  /// The kernel takes `IORING_ENTER_EXT_ARG` (a timeout for waiting), 5.11 and later.
  ext_arg: bool,
  /// Without SQPOLL: the last entry in the submission queue links to one not pushed yet.
  linked_tail: bool,
  /// With SQPOLL: a linked chain being pushed, held back until its last member arrives,
  /// because the kernel thread would otherwise start it in pieces.
  chain: Vec<squeue::Entry>,
  /// The kernel refused an `io_uring_enter` for lack of resources; try again at the next reap.
  stalled: bool,
  /// Being dropped: nothing is retried any more.
  closing: bool,
  /// With SQPOLL: `await_inline`'s wait for the kernel thread.
  inline_spin: InlineSpin,
  /// With SQPOLL: slots of reads held back from the ring for `submit` to try on the calling
  /// thread (see [`HELD_SHARE`]), and the count that picks them.
  held: Vec<u32>,
  held_turn: u32,
  /// Completed on the calling thread by `submit` (or cancelled before reaching the ring),
  /// not yet reaped.
  done_here: Vec<Completion>,
  /// Whether the caller reaps right after submitting (see `Backend::set_quiet`).
  quiet: bool,
  notifier: Notifier,
}

impl UringBackend {
  /// Sets up a ring for at most `capacity` outstanding operations (at least 1, at most
  /// [`MAX_CAPACITY`]) and registers the notifier's eventfd with it.
  pub fn new(capacity: usize, options: UringOptions) -> io::Result<UringBackend> {
    let capacity = capacity.clamp(1, MAX_CAPACITY);
    let sq_entries = capacity
      .next_power_of_two()
      .clamp(MIN_SQ_ENTRIES, MAX_CAPACITY);
    let (ring, sqpoll) = build_ring(sq_entries as u32, options.sqpoll)?;
    let sq_entries = ring.params().sq_entries() as usize;
    if sq_entries < capacity || (ring.params().cq_entries() as usize) < 2 * sq_entries {
      return Err(io::Error::other(
        "io_uring set up smaller rings than asked for",
      ));
    }
    let notifier = Notifier::new()?;
    // Not register_eventfd_async: that one stays silent for operations the kernel completes
    // inside io_uring_enter, which are most buffered reads.
    ring.submitter().register_eventfd(notifier.fd())?;
    let idle = Slot {
      op: Operation::sync(Opcode::Fsync, -1, 0),
      generation: 0,
      busy: false,
      cancel: CancelState::None,
      retries: 0,
    };
    Ok(UringBackend {
      ext_arg: ring.params().is_feature_ext_arg(),
      ring,
      table: Table {
        slots: vec![idle; capacity].into_boxed_slice(),
        free: (0..capacity as u32).rev().collect(),
        retry: Vec::with_capacity(capacity),
        outstanding: 0,
        cancels_in_flight: 0,
        deferred_cancels: 0,
      },
      capacity,
      sq_entries,
      sqpoll,
      linked_tail: false,
      chain: Vec::with_capacity(if sqpoll { capacity } else { 0 }),
      stalled: false,
      closing: false,
      inline_spin: InlineSpin::default(),
      held: Vec::with_capacity(if sqpoll { capacity } else { 0 }),
      held_turn: 0,
      done_here: Vec::new(),
      quiet: false,
      notifier,
    })
  }

  /// Whether the ring really has an SQPOLL kernel thread (asked for, and granted).
  pub fn sqpoll_active(&self) -> bool {
    self.sqpoll
  }

  /// Whether a linked chain is still being pushed, so that nothing else may enter the
  /// submission queue (it would join the chain) nor the kernel see it (it would split).
  fn chain_open(&self) -> bool {
    !self.closing && (self.linked_tail || !self.chain.is_empty())
  }

  /// Copies one entry into the submission queue, making room first if it is full.
  ///
  /// # Safety
  /// Any buffer the entry points at obeys the buffer rule (crate docs of `caio_core`).
  #[inline]
  unsafe fn push_entry(&mut self, entry: &squeue::Entry) -> bool {
    // SAFETY: forwarded from the caller.
    if unsafe { self.ring.submission().push(entry) }.is_ok() {
      return true;
    }
    self.make_room();
    // SAFETY: forwarded from the caller.
    unsafe { self.ring.submission().push(entry) }.is_ok()
  }

  /// SQPOLL: moves a completely pushed chain into the submission queue in one go.
  fn publish_chain(&mut self) -> bool {
    for _ in 0..2 {
      // SAFETY: the entries were built from operations whose pushers uphold the buffer rule.
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
  fn enter(&mut self) -> io::Result<()> {
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

  /// Whether a cancel request fits in the submission queue without ever leaving too little
  /// room for the operations that may still be pushed.
  fn room_for_cancel(&mut self) -> bool {
    let queued = self.ring.submission().len();
    queued + 1 + (self.capacity - self.table.outstanding) <= self.sq_entries
  }

  /// Puts a cancel request for slot `index` into the submission queue, when the budgets
  /// allow. Does not enter the kernel.
  fn send_cancel(&mut self, index: usize) -> bool {
    if self.table.cancels_in_flight >= self.sq_entries {
      return false;
    }
    if !self.room_for_cancel() {
      let _ = self.enter();
      if !self.room_for_cancel() {
        return false;
      }
    }
    let slot = &mut self.table.slots[index];
    let target = user_data(index, slot.generation);
    let entry = opcode::AsyncCancel::new(target)
      .build()
      .user_data(target | CANCEL_TAG);
    // SAFETY: a cancel request points at no memory.
    if unsafe { self.ring.submission().push(&entry) }.is_err() {
      return false;
    }
    if slot.cancel == CancelState::Deferred {
      self.table.deferred_cancels -= 1;
    }
    slot.cancel = CancelState::Sent;
    self.table.cancels_in_flight += 1;
    true
  }

  /// Sends the cancel requests that had to wait, as far as the budgets allow.
  #[cold]
  fn send_deferred_cancels(&mut self) {
    for index in 0..self.table.slots.len() {
      if self.table.deferred_cancels == 0 {
        return;
      }
      let slot = &self.table.slots[index];
      if slot.busy && slot.cancel == CancelState::Deferred && !self.send_cancel(index) {
        return;
      }
    }
  }

  /// The slow part of a reap: resubmits retried operations (or settles them, when they were
  /// cancelled meanwhile or the backend is closing), sends deferred cancel requests, and
  /// enters the kernel for them and for anything a stalled enter left behind.
  #[cold]
  fn resume(&mut self, out: &mut Vec<Completion>) {
    if self.chain_open() {
      // The caller is halfway through pushing a chain: come back at the next reap.
      self.notifier.signal();
      return;
    }
    if !self.chain.is_empty() && !self.publish_chain() {
      self.notifier.signal();
      return;
    }
    while let Some(index) = self.table.retry.pop() {
      let index = index as usize;
      let slot = self.table.slots[index];
      if slot.cancel != CancelState::None || self.closing {
        self.table.settle(index, -libc::ECANCELED, out);
        continue;
      }
      let entry = build_entry(&slot.op, user_data(index, slot.generation));
      // SAFETY: the pusher of this operation upholds the buffer rule until its completion
      // is reaped, which has not happened: it is still outstanding.
      if !unsafe { self.push_entry(&entry) } {
        self.table.retry.push(index as u32);
        break;
      }
    }
    if self.table.deferred_cancels > 0 {
      self.send_deferred_cancels();
    }
    let _ = self.enter();
    if !self.table.retry.is_empty() || self.table.deferred_cancels > 0 {
      self.notifier.signal();
    }
  }

  /// Whether `push` should hold `op` back for the submitting thread (see [`HELD_SHARE`]).
  #[inline]
  fn hold(&mut self, op: &Operation) -> bool {
    if !op.in_batch
      || !self.sqpoll
      || !READS_IF_CACHED
      || self.closing
      || op.opcode != Opcode::Read
      || op.link
      || op.len == 0
    {
      return false;
    }
    self.held_turn = self.held_turn.wrapping_add(1);
    self.held_turn % HELD_SHARE == 0
  }

  /// Does the held reads the page cache can answer here, and puts the rest into the ring.
  fn run_held(&mut self) {
    let mut held = std::mem::take(&mut self.held);
    let mut missed = 0;
    if self.quiet && !self.closing {
      let mut direct = DirectIoMemo::default();
      for position in 0..held.len() {
        let index = held[position] as usize;
        let op = self.table.slots[index].op;
        // O_DIRECT reads wait for the device even with RWF_NOWAIT: the ring does them.
        let answered = if direct.is_direct(op.fd) {
          None
        } else {
          // SAFETY: the buffer rule (caio_core): the pusher keeps `op.buf` valid for
          // `op.len` bytes until this operation's completion is reaped, after this call.
          unsafe { read_if_cached(&op) }
        };
        match answered {
          // At most `op.len` <= i32::MAX bytes.
          Some(result) => self.table.settle(index, result as i32, &mut self.done_here),
          None => {
            held[missed] = held[position];
            missed += 1;
          }
        }
      }
    } else {
      missed = held.len();
    }
    for &index in &held[..missed] {
      let slot = &self.table.slots[index as usize];
      let entry = build_entry(&slot.op, user_data(index as usize, slot.generation));
      // SAFETY: the pusher of this operation upholds the buffer rule until its completion
      // is reaped, which has not happened: it is still outstanding.
      if !unsafe { self.push_entry(&entry) } {
        // Never while the sizing invariants hold; the next reap resubmits it.
        self.table.retry.push(index);
        self.notifier.signal();
      }
    }
    if missed > 0 {
      let _ = self.enter();
    }
    if !self.done_here.is_empty() && !self.quiet {
      self.notifier.signal();
    }
    held.clear();
    self.held = held;
  }

  /// Marks every outstanding operation for cancellation, again if need be (for dropping).
  fn cancel_everything(&mut self) {
    for slot in self.table.slots.iter_mut() {
      if slot.busy && slot.cancel != CancelState::Deferred {
        slot.cancel = CancelState::Deferred;
        self.table.deferred_cancels += 1;
      }
    }
    self.send_deferred_cancels();
    let _ = self.enter();
  }
}

impl Table {
  /// Hands the completion of slot `index` out and frees the slot.
  #[inline]
  fn settle(&mut self, index: usize, result: i32, out: &mut Vec<Completion>) {
    let slot = &mut self.slots[index];
    out.push(Completion {
      token: slot.op.token,
      result: i64::from(result),
    });
    if slot.cancel == CancelState::Deferred {
      self.deferred_cancels -= 1;
    }
    slot.busy = false;
    self.free.push(index as u32);
    self.outstanding -= 1;
  }

  /// Handles one completion queue entry: its `user_data` and `result`.
  #[inline]
  fn complete(
    &mut self,
    user_data: u64,
    mut result: i32,
    closing: bool,
    out: &mut Vec<Completion>,
  ) {
    if user_data & CANCEL_TAG != 0 {
      self.cancels_in_flight -= 1;
      return;
    }
    let index = (user_data & INDEX_MASK) as usize;
    if result == -libc::EAGAIN || result == -libc::EINTR {
      let slot = &mut self.slots[index];
      if slot.cancel != CancelState::None {
        // Interrupted by our own cancel request (an io-wq worker gets a signal).
        result = -libc::ECANCELED;
      } else if !closing && retryable(slot, result) {
        slot.retries += 1;
        self.retry.push(index as u32);
        return;
      }
    }
    debug_assert!(self.slots[index].busy);
    debug_assert_eq!(self.slots[index].generation, (user_data >> 32) as u32);
    self.slots[index].retries = 0;
    self.settle(index, result, out);
  }

  /// The first busy slot whose operation carries `token`.
  fn find(&self, token: u64) -> Option<usize> {
    self
      .slots
      .iter()
      .position(|slot| slot.busy && slot.op.token == token)
  }
}

/// Whether an `-EAGAIN`/`-EINTR` result should be retried rather than surfaced.
#[cold]
fn retryable(slot: &Slot, result: i32) -> bool {
  if slot.op.link || slot.retries >= MAX_RETRIES {
    return false;
  }
  if result == -libc::EINTR {
    return true;
  }
  // SAFETY: F_GETFL reads descriptor flags and takes no pointers; a closed fd just fails.
  let flags = unsafe { libc::fcntl(slot.op.fd, libc::F_GETFL) };
  flags >= 0 && flags & libc::O_NONBLOCK == 0
}

/// The `user_data` naming slot `index` in its current generation.
#[inline]
fn user_data(index: usize, generation: u32) -> u64 {
  (u64::from(generation) << 32) | index as u64
}

/// The submission queue entry for `op`.
#[inline]
fn build_entry(op: &Operation, user_data: u64) -> squeue::Entry {
  let fd = types::Fd(op.fd);
  // u64::MAX would be -1 to the kernel: "at the file position". Clamp instead, and the
  // kernel refuses the offset with EINVAL as pread would.
  let offset = op.offset.min(i64::MAX as u64);
  let entry = match op.opcode {
    Opcode::Read => opcode::Read::new(fd, op.buf, op.len)
      .offset(offset)
      .ioprio(op.priority)
      .build(),
    Opcode::Write => opcode::Write::new(fd, op.buf, op.len)
      .offset(offset)
      .ioprio(op.priority)
      .build(),
    Opcode::Fsync => opcode::Fsync::new(fd).build(),
    Opcode::Fdatasync => opcode::Fsync::new(fd)
      .flags(types::FsyncFlags::DATASYNC)
      .build(),
  }
  .user_data(user_data);
  if op.link {
    entry.flags(squeue::Flags::IO_LINK)
  } else {
    entry
  }
}

/// Sets up the ring, with an SQPOLL thread when asked and granted. Returns whether it has one.
fn build_ring(sq_entries: u32, sqpoll: bool) -> io::Result<(IoUring, bool)> {
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
  Ok((builder.build(sq_entries)?, false))
}

impl Backend for UringBackend {
  fn capacity(&self) -> usize {
    self.capacity
  }

  #[inline]
  unsafe fn push(&mut self, op: Operation) -> Result<(), Full> {
    if self.table.outstanding >= self.capacity {
      return Err(Full);
    }
    let Some(index) = self.table.free.pop() else {
      return Err(Full);
    };
    let index = index as usize;
    let slot = &mut self.table.slots[index];
    slot.generation = slot.generation.wrapping_add(1);
    slot.op = op;
    slot.busy = true;
    slot.cancel = CancelState::None;
    slot.retries = 0;
    if self.chain.is_empty() && self.hold(&op) {
      self.held.push(index as u32);
      self.table.outstanding += 1;
      return Ok(());
    }
    let slot = &self.table.slots[index];
    let entry = build_entry(&op, user_data(index, slot.generation));
    if self.sqpoll && (op.link || !self.chain.is_empty()) {
      // The kernel thread must see a chain whole: hold it back until its end.
      self.chain.push(entry);
      if !op.link {
        // Should this fail, the next submit or reap tries again.
        self.publish_chain();
      }
    } else {
      // SAFETY: the caller upholds the buffer rule for `op` until its completion is reaped.
      if !unsafe { self.push_entry(&entry) } {
        self.table.slots[index].busy = false;
        self.table.free.push(index as u32);
        return Err(Full);
      }
      self.linked_tail = op.link;
    }
    self.table.outstanding += 1;
    Ok(())
  }

  fn submit(&mut self) -> io::Result<()> {
    if !self.chain.is_empty() {
      // A chain whose last member asked to link on: it ends here, as io_uring ends it.
      self.publish_chain();
    }
    // The ring first, so that the kernel thread reads beside this one.
    let entered = self.enter();
    if !self.held.is_empty() {
      self.run_held();
    }
    entered
  }

  #[inline]
  fn reap(&mut self, out: &mut Vec<Completion>) {
    if !self.done_here.is_empty() {
      out.append(&mut self.done_here);
    }
    let closing = self.closing;
    let mut cq = self.ring.completion();
    loop {
      for cqe in &mut cq {
        self
          .table
          .complete(cqe.user_data(), cqe.result(), closing, out);
      }
      cq.sync();
      if cq.is_empty() {
        break;
      }
    }
    drop(cq);
    if self.stalled || !self.table.retry.is_empty() || self.table.deferred_cancels > 0 {
      self.resume(out);
    }
  }

  /// Finds the operation by a scan of the slot table: cancelling is rare, and this keeps
  /// push and reap free of any index by token.
  fn cancel(&mut self, token: u64) {
    let Some(index) = self.table.find(token) else {
      return; // unknown, or already reaped
    };
    if let Some(position) = self.held.iter().position(|&held| held as usize == index) {
      // Never reached the kernel: certainly cancelled.
      self.held.swap_remove(position);
      self
        .table
        .settle(index, -libc::ECANCELED, &mut self.done_here);
      if !self.quiet {
        self.notifier.signal();
      }
      return;
    }
    if self.table.slots[index].cancel != CancelState::None {
      return; // one cancel request per operation is enough
    }
    self.table.slots[index].cancel = CancelState::Deferred;
    self.table.deferred_cancels += 1;
    if !self.chain_open() && self.send_cancel(index) {
      // Entering at once also submits whatever the caller pushed before: harmless, and the
      // cancel must not wait for a submit that may never come.
      let _ = self.enter();
    }
    if self.table.slots[index].cancel == CancelState::Deferred || !self.table.retry.is_empty() {
      // Waiting for room or budget, or parked for a retry: the next reap takes care of it.
      self.notifier.signal();
    }
  }

  /// One `io_uring_enter` (none while an SQPOLL thread is awake).
  fn submits_cheaply(&self) -> bool {
    true
  }

  fn notifier(&self) -> &Notifier {
    &self.notifier
  }

  fn await_inline(&mut self) -> bool {
    if !self.done_here.is_empty() {
      return true;
    }
    if !self.sqpoll || self.table.outstanding == 0 {
      return false;
    }
    let ring = &mut self.ring;
    self
      .inline_spin
      .wait(self.table.outstanding, || !ring.completion().is_empty())
  }

  /// Disabling the eventfd (IORING_CQ_EVENTFD_DISABLED, Linux 5.8) while the caller reaps
  /// inline saves an eventfd signal and an epoll wake-up per completion: 9 % of the time of
  /// a read at 1 in flight (0.55 -> 0.60 M ops/s here).
  fn set_quiet(&mut self, quiet: bool) {
    self.quiet = quiet;
    if !quiet && !self.done_here.is_empty() {
      // Completed here while the caller meant to reap, and it did not reap them all.
      self.notifier.signal();
    }
    if quiet {
      self.ring.completion().disable_eventfd();
      return;
    }
    self.ring.completion().enable_eventfd();
    // A completion posted while the eventfd was disabled signalled nobody: the fence orders
    // the flag store before the tail load, as the kernel orders its tail store before its
    // flag load, so one side always sees the other.
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    if !self.ring.completion().is_empty() {
      self.notifier.signal();
    }
  }

  fn wait(&mut self, timeout: Duration) {
    if self.submit().is_err() || !self.done_here.is_empty() || !self.ring.completion().is_empty() {
      return;
    }
    if self.ext_arg {
      let timespec = types::Timespec::from(timeout);
      let args = types::SubmitArgs::new().timespec(&timespec);
      // ETIME when the timeout passed, EINTR on a signal: either way, return.
      let _ = self.ring.submitter().submit_with_args(1, &args);
    } else {
      // Before 5.11: the eventfd is signalled for every completion posted.
      let mut pfd = libc::pollfd {
        fd: self.notifier.fd(),
        events: libc::POLLIN,
        revents: 0,
      };
      let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
      // SAFETY: one valid pollfd on a descriptor the notifier keeps open.
      unsafe { libc::poll(&mut pfd, 1, millis) };
    }
  }
}

impl Drop for UringBackend {
  fn drop(&mut self) {
    // The buffer rule: no operation's memory may be touched after this returns, so every
    // outstanding operation is cancelled and its completion reaped before the ring goes.
    self.closing = true;
    let _ = self.submit();
    let mut sink = Vec::with_capacity(self.capacity);
    let mut next_cancel = Instant::now();
    loop {
      self.reap(&mut sink);
      sink.clear();
      if self.table.outstanding == 0 {
        break;
      }
      if Instant::now() >= next_cancel {
        // Again after a while: a request that found its target busy in an io-wq worker
        // (-EALREADY) may do better now.
        self.cancel_everything();
        next_cancel = Instant::now() + DROP_RECANCEL;
      }
      self.wait(Duration::from_millis(100));
    }
    let _ = self.ring.submitter().unregister_eventfd();
    // The ring is unmapped and closed when its field drops, the eventfd after it.
  }
}

#[cfg(test)]
mod tests;
