//! The `thread` backend: a fixed pool of OS threads doing `pread`/`pwrite`/`fsync`/
//! `fdatasync`, for any Unix.
//!
//! The submitting thread stages operations and hands a whole submit over with one lock and
//! one wake-up. A worker takes a run of jobs, does each with its blocking system call
//! (retrying `EINTR`), and appends the run's completions to a shared queue, signalling the
//! [`Notifier`] only when that queue was empty, so a burst of completions costs the event
//! loop one wake-up.
//!
//! On 64-bit Linux a read is first tried on the submitting thread with
//! `preadv2(RWF_NOWAIT)`, which copies from the page cache and refuses (`EAGAIN`) rather
//! than wait for a device: a cached read costs one system call instead of two thread
//! hand-offs, which is what io_uring does inside the kernel too. Anything that read cannot
//! answer at once goes to the pool.
//!
//! A read the scheduler marks [`Share::Elsewhere`] goes to the pool instead, as a *share*:
//! one worker takes the whole run of them, reads each with `RWF_NOWAIT` beside the
//! submitting thread, which has nothing else to do until the batch is done, and puts what
//! the cache could not answer back in the queue as ordinary jobs for the whole pool. Its
//! completions come within microseconds, which [`Submitted::completions_soon`] tells the
//! scheduler.
//!
//! The pool runs no linked chains ([`Traits::links`] is false): the scheduler pushes a
//! chain one operation at a time, each after the one before succeeded, so `Operation::link`
//! is ignored here and every operation runs on its own.
//!
//! The pool does every [`Opcode`], the path operations included
//! ([`caio_core::paths`]); [`Offload`] lends it, as a small side pool, to a backend that
//! cannot do some of them itself.

#![cfg(unix)]

mod offload;
mod pool;
#[cfg(test)]
mod tests;
mod worker;

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use caio_core::cached::{read_if_cached_unless_direct, DirectIoMemo, READS_IF_CACHED};
use caio_core::local::LocalCompletions;
use caio_core::{
  Backend, Completion, Full, Notifier, Opcode, Operation, Place, Share, Submitted, Traits,
};

use pool::{cancelled, lock, Shared};

pub use offload::{Offload, SIDE_POOL_SIZE};

/// Pool size when the caller does not choose one.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// A pool of worker threads and the queues between them and the submitting thread.
pub struct ThreadBackend {
  shared: Arc<Shared>,
  workers: Vec<JoinHandle<()>>,
  /// Pushed since the last submit.
  staged: Vec<Operation>,
  /// Completed on the submitting thread by `submit`, not yet reaped, and the quiet of a
  /// `reap_follows` submit: answers found here then need no signal, since the caller reaps
  /// them right away.
  done_here: LocalCompletions,
  /// Reads `submit` tries on the submitting thread (kept for its allocation).
  trying: Vec<Operation>,
  /// Reads `submit` hands the pool as a share (kept for its allocation).
  sharing: Vec<Operation>,
  capacity: usize,
  /// Pushed and not yet reaped.
  outstanding: usize,
}

impl ThreadBackend {
  /// Starts `pool_size` workers (at least one) for at most `capacity` outstanding operations
  /// (at least one).
  pub fn new(capacity: usize, pool_size: usize) -> io::Result<ThreadBackend> {
    ThreadBackend::signalling(Notifier::new()?, capacity, pool_size)
  }

  /// Like [`ThreadBackend::new`], signalling `notifier` (perhaps another backend's, through
  /// [`Notifier::try_clone`]) when completions are ready.
  pub fn signalling(
    notifier: Notifier,
    capacity: usize,
    pool_size: usize,
  ) -> io::Result<ThreadBackend> {
    let capacity = capacity.max(1);
    let pool_size = pool_size.max(1);
    let shared = Arc::new(Shared::new(notifier, capacity, pool_size));
    let mut backend = ThreadBackend {
      shared,
      workers: Vec::with_capacity(pool_size),
      staged: Vec::with_capacity(capacity),
      done_here: LocalCompletions::default(),
      trying: Vec::new(),
      sharing: Vec::new(),
      capacity,
      outstanding: 0,
    };
    for index in 0..pool_size {
      let shared = backend.shared.clone();
      // On failure, dropping `backend` stops and joins the workers already started.
      let worker = std::thread::Builder::new()
        .name(format!("caio-thread-{index}"))
        .stack_size(64 * 1024)
        .spawn(move || worker::run_worker(&shared, index))?;
      backend.workers.push(worker);
    }
    Ok(backend)
  }

  /// Number of worker threads.
  pub fn pool_size(&self) -> usize {
    self.workers.len()
  }

  /// Moves the staged reads that may be answered on this thread into `trying`, and those
  /// the scheduler marked for the other thread into `sharing`. Everything left staged
  /// (writes, syncs, empty reads, and every read where `RWF_NOWAIT` is not available) goes
  /// to the pool as [`Share::Alone`], since in the pool's queue a share means a read to try
  /// cached only.
  fn sort_staged(&mut self, trying: &mut Vec<Operation>, sharing: &mut Vec<Operation>) {
    self.staged.retain_mut(|op| {
      if READS_IF_CACHED && op.opcode == Opcode::Read && op.len > 0 {
        match op.share {
          Share::Elsewhere => sharing.push(*op),
          Share::Here | Share::Alone => trying.push(*op),
        }
        return false;
      }
      op.share = Share::Alone;
      true
    });
  }

  /// Reads what the page cache holds of `trying` on this thread into `done_here`, leaving
  /// in `trying` (as [`Share::Alone`]) the reads that must wait for a device.
  fn read_cached_here(&mut self, trying: &mut Vec<Operation>) {
    let mut direct = DirectIoMemo::default();
    let done_here = &mut self.done_here;
    trying.retain_mut(|op| {
      // SAFETY: the buffer rule (caio_core): the pusher keeps `op.buf` valid for `op.len`
      // bytes until this operation's completion is reaped, which is after this call.
      match unsafe { read_if_cached_unless_direct(op, &mut direct) } {
        Some(result) => {
          done_here.push(Completion {
            token: op.token,
            result,
          });
          false
        }
        // Not cached, or opened with O_DIRECT: the pool does the waiting read.
        None => {
          op.share = Share::Alone;
          true
        }
      }
    });
  }
}

impl Backend for ThreadBackend {
  /// No links (see the crate docs); no cheap submit, since a submit takes the queue's lock
  /// and wakes a worker through a futex.
  fn traits(&self) -> Traits {
    Traits {
      capacity: self.capacity,
      links: false,
      cheap_submit: false,
    }
  }

  /// Stages `op` for the next submit. `op.link` is ignored (the crate docs say why). The
  /// pool keeps no slot table, so the [`Place`] is always 0: a cancel finds an operation by
  /// its token.
  unsafe fn push(&mut self, op: Operation) -> Result<Place, Full> {
    if self.outstanding >= self.capacity {
      return Err(Full);
    }
    self.outstanding += 1;
    self.staged.push(op);
    Ok(0)
  }

  fn submit(&mut self, reap_follows: bool) -> io::Result<Submitted> {
    if reap_follows {
      self.done_here.begin_quiet();
    }
    let mut submitted = Submitted::default();
    if !self.staged.is_empty() {
      let mut trying = std::mem::take(&mut self.trying);
      let mut sharing = std::mem::take(&mut self.sharing);
      self.sort_staged(&mut trying, &mut sharing);
      // The pool first, so that its workers read beside this thread.
      self.shared.hand_to_pool(self.staged.drain(..));
      if !sharing.is_empty() {
        submitted.completions_soon = true;
        self.shared.hand_share_to_pool(sharing.drain(..));
      }
      self.sharing = sharing;
      self.read_cached_here(&mut trying);
      self.shared.hand_to_pool(trying.drain(..));
      self.trying = trying;
    }
    if !reap_follows {
      // Every submit says for itself whether a reap follows: without one, any quiet an
      // earlier submit left open ends here, and what was completed here is announced.
      self.done_here.end_quiet(&self.shared.notifier);
    }
    Ok(submitted)
  }

  fn reap(&mut self, out: &mut Vec<Completion>) {
    self.outstanding -= self.done_here.drain_into(out);
    if self.shared.done_count.load(Ordering::Acquire) == 0 {
      return;
    }
    let mut done = lock(&self.shared.done);
    self.shared.done_count.store(0, Ordering::Release);
    self.outstanding -= done.len();
    out.append(&mut done);
  }

  fn ready(&self) -> bool {
    !self.done_here.is_empty() || self.shared.done_count.load(Ordering::Acquire) > 0
  }

  /// Searches the staged operations, then the pool's queue, then the workers' hands (what
  /// they took and have not started), by token: all of them hold only operations not yet
  /// started, so a token found there can be cancelled, and one found nowhere (started,
  /// finished, or reaped) is left alone. `place` is unused (see `push`).
  fn cancel(&mut self, token: u64, _place: Place) {
    if let Some(index) = self.staged.iter().position(|op| op.token == token) {
      self.staged.remove(index);
      self.shared.complete_all([cancelled(token)]);
      return;
    }
    self.shared.cancel(token);
  }

  fn signal_completions(&mut self) {
    self.done_here.end_quiet(&self.shared.notifier);
  }

  fn notifier(&self) -> &Notifier {
    &self.shared.notifier
  }
}

impl Drop for ThreadBackend {
  fn drop(&mut self) {
    self.shared.shutdown.store(true, Ordering::Release);
    // Jobs no worker has started are dropped unrun: their buffers were never touched.
    lock(&self.shared.jobs).clear();
    self.shared.job_ready.notify_all();
    // Joining is what makes dropping sound: after it, no worker touches any buffer.
    for worker in self.workers.drain(..) {
      let _ = worker.join();
    }
  }
}
