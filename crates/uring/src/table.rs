//! The slot table: where each outstanding operation lives from push until its completion is
//! reaped, and how a completion queue entry finds its way back to it.

use caio_core::{Completion, Opcode, Operation};

/// Set in the `user_data` of cancel requests, whose completions are swallowed.
pub(crate) const CANCEL_TAG: u64 = 1 << 31;
/// The slot index in a `user_data`; the generation is in the upper 32 bits.
pub(crate) const INDEX_MASK: u64 = CANCEL_TAG - 1;
/// How many times in a row one operation is resubmitted after `-EAGAIN`/`-EINTR` before the
/// error is surfaced after all: a safety net against a live-lock, never reached in practice.
const MAX_RETRIES: u16 = 1000;

/// Where a slot's operation stands with respect to cancellation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CancelState {
  /// Nobody asked.
  None,
  /// Asked for, but the cancel request is not in the ring yet.
  Deferred,
  /// A cancel request is in the ring or was processed.
  Sent,
}

/// The registered resources an operation was pushed with (`registered.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fixed {
  /// The index of the registered buffer its buffer lies in: `READ_FIXED`/`WRITE_FIXED`.
  pub(crate) buffer: Option<u16>,
  /// The index of its registered descriptor: `IOSQE_FIXED_FILE`.
  pub(crate) file: Option<u32>,
}

impl Fixed {
  /// Neither: an ordinary operation.
  pub(crate) const NONE: Fixed = Fixed {
    buffer: None,
    file: None,
  };
}

/// One outstanding operation.
#[derive(Clone, Copy)]
pub(crate) struct Slot {
  pub(crate) op: Operation,
  /// What registered resources its entry uses, the same on every resubmission.
  pub(crate) fixed: Fixed,
  /// Bumped on every reuse, so `user_data` from an earlier tenant never matches.
  pub(crate) generation: u32,
  pub(crate) busy: bool,
  pub(crate) cancel: CancelState,
  /// Consecutive `-EAGAIN`/`-EINTR` resubmissions.
  pub(crate) retries: u16,
}

/// The slot table and the counts that keep the rings from overflowing.
pub(crate) struct Table {
  pub(crate) slots: Box<[Slot]>,
  /// Indices of free slots, used as a stack.
  pub(crate) free: Vec<u32>,
  /// Slots whose operation came back with `-EAGAIN`/`-EINTR` and waits to be resubmitted.
  pub(crate) retry: Vec<u32>,
  /// Pushed and not yet reaped.
  pub(crate) outstanding: usize,
  /// Cancel requests pushed whose own completion was not reaped yet.
  pub(crate) cancels_in_flight: usize,
  /// Slots in [`CancelState::Deferred`].
  pub(crate) deferred_cancels: usize,
  /// Busy slots using a registered buffer, and a registered file.
  fixed_buffers: usize,
  fixed_files: usize,
}

impl Table {
  /// `capacity` free slots.
  pub(crate) fn new(capacity: usize) -> Table {
    let idle = Slot {
      op: Operation::sync(Opcode::Fsync, -1, 0),
      fixed: Fixed::NONE,
      generation: 0,
      busy: false,
      cancel: CancelState::None,
      retries: 0,
    };
    Table {
      slots: vec![idle; capacity].into_boxed_slice(),
      free: (0..capacity as u32).rev().collect(),
      retry: Vec::with_capacity(capacity),
      outstanding: 0,
      cancels_in_flight: 0,
      deferred_cancels: 0,
      fixed_buffers: 0,
      fixed_files: 0,
    }
  }

  /// Records that slot `index` (just taken) uses `fixed`, until it settles.
  #[inline]
  pub(crate) fn use_fixed(&mut self, index: usize, fixed: Fixed) {
    self.slots[index].fixed = fixed;
    self.fixed_buffers += usize::from(fixed.buffer.is_some());
    self.fixed_files += usize::from(fixed.file.is_some());
  }

  /// Busy slots using a registered buffer (`buffers`) or a registered file.
  pub(crate) fn fixed_in_use(&self, buffers: bool) -> usize {
    if buffers {
      self.fixed_buffers
    } else {
      self.fixed_files
    }
  }

  /// Slot `index` no longer uses registered resources.
  #[inline]
  fn release_fixed(&mut self, index: usize) {
    let fixed = std::mem::replace(&mut self.slots[index].fixed, Fixed::NONE);
    self.fixed_buffers -= usize::from(fixed.buffer.is_some());
    self.fixed_files -= usize::from(fixed.file.is_some());
  }

  /// Takes a free slot for `op` and returns its index, or `None` when all are taken.
  #[inline]
  pub(crate) fn take(&mut self, op: Operation) -> Option<usize> {
    let index = self.free.pop()? as usize;
    let slot = &mut self.slots[index];
    slot.generation = slot.generation.wrapping_add(1);
    slot.op = op;
    slot.busy = true;
    slot.cancel = CancelState::None;
    slot.retries = 0;
    Some(index)
  }

  /// Gives back a slot that `take` handed out and whose operation never reached the kernel.
  pub(crate) fn untake(&mut self, index: usize) {
    self.release_fixed(index);
    self.slots[index].busy = false;
    self.free.push(index as u32);
  }

  /// The index of the busy slot at `place` if its operation carries `token`: a cancel's
  /// target, which may be long reaped (or `place` anything at all) by the time it comes.
  pub(crate) fn target(&self, token: u64, place: u32) -> Option<usize> {
    let index = place as usize;
    let slot = self.slots.get(index)?;
    (slot.busy && slot.op.token == token).then_some(index)
  }

  /// Hands the completion of slot `index` out and frees the slot.
  #[inline]
  pub(crate) fn settle(&mut self, index: usize, result: i32, out: &mut Vec<Completion>) {
    self.release_fixed(index);
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
  pub(crate) fn complete(
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
}

/// Whether an `-EAGAIN`/`-EINTR` result should be retried rather than surfaced: not for an
/// operation that links on (the kernel already cancelled the rest of its chain, which a
/// retry of this one alone would not bring back), nor an `-EAGAIN` from a descriptor in
/// non-blocking mode, for which it is the answer; nor a path operation's, which is its
/// answer too (and a close is done even when interrupted).
#[cold]
fn retryable(slot: &Slot, result: i32) -> bool {
  if slot.op.link || slot.retries >= MAX_RETRIES || !retries_alone(slot.op.opcode) {
    return false;
  }
  result == -libc::EINTR || !caio_core::sys::is_nonblocking(slot.op.fd)
}

/// Whether the operation's `-EAGAIN`/`-EINTR` means "try again": the data operations, which
/// a retry repeats exactly (`ftruncate` counts as a path operation here).
fn retries_alone(opcode: caio_core::Opcode) -> bool {
  use caio_core::Opcode;
  opcode.is_data() && opcode != Opcode::Ftruncate
}

/// The `user_data` naming slot `index` in its current generation.
#[inline]
pub(crate) fn user_data(index: usize, generation: u32) -> u64 {
  (u64::from(generation) << 32) | index as u64
}
