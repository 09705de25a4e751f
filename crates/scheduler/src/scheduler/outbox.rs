//! The outbox's far end: results move onto the caller's wire, and their slots are freed
//! once the caller has read them.

use super::{Scheduler, Work};

impl Scheduler {
  /// Moves settled results onto `wire` as (slot, result) pairs — as many as fit — and
  /// returns how many. Returns 0 while an earlier delivery has not been finished: its
  /// pairs are still being read off the wire.
  pub fn take_deliveries(&mut self, wire: &mut [f64]) -> usize {
    if self.wire_busy {
      return 0;
    }
    let mut count = 0;
    for pair in wire.chunks_exact_mut(2) {
      let Some((slot, value)) = self.outbox.pop_front() else {
        break;
      };
      pair[0] = slot;
      pair[1] = value;
      if slot >= 0.0 {
        self.on_wire.push(slot as u32);
      }
      count += 1;
    }
    self.wire_busy = count > 0;
    count
  }

  /// The caller has read every pair of the last `take_deliveries`: their slots are free.
  pub fn finish_delivery(&mut self) {
    for index in self.on_wire.drain(..) {
      if let Some(slot) = self.slots.get_mut(index as usize) {
        if matches!(slot.work, Work::Settled) {
          slot.work = Work::Free;
          self.free.push(index);
        }
      }
    }
    self.wire_busy = false;
  }
}
