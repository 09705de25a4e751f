//! Ending work: a cancel, a close, and the teardown of an environment going away.

use std::collections::VecDeque;

use super::{Scheduler, Work};
use crate::batch::OpState;
use crate::token;
use crate::wire::{result, CLOSED_SLOT};

impl Scheduler {
  /// Asks for the operation or batch `token` (from `start` or `start_batch`) to be
  /// cancelled: what is still queued settles as aborted at once; what is in the backend is
  /// cancelled there, and settles as aborted only if the cancellation took effect. A token
  /// that no longer names an outstanding operation is ignored.
  pub fn cancel(&mut self, token: u64) {
    let parts = token::decode(token);
    let Some(slot) = self.slots.get_mut(parts.index) else {
      return;
    };
    if parts.position.is_some() || parts.generation != slot.generation {
      return;
    }
    slot.abort_requested = true;
    let mut in_backend = Vec::new();
    match &mut slot.work {
      Work::Single {
        op,
        place: Some(place),
      } => in_backend.push((op.token, *place)),
      Work::Single { place: None, .. } => {
        self.waiting.retain(|&waiting| waiting != token);
        self.settle_slot(parts.index, result::ABORTED);
      }
      Work::Batch(batch) => {
        for (position, state) in batch.state.iter().enumerate() {
          if let OpState::InBackend(place) = *state {
            in_backend.push((batch.ops[position].token, place));
          }
        }
        batch.record_queued(result::ABORTED);
        let index = parts.index;
        self
          .waiting
          .retain(|&waiting| token::decode(waiting).index != index);
        self.finish_batch_if_done(index);
      }
      Work::Free | Work::Settled => {}
    }
    if !in_backend.is_empty() {
      if let Some(backend) = self.backend.as_mut() {
        for (token, place) in in_backend {
          backend.cancel(token, place);
        }
        self.submit_now(false);
      }
    }
  }

  /// Starts closing: queued operations settle with [`result::CLOSED`], those in the
  /// backend finish, then the backend is dropped and a pair with slot [`CLOSED_SLOT`] is
  /// delivered. Called again after that, it delivers that pair again. A linked chain counts
  /// as in the backend once its first operation is, with or without [`Traits::links`].
  pub fn close(&mut self) {
    if self.backend.is_none() {
      self.outbox.push_back((CLOSED_SLOT, 0.0));
      return;
    }
    if !self.closing {
      self.closing = true;
      let mut admitted = VecDeque::new();
      while let Some(token) = self.waiting.pop_front() {
        let parts = token::decode(token);
        match (&mut self.slots[parts.index].work, parts.position) {
          (Work::Batch(batch), Some(first)) if first > 0 && batch.ops[first - 1].link => {
            // The rest of a chain the backend started on runs on, as a linking backend's
            // does: only chains not started yet are dropped.
            admitted.push_back(token);
          }
          (Work::Batch(batch), Some(first)) => {
            for position in batch.chain(first) {
              batch.record(position, result::CLOSED);
            }
            self.finish_batch_if_done(parts.index);
          }
          (Work::Single { place: None, .. }, None) => self.settle_slot(parts.index, result::CLOSED),
          _ => {}
        }
      }
      self.waiting = admitted;
      self.submit(false);
    }
    self.release_if_closed();
  }

  /// Drops the backend once closing and nothing is outstanding; dropping it returns only
  /// once nothing it ran can touch a buffer.
  pub(super) fn release_if_closed(&mut self) {
    if self.closing && self.outstanding == 0 && self.backend.is_some() {
      self.backend = None;
      self.outbox.push_back((CLOSED_SLOT, 0.0));
    }
  }

  /// The environment is going away: cancels everything in the backend and drops it, which
  /// blocks until the backend has let go of every buffer. Nothing is delivered after this.
  pub fn tear_down(&mut self) {
    self.closing = true;
    // Even when a close already dropped the backend: its closed pair is not delivered.
    self.outbox.clear();
    let Some(mut backend) = self.backend.take() else {
      return;
    };
    for slot in &self.slots {
      match &slot.work {
        Work::Single {
          op,
          place: Some(place),
        } => backend.cancel(op.token, *place),
        Work::Batch(batch) => {
          for (position, state) in batch.state.iter().enumerate() {
            if let OpState::InBackend(place) = *state {
              backend.cancel(batch.ops[position].token, place);
            }
          }
        }
        _ => {}
      }
    }
    let _ = backend.submit(false);
    drop(backend);
  }
}
