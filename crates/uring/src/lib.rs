//! The `uring` backend: Linux io_uring, through the `io-uring` crate.
//!
//! [`Backend::push`] writes one submission queue entry (SQE) straight into the ring shared
//! with the kernel; [`Backend::submit`] hands everything pushed since the last call over
//! with one `io_uring_enter`; [`Backend::reap`] drains the completion queue without a
//! system call. The kernel signals the context's [`Notifier`] (an eventfd registered with
//! `IORING_REGISTER_EVENTFD`) for every completion it posts.
//!
//! Where the kernel has it (6.1), the ring defers task work (`IORING_SETUP_DEFER_TASKRUN`):
//! what io-wq or the block layer finished is not posted by interrupting this thread, but
//! queued until it enters with `GETEVENTS`. The kernel then signals the eventfd once for the
//! queue and raises `IORING_SQ_TASKRUN`, and a reap that sees the flag enters first: one
//! system call for a wake-up's worth of completions (and for the next operations of linked
//! chains, which the kernel issues in that same call).
//!
//! Each operation lives in a slot of a fixed table from push until its completion is
//! reaped; the slot's index is the operation's [`Place`], and the kernel's `user_data` names
//! the slot and a generation, so that a late cancel request never hits the slot's next
//! tenant. Nothing is allocated per operation.
//!
//! What the caller sees, beyond the [`Backend`] contract:
//! - `-EAGAIN` and `-EINTR` completions are retried, not surfaced, except for a file
//!   descriptor in non-blocking mode (whose `-EAGAIN` is its answer, as `pread` gives it) and
//!   for an operation that links to a next one (the kernel already cancelled the rest of its
//!   chain, so retrying it alone would break the chain's promise).
//! - Offsets beyond `i64::MAX` reach the kernel as `i64::MAX`, which it refuses with
//!   `-EINVAL`, rather than as `-1`, which io_uring reads as "at the file position".
//! - `priority` applies to reads and writes; syncs have no priority in io_uring.
//! - With SQPOLL, reads marked [`Share::Here`](caio_core::Share::Here) are held back from the
//!   ring and, when the caller reaps right after submitting (`submit(true)`), done by
//!   `submit` itself on the calling thread if the page cache has their bytes (see the `held`
//!   module); [`Submitted::completions_soon`] tells the caller that the kernel thread is
//!   about to post the rest.

#![cfg(target_os = "linux")]

mod held;
mod probe;
mod registered;
mod ring;
mod table;

use std::io;
use std::time::{Duration, Instant};

use caio_core::local::LocalCompletions;
use caio_core::sys::Credentials;
use caio_core::{
  Backend, Completion, FixedUse, Full, Notifier, Opcode, Operation, Place, RangeArgs, Submitted,
  Traits,
};
use io_uring::{opcode, squeue, types, IoUring};

use registered::Registry;
use ring::{build_entry, build_ring};
use table::{user_data, CancelState, Table, CANCEL_TAG};

pub use probe::probe;
pub use registered::MAX_REGISTERED_BUFFERS;

/// The most operations one ring can have outstanding: the kernel's largest submission queue.
pub const MAX_CAPACITY: usize = 32768;

/// The smallest submission queue we set up.
const MIN_SQ_ENTRIES: usize = 8;
/// How often dropping re-sends cancel requests to operations that are still running.
const DROP_RECANCEL: Duration = Duration::from_secs(1);

/// `io_uring_enter`'s flag to run task work and post completions (`<linux/io_uring.h>`).
const IORING_ENTER_GETEVENTS: u32 = 1;

/// How many io-wq workers may block at once in operations on files (an fsync waiting for
/// the journal, say). The kernel's default is 4 per CPU: 8 on a 2-core machine, where 32
/// appenders each waiting on its own fdatasync did 1.8× `fs.promises`; at 32 or 64 they
/// did 2.1–2.3×, since more syncs join each journal commit.
const BLOCKING_WORKERS: u32 = 64;

/// Lets the io-wq of this thread (which all its rings share) run [`BLOCKING_WORKERS`]
/// blocking operations at once, unless it already may run more. Kernels before 5.15 lack
/// the call and keep their default.
fn raise_blocking_workers(ring: &IoUring) {
  let mut limits = [0, 0]; // zeros ask for the current limits and change nothing
  if ring
    .submitter()
    .register_iowq_max_workers(&mut limits)
    .is_ok()
    && limits[0] < BLOCKING_WORKERS
  {
    // [bounded, unbounded]: 0 leaves the unbounded (socket, pipe) limit as it is.
    let _ = ring
      .submitter()
      .register_iowq_max_workers(&mut [BLOCKING_WORKERS, 0]);
  }
}

/// How to set up a [`UringBackend`]'s ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UringOptions {
  /// Ask for a kernel thread that polls the submission queue (`IORING_SETUP_SQPOLL`), so that
  /// submitting costs no system call while that thread is awake. When the kernel refuses, the
  /// backend quietly uses a normal ring; [`UringBackend::sqpoll_active`] tells which it got.
  pub sqpoll: bool,
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
  /// With SQPOLL: slots of reads held back from the ring for `submit` to try on the calling
  /// thread (see the `held` module).
  held: Vec<u32>,
  /// Completed on the calling thread by `submit` (or cancelled before reaching the ring),
  /// not yet reaped; and the quiet from a `reap_follows` submit until `signal_completions`,
  /// during which the caller reaps, so the eventfd is disabled and nothing signals the
  /// notifier.
  done_here: LocalCompletions,
  notifier: Notifier,
  /// The opcodes this kernel's io_uring does, one bit per `caio_core::Opcode`.
  opcodes: u32,
  /// With SQPOLL: the credentials the ring's kernel thread has (the process's at set-up).
  set_up_as: Option<Credentials>,
  /// The registered buffers and files (see the `registered` module).
  registry: Registry,
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
    raise_blocking_workers(&ring);
    Ok(UringBackend {
      opcodes: probe::supported_opcodes(&ring),
      set_up_as: sqpoll.then(Credentials::current),
      ext_arg: ring.params().is_feature_ext_arg(),
      ring,
      table: Table::new(capacity),
      capacity,
      sq_entries,
      sqpoll,
      linked_tail: false,
      chain: Vec::with_capacity(if sqpoll { capacity } else { 0 }),
      stalled: false,
      closing: false,
      held: Vec::with_capacity(if sqpoll { capacity } else { 0 }),
      done_here: LocalCompletions::default(),
      notifier,
      registry: Registry::default(),
    })
  }

  /// Whether this ring does `op` itself; the rest goes to a side pool
  /// (`caio_thread::Offload`). Not: an opcode the kernel lacks (`access` and the whole-file
  /// copy always), a path operation whose buffer lacks a path's NUL (the kernel would read
  /// past it), a range operation whose buffer lacks its arguments or whose length does not
  /// fit the entry's 32 bits (`sync_file_range`, `fadvise`), and — with SQPOLL, whose kernel thread keeps the credentials the ring was
  /// set up with — any operation the kernel checks credentials for, once the process has
  /// changed its own.
  pub fn performs(&self, op: &Operation) -> bool {
    if self.opcodes & (1 << op.opcode as u32) == 0 {
      return false;
    }
    if op.opcode.uses_buffer() || op.opcode.holds_iovecs() || !op.opcode.has_buffer() {
      return true;
    }
    if op.opcode.takes_range() {
      // SAFETY: the pusher upholds the buffer rule for `op`.
      return match unsafe { RangeArgs::of(op) } {
        // The entry carries the length of a sync_file_range or a fadvise in 32 bits.
        Some(args) => op.opcode == Opcode::Fallocate || args.length <= u64::from(u32::MAX),
        None => false,
      };
    }
    // SAFETY: the pusher upholds the buffer rule for `op`.
    if !unsafe { caio_core::paths::well_formed(op) } {
      return false;
    }
    match &self.set_up_as {
      Some(credentials) if op.opcode.checks_credentials() => *credentials == Credentials::current(),
      _ => true,
    }
  }

  /// Whether completions wait as deferred task work, which only an enter with GETEVENTS runs.
  #[inline]
  fn deferred_work(&self) -> bool {
    // SAFETY: as in `ready`: no SubmissionQueue is alive while `&self` is borrowed.
    unsafe { self.ring.submission_shared() }.taskrun()
  }

  /// Runs the deferred task work, posting its completions.
  #[inline]
  fn run_deferred_work(&mut self) {
    if self.deferred_work() {
      // SAFETY: no submission, no argument: the call only runs task work.
      let _ = unsafe {
        self
          .ring
          .submitter()
          .enter::<libc::sigset_t>(0, 0, IORING_ENTER_GETEVENTS, None)
      };
    }
  }

  /// Whether the ring really has an SQPOLL kernel thread (asked for, and granted).
  pub fn sqpoll_active(&self) -> bool {
    self.sqpoll
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
      let entry = build_entry(&slot.op, slot.fixed, user_data(index, slot.generation));
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

  /// Blocks until a completion may be ready or `timeout` passed, for `Drop`, which must
  /// wait for the kernel to give every operation back.
  fn wait(&mut self, timeout: Duration) {
    if self.submit(false).is_err() || self.ready() {
      return;
    }
    if self.ext_arg {
      let timespec = types::Timespec::from(timeout);
      let args = types::SubmitArgs::new().timespec(&timespec);
      // ETIME when the timeout passed, EINTR on a signal: either way, return.
      let _ = self.ring.submitter().submit_with_args(1, &args);
    } else {
      // Before 5.11: the eventfd is signalled for every completion posted.
      caio_core::sys::wait_readable(self.notifier.fd(), timeout);
    }
  }
}

impl Backend for UringBackend {
  /// A submit is one `io_uring_enter`, none while an SQPOLL thread is awake.
  fn traits(&self) -> Traits {
    Traits {
      capacity: self.capacity,
      links: true,
      cheap_submit: true,
    }
  }

  /// io_uring cancels the rest of a chain only after an operation that marks its own
  /// failure: reads and writes (vectored or not) and `fadvise` do, but a failed `fsync`,
  /// `fdatasync`, `fallocate`, `sync_file_range` or `ftruncate` lets the next operation
  /// run (measured on 6.18). Those may end a chain here, never link on.
  fn links_itself(&self, op: &Operation) -> bool {
    !op.link
      || !matches!(
        op.opcode,
        Opcode::Fsync
          | Opcode::Fdatasync
          | Opcode::Fallocate
          | Opcode::SyncRange
          | Opcode::Ftruncate
      )
  }

  #[inline]
  unsafe fn push(&mut self, op: Operation) -> Result<Place, Full> {
    if self.table.outstanding >= self.capacity {
      return Err(Full);
    }
    let Some(index) = self.table.take(op) else {
      return Err(Full);
    };
    if op.opcode.is_registration() && self.performs(&op) {
      self.table.outstanding += 1;
      self.register(index);
      return Ok(index as Place);
    }
    if op.opcode == Opcode::Close && self.registry.has_files() {
      self.registry.forget_file(op.fd);
    }
    if !op.opcode.uses_buffer() && !self.performs(&op) {
      // Offload sends these to its pool; pushed here all the same, refuse them rather
      // than hand the kernel a path it would read past or an opcode it lacks.
      self.table.outstanding += 1;
      self
        .table
        .settle(index, -libc::EINVAL, self.done_here.list_mut());
      self.done_here.announce(&self.notifier);
      return Ok(index as Place);
    }
    if self.chain.is_empty() && self.hold(&op) {
      // Most of these are done on this thread with preadv2: they stay ordinary reads.
      self.held.push(index as u32);
      self.table.outstanding += 1;
      return Ok(index as Place);
    }
    let fixed = self.registry.take_for(&op);
    self.table.use_fixed(index, fixed);
    let entry = build_entry(
      &op,
      fixed,
      user_data(index, self.table.slots[index].generation),
    );
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
        self.table.untake(index);
        return Err(Full);
      }
      self.linked_tail = op.link;
    }
    self.table.outstanding += 1;
    Ok(index as Place)
  }

  /// With `reap_follows` the eventfd is disabled (`IORING_CQ_EVENTFD_DISABLED`, Linux 5.8)
  /// until `signal_completions`: while the caller reaps inline, that saves an eventfd signal
  /// and an epoll wake-up per completion.
  fn submit(&mut self, reap_follows: bool) -> io::Result<Submitted> {
    if reap_follows && self.done_here.begin_quiet() {
      self.ring.completion().disable_eventfd();
    }
    if !self.chain.is_empty() {
      // A chain whose last member asked to link on: it ends here, as io_uring ends it.
      self.publish_chain();
    }
    // The ring first, so that the kernel thread reads beside this one.
    let entered = self.enter();
    if !self.held.is_empty() {
      self.run_held();
    }
    entered?;
    // The kernel thread posts the completions of what is in the ring without anybody
    // entering the kernel; an operation parked for a retry is in no ring until a reap.
    Ok(Submitted {
      completions_soon: self.sqpoll && self.table.outstanding > self.table.retry.len(),
    })
  }

  #[inline]
  fn reap(&mut self, out: &mut Vec<Completion>) {
    self.done_here.drain_into(out);
    self.run_deferred_work();
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
    if self.registry.draining() {
      self.finish_unregistering(out);
    }
  }

  #[inline]
  fn ready(&self) -> bool {
    if !self.done_here.is_empty() {
      return true;
    }
    // SAFETY: no other CompletionQueue exists: every one this backend makes is a temporary
    // of a `&mut self` method, which cannot be running while `&self` is borrowed here.
    !unsafe { self.ring.completion_shared() }.is_empty() || self.deferred_work()
  }

  fn cancel(&mut self, token: u64, place: Place) {
    let Some(index) = self.table.target(token, place) else {
      return; // already reaped, or never there
    };
    if self.cancel_held(index) {
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

  fn signal_completions(&mut self) {
    if !self.done_here.is_quiet() {
      return; // the eventfd is on and every completion settled here was signalled
    }
    self.done_here.end_quiet(&self.notifier);
    self.ring.completion().enable_eventfd();
    // A completion posted while the eventfd was disabled signalled nobody: the fence orders
    // the flag store before the tail load, as the kernel orders its tail store before its
    // flag load, so one side always sees the other.
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    if !self.ring.completion().is_empty() || self.deferred_work() {
      self.notifier.signal();
    }
  }

  fn notifier(&self) -> &Notifier {
    &self.notifier
  }

  fn fixed_use(&self) -> FixedUse {
    self.registry.used()
  }
}

impl Drop for UringBackend {
  fn drop(&mut self) {
    // The buffer rule: no operation's memory may be touched after this returns, so every
    // outstanding operation is cancelled and its completion reaped before the ring goes.
    self.closing = true;
    // Where the kernel cannot time a wait (before 5.11), `wait` polls the eventfd: it must
    // fire, even if the last `reap_follows` submit was never followed by its signal.
    self.signal_completions();
    let _ = self.submit(false);
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
