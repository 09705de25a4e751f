//! One pool worker: takes a run of jobs from the queue, does each with its blocking system
//! call (a share only with `RWF_NOWAIT`), and posts the run's completions together.

use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use caio_core::cached::{read_if_cached_unless_direct, DirectIoMemo};
use caio_core::sys::perform_blocking;
use caio_core::{Completion, Operation, Share};

use crate::pool::{cancelled, is_share, lock, Hand, Shared};

/// The most share reads a worker takes at once.
const MAX_SHARE_PER_TAKE: usize = 64;
/// The most other jobs a worker takes at once, so one worker never hoards a long queue.
const MAX_JOBS_PER_TAKE: usize = 16;
/// How long a worker that finished a share watches for the next before it sleeps: a
/// batch's submitter comes back within tens of microseconds, and a futex wake-up costs
/// about as much as such a wait, so a shorter watch mostly ends just before the next share
/// arrives.
const SHARE_SPIN: Duration = Duration::from_micros(200);

/// The loop of worker `index` (its hand in `shared.hands`), until shutdown.
pub(crate) fn run_worker(shared: &Shared, index: usize) {
  let Some(hand) = shared.hands.get(index) else {
    return;
  };
  let mut batch: Vec<Operation> = Vec::new();
  let mut results: Vec<Completion> = Vec::new();
  let mut uncached: Vec<Operation> = Vec::new();
  let mut direct = DirectIoMemo::default();
  // Whether the last take was a share: then watch for the next one before sleeping.
  let mut took_share = false;
  while take(shared, hand, &mut batch, took_share) {
    took_share = batch.first().is_some_and(is_share);
    // A descriptor number may have been closed and reused since the last take.
    direct.forget();
    for op in batch.drain(..) {
      let result = if hand.was_cancelled(op.token) {
        cancelled(op.token).result
      } else if is_share(&op) {
        // Only what the page cache answers at once; the rest (O_DIRECT reads among it) goes
        // back to the queue for the whole pool, so that device reads run in parallel.
        // SAFETY: the buffer rule (caio_core): the pusher keeps `op.buf` valid for `op.len`
        // bytes until this operation's completion is reaped, which is after `finish_take`
        // below posts it.
        match unsafe { read_if_cached_unless_direct(&op, &mut direct) } {
          Some(result) => result,
          None => {
            uncached.push(Operation {
              share: Share::Alone,
              ..op
            });
            continue;
          }
        }
      } else {
        // SAFETY: the buffer rule (caio_core), as above: the completion is reaped only
        // after `finish_take` posts it.
        unsafe { perform_blocking(&op) }
      };
      results.push(Completion {
        token: op.token,
        result,
      });
    }
    shared.finish_take(hand, &mut uncached, &mut results);
  }
}

/// Waits for work and moves the next take into `batch`, noting its tokens in `hand`
/// before the queue's lock is let go. `spin_first`: watch the queue a moment before
/// sleeping (after a share, the next batch's share is likely on its way). False at
/// shutdown.
fn take(shared: &Shared, hand: &Hand, batch: &mut Vec<Operation>, spin_first: bool) -> bool {
  let mut spin = spin_first;
  let mut jobs = lock(&shared.jobs);
  loop {
    if shared.shutdown.load(Ordering::Acquire) {
      return false;
    }
    if jobs.front().is_some_and(is_share) {
      // A share: all of its run at once.
      while batch.len() < MAX_SHARE_PER_TAKE && jobs.front().is_some_and(is_share) {
        batch.extend(jobs.pop_front());
      }
      break;
    }
    if !jobs.is_empty() {
      // A fair share of what waits, not one job per lock: with a batch of 64 behind the
      // lock, one job per acquisition makes the workers queue on the lock and on the futex
      // behind it.
      let fair = (jobs.len() / shared.workers()).clamp(1, MAX_JOBS_PER_TAKE);
      let count = fair.min(jobs.len());
      batch.extend(jobs.drain(..count));
      break;
    }
    if std::mem::take(&mut spin) && start_spinning(shared) {
      drop(jobs);
      watch_for_jobs(shared);
      // Look again under the lock: a share handed over while this thread spun found it
      // spinning and woke nobody.
      jobs = lock(&shared.jobs);
      continue;
    }
    jobs = shared
      .job_ready
      .wait(jobs)
      .unwrap_or_else(PoisonError::into_inner);
  }
  shared.job_count.store(jobs.len(), Ordering::Release);
  hand.hold(batch);
  true
}

/// Becomes the one spinning worker, unless another already is.
fn start_spinning(shared: &Shared) -> bool {
  shared
    .spinning
    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
    .is_ok()
}

/// Spins until the queue has jobs, `SHARE_SPIN` passed, or shutdown; then stops spinning.
fn watch_for_jobs(shared: &Shared) {
  let start = Instant::now();
  while shared.job_count.load(Ordering::Acquire) == 0
    && start.elapsed() < SHARE_SPIN
    && !shared.shutdown.load(Ordering::Acquire)
  {
    std::hint::spin_loop();
  }
  shared.spinning.store(false, Ordering::Release);
}
