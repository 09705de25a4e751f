//! The per-tick policy: how much to settle inline, when to submit early, when to spin.

use caio_core::Submitted;

use crate::spin::InlineSpin;

/// Operations settled inline (inside the flush that submitted them) before the loop must
/// turn. Buffered reads mostly complete inside the submitting call, so a Promise chain
/// could otherwise keep the JS thread in microtasks forever, starving timers and other I/O.
pub const INLINE_BUDGET: usize = 256;

/// Nanoseconds of inline settling after which the loop must turn, whatever the count: 256
/// large reads (a stream's 64 KiB chunks, whole files) take milliseconds, and a timer or
/// another callback would wait as long.
pub const INLINE_TIME_NS: u64 = 1000000;

/// While completions arrive from a device rather than inside the submitting call, a tick's
/// operations go to a backend whose submit is cheap ([`caio_core::Traits::cheap_submit`])
/// this many at a time as they start, instead of all at the tick's end: the device starts
/// on the first ones while JavaScript is still issuing the rest (a virtio disk completes a
/// whole tick's reads together, so the JavaScript time between their completion and their
/// resubmission is idle time of the device). Cached reads complete inside the submitting
/// call, and there one submit per tick stays cheaper, so early submits start only after a
/// flush found most of its tick's operations still running (docs/ARCHITECTURE.md has the
/// measurements behind 4).
pub const EARLY_SUBMIT: usize = 4;

/// What the policy remembers from one tick to the next.
#[derive(Debug, Default)]
pub(crate) struct Tick {
  /// Operations settled inline since the loop last turned.
  inline_settled: usize,
  /// The loop's clock at the last flush.
  loop_time: u64,
  /// The caller's clock (ns) at the first flush since the loop turned, once there was one.
  turn_began: Option<u64>,
  /// Pushed into the backend since it was last told to submit.
  pub unsubmitted: usize,
  /// Pushed since the last flush, early submits included.
  pushed_this_tick: usize,
  /// Whether to submit every [`EARLY_SUBMIT`] operations rather than once per tick.
  pub submit_early: bool,
  /// A submit told the backend that a reap follows; `signal_completions` ends it.
  pub quiet: bool,
  /// A submit of this flush said another thread posts completions within microseconds.
  soon: bool,
  /// Operations and batches settled so far: a flush spins only until one more has.
  pub settled: u64,
  pub spin: InlineSpin,
}

impl Tick {
  pub fn pushed(&mut self, count: usize) {
    self.unsubmitted += count;
    self.pushed_this_tick += count;
  }

  pub fn submitted(&mut self, submitted: Submitted, reap_follows: bool) {
    self.unsubmitted = 0;
    self.quiet |= reap_follows;
    self.soon |= submitted.completions_soon;
  }

  /// Starts a flush at `now` (ns); whether it may settle inline.
  pub fn begin_flush(&mut self, loop_time: u64, now: u64) -> bool {
    if loop_time != self.loop_time {
      self.loop_time = loop_time;
      self.loop_turned();
    }
    self.soon = false;
    let began = *self.turn_began.get_or_insert(now);
    self.inline_settled < INLINE_BUDGET && now.saturating_sub(began) < INLINE_TIME_NS
  }

  pub fn take_pushed(&mut self) -> usize {
    std::mem::take(&mut self.pushed_this_tick)
  }

  /// Whether a flush that reaped `reaped` so far may spin for more.
  pub fn may_spin(&self, reaped: usize) -> bool {
    self.soon && self.inline_settled + reaped < INLINE_BUDGET
  }

  /// Ends an inline flush that reaped `reaped` of the `pushed` operations of its tick.
  pub fn end_flush(&mut self, reaped: usize, pushed: usize, cheap_submit: bool) {
    self.inline_settled += reaped;
    if pushed >= EARLY_SUBMIT {
      self.submit_early = cheap_submit && reaped * 2 < pushed;
    }
  }

  /// The event loop turned: the inline budget is whole again.
  pub fn loop_turned(&mut self) {
    self.inline_settled = 0;
    self.turn_began = None;
  }
}
