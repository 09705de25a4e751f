//! The `thread` backend: a fixed pool of OS threads doing `pread`/`pwrite`/`fsync`/
//! `fdatasync`, for any Unix.
//!
//! The submitting thread stages operations and hands a whole batch over with one lock and
//! one wake-up. A worker takes one job — a single operation, or a whole chain of linked
//! ones, which it runs in order — does the system call (retrying `EINTR`), appends the
//! completion to a shared queue and signals the [`Notifier`] only when that queue was empty,
//! so a burst of completions costs the event loop one wake-up.
//!
//! On 64-bit Linux a read is first tried on the submitting thread with
//! `preadv2(RWF_NOWAIT)`, which copies from the page cache and refuses (`EAGAIN`) rather
//! than wait for a device: a cached read costs one system call instead of two thread
//! hand-offs, which is what io_uring does inside the kernel too. Anything that read cannot
//! answer at once goes to the pool as before.

#![cfg(unix)]

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use caio_core::cached::{read_if_cached, DirectIoMemo, READS_IF_CACHED};
use caio_core::spin::InlineSpin;
use caio_core::{Backend, Completion, Full, Notifier, Opcode, Operation};

/// Pool size when the caller does not choose one.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// A pool of worker threads and the queues between them and the submitting thread.
pub struct ThreadBackend {
  shared: Arc<Shared>,
  workers: Vec<JoinHandle<()>>,
  staged: VecDeque<Operation>,
  /// Completed on the submitting thread by `submit`, not yet reaped.
  done_here: Vec<Completion>,
  /// Reads `submit` tries on the submitting thread (kept for its allocation).
  trying: Vec<Operation>,
  /// Batch reads `submit` hands the pool as its share (see `POOL_SHARE`; kept for its
  /// allocation), and the count that picks them.
  sharing: Vec<Operation>,
  share_turn: u32,
  /// Whether shares handed to the pool may still be outstanding, for `await_inline`.
  shared_out: bool,
  /// `await_inline`'s wait for a share's completions.
  inline_spin: InlineSpin,
  /// Whether the caller reaps right after submitting (see `Backend::set_quiet`).
  quiet: bool,
  capacity: usize,
  /// Pushed and not yet reaped.
  outstanding: usize,
}

struct Shared {
  jobs: Mutex<VecDeque<Operation>>,
  job_ready: Condvar,
  done: Mutex<Vec<Completion>>,
  /// Completions waiting in `done`, read without the lock to make an empty reap cheap.
  done_count: AtomicUsize,
  notifier: Notifier,
  shutdown: AtomicBool,
  /// Worker threads, for sharing out jobs.
  workers: usize,
  /// Tokens asked to be cancelled after a worker took them (see `cancel`).
  cancels: Mutex<Vec<u64>>,
  /// `cancels.len()`, read without the lock so that the common case costs one load.
  cancel_count: AtomicUsize,
  /// `jobs.len()`, for a spinning worker to watch without the lock.
  job_count: AtomicUsize,
  /// Whether a worker is spinning for the next share (at most one does), so that handing
  /// one over needs no wake-up.
  spinning: AtomicBool,
}

/// One unlinked read of a batch in this many is handed to the pool as a share even though
/// the page cache may well hold it, so that a worker reads beside the submitting thread
/// instead of leaving the second core idle. In the pool's queue such a read keeps
/// `Operation::in_batch` (nothing else there does): a worker takes a run of them at once,
/// reads each with `RWF_NOWAIT`, and puts back what the cache could not answer as ordinary
/// jobs for the whole pool. Submits of 64 cached 4 KiB reads, 1 in flight, beside
/// `fs.readSync` in alternating runs: 0.9-1.0x of it with every read on the submitting
/// thread, 1.2-1.55x with every second one shared (`preadv2` costs the kernel 6-12 % more
/// than `readSync`'s `pread`, so one thread alone stays below it).
const POOL_SHARE: u32 = 2;
/// The most share reads a worker takes at once.
const MAX_SHARE_PER_TAKE: usize = 64;
/// How long a worker that finished a share watches for the next before it sleeps: a
/// batch's submitter comes back within tens of microseconds, and a futex wake-up costs
/// about as much. With 50 µs the spinner had mostly gone to sleep by then.
const SHARE_SPIN: Duration = Duration::from_micros(200);

/// The most jobs a worker takes at once, so one worker never hoards a long queue.
const MAX_JOBS_PER_TAKE: usize = 16;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
  // A worker never panics while holding a lock (it does no fallible work under one), so a
  // poisoned lock still guards consistent data.
  mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ThreadBackend {
  /// Starts `pool_size` workers (at least one) for at most `capacity` outstanding operations.
  pub fn new(capacity: usize, pool_size: usize) -> io::Result<ThreadBackend> {
    let shared = Arc::new(Shared {
      jobs: Mutex::new(VecDeque::with_capacity(capacity)),
      job_ready: Condvar::new(),
      done: Mutex::new(Vec::with_capacity(capacity)),
      done_count: AtomicUsize::new(0),
      notifier: Notifier::new()?,
      shutdown: AtomicBool::new(false),
      workers: pool_size.max(1),
      cancels: Mutex::new(Vec::new()),
      cancel_count: AtomicUsize::new(0),
      job_count: AtomicUsize::new(0),
      spinning: AtomicBool::new(false),
    });
    let mut backend = ThreadBackend {
      shared,
      workers: Vec::new(),
      staged: VecDeque::with_capacity(capacity),
      done_here: Vec::new(),
      trying: Vec::new(),
      sharing: Vec::new(),
      share_turn: 0,
      shared_out: false,
      inline_spin: InlineSpin::default(),
      quiet: false,
      capacity: capacity.max(1),
      outstanding: 0,
    };
    for index in 0..pool_size.max(1) {
      let shared = backend.shared.clone();
      let worker = std::thread::Builder::new()
        .name(format!("caio-thread-{index}"))
        .stack_size(64 * 1024)
        .spawn(move || run_worker(&shared))?;
      backend.workers.push(worker);
    }
    Ok(backend)
  }

  /// Number of worker threads.
  pub fn pool_size(&self) -> usize {
    self.workers.len()
  }
}

impl Backend for ThreadBackend {
  fn capacity(&self) -> usize {
    self.capacity
  }

  unsafe fn push(&mut self, op: Operation) -> Result<(), Full> {
    if self.outstanding >= self.capacity {
      return Err(Full);
    }
    self.outstanding += 1;
    self.staged.push_back(op);
    Ok(())
  }

  fn submit(&mut self) -> io::Result<()> {
    if self.staged.is_empty() {
      return Ok(());
    }
    let mut trying = std::mem::take(&mut self.trying);
    let mut sharing = std::mem::take(&mut self.sharing);
    self.take_reads_to_try_here(&mut trying, &mut sharing);
    // The pool first, so that its workers read beside this thread.
    hand_to_pool(&self.shared, self.staged.drain(..));
    if !sharing.is_empty() {
      self.shared_out = true;
      hand_share_to_pool(&self.shared, sharing.drain(..));
    }
    self.sharing = sharing;
    let mut missed = 0;
    let mut direct = DirectIoMemo::default();
    for index in 0..trying.len() {
      let op = trying[index];
      // O_DIRECT reads wait for the device even with RWF_NOWAIT: they go to the pool.
      let answered = if direct.is_direct(op.fd) {
        None
      } else {
        // SAFETY: the buffer rule (caio_core): the pusher keeps `op.buf` valid for `op.len`
        // bytes until this operation's completion is reaped, which is after this call.
        unsafe { read_if_cached(&op) }
      };
      match answered {
        Some(result) => self.done_here.push(Completion {
          token: op.token,
          result,
        }),
        None => {
          trying[missed] = Operation {
            in_batch: false,
            ..op
          };
          missed += 1;
        }
      }
    }
    trying.truncate(missed);
    hand_to_pool(&self.shared, trying.drain(..));
    self.trying = trying;
    if !self.done_here.is_empty() && !self.quiet {
      self.shared.notifier.signal();
    }
    Ok(())
  }

  fn reap(&mut self, out: &mut Vec<Completion>) {
    if !self.done_here.is_empty() {
      self.outstanding -= self.done_here.len();
      out.append(&mut self.done_here);
    }
    if self.shared.done_count.load(Ordering::Acquire) == 0 {
      self.shared_out &= self.outstanding > 0;
      return;
    }
    let mut done = lock(&self.shared.done);
    self.shared.done_count.store(0, Ordering::Release);
    self.outstanding -= done.len();
    self.shared_out &= self.outstanding > 0;
    if self.shared.cancel_count.load(Ordering::Acquire) > 0 {
      for completion in done.iter() {
        self.shared.take_cancel(completion.token);
      }
    }
    out.append(&mut done);
  }

  fn cancel(&mut self, token: u64) {
    // Staged operations have not reached a worker: they can always be withdrawn.
    if let Some(index) = self.staged.iter().position(|op| op.token == token) {
      let cancelled = withdraw_chain(&mut self.staged, index);
      self.shared.complete_all(cancelled);
      return;
    }
    let cancelled = {
      let mut jobs = lock(&self.shared.jobs);
      let cancelled = match jobs.iter().position(|op| op.token == token) {
        Some(index) => withdraw_chain(&mut jobs, index),
        None => Vec::new(),
      };
      self.shared.job_count.store(jobs.len(), Ordering::Release);
      cancelled
    };
    if cancelled.is_empty() {
      // Taken by a worker: it may not have started yet (a worker takes a share of the
      // queue at once), so leave word; a worker checks before it starts each operation.
      // One already running or done settles with its real result, and its word is
      // dropped when it is reaped.
      lock(&self.shared.cancels).push(token);
      self.shared.cancel_count.fetch_add(1, Ordering::AcqRel);
      return;
    }
    self.shared.complete_all(cancelled);
  }

  fn notifier(&self) -> &Notifier {
    &self.shared.notifier
  }

  fn set_quiet(&mut self, quiet: bool) {
    self.quiet = quiet;
    if !quiet && !self.done_here.is_empty() {
      // Completed here while the caller meant to reap, and it did not reap them all.
      self.shared.notifier.signal();
    }
  }

  /// Spins for the pool's completions only while a share handed to it is outstanding: those
  /// are cached reads, done within microseconds of the submit.
  fn await_inline(&mut self) -> bool {
    if !self.done_here.is_empty() || self.shared.done_count.load(Ordering::Acquire) > 0 {
      return true;
    }
    if !self.shared_out || self.outstanding == 0 {
      return false;
    }
    let done_count = &self.shared.done_count;
    self
      .inline_spin
      .wait(self.outstanding, || done_count.load(Ordering::Acquire) > 0)
  }

  fn wait(&mut self, timeout: Duration) {
    if !self.done_here.is_empty() {
      return;
    }
    let mut pfd = libc::pollfd {
      fd: self.shared.notifier.fd(),
      events: libc::POLLIN,
      revents: 0,
    };
    let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd on a descriptor the notifier keeps open.
    unsafe { libc::poll(&mut pfd, 1, millis) };
  }
}

impl ThreadBackend {
  /// Moves into `trying` the staged reads to try on this thread: those not part of a
  /// linked chain (a chain runs in order on one worker). Trying all of them measured best
  /// for batches (a submit of 64: 732 k -> 837 k reads/s) and at 1 and 8 in flight (36 k ->
  /// 600 k, 443 k -> 650 k); at 64 single reads in flight, trying 8 and handing the rest to
  /// the pool did 13 % more reads per second but with a third more CPU per read, and made
  /// batches 20 % slower. Of the reads of a batch, every `POOL_SHARE`th goes to `sharing`
  /// instead, for a worker to read beside this thread. Everything left staged loses its
  /// `in_batch` mark, which in the pool's queue means a share.
  fn take_reads_to_try_here(&mut self, trying: &mut Vec<Operation>, sharing: &mut Vec<Operation>) {
    let mut chained = false;
    let mut kept = 0;
    for index in 0..self.staged.len() {
      let op = self.staged[index];
      let alone = !chained && !op.link;
      chained = op.link;
      if READS_IF_CACHED && alone && op.opcode == Opcode::Read && op.len > 0 {
        if op.in_batch {
          self.share_turn = self.share_turn.wrapping_add(1);
          if self.share_turn % POOL_SHARE == 0 {
            sharing.push(op);
            continue;
          }
        }
        trying.push(op);
        continue;
      }
      self.staged[index].in_batch = false;
      self.staged.swap(kept, index);
      kept += 1;
    }
    self.staged.truncate(kept);
  }
}

/// Queues jobs for the workers with one lock and one wake-up.
fn hand_to_pool(shared: &Shared, ops: impl ExactSizeIterator<Item = Operation>) {
  let count = ops.len();
  if count == 0 {
    return;
  }
  shared.queue(ops);
  if count == 1 {
    shared.job_ready.notify_one();
  } else {
    shared.job_ready.notify_all();
  }
}

/// Queues a share of a batch's reads (see `POOL_SHARE`) for one worker: the one spinning
/// for it, or one woken up.
fn hand_share_to_pool(shared: &Shared, ops: impl ExactSizeIterator<Item = Operation>) {
  shared.queue(ops);
  // A spinner that misses this store still looks at the queue under its lock before it
  // sleeps, so the share is never stranded.
  if !shared.spinning.load(Ordering::Acquire) {
    shared.job_ready.notify_one();
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

impl Shared {
  /// Appends jobs to the queue (waking nobody) and keeps `job_count` in step.
  fn queue(&self, ops: impl Iterator<Item = Operation>) {
    let mut jobs = lock(&self.jobs);
    jobs.extend(ops);
    self.job_count.store(jobs.len(), Ordering::Release);
  }

  /// Removes `token` from the cancel requests; whether it was there.
  fn take_cancel(&self, token: u64) -> bool {
    let mut cancels = lock(&self.cancels);
    match cancels.iter().position(|&t| t == token) {
      Some(index) => {
        cancels.swap_remove(index);
        self.cancel_count.fetch_sub(1, Ordering::AcqRel);
        true
      }
      None => false,
    }
  }

  fn complete_all(&self, completions: impl IntoIterator<Item = Completion>) {
    let mut done = lock(&self.done);
    let was_empty = done.is_empty();
    done.extend(completions);
    self.done_count.store(done.len(), Ordering::Release);
    drop(done);
    if was_empty {
      self.notifier.signal();
    }
  }
}

/// Removes the operation at `index` and the rest of its linked chain from `ops`, unlinks
/// the operation before it, and returns `-ECANCELED` completions for all of them.
fn withdraw_chain(ops: &mut VecDeque<Operation>, index: usize) -> Vec<Completion> {
  let mut end = index;
  while end < ops.len() && ops[end].link {
    end += 1;
  }
  let end = (end + 1).min(ops.len());
  if index > 0 {
    ops[index - 1].link = false;
  }
  ops
    .drain(index..end)
    .map(|op| Completion {
      token: op.token,
      result: -(libc::ECANCELED as i64),
    })
    .collect()
}

fn run_worker(shared: &Shared) {
  let mut chain: Vec<Operation> = Vec::new();
  let mut results: Vec<Completion> = Vec::new();
  let mut uncached: Vec<Operation> = Vec::new();
  let mut direct = DirectIoMemo::default();
  // Whether the last take was a share: then watch for the next one before sleeping.
  let mut took_share = false;
  loop {
    {
      let mut jobs = lock(&shared.jobs);
      loop {
        if shared.shutdown.load(Ordering::Acquire) {
          return;
        }
        if jobs.front().is_some_and(|op| op.in_batch) {
          // A share: all of its run at once (cached reads, microseconds each).
          while chain.len() < MAX_SHARE_PER_TAKE && jobs.front().is_some_and(|op| op.in_batch) {
            chain.extend(jobs.pop_front());
          }
          shared.job_count.store(jobs.len(), Ordering::Release);
          break;
        }
        if !jobs.is_empty() {
          // Take a fair share of what waits, not one job per lock: with a batch of 64
          // behind the lock, one job per acquisition made the workers queue on the lock
          // and on the futex behind it.
          let share = (jobs.len() / shared.workers).clamp(1, MAX_JOBS_PER_TAKE);
          while chain.len() < share || chain.last().is_some_and(|op| op.link) {
            // A chain is pushed contiguously, so its members follow at the front.
            match jobs.pop_front() {
              Some(next) => chain.push(next),
              None => break,
            }
          }
          shared.job_count.store(jobs.len(), Ordering::Release);
          break;
        }
        if std::mem::take(&mut took_share)
          && shared
            .spinning
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
          drop(jobs);
          let start = Instant::now();
          while shared.job_count.load(Ordering::Acquire) == 0
            && start.elapsed() < SHARE_SPIN
            && !shared.shutdown.load(Ordering::Acquire)
          {
            std::hint::spin_loop();
          }
          shared.spinning.store(false, Ordering::Release);
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
    }
    let mut failed = false;
    took_share = chain.first().is_some_and(|op| op.in_batch);
    direct.forget();
    for op in chain.drain(..) {
      let cancelled =
        shared.cancel_count.load(Ordering::Acquire) > 0 && shared.take_cancel(op.token);
      let result = if failed || cancelled {
        -(libc::ECANCELED as i64)
      } else if op.in_batch {
        // A share: only what the page cache answers at once; the rest goes back to the
        // queue for the whole pool, so that device reads run in parallel.
        let answered = if direct.is_direct(op.fd) {
          None
        } else {
          // SAFETY: as for `perform` below.
          unsafe { read_if_cached(&op) }
        };
        match answered {
          Some(result) => result,
          None => {
            uncached.push(Operation {
              in_batch: false,
              ..op
            });
            continue;
          }
        }
      } else {
        // SAFETY: the pusher upholds the buffer rule (caio_core docs) until this completion
        // is reaped, which happens only after `complete_all` below.
        unsafe { perform(&op) }
      };
      failed = op.link && result < 0;
      results.push(Completion {
        token: op.token,
        result,
      });
    }
    if !results.is_empty() {
      shared.complete_all(results.drain(..));
    }
    hand_to_pool(shared, uncached.drain(..));
  }
}

/// Runs one operation with the blocking system call, retrying `EINTR`.
///
/// # Safety
/// `op.buf` is valid for `op.len` bytes and nobody else touches them meanwhile.
unsafe fn perform(op: &Operation) -> i64 {
  loop {
    let offset = op.offset as libc::off_t;
    // SAFETY: the caller guarantees `op.buf` spans `op.len` valid, exclusive bytes.
    let rc: i64 = unsafe {
      match op.opcode {
        Opcode::Read => libc::pread(op.fd, op.buf.cast(), op.len as usize, offset) as i64,
        Opcode::Write => libc::pwrite(op.fd, op.buf.cast(), op.len as usize, offset) as i64,
        Opcode::Fsync => libc::fsync(op.fd) as i64,
        Opcode::Fdatasync => fdatasync(op.fd) as i64,
      }
    };
    if rc >= 0 {
      return rc;
    }
    let errno = io::Error::last_os_error()
      .raw_os_error()
      .unwrap_or(libc::EIO);
    if errno != libc::EINTR {
      return -(errno as i64);
    }
  }
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
unsafe fn fdatasync(fd: libc::c_int) -> libc::c_int {
  // SAFETY: takes no pointers.
  unsafe { libc::fdatasync(fd) }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
unsafe fn fdatasync(fd: libc::c_int) -> libc::c_int {
  // macOS has no fdatasync; fsync is the stronger promise.
  // SAFETY: takes no pointers.
  unsafe { libc::fsync(fd) }
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::fs::File;
  use std::io::{Read, Seek, Write};
  use std::os::fd::AsRawFd;

  fn run_until_done(backend: &mut ThreadBackend, count: usize) -> Vec<Completion> {
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while out.len() < count {
      assert!(
        std::time::Instant::now() < deadline,
        "timed out waiting for completions"
      );
      backend.wait(Duration::from_millis(50));
      backend.notifier().clear();
      backend.reap(&mut out);
    }
    out
  }

  fn op(opcode: Opcode, fd: i32, offset: u64, buf: &mut [u8], token: u64) -> Operation {
    Operation {
      opcode,
      fd,
      offset,
      buf: buf.as_mut_ptr(),
      len: buf.len() as u32,
      token,
      priority: 0,
      link: false,
      in_batch: false,
    }
  }

  fn temp_file(contents: &[u8]) -> File {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(contents).unwrap();
    file
  }

  #[test]
  fn reads_writes_and_syncs() {
    let file = temp_file(b"hello world");
    let fd = file.as_raw_fd();
    let mut backend = ThreadBackend::new(16, 2).unwrap();
    let mut payload = *b"HELLO";
    let mut head = [0u8; 5];
    // SAFETY: the buffers outlive run_until_done, which reaps both completions.
    unsafe {
      backend
        .push(op(Opcode::Write, fd, 0, &mut payload, 1))
        .unwrap();
      backend
        .push(Operation::sync(Opcode::Fdatasync, fd, 2))
        .unwrap();
    }
    backend.submit().unwrap();
    let mut done = run_until_done(&mut backend, 2);
    done.sort_by_key(|c| c.token);
    assert_eq!(
      done,
      [
        Completion {
          token: 1,
          result: 5
        },
        Completion {
          token: 2,
          result: 0
        }
      ]
    );
    // SAFETY: as above.
    unsafe { backend.push(op(Opcode::Read, fd, 0, &mut head, 3)).unwrap() };
    backend.submit().unwrap();
    assert_eq!(
      run_until_done(&mut backend, 1),
      [Completion {
        token: 3,
        result: 5
      }]
    );
    assert_eq!(&head, b"HELLO");
  }

  #[test]
  fn short_read_at_end_of_file_and_empty_past_it() {
    let file = temp_file(b"abc");
    let mut backend = ThreadBackend::new(4, 1).unwrap();
    let (mut a, mut b) = ([0u8; 8], [0u8; 8]);
    // SAFETY: the buffers outlive the reap below.
    unsafe {
      backend
        .push(op(Opcode::Read, file.as_raw_fd(), 1, &mut a, 1))
        .unwrap();
      backend
        .push(op(Opcode::Read, file.as_raw_fd(), 10, &mut b, 2))
        .unwrap();
    }
    backend.submit().unwrap();
    let mut done = run_until_done(&mut backend, 2);
    done.sort_by_key(|c| c.token);
    assert_eq!(done[0].result, 2);
    assert_eq!(&a[..2], b"bc");
    assert_eq!(done[1].result, 0);
  }

  #[test]
  fn errors_come_back_as_negative_errno() {
    let mut backend = ThreadBackend::new(4, 1).unwrap();
    let mut buf = [0u8; 4];
    let dir = File::open(std::env::temp_dir()).unwrap();
    // SAFETY: the buffer outlives the reap below.
    unsafe {
      backend.push(op(Opcode::Read, -1, 0, &mut buf, 1)).unwrap();
      backend
        .push(op(Opcode::Read, dir.as_raw_fd(), 0, &mut buf, 2))
        .unwrap();
    }
    backend.submit().unwrap();
    let mut done = run_until_done(&mut backend, 2);
    done.sort_by_key(|c| c.token);
    assert_eq!(done[0].result, -(libc::EBADF as i64));
    assert_eq!(done[1].result, -(libc::EISDIR as i64));
  }

  #[test]
  fn refuses_pushes_beyond_capacity_until_reaped() {
    let file = temp_file(b"x");
    let mut backend = ThreadBackend::new(2, 1).unwrap();
    // SAFETY: syncs carry no buffer.
    unsafe {
      backend
        .push(Operation::sync(Opcode::Fsync, file.as_raw_fd(), 1))
        .unwrap();
      backend
        .push(Operation::sync(Opcode::Fsync, file.as_raw_fd(), 2))
        .unwrap();
      assert_eq!(
        backend.push(Operation::sync(Opcode::Fsync, file.as_raw_fd(), 3)),
        Err(Full)
      );
    }
    backend.submit().unwrap();
    run_until_done(&mut backend, 2);
    // SAFETY: as above.
    unsafe {
      backend
        .push(Operation::sync(Opcode::Fsync, file.as_raw_fd(), 3))
        .unwrap()
    };
  }

  #[test]
  fn linked_chain_runs_in_order_and_cancels_after_a_failure() {
    let file = temp_file(b"");
    let fd = file.as_raw_fd();
    let mut backend = ThreadBackend::new(8, 4).unwrap();
    let mut parts: Vec<[u8; 1]> = (0..5u8).map(|i| [b'a' + i]).collect();
    // SAFETY: `parts` outlives the reap below.
    unsafe {
      for (i, part) in parts.iter_mut().enumerate() {
        let mut write = op(Opcode::Write, fd, i as u64, part, i as u64);
        write.link = i < 4;
        backend.push(write).unwrap();
      }
    }
    backend.submit().unwrap();
    let done = run_until_done(&mut backend, 5);
    assert!(done.iter().all(|c| c.result == 1));
    let mut back = [0u8; 5];
    // SAFETY: `back` outlives the reap below.
    unsafe { backend.push(op(Opcode::Read, fd, 0, &mut back, 9)).unwrap() };
    backend.submit().unwrap();
    run_until_done(&mut backend, 1);
    assert_eq!(&back, b"abcde");

    let mut byte = [0u8; 1];
    // SAFETY: `byte` outlives the reap below.
    unsafe {
      let mut bad = op(Opcode::Write, -1, 0, &mut byte, 20);
      bad.link = true;
      backend.push(bad).unwrap();
      backend
        .push(Operation::sync(Opcode::Fdatasync, fd, 21))
        .unwrap();
    }
    backend.submit().unwrap();
    let mut done = run_until_done(&mut backend, 2);
    done.sort_by_key(|c| c.token);
    assert_eq!(done[0].result, -(libc::EBADF as i64));
    assert_eq!(done[1].result, -(libc::ECANCELED as i64));
  }

  #[test]
  fn cancel_withdraws_a_job_no_worker_started() {
    let busy = temp_file(b"");
    let target = temp_file(b"keep");
    let mut backend = ThreadBackend::new(4, 1).unwrap();
    let mut big = vec![1u8; 64 << 20];
    let mut small = *b"lost";
    // SAFETY: both buffers outlive the reaps below.
    unsafe {
      // The only worker is busy with the big write while the small one waits its turn
      // (writes always go to the pool; a cached read could be answered on this thread).
      backend
        .push(op(Opcode::Write, busy.as_raw_fd(), 0, &mut big, 1))
        .unwrap();
      backend
        .push(op(Opcode::Write, target.as_raw_fd(), 0, &mut small, 2))
        .unwrap();
    }
    backend.submit().unwrap();
    backend.cancel(2);
    let mut done = run_until_done(&mut backend, 2);
    done.sort_by_key(|c| c.token);
    assert_eq!(
      done[0],
      Completion {
        token: 1,
        result: 64 << 20
      }
    );
    assert_eq!(
      done[1],
      Completion {
        token: 2,
        result: -(libc::ECANCELED as i64)
      }
    );
    let mut kept = String::new();
    let mut reader = &target;
    reader.seek(std::io::SeekFrom::Start(0)).unwrap();
    reader.read_to_string(&mut kept).unwrap();
    assert_eq!(kept, "keep", "a cancelled write never reaches its file");
  }

  #[test]
  fn cancel_before_submit_withdraws_the_rest_of_the_chain() {
    let file = temp_file(b"abc");
    let mut backend = ThreadBackend::new(4, 1).unwrap();
    let mut buf = [0u8; 3];
    // SAFETY: `buf` outlives the reap below.
    unsafe {
      let mut first = Operation::sync(Opcode::Fsync, file.as_raw_fd(), 1);
      first.link = true;
      backend.push(first).unwrap();
      backend
        .push(op(Opcode::Read, file.as_raw_fd(), 0, &mut buf, 2))
        .unwrap();
    }
    backend.cancel(1);
    backend.submit().unwrap();
    let mut done = run_until_done(&mut backend, 2);
    done.sort_by_key(|c| c.token);
    assert!(done.iter().all(|c| c.result == -(libc::ECANCELED as i64)));
    assert_eq!(buf, [0u8; 3]);
  }

  #[test]
  fn many_operations_in_flight_all_complete() {
    let file = temp_file(&vec![7u8; 1 << 16]);
    let mut backend = ThreadBackend::new(256, 8).unwrap();
    let mut buffers = vec![[0u8; 256]; 256];
    // SAFETY: `buffers` outlives the reap below.
    unsafe {
      for (i, buf) in buffers.iter_mut().enumerate() {
        backend
          .push(op(
            Opcode::Read,
            file.as_raw_fd(),
            (i * 256) as u64,
            buf,
            i as u64,
          ))
          .unwrap();
      }
    }
    backend.submit().unwrap();
    let done = run_until_done(&mut backend, 256);
    assert!(done.iter().all(|c| c.result == 256));
    assert!(buffers.iter().all(|b| b.iter().all(|&x| x == 7)));
  }

  /// What one reap gives at once, as (token, result) pairs.
  fn reap_now(backend: &mut ThreadBackend) -> Vec<(u64, i64)> {
    let mut out = Vec::new();
    backend.reap(&mut out);
    out.iter().map(|c| (c.token, c.result)).collect()
  }

  fn notifier_is_readable(backend: &ThreadBackend) -> bool {
    let mut pfd = libc::pollfd {
      fd: backend.notifier().fd(),
      events: libc::POLLIN,
      revents: 0,
    };
    // SAFETY: one valid pollfd on a descriptor the notifier keeps open.
    unsafe { libc::poll(&mut pfd, 1, 0) == 1 }
  }

  #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
  #[test]
  fn cached_reads_are_answered_by_submit_itself_and_signal_unless_quiet() {
    let file = temp_file(b"in the page cache");
    let mut backend = ThreadBackend::new(4, 1).unwrap();
    let mut buf = [0u8; 6];
    for quiet in [false, true] {
      backend.notifier().clear();
      backend.set_quiet(quiet);
      // SAFETY: `buf` outlives the reap below.
      unsafe {
        backend
          .push(op(Opcode::Read, file.as_raw_fd(), 3, &mut buf, 7))
          .unwrap()
      };
      backend.submit().unwrap();
      assert_eq!(notifier_is_readable(&backend), !quiet, "quiet: {quiet}");
      assert_eq!(reap_now(&mut backend), [(7, 6)], "no worker needed");
      assert_eq!(&buf, b"the pa");
    }
    // Turning quiet off with an answer nobody reaped signals, so it is never lost.
    backend.notifier().clear();
    // SAFETY: `buf` outlives the reap below.
    unsafe {
      backend
        .push(op(Opcode::Read, file.as_raw_fd(), 100, &mut buf, 8))
        .unwrap()
    };
    backend.submit().unwrap();
    assert!(!notifier_is_readable(&backend));
    backend.set_quiet(false);
    assert!(notifier_is_readable(&backend));
    assert_eq!(reap_now(&mut backend), [(8, 0)], "past the end: empty");
  }

  #[test]
  fn linked_reads_stay_in_order_on_the_pool() {
    let file = temp_file(b"0123456789");
    let mut backend = ThreadBackend::new(8, 2).unwrap();
    let mut data = *b"ABCD";
    let mut second = [0u8; 4];
    // SAFETY: both buffers outlive the reap below.
    unsafe {
      let mut write = op(Opcode::Write, file.as_raw_fd(), 0, &mut data, 1);
      write.link = true;
      backend.push(write).unwrap();
      // Linked after the write: it must see the write's bytes, so it may not run early.
      backend
        .push(op(Opcode::Read, file.as_raw_fd(), 0, &mut second, 2))
        .unwrap();
    }
    backend.submit().unwrap();
    let done = run_until_done(&mut backend, 2);
    assert!(done.iter().all(|c| c.result == 4), "{done:?}");
    assert_eq!(&second, b"ABCD");
  }

  #[test]
  fn batch_reads_are_shared_with_one_worker_and_what_it_cannot_read_cached_goes_back() {
    let contents: Vec<u8> = (0..8u8).flat_map(|i| [i + 1; 512]).collect();
    let file = temp_file(&contents);
    let mut backend = ThreadBackend::new(16, 2).unwrap();
    let mut buffers = [[0u8; 512]; 8];
    backend.set_quiet(true);
    for (i, buf) in buffers.iter_mut().enumerate() {
      let read = Operation {
        in_batch: true,
        ..op(
          Opcode::Read,
          file.as_raw_fd(),
          i as u64 * 512,
          buf,
          i as u64,
        )
      };
      // SAFETY: `buffers` outlives every reap below.
      unsafe { backend.push(read) }.unwrap();
    }
    backend.submit().unwrap();
    if READS_IF_CACHED {
      // Every other read was answered by submit itself; the rest were the pool's share.
      let here: Vec<u64> = reap_now(&mut backend)
        .into_iter()
        .map(|(token, _)| token)
        .collect();
      assert!(here.starts_with(&[0, 2, 4, 6]), "{here:?}");
      assert!(here[4..].iter().all(|t| t % 2 == 1), "{here:?}");
      let mut out: Vec<Completion> = here
        .iter()
        .map(|&token| Completion { token, result: 512 })
        .collect();
      let deadline = std::time::Instant::now() + Duration::from_secs(10);
      while out.len() < 8 {
        assert!(
          std::time::Instant::now() < deadline,
          "the pool's share never came"
        );
        if backend.await_inline() {
          backend.reap(&mut out);
        } else {
          backend.wait(Duration::from_millis(10));
          backend.reap(&mut out);
        }
      }
      out.sort_by_key(|c| c.token);
      assert!(out.iter().all(|c| c.result == 512), "{out:?}");
    } else {
      let done = run_until_done(&mut backend, 8);
      assert!(done.iter().all(|c| c.result == 512), "{done:?}");
    }
    for (i, buf) in buffers.iter().enumerate() {
      assert!(
        buf.iter().all(|&b| b == i as u8 + 1),
        "block {i} read wrong bytes"
      );
    }
    backend.set_quiet(false);

    // A share the page cache cannot answer (a pipe refuses preadv2 with ESPIPE) goes back
    // to the queue as an ordinary job, which reports the error as pread gives it.
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let mut byte = [0u8; 1];
    for token in 10..12 {
      let read = Operation {
        in_batch: true,
        ..op(Opcode::Read, fds[0], 0, &mut byte, token)
      };
      // SAFETY: `byte` outlives the reap below; neither read moves any byte (ESPIPE).
      unsafe { backend.push(read) }.unwrap();
    }
    backend.submit().unwrap();
    let mut done = run_until_done(&mut backend, 2);
    done.sort_by_key(|c| c.token);
    let espipe = -(libc::ESPIPE as i64);
    assert_eq!(
      done,
      [
        Completion {
          token: 10,
          result: espipe
        },
        Completion {
          token: 11,
          result: espipe
        }
      ]
    );
    // SAFETY: both descriptors are ours and closed once.
    unsafe {
      libc::close(fds[0]);
      libc::close(fds[1]);
    }
  }
}
