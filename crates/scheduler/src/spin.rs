//! A bounded wait for completions that another thread (an SQPOLL kernel thread, a pool
//! worker) is about to post, after a submit that said so (`Submitted::completions_soon`):
//! cheaper than being woken by the event loop, as long as it rarely waits in vain.

use std::time::{Duration, Instant};

/// How long a spin lasts: this, plus [`SPIN_PER_OP`] for every outstanding operation,
/// since the other thread posts the completions of a run of work together, after all of it
/// ran (a cached 4 KiB read takes it about 1 µs), and a wake-up of the event loop from
/// another thread costs about 20 µs (docs/ARCHITECTURE.md).
pub const SPIN: Duration = Duration::from_micros(10);
/// See [`SPIN`].
pub const SPIN_PER_OP: Duration = Duration::from_nanos(1500);
/// The longest spin, however many operations are outstanding.
pub const SPIN_MAX: Duration = Duration::from_micros(200);
/// After a spin that saw nothing (device I/O takes hundreds of µs), that many later calls
/// skip the spin, doubling per miss up to this many, so slow I/O costs at most one spin in
/// 256.
pub const BACKOFF_MAX: u32 = 256;

/// The spin's state: how many calls to skip, and how many the next miss skips.
#[derive(Debug)]
pub struct InlineSpin {
  skip: u32,
  backoff: u32,
}

impl Default for InlineSpin {
  fn default() -> Self {
    InlineSpin {
      skip: 0,
      backoff: 1,
    }
  }
}

impl InlineSpin {
  /// Spins until `ready()` says a completion is there (true) or the budget for
  /// `outstanding` operations has passed (false; later calls then skip the spin for a
  /// while). Skipped calls return false at once.
  pub fn wait(&mut self, outstanding: usize, ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    self.wait_on(outstanding, ready, || start.elapsed())
  }

  /// [`InlineSpin::wait`] on the clock `elapsed`, the time since the spin began.
  fn wait_on(
    &mut self,
    outstanding: usize,
    mut ready: impl FnMut() -> bool,
    mut elapsed: impl FnMut() -> Duration,
  ) -> bool {
    if self.skip > 0 {
      self.skip -= 1;
      return false;
    }
    let budget = (SPIN + SPIN_PER_OP * outstanding.min(u32::MAX as usize) as u32).min(SPIN_MAX);
    loop {
      if ready() {
        self.backoff = 1;
        return true;
      }
      if elapsed() >= budget {
        self.skip = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        return false;
      }
      std::hint::spin_loop();
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  /// A clock that moves 1 µs each time it is read: the tests do not depend on how fast
  /// they run (under Miri or valgrind a real 10 µs is a few instructions).
  fn ticking() -> impl FnMut() -> Duration {
    let mut now = Duration::ZERO;
    move || {
      now += Duration::from_micros(1);
      now
    }
  }

  fn wait(spin: &mut InlineSpin, outstanding: usize, ready: impl FnMut() -> bool) -> bool {
    spin.wait_on(outstanding, ready, ticking())
  }

  #[test]
  fn a_miss_skips_the_next_calls_doubling_and_a_hit_resets() {
    let mut spin = InlineSpin::default();
    assert!(wait(&mut spin, 0, || true), "ready at once");
    assert!(!wait(&mut spin, 0, || false), "a miss");
    assert!(
      !wait(&mut spin, 0, || true),
      "the call after one miss is skipped"
    );
    assert!(!wait(&mut spin, 0, || false), "a second miss");
    for _ in 0..2 {
      assert!(
        !wait(&mut spin, 0, || true),
        "two calls skipped after a second miss"
      );
    }
    let mut polls = 0;
    assert!(wait(&mut spin, 0, || {
      polls += 1;
      polls == 3
    }));
    assert!(!wait(&mut spin, 0, || false), "after a hit, a miss again");
    assert!(!wait(&mut spin, 0, || true), "skips one call, not four");
    assert!(wait(&mut spin, 0, || true));
  }

  #[test]
  fn the_budget_grows_with_the_operations_outstanding_up_to_its_cap() {
    let polls_until_a_miss = |outstanding: usize| {
      let mut spin = InlineSpin::default();
      let mut polls = 0;
      assert!(!wait(&mut spin, outstanding, || {
        polls += 1;
        false
      }));
      polls
    };
    // One poll per microsecond of the ticking clock, and one more that sees the budget out.
    assert_eq!(polls_until_a_miss(0), 10);
    assert_eq!(polls_until_a_miss(4), 16);
    assert_eq!(polls_until_a_miss(usize::MAX), 200);
  }

  #[test]
  fn the_real_clock_ends_a_spin_that_never_sees_a_completion() {
    let mut spin = InlineSpin::default();
    assert!(!spin.wait(0, || false));
  }
}
