//! One `submit(ops)` call: its operations, where each one stands, and where results go.

use std::ops::Range;

use caio_core::{Operation, Place};

/// Where one operation of a batch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpState {
  /// Not in the backend yet: in the admission queue (as the head of its chain), or behind
  /// its predecessor in a chain the scheduler feeds one operation at a time.
  Queued,
  /// In the backend, at this place.
  InBackend(Place),
  /// Has its result.
  Done,
}

/// A batch's operations and results.
pub(crate) struct Batch {
  pub ops: Vec<Operation>,
  pub state: Vec<OpState>,
  /// By operation: its chain is fed to the backend one operation at a time, each after the
  /// one before succeeded, rather than pushed whole for the backend to link.
  pub fed: Vec<bool>,
  /// One `f64` per operation, owned by the caller of `Scheduler::start_batch`.
  results: *mut f64,
  /// Operations without a result yet.
  pub remaining: usize,
}

impl Batch {
  /// # Safety
  /// `results` is valid for writes of `ops.len()` `f64`s until the batch is delivered.
  pub unsafe fn new(ops: Vec<Operation>, results: *mut f64) -> Batch {
    let count = ops.len();
    Batch {
      ops,
      state: vec![OpState::Queued; count],
      fed: vec![true; count],
      results,
      remaining: count,
    }
  }

  /// The operations from `first` to the end of its linked chain.
  pub fn chain(&self, first: usize) -> Range<usize> {
    let mut end = first;
    while end + 1 < self.ops.len() && self.ops[end].link {
      end += 1;
    }
    first..end + 1
  }

  /// Gives operation `position` its result, unless it has one.
  pub fn record(&mut self, position: usize, value: f64) -> bool {
    if self
      .state
      .get(position)
      .is_none_or(|state| *state == OpState::Done)
    {
      return false;
    }
    // SAFETY: `results` spans one f64 per operation until the batch is delivered (the
    // promise of `Batch::new`), and `position` is in range (checked above).
    unsafe { *self.results.add(position) = value };
    self.state[position] = OpState::Done;
    self.remaining -= 1;
    true
  }

  /// Gives every queued operation of the batch the result `value`; how many it gave.
  pub fn record_queued(&mut self, value: f64) -> usize {
    let mut count = 0;
    for position in 0..self.ops.len() {
      if self.state[position] == OpState::Queued {
        self.record(position, value);
        count += 1;
      }
    }
    count
  }
}
