//! What the submitting thread and the workers share: the job queue, the completions, and
//! each worker's hand (the tokens of the operations it took from the queue and has not
//! finished), which is where a cancel finds an operation that left the queue but has not
//! started.
//!
//! Lock order, wherever two are held: `jobs`, then a hand's `state`. `done` is only ever
//! taken alone.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use caio_core::{Completion, Notifier, Operation, Share};

/// The queues between the submitting thread and the workers.
pub(crate) struct Shared {
  /// Operations no worker has taken yet.
  pub(crate) jobs: Mutex<VecDeque<Operation>>,
  pub(crate) job_ready: Condvar,
  /// `jobs.len()`, for a spinning worker to watch without the lock.
  pub(crate) job_count: AtomicUsize,
  /// Completions posted by workers (and by cancels), not yet reaped.
  pub(crate) done: Mutex<Vec<Completion>>,
  /// `done.len()`, read without the lock to make an empty reap cheap.
  pub(crate) done_count: AtomicUsize,
  pub(crate) notifier: Notifier,
  pub(crate) shutdown: AtomicBool,
  /// Whether a worker is spinning for the next share (at most one does), so that handing
  /// one over needs no wake-up.
  pub(crate) spinning: AtomicBool,
  /// One per worker, by the worker's index.
  pub(crate) hands: Box<[Hand]>,
}

/// The operations one worker took from the queue and has not finished, by token, and
/// those of them a cancel asked it not to start.
#[derive(Default)]
pub(crate) struct Hand {
  state: Mutex<HandState>,
  /// `state.cancelled.len()`, so that a worker checks for cancels with one load.
  asked: AtomicUsize,
}

#[derive(Default)]
struct HandState {
  taken: Vec<u64>,
  cancelled: Vec<u64>,
}

/// A poisoned lock still guards consistent data: nothing panics while holding one (no
/// fallible work is done under a lock).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
  mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The completion of an operation withdrawn before it started.
pub(crate) fn cancelled(token: u64) -> Completion {
  Completion {
    token,
    result: -i64::from(libc::ECANCELED),
  }
}

/// In the pool's queue, a share is a read a worker tries only with `RWF_NOWAIT`: the
/// scheduler marked it [`Share::Elsewhere`] and `submit` handed it over as such. Every other
/// operation reaches the queue as [`Share::Alone`].
pub(crate) fn is_share(op: &Operation) -> bool {
  op.share == Share::Elsewhere
}

impl Shared {
  pub(crate) fn new(notifier: Notifier, capacity: usize, workers: usize) -> Shared {
    Shared {
      jobs: Mutex::new(VecDeque::with_capacity(capacity)),
      job_ready: Condvar::new(),
      job_count: AtomicUsize::new(0),
      done: Mutex::new(Vec::with_capacity(capacity)),
      done_count: AtomicUsize::new(0),
      notifier,
      shutdown: AtomicBool::new(false),
      spinning: AtomicBool::new(false),
      hands: (0..workers).map(|_| Hand::default()).collect(),
    }
  }

  /// Number of workers, for sharing out jobs.
  pub(crate) fn workers(&self) -> usize {
    self.hands.len().max(1)
  }

  /// Queues jobs for the workers with one lock and one wake-up.
  pub(crate) fn hand_to_pool(&self, ops: impl ExactSizeIterator<Item = Operation>) {
    let count = ops.len();
    if count == 0 {
      return;
    }
    self.queue(ops);
    self.wake(count);
  }

  /// Queues a share of a batch's reads for one worker: the one spinning for it, or one
  /// woken up. One worker takes all of it at once (cached reads, microseconds each).
  pub(crate) fn hand_share_to_pool(&self, ops: impl ExactSizeIterator<Item = Operation>) {
    if ops.len() == 0 {
      return;
    }
    self.queue(ops);
    // A spinner that misses this store still looks at the queue under its lock before it
    // sleeps, so the share is never stranded.
    if !self.spinning.load(Ordering::Acquire) {
      self.job_ready.notify_one();
    }
  }

  /// Appends jobs to the queue (waking nobody) and keeps `job_count` in step.
  fn queue(&self, ops: impl Iterator<Item = Operation>) {
    let mut jobs = lock(&self.jobs);
    jobs.extend(ops);
    self.job_count.store(jobs.len(), Ordering::Release);
  }

  fn wake(&self, count: usize) {
    match count {
      0 => {}
      1 => self.job_ready.notify_one(),
      _ => self.job_ready.notify_all(),
    }
  }

  /// Posts completions and signals the notifier when `done` was empty, so that a burst of
  /// them costs the event loop one wake-up.
  pub(crate) fn complete_all(&self, completions: impl IntoIterator<Item = Completion>) {
    let mut done = lock(&self.done);
    let was_empty = done.is_empty();
    done.extend(completions);
    self.done_count.store(done.len(), Ordering::Release);
    drop(done);
    if was_empty {
      self.notifier.signal();
    }
  }

  /// Cancels the queued or taken operation `token` if no worker started it: withdrawn from
  /// the queue, it completes with `-ECANCELED` at once; taken by a worker (which takes a run
  /// of the queue at a time), it is marked in that worker's hand, which the worker checks
  /// before it starts each operation. A token in neither place has started, finished or
  /// been reaped, and is left alone: nothing is remembered for it, so a late cancel cannot
  /// hit a later operation with the same token.
  pub(crate) fn cancel(&self, token: u64) {
    let mut jobs = lock(&self.jobs);
    if let Some(index) = jobs.iter().position(|op| op.token == token) {
      jobs.remove(index);
      self.job_count.store(jobs.len(), Ordering::Release);
      drop(jobs);
      self.complete_all([cancelled(token)]);
      return;
    }
    // Holding the queue's lock, no worker takes or puts back anything meanwhile, so an
    // operation that is not started is in exactly one of the two places.
    for hand in self.hands.iter() {
      if hand.ask_cancel(token) {
        return;
      }
    }
  }

  /// Ends a worker's take. What a share's worker could not read cached goes back to the
  /// queue as ordinary jobs, unless cancelled meanwhile; the hand is emptied; then the
  /// completions are posted. In that order, an operation not yet finished is always in
  /// the queue or in a hand when a cancel looks, and one whose completion could have been
  /// reaped is in neither (see [`Shared::cancel`]).
  pub(crate) fn finish_take(
    &self,
    hand: &Hand,
    uncached: &mut Vec<Operation>,
    results: &mut Vec<Completion>,
  ) {
    if uncached.is_empty() {
      hand.release(uncached, results);
    } else {
      let mut jobs = lock(&self.jobs);
      hand.release(uncached, results);
      let count = uncached.len();
      jobs.extend(uncached.drain(..));
      self.job_count.store(jobs.len(), Ordering::Release);
      drop(jobs);
      self.wake(count);
    }
    if !results.is_empty() {
      self.complete_all(results.drain(..));
    }
  }
}

impl Hand {
  /// Notes the tokens of a take. Called with the queue's lock held, so that a cancel finds
  /// every operation either still in the queue or here.
  pub(crate) fn hold(&self, ops: &[Operation]) {
    let mut state = lock(&self.state);
    state.taken.extend(ops.iter().map(|op| op.token));
  }

  /// Whether a cancel asked for `token` not to be started (and forgets the request).
  pub(crate) fn was_cancelled(&self, token: u64) -> bool {
    if self.asked.load(Ordering::Acquire) == 0 {
      return false;
    }
    let mut state = lock(&self.state);
    let Some(index) = state.cancelled.iter().position(|&t| t == token) else {
      return false;
    };
    state.cancelled.swap_remove(index);
    self.asked.store(state.cancelled.len(), Ordering::Release);
    true
  }

  /// Marks `token` cancelled if this hand holds it; whether it did.
  fn ask_cancel(&self, token: u64) -> bool {
    let mut state = lock(&self.state);
    if !state.taken.contains(&token) {
      return false;
    }
    if !state.cancelled.contains(&token) {
      state.cancelled.push(token);
      self.asked.store(state.cancelled.len(), Ordering::Release);
    }
    true
  }

  /// Empties the hand at the end of a take. Of `uncached` (about to go back to the queue),
  /// those asked to be cancelled complete with `-ECANCELED` in `results` instead; the
  /// marks for operations that already ran are dropped, too late to matter.
  fn release(&self, uncached: &mut Vec<Operation>, results: &mut Vec<Completion>) {
    let mut state = lock(&self.state);
    if !state.cancelled.is_empty() {
      uncached.retain(|op| {
        let asked = state.cancelled.contains(&op.token);
        if asked {
          results.push(cancelled(op.token));
        }
        !asked
      });
      state.cancelled.clear();
      self.asked.store(0, Ordering::Release);
    }
    state.taken.clear();
  }
}
