//! A backend with a small pool at its side for the operations it cannot do itself: kernel
//! AIO has no opcode for a path, io_uring none for `access` or a whole-file copy, and an
//! SQPOLL ring may not open files once the process changed its credentials. The scheduler
//! sees one backend: one capacity, one notifier, one reap.
//!
//! The pool is a [`ThreadBackend`] signalling a duplicate of the backend's own notifier,
//! so the event loop watches one descriptor and a wake-up from either side reaps both. It
//! is started at the first operation that needs it: most contexts never do.

use std::io;

use caio_core::local::LocalCompletions;
use caio_core::{
  Backend, Completion, FixedUse, Full, Notifier, Operation, Place, Submitted, Traits,
};

use crate::ThreadBackend;

/// The bit of a [`Place`] that says the pool holds the operation. Backends' places are
/// slot indices below 2^24.
const IN_POOL: Place = 1 << 31;

/// Worker threads of the side pool: path operations on a warm dentry cache take a few
/// microseconds, and the pool only has to keep the ones that wait for a disk from
/// holding up the rest.
pub const SIDE_POOL_SIZE: usize = 4;

/// `inner`, with what `performs` says it cannot do run on a pool of its own.
pub struct Offload<B: Backend> {
  inner: B,
  performs: fn(&B, &Operation) -> bool,
  pool: Option<ThreadBackend>,
  /// Operations that could not be started because the pool could not be, with the error.
  refused: LocalCompletions,
  /// Pushed to the pool since the last submit.
  pool_staged: bool,
}

impl<B: Backend> Offload<B> {
  /// Wraps `inner`; `performs(inner, op)` says whether `inner` does `op` itself.
  pub fn new(inner: B, performs: fn(&B, &Operation) -> bool) -> Offload<B> {
    Offload {
      inner,
      performs,
      pool: None,
      refused: LocalCompletions::default(),
      pool_staged: false,
    }
  }

  /// The backend inside.
  pub fn inner(&self) -> &B {
    &self.inner
  }

  /// Whether the side pool was ever needed (for tests).
  pub fn pool_started(&self) -> bool {
    self.pool.is_some()
  }

  fn pool(&mut self) -> io::Result<&mut ThreadBackend> {
    if self.pool.is_none() {
      let notifier = self.inner.notifier().try_clone()?;
      let capacity = self.inner.traits().capacity;
      self.pool = Some(ThreadBackend::signalling(
        notifier,
        capacity,
        SIDE_POOL_SIZE,
      )?);
    }
    Ok(self.pool.as_mut().expect("the pool was just started"))
  }
}

impl<B: Backend> Backend for Offload<B> {
  fn traits(&self) -> Traits {
    self.inner.traits()
  }

  /// The pool links nothing: a chain with an operation for it is fed by the scheduler.
  fn links_itself(&self, op: &Operation) -> bool {
    (self.performs)(&self.inner, op) && self.inner.links_itself(op)
  }

  unsafe fn push(&mut self, op: Operation) -> Result<Place, Full> {
    if (self.performs)(&self.inner, &op) {
      // SAFETY: the caller upholds the buffer rule; it is passed on unchanged.
      return unsafe { self.inner.push(op) };
    }
    match self.pool() {
      Ok(pool) => {
        // SAFETY: as above. The pool has the inner backend's capacity, and the scheduler
        // never has more than that outstanding in both together.
        let place = unsafe { pool.push(op) }?;
        self.pool_staged = true;
        Ok(place | IN_POOL)
      }
      Err(error) => {
        let errno = error.raw_os_error().unwrap_or(libc::EAGAIN);
        self.refused.push(Completion {
          token: op.token,
          result: -i64::from(errno),
        });
        Ok(IN_POOL)
      }
    }
  }

  fn submit(&mut self, reap_follows: bool) -> io::Result<Submitted> {
    if reap_follows {
      self.refused.begin_quiet();
    }
    let mut submitted = self.inner.submit(reap_follows)?;
    if std::mem::take(&mut self.pool_staged) {
      if let Some(pool) = self.pool.as_mut() {
        let pooled = pool.submit(reap_follows)?;
        submitted.completions_soon |= pooled.completions_soon;
      }
    }
    self.refused.announce(self.inner.notifier());
    Ok(submitted)
  }

  fn reap(&mut self, out: &mut Vec<Completion>) {
    self.refused.drain_into(out);
    self.inner.reap(out);
    if let Some(pool) = self.pool.as_mut() {
      pool.reap(out);
    }
  }

  fn ready(&self) -> bool {
    !self.refused.is_empty()
      || self.inner.ready()
      || self.pool.as_ref().is_some_and(|pool| pool.ready())
  }

  fn cancel(&mut self, token: u64, place: Place) {
    if place & IN_POOL == 0 {
      self.inner.cancel(token, place);
    } else if let Some(pool) = self.pool.as_mut() {
      pool.cancel(token, place & !IN_POOL);
    }
  }

  fn signal_completions(&mut self) {
    self.inner.signal_completions();
    if let Some(pool) = self.pool.as_mut() {
      pool.signal_completions();
    }
    self.refused.end_quiet(self.inner.notifier());
  }

  fn notifier(&self) -> &Notifier {
    self.inner.notifier()
  }

  fn fixed_use(&self) -> FixedUse {
    self.inner.fixed_use()
  }
}
