//! The completion path for runtimes without libuv (Bun, Deno): a thread per context waits
//! for the notifier and wakes the JS thread through one Node-API threadsafe function call
//! per wake-up, never one per operation.
//!
//! The thread and the JS thread take turns. The thread waits until the notifier is
//! readable, fires one call, and waits again only once the JS thread has run that call's
//! delivery, which clears the notifier: a level-triggered descriptor would otherwise fire
//! again and again before the first call ran. The thread touches nothing of the context:
//! it owns a duplicate of the notifier's descriptor (so that the backend may close its own
//! at any time) and the threadsafe function, and the JS thread finds the context through a
//! [`Gate`] that a close shuts.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use caio_core::Notifier;

use crate::context::Shared;
use crate::fence::{Called, Env, ThreadsafeFunction};

/// Where the two threads are in their turns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
  /// The completion thread may wait for the notifier and fire.
  Armed,
  /// A call is queued or running; the completion thread waits for it.
  Fired,
  /// The completion thread must return.
  Stopping,
}

/// What [`Turns::fire`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Turn {
  /// The caller fires the call.
  Fire,
  /// A call is already queued: it will deliver.
  Taken,
  /// The completion thread must return.
  Stop,
}

/// What the completion thread and the JS thread share.
struct Turns {
  phase: Mutex<Phase>,
  changed: Condvar,
  /// A duplicate of the context's notifier: what the completion thread waits on, and what
  /// a close signals to wake it.
  notifier: Notifier,
}

impl Turns {
  fn lock(&self) -> MutexGuard<'_, Phase> {
    // The lock guards a plain value that no panic can leave half-written.
    self.phase.lock().unwrap_or_else(PoisonError::into_inner)
  }

  /// Completion thread: waits for its turn; false once it must stop.
  fn wait_armed(&self) -> bool {
    let mut phase = self.lock();
    while *phase == Phase::Fired {
      phase = self
        .changed
        .wait(phase)
        .unwrap_or_else(PoisonError::into_inner);
    }
    *phase == Phase::Armed
  }

  /// Either thread: takes the turn to fire a call, if it is free.
  fn fire(&self) -> Turn {
    let mut phase = self.lock();
    match *phase {
      Phase::Armed => {
        *phase = Phase::Fired;
        Turn::Fire
      }
      Phase::Fired => Turn::Taken,
      Phase::Stopping => Turn::Stop,
    }
  }

  /// JS thread: a call has delivered; the completion thread may wait again.
  fn arm(&self) {
    let mut phase = self.lock();
    if *phase == Phase::Fired {
      *phase = Phase::Armed;
      self.changed.notify_one();
    }
  }

  /// Either thread: the completion thread is to return.
  fn stop(&self) {
    *self.lock() = Phase::Stopping;
    self.changed.notify_one();
    // Ends a wait for the notifier; the backend that shared it is gone or going.
    self.notifier.signal();
  }
}

/// The completion thread, while it runs.
struct Running {
  turns: Arc<Turns>,
  thread: JoinHandle<()>,
}

/// What a threadsafe function's calls find the context through. Only the JS thread
/// touches it.
pub struct Gate {
  /// The context to wake; null once the watcher is closed.
  target: Cell<*const Shared>,
  /// The completion thread, until joined.
  running: RefCell<Option<Running>>,
  /// Set by the function's finalizer: after it the function must not be used.
  finalized: Cell<bool>,
}

impl Gate {
  /// Stops the completion thread and waits for it to return, which closes its duplicate of
  /// the notifier. It never blocks for long: the thread only ever waits for its turn or
  /// for the notifier, and `stop` ends both waits.
  fn join_thread(&self) {
    let running = self.running.borrow_mut().take();
    if let Some(Running { turns, thread }) = running {
      turns.stop();
      let _ = thread.join();
    }
  }
}

/// A context's completion thread and its threadsafe function.
pub struct ThreadWatcher {
  env: Env,
  function: ThreadsafeFunction,
  gate: Rc<Gate>,
  referenced: bool,
}

impl ThreadWatcher {
  /// Starts a thread that waits on a duplicate of `notifier`; `delivery::on_ready(shared)`
  /// runs on the JS thread once per wake-up. Starts unreferenced, like the libuv watcher;
  /// `shared` outlives the watcher on the same terms (see `PollWatcher::start`).
  pub fn start(env: Env, notifier: &Notifier, shared: &Shared) -> Result<ThreadWatcher, String> {
    let notifier = notifier
      .try_clone()
      .map_err(|error| format!("cannot duplicate the completion notifier: {error}"))?;
    let turns = Arc::new(Turns {
      phase: Mutex::new(Phase::Armed),
      changed: Condvar::new(),
      notifier,
    });
    let gate = Rc::new(Gate {
      target: Cell::new(shared),
      running: RefCell::new(None),
      finalized: Cell::new(false),
    });
    let function = env
      .threadsafe_function("caio", Rc::clone(&gate))
      .map_err(|_| "napi_create_threadsafe_function failed while creating the context")?;
    env.hold_threadsafe_function(function, false);
    let thread = std::thread::Builder::new()
      .name("caio-completions".into())
      .spawn({
        let turns = Arc::clone(&turns);
        move || wait_and_wake(&turns, function)
      });
    match thread {
      Ok(thread) => *gate.running.borrow_mut() = Some(Running { turns, thread }),
      Err(error) => {
        gate.target.set(std::ptr::null());
        env.release_threadsafe_function(function);
        return Err(format!("cannot start a completion thread: {error}"));
      }
    }
    Ok(ThreadWatcher {
      env,
      function,
      gate,
      referenced: false,
    })
  }

  /// Makes the watcher keep the event loop alive (while operations are in flight) or not.
  pub fn set_referenced(&mut self, referenced: bool) {
    if self.referenced == referenced || self.gate.finalized.get() {
      return;
    }
    self.referenced = referenced;
    self.env.hold_threadsafe_function(self.function, referenced);
  }

  /// Asks for a wake-up on the runtime's next loop turn, from the JS thread, unless one is
  /// already queued. For completions already waiting (cached reads finish inside their
  /// submit): the runtime runs the call as soon as the loop turns — as libuv polls a
  /// readable descriptor — instead of after the completion thread has been scheduled, seen
  /// the notifier and called across threads.
  pub fn wake_soon(&self) {
    if self.gate.finalized.get() {
      return;
    }
    let running = self.gate.running.borrow();
    if let Some(running) = running.as_ref() {
      if running.turns.fire() == Turn::Fire {
        // Closing means the environment is going away: nothing is to be woken any more.
        let _ = self.function.call();
      }
    }
  }

  /// Stops the thread and lets go of the function; the context is never woken again.
  pub fn close(self) {
    self.gate.target.set(std::ptr::null());
    self.gate.join_thread();
    if !self.gate.finalized.get() {
      self.env.release_threadsafe_function(self.function);
    }
  }
}

/// The completion thread: one call per time the notifier becomes readable.
fn wait_and_wake(turns: &Turns, function: ThreadsafeFunction) {
  while turns.wait_armed() {
    // A day at most: an interrupted or timed-out wait just waits again.
    if !caio_core::sys::wait_readable(turns.notifier.fd(), Duration::from_secs(86_400)) {
      continue;
    }
    match turns.fire() {
      Turn::Fire if function.call() == Called::Closing => return,
      Turn::Fire | Turn::Taken => {}
      Turn::Stop => return,
    }
  }
}

/// The threadsafe function's call, on the JS thread: deliver, then hand the turn back.
pub fn on_wake(_env: Env, gate: &Gate) {
  let target = gate.target.get();
  if target.is_null() {
    return;
  }
  // SAFETY: the target is non-null only until the watcher is closed, which the context
  // does before its `Shared` is freed (`Context::tear_down`).
  crate::delivery::on_ready(unsafe { &*target });
  // The delivery may have closed the context (and joined the thread); the gate, kept by the
  // caller, is still here.
  if let Some(running) = gate.running.borrow().as_ref() {
    running.turns.arm();
  }
}

/// The threadsafe function's finalizer. A runtime that finalizes it on its own (its
/// environment going away first) must not find the thread still able to call it.
pub fn on_finalized(gate: &Gate) {
  gate.finalized.set(true);
  gate.join_thread();
}

#[cfg(test)]
mod tests {
  use super::*;

  fn turns() -> Arc<Turns> {
    Arc::new(Turns {
      phase: Mutex::new(Phase::Armed),
      changed: Condvar::new(),
      notifier: Notifier::new().unwrap(),
    })
  }

  #[test]
  fn one_call_per_turn_and_the_turn_comes_back_only_once_delivered() {
    let turns = turns();
    assert_eq!(turns.fire(), Turn::Fire);
    // The other thread (or the JS thread asking early) finds the call already queued.
    assert_eq!(turns.fire(), Turn::Taken);
    turns.arm();
    assert_eq!(turns.fire(), Turn::Fire);
    turns.stop();
    assert_eq!(turns.fire(), Turn::Stop);
    // Arming after a stop changes nothing: the thread is to return.
    turns.arm();
    assert!(!turns.wait_armed());
  }

  #[test]
  fn a_waiting_completion_thread_wakes_when_the_turn_comes_back_or_it_is_stopped() {
    let turns = turns();
    assert_eq!(turns.fire(), Turn::Fire);
    let waiter = {
      let turns = Arc::clone(&turns);
      std::thread::spawn(move || turns.wait_armed())
    };
    std::thread::sleep(Duration::from_millis(20));
    turns.arm();
    assert!(
      waiter.join().unwrap(),
      "armed again: the thread may wait for the notifier"
    );
    assert_eq!(turns.fire(), Turn::Fire);
    let waiter = {
      let turns = Arc::clone(&turns);
      std::thread::spawn(move || turns.wait_armed())
    };
    std::thread::sleep(Duration::from_millis(20));
    turns.stop();
    assert!(!waiter.join().unwrap(), "stopped: the thread returns");
    // The stop also signalled the notifier, which ends a wait for it.
    assert!(caio_core::sys::wait_readable(
      turns.notifier.fd(),
      Duration::from_millis(100)
    ));
  }
}
