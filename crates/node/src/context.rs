//! One native context: a scheduler, the loop watcher that wakes it, and the JavaScript
//! values it holds.
//!
//! The JavaScript external owns a boxed [`Shared`]: the context inside a `RefCell`, so
//! that every callback borrows it for as long as it works on it and no longer. No method
//! here calls JavaScript; what must reach JavaScript (results on the wire) is handed over
//! by `delivery` after the borrow has ended, so a call back into the context from there
//! is an ordinary call that borrows it afresh.

use std::cell::RefCell;
use std::ptr;

use caio_core::Backend;
use caio_scheduler::Scheduler;
use napi::sys;

use crate::backends::Details;
use crate::event_loop::{CompletionWatcher, Path};
use crate::fence::{AsyncContext, CleanupHook, Env, Wire};

/// What the external owns: the context, and the environment it lives in.
pub struct Shared {
  pub env: sys::napi_env,
  pub context: RefCell<Context>,
}

/// JavaScript values a context keeps for its whole life.
#[derive(Clone, Copy)]
pub struct Hooks {
  /// The external wrapping this context: strong while the scheduler is busy, so that a
  /// context its user dropped is not collected under the kernel's feet.
  pub this: sys::napi_ref,
  /// The facade's `deliver(count)`, which reads the first `count` pairs of the wire.
  /// Strong while busy, like `this` (it holds the facade's engine, which holds the
  /// external: a strong reference for life would be a cycle through a root).
  pub deliver: sys::napi_ref,
  /// The async context the loop's callbacks into JavaScript run in.
  pub async_context: AsyncContext,
}

impl Hooks {
  const NONE: Hooks = Hooks {
    this: ptr::null_mut(),
    deliver: ptr::null_mut(),
    async_context: AsyncContext::NONE,
  };
}

/// A native context.
pub struct Context {
  pub scheduler: Scheduler,
  watcher: Option<CompletionWatcher>,
  pub details: Details,
  pub hooks: Hooks,
  /// The facade's wire, once connected.
  pub wire: Option<Wire>,
  /// Whether `this`, `deliver` and the loop handle are held (the scheduler is busy).
  held: bool,
  /// The environment's cleanup hook, until it ran or was removed.
  pub cleanup_hook: Option<CleanupHook>,
  /// Where the clock of the scheduler's inline time budget starts.
  epoch: std::time::Instant,
}

/// Why a context could not be made.
pub type OpenError = String;

impl Context {
  /// Makes the context of a fresh external: `open` calls it with the values the facade
  /// passed and the backend it opened, and [`Context::connect`] once it is boxed.
  pub fn new(backend: Box<dyn Backend>, details: Details) -> Context {
    Context {
      scheduler: Scheduler::new(backend),
      watcher: None,
      details,
      hooks: Hooks::NONE,
      wire: None,
      held: false,
      cleanup_hook: None,
      epoch: std::time::Instant::now(),
    }
  }

  /// Connects the boxed context to its external, the facade's `deliver` and wire, the
  /// event loop, and the environment's teardown.
  pub fn connect(
    shared: &Shared,
    env: Env,
    external: sys::napi_value,
    deliver: sys::napi_value,
    wire: sys::napi_value,
    path: Path,
  ) -> Result<(), OpenError> {
    let failed = |what: &str| format!("{what} failed while creating the context");
    let mut ctx = shared.context.borrow_mut();
    ctx.wire = Some(env.wire(wire)?);
    ctx.hooks.this = env
      .reference(external, 0)
      .map_err(|_| failed("a reference"))?;
    ctx.hooks.deliver = env
      .reference(deliver, 0)
      .map_err(|_| failed("a reference"))?;
    ctx.hooks.async_context = env
      .async_context("caio")
      .map_err(|_| failed("napi_async_init"))?;
    let watcher = match ctx.scheduler.backend() {
      Some(backend) => CompletionWatcher::start(path, env, backend.notifier(), shared)?,
      None => return Err("the context has no backend".into()),
    };
    ctx.watcher = Some(watcher);
    ctx.cleanup_hook = Some(
      env
        .add_teardown_hook(shared, path == Path::Libuv)
        .map_err(|_| failed("a cleanup hook"))?,
    );
    Ok(())
  }

  /// The loop's clock, which changes only when the loop turns (0 without a watcher).
  pub fn loop_time(&self) -> u64 {
    self
      .watcher
      .as_ref()
      .map_or(0, CompletionWatcher::loop_time)
  }

  /// Flushes what this tick started; completions it left waiting (past the inline budget,
  /// or finished during the submit) get their wake-up asked for at once.
  pub fn flush(&mut self) {
    let loop_time = self.loop_time();
    let now = self.epoch.elapsed().as_nanos() as u64;
    self.scheduler.flush_at(loop_time, now);
    if let (Some(watcher), Some(backend)) = (self.watcher.as_ref(), self.scheduler.backend()) {
      watcher.after_flush(|| backend.ready());
    }
  }

  /// Moves waiting results onto the wire; returns how many pairs.
  pub fn take_deliveries(&mut self) -> usize {
    match self.wire.as_mut() {
      Some(wire) => self.scheduler.take_deliveries(wire.pairs()),
      None => 0,
    }
  }

  /// Holds the external, the facade's `deliver` and the loop handle exactly while the
  /// scheduler is busy, and stops watching the loop once the scheduler let go of its
  /// backend. Every callback ends here.
  pub fn hold_while_busy(&mut self, env: Env) {
    if self.scheduler.backend().is_none() {
      if let Some(watcher) = self.watcher.take() {
        watcher.close(None);
      }
    }
    let busy = self.scheduler.busy();
    if busy == self.held {
      return;
    }
    self.held = busy;
    if let Some(watcher) = self.watcher.as_mut() {
      watcher.set_referenced(busy);
    }
    env.hold(self.hooks.this, busy);
    env.hold(self.hooks.deliver, busy);
  }

  /// Lets go of the backend (blocking until nothing it ran can touch a buffer) and of the
  /// loop watcher; `after_close` is removed once the runtime has released what watched, or
  /// now if there is none.
  pub fn tear_down(&mut self, after_close: Option<CleanupHook>) {
    self.scheduler.tear_down();
    match (self.watcher.take(), after_close) {
      (Some(watcher), after) => watcher.close(after),
      (None, Some(hook)) => hook.remove(),
      (None, None) => {}
    }
  }
}
