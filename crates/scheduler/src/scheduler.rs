//! The scheduler: every operation's slot from `start` until its result is delivered.

use std::collections::VecDeque;

use caio_core::{Backend, Completion, Operation, Place, Share, Traits};

use crate::batch::{Batch, OpState};
use crate::policy::{Tick, EARLY_SUBMIT};
use crate::token::{self, Parts};
use crate::wire::result;

mod outbox;
mod stopping;

const ECANCELED: i64 = -125;

/// Why an operation or batch was not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
  /// The context is closing or closed.
  Closed,
  /// Every slot index is taken (2^24 operations outstanding).
  TooMany,
  /// A linked chain is longer than the backend can take at once.
  ChainTooLong,
}

enum Work {
  /// Free for a new operation.
  Free,
  /// A single operation: in the admission queue (`None`), or in the backend.
  Single {
    op: Operation,
    place: Option<Place>,
  },
  Batch(Box<Batch>),
  /// Settled: its result is in the outbox or on the wire, and the slot is reused only once
  /// the caller has taken it ([`Scheduler::finish_delivery`]), so that a new operation can
  /// never receive an old one's result.
  Settled,
}

struct Slot {
  generation: u32,
  abort_requested: bool,
  work: Work,
}

/// Slots, the admission queue, batches, chain emulation, the per-tick policy and the
/// outbox of results, over one backend. It makes no system call of its own and calls
/// nobody back: results wait in its outbox until the caller takes them.
pub struct Scheduler {
  backend: Option<Box<dyn Backend>>,
  traits: Traits,
  slots: Vec<Slot>,
  free: Vec<u32>,
  /// Tokens of operations (or heads of linked chains) waiting for room in the backend.
  waiting: VecDeque<u64>,
  /// Operations pushed into the backend and not yet reaped.
  in_backend: usize,
  /// Slots holding an operation or batch that has not settled.
  outstanding: usize,
  completions: Vec<Completion>,
  tick: Tick,
  /// Counts unlinked batch reads, to share every second one (see [`Share`]).
  share_turn: u32,
  closing: bool,
  /// (slot, result) pairs for the caller, in the order they settled.
  outbox: VecDeque<(f64, f64)>,
  /// Slots whose results are on the caller's wire, freed by `finish_delivery`.
  on_wire: Vec<u32>,
  wire_busy: bool,
}

impl Scheduler {
  /// A scheduler feeding `backend`.
  pub fn new(backend: Box<dyn Backend>) -> Scheduler {
    let traits = backend.traits();
    Scheduler {
      backend: Some(backend),
      traits,
      slots: Vec::new(),
      free: Vec::new(),
      waiting: VecDeque::new(),
      in_backend: 0,
      outstanding: 0,
      completions: Vec::with_capacity(256),
      tick: Tick::default(),
      share_turn: 0,
      closing: false,
      outbox: VecDeque::new(),
      on_wire: Vec::new(),
      wire_busy: false,
    }
  }

  /// What the backend declared.
  pub fn traits(&self) -> Traits {
    self.traits
  }

  /// The backend, while the scheduler has one (until it finished closing).
  pub fn backend(&self) -> Option<&dyn Backend> {
    self.backend.as_deref()
  }

  /// Operations and batches started and not settled yet.
  pub fn outstanding(&self) -> usize {
    self.outstanding
  }

  /// Whether results wait to be taken.
  pub fn has_deliveries(&self) -> bool {
    !self.outbox.is_empty()
  }

  /// Whether anything is left to do: operations outstanding, results waiting, or a
  /// delivery not finished. The caller keeps its own resources alive exactly while busy.
  pub fn busy(&self) -> bool {
    self.outstanding > 0 || !self.outbox.is_empty() || self.wire_busy
  }

  /// Starts one operation and returns its token. Its result, a byte count, a negative
  /// errno or a [`result`] marker, is delivered under slot `token & INDEX_MASK`.
  ///
  /// # Safety
  /// The buffer rule (`caio_core`): `op.buf`/`op.len` stay valid and untouched by anybody
  /// else until the operation's result has been taken from the outbox.
  pub unsafe fn start(&mut self, mut op: Operation) -> Result<u64, Refused> {
    if self.closing {
      return Err(Refused::Closed);
    }
    let index = self.allocate()?;
    let slot = &mut self.slots[index as usize];
    op.token = token::slot_token(index, slot.generation);
    op.link = false;
    op.share = Share::Alone;
    slot.abort_requested = false;
    slot.work = Work::Single { op, place: None };
    self.outstanding += 1;
    self.enqueue(op.token);
    if self.tick.submit_early && self.tick.unsubmitted >= EARLY_SUBMIT {
      // The tick's flush is queued and reaps; until then nobody need be signalled.
      self.submit(true);
    }
    Ok(op.token)
  }

  /// Starts a batch and returns its token. Each operation's result is written to
  /// `results[position]` as it settles; once all have one, the slot of the batch is
  /// delivered with result 0. Tokens and shares of `ops` are the scheduler's to set.
  ///
  /// # Safety
  /// The buffer rule for every operation's buffer, and `results` valid for writes of
  /// `ops.len()` `f64`s, both until the batch's delivery has been taken.
  pub unsafe fn start_batch(
    &mut self,
    mut ops: Vec<Operation>,
    results: *mut f64,
  ) -> Result<u64, Refused> {
    if self.closing {
      return Err(Refused::Closed);
    }
    if ops.len() > token::MAX_BATCH {
      return Err(Refused::TooMany);
    }
    if let Some(last) = ops.last_mut() {
      last.link = false;
    }
    if self.traits.links {
      let mut chain = 0;
      for op in &ops {
        chain += 1;
        if chain > self.traits.capacity {
          return Err(Refused::ChainTooLong);
        }
        if !op.link {
          chain = 0;
        }
      }
    }
    let index = self.allocate()?;
    let generation = self.slots[index as usize].generation;
    let mut linked_before = false;
    for (position, op) in ops.iter_mut().enumerate() {
      op.token = token::batch_op_token(index, generation, position);
      op.share = Share::Alone;
      if !linked_before && !op.link && op.opcode == caio_core::Opcode::Read && op.len > 0 {
        self.share_turn = self.share_turn.wrapping_add(1);
        op.share = if self.share_turn % 2 == 0 {
          Share::Here
        } else {
          Share::Elsewhere
        };
      }
      linked_before = op.link;
    }
    // SAFETY: forwarded from the caller.
    let mut batch = unsafe { Batch::new(ops, results) };
    if self.traits.links {
      // A chain goes into the backend whole only if the backend links every one of its
      // operations itself; otherwise the scheduler feeds it, as for a backend without links.
      let backend = self.backend.as_deref();
      let mut first = 0;
      while first < batch.ops.len() {
        let chain = batch.chain(first);
        let linked = backend.is_some_and(|backend| {
          batch.ops[chain.clone()]
            .iter()
            .all(|op| backend.links_itself(op))
        });
        batch.fed[chain.clone()].fill(!linked);
        first = chain.end;
      }
    }
    let slot = &mut self.slots[index as usize];
    slot.abort_requested = false;
    let token = token::slot_token(index, generation);
    if batch.ops.is_empty() {
      // Settled like any other batch, so that its generation moves on: a late cancel of
      // this token must not hit the slot's next tenant.
      slot.work = Work::Batch(Box::new(batch));
      self.outstanding += 1;
      self.settle_slot(index as usize, 0.0);
      return Ok(token);
    }
    let mut heads = Vec::new();
    let mut first = 0;
    while first < batch.ops.len() {
      heads.push(batch.ops[first].token);
      first = batch.chain(first).end;
    }
    slot.work = Work::Batch(Box::new(batch));
    self.outstanding += 1;
    for head in heads {
      self.enqueue(head);
    }
    Ok(token)
  }

  fn allocate(&mut self) -> Result<u32, Refused> {
    if let Some(index) = self.free.pop() {
      return Ok(index);
    }
    if self.slots.len() as u64 > token::INDEX_MASK {
      return Err(Refused::TooMany);
    }
    self.slots.push(Slot {
      generation: 0,
      abort_requested: false,
      work: Work::Free,
    });
    Ok(self.slots.len() as u32 - 1)
  }

  /// Pushes the operation (or linked chain) `token` names, or queues it behind the ones
  /// already waiting, so that the queue keeps its order.
  fn enqueue(&mut self, token: u64) {
    if !(self.waiting.is_empty() && self.push(token)) {
      self.waiting.push_back(token);
    }
  }

  /// Hands the operation `token` names to the backend — for a batch operation with the rest
  /// of its chain when the backend links, alone when the scheduler feeds the chain; false
  /// when the backend has no room for it.
  fn push(&mut self, token: u64) -> bool {
    let Some(backend) = self.backend.as_mut() else {
      return false;
    };
    let room = self.traits.capacity.saturating_sub(self.in_backend);
    let parts = token::decode(token);
    let Some(slot) = self.slots.get_mut(parts.index) else {
      return false;
    };
    match (&mut slot.work, parts.position) {
      (Work::Single { op, place }, None) if place.is_none() => {
        if room == 0 {
          return false;
        }
        // SAFETY: the buffer rule, promised by the caller of `start` until the result is
        // taken, which is after this operation's completion has been reaped.
        match unsafe { backend.push(*op) } {
          Ok(at) => *place = Some(at),
          Err(_) => return false,
        }
        self.in_backend += 1;
      }
      (Work::Batch(batch), Some(first)) if first < batch.ops.len() => {
        let links = !batch.fed[first];
        let chain = if links {
          batch.chain(first)
        } else {
          first..first + 1
        };
        if chain.len() > room {
          return false;
        }
        for position in chain {
          let mut op = batch.ops[position];
          op.link &= links;
          // SAFETY: the buffer rule, promised by the caller of `start_batch` until the
          // batch is taken, after its last completion was reaped. There is room for the
          // whole chain, so no push in it should fail.
          match unsafe { backend.push(op) } {
            Ok(at) => batch.state[position] = OpState::InBackend(at),
            // Refused at once: it waits in the queue, as a refused single operation does.
            Err(_) if position == first => return false,
            // Refused midway (a backend breaking its word): the rest goes next, not never.
            Err(_) => {
              self.waiting.push_front(op.token);
              break;
            }
          }
          self.in_backend += 1;
        }
      }
      _ => return false,
    }
    self.tick.pushed(1);
    true
  }

  /// Submits what was pushed; `reap_follows` when the caller reaps right after.
  fn submit(&mut self, reap_follows: bool) {
    if self.tick.unsubmitted > 0 {
      self.submit_now(reap_follows);
    }
  }

  /// Submits even with nothing pushed: cancel requests go in this way.
  fn submit_now(&mut self, reap_follows: bool) {
    if let Some(backend) = self.backend.as_mut() {
      // A failed submit leaves the operations with the backend, which retries them on the
      // next call; they are never lost.
      if let Ok(submitted) = backend.submit(reap_follows) {
        self.tick.submitted(submitted, reap_follows);
      }
    }
  }

  /// Submits everything pushed in this tick and, within the inline budget, settles what
  /// already completed. `loop_time` is the event loop's clock: a change means the loop
  /// turned, which renews the budget.
  pub fn flush(&mut self, loop_time: u64) {
    self.flush_at(loop_time, 0);
  }

  /// [`Scheduler::flush`] at `now`, a monotonic clock in nanoseconds: the inline budget also
  /// ends [`INLINE_TIME_NS`](crate::policy::INLINE_TIME_NS) after the first flush since the
  /// loop turned.
  pub fn flush_at(&mut self, loop_time: u64, now: u64) {
    let inline = self.tick.begin_flush(loop_time, now);
    // Room the queue did not get because a push was refused (not for want of room) goes to
    // it now: otherwise, with nothing in the backend, no completion would ever move it on.
    self.refill();
    self.submit(inline);
    let pushed = self.tick.take_pushed();
    if inline {
      let settled_before = self.tick.settled;
      let mut reaped = self.reap_and_settle();
      // Completions another thread is about to post are cheaper to wait a few microseconds
      // for than to be woken for — until a result settles, whose reaction issues more work:
      // beyond that, waiting would only keep the caller from it.
      while self.tick.settled == settled_before && self.in_backend > 0 && self.tick.may_spin(reaped)
      {
        let Some(backend) = self.backend.as_deref() else {
          break;
        };
        if !self.tick.spin.wait(self.in_backend, || backend.ready()) {
          break;
        }
        reaped += self.reap_and_settle();
      }
      self
        .tick
        .end_flush(reaped, pushed, self.traits.cheap_submit);
    }
    self.end_quiet();
  }

  /// The event loop saw the notifier: settles everything that completed.
  pub fn on_ready(&mut self) {
    if let Some(backend) = self.backend.as_ref() {
      backend.notifier().clear();
    }
    self.tick.loop_turned();
    self.reap_and_settle();
    self.end_quiet();
  }

  fn end_quiet(&mut self) {
    if std::mem::take(&mut self.tick.quiet) {
      if let Some(backend) = self.backend.as_mut() {
        backend.signal_completions();
      }
    }
  }

  /// Settles every completion that is ready, refilling the backend from the queue as room
  /// frees up. Returns how many completions it reaped.
  fn reap_and_settle(&mut self) -> usize {
    let mut reaped = 0;
    while let Some(backend) = self.backend.as_mut() {
      let mut ready = std::mem::take(&mut self.completions);
      backend.reap(&mut ready);
      if ready.is_empty() {
        self.completions = ready;
        break;
      }
      reaped += ready.len();
      self.in_backend = self.in_backend.saturating_sub(ready.len());
      for completion in ready.drain(..) {
        self.settle(completion);
      }
      self.completions = ready;
      self.refill();
      let quiet = self.tick.quiet;
      self.submit(quiet);
    }
    self.release_if_closed();
    reaped
  }

  /// Pushes from the head of the queue while the backend takes it.
  fn refill(&mut self) {
    while let Some(token) = self.waiting.pop_front() {
      if !self.push(token) {
        self.waiting.push_front(token);
        break;
      }
    }
  }

  fn settle(&mut self, completion: Completion) {
    let parts = token::decode(completion.token);
    let Some(slot) = self.slots.get_mut(parts.index) else {
      return;
    };
    let generation = match parts.position {
      Some(_) => slot.generation & 0xff,
      None => slot.generation,
    };
    if parts.generation != generation {
      return;
    }
    let value = if slot.abort_requested && completion.result == ECANCELED {
      result::ABORTED
    } else {
      completion.result as f64
    };
    match (&mut slot.work, parts.position) {
      (Work::Single { place: Some(_), .. }, None) => self.settle_slot(parts.index, value),
      (Work::Batch(batch), Some(position))
        if matches!(batch.state.get(position), Some(OpState::InBackend(_))) =>
      {
        batch.record(position, value);
        let abort_requested = slot.abort_requested;
        if batch.fed[position] && batch.ops[position].link {
          self.continue_chain(parts, completion.result >= 0 && !abort_requested);
        }
        self.finish_batch_if_done(parts.index);
      }
      _ => {}
    }
  }

  /// For a chain the scheduler feeds: once the operation `parts` names has its result, the
  /// next one of its chain goes in (ahead of the queue: its chain was admitted already), or,
  /// when it failed, the rest of the chain settles with `-ECANCELED`.
  fn continue_chain(&mut self, parts: Parts, succeeded: bool) {
    let (Some(position), Some(slot)) = (parts.position, self.slots.get_mut(parts.index)) else {
      return;
    };
    let Work::Batch(batch) = &mut slot.work else {
      return;
    };
    let next = position + 1;
    if batch.state.get(next) != Some(&OpState::Queued) {
      return;
    }
    if succeeded {
      self.waiting.push_front(batch.ops[next].token);
      return;
    }
    let abort_requested = slot.abort_requested;
    for rest in batch.chain(next) {
      let value = if abort_requested {
        result::ABORTED
      } else {
        ECANCELED as f64
      };
      batch.record(rest, value);
    }
  }

  /// Settles slot `index` with `value` (a single operation, or a batch with 0).
  fn settle_slot(&mut self, index: usize, value: f64) {
    let slot = &mut self.slots[index];
    slot.work = Work::Settled;
    slot.generation = (slot.generation + 1) % token::GENERATION_LIMIT;
    self.outstanding -= 1;
    self.tick.settled += 1;
    self.outbox.push_back((index as f64, value));
  }

  fn finish_batch_if_done(&mut self, index: usize) {
    if let Work::Batch(batch) = &self.slots[index].work {
      if batch.remaining == 0 {
        self.settle_slot(index, 0.0);
      }
    }
  }
}
