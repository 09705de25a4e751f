//! Held reads: with SQPOLL, the batch reads the scheduler marked [`Share::Here`] are kept
//! out of the ring at push, and a submit after which the caller reaps (the backend is
//! quiet) does them on the calling thread when the page cache has their bytes, while the
//! kernel thread does the rest of the batch: both cores copy. What the cache cannot answer,
//! and every held read of a submit that is not quiet, goes into the ring after all.
//!
//! A read done here never waits for the device, so its `priority` has nothing to order;
//! once submitted it is done, as a read the kernel already finished cannot be cancelled
//! either.

use caio_core::cached::{read_if_cached_unless_direct, DirectIoMemo, READS_IF_CACHED};
use caio_core::{Opcode, Operation, Share};

use crate::ring::build_entry;
use crate::table::user_data;
use crate::UringBackend;

impl UringBackend {
  /// Whether `push` should hold `op` back for the submitting thread.
  #[inline]
  pub(crate) fn hold(&self, op: &Operation) -> bool {
    op.share == Share::Here
      && self.sqpoll
      && READS_IF_CACHED
      && !self.closing
      && op.opcode == Opcode::Read
      && !op.link
      && op.len > 0
  }

  /// Settles the held read in slot `index` as cancelled, if it is held: it never reached
  /// the kernel, so the cancellation is certain. Returns whether it was held.
  pub(crate) fn cancel_held(&mut self, index: usize) -> bool {
    if self.held.is_empty() {
      return false;
    }
    let Some(position) = self.held.iter().position(|&held| held as usize == index) else {
      return false;
    };
    self.held.swap_remove(position);
    self
      .table
      .settle(index, -libc::ECANCELED, self.done_here.list_mut());
    self.done_here.announce(&self.notifier);
    true
  }

  /// Does the held reads the page cache can answer here (only when quiet: the caller reaps
  /// them right after), and puts the rest into the ring.
  pub(crate) fn run_held(&mut self) {
    let mut held = std::mem::take(&mut self.held);
    let mut missed = 0;
    if self.done_here.is_quiet() && !self.closing {
      let mut direct = DirectIoMemo::default();
      for position in 0..held.len() {
        let index = held[position] as usize;
        let op = self.table.slots[index].op;
        // SAFETY: the buffer rule (caio_core): the pusher keeps `op.buf` valid for `op.len`
        // bytes until this operation's completion is reaped, after this call.
        match unsafe { read_if_cached_unless_direct(&op, &mut direct) } {
          // At most `op.len` <= i32::MAX bytes.
          Some(result) => self
            .table
            .settle(index, result as i32, self.done_here.list_mut()),
          // Not cached, or opened with O_DIRECT: the ring does the waiting read.
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
      let entry = build_entry(
        &slot.op,
        slot.fixed,
        user_data(index as usize, slot.generation),
      );
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
    self.done_here.announce(&self.notifier);
    held.clear();
    self.held = held;
  }
}
