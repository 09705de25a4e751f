//! The seam between a context and the JavaScript event loop that delivers its completions.
//!
//! Two paths sit behind it, chosen by the facade when it opens a context:
//! - [`libuv`]: on Node.js, Node's own loop watches the notifier (a `uv_poll_t`), and the
//!   callback runs between two loop phases with no thread in between;
//! - [`thread`]: for runtimes without libuv (Bun, Deno), a completion thread waits on the
//!   notifier and wakes the JS thread through a Node-API threadsafe function.
//!
//! Either way `delivery::on_ready` runs on the JS thread, and nothing else in the addon
//! knows which path woke it.

pub mod libuv;
pub mod thread;

use caio_core::Notifier;

use crate::context::Shared;
use crate::fence::{CleanupHook, Env};

/// How a context's completions reach the JS thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
  /// Node's libuv loop polls the notifier.
  Libuv,
  /// A completion thread and a threadsafe function.
  ThreadsafeFunction,
}

impl Path {
  /// The facade's name for it (`backends()` shows it).
  pub fn parse(name: &str) -> Option<Path> {
    match name {
      "libuv" => Some(Path::Libuv),
      "threadsafe-function" => Some(Path::ThreadsafeFunction),
      _ => None,
    }
  }

  /// Whether this path can work in this process, and if not, why.
  pub fn probe(self) -> Result<(), String> {
    match self {
      Path::Libuv => libuv::probe(),
      Path::ThreadsafeFunction => Ok(()),
    }
  }
}

/// Wakes one context when its notifier is readable.
pub enum CompletionWatcher {
  Libuv(libuv::PollWatcher),
  Thread(thread::ThreadWatcher),
}

impl CompletionWatcher {
  /// Starts watching `notifier` along `path`; `delivery::on_ready(shared)` runs on the JS
  /// thread whenever it is readable. The watcher starts unreferenced: an idle context must
  /// not keep the process alive. `shared` must outlive the watcher: the context inside it
  /// holds the watcher, and closes it before the `Shared` is freed (`Context::tear_down`,
  /// which `teardown::finalize` runs first).
  pub fn start(
    path: Path,
    env: Env,
    notifier: &Notifier,
    shared: &Shared,
  ) -> Result<CompletionWatcher, String> {
    match path {
      Path::Libuv => libuv::PollWatcher::start(env, notifier.fd(), shared).map(Self::Libuv),
      Path::ThreadsafeFunction => {
        thread::ThreadWatcher::start(env, notifier, shared).map(Self::Thread)
      }
    }
  }

  /// Makes the watcher keep the event loop alive (while operations are in flight) or not.
  pub fn set_referenced(&mut self, referenced: bool) {
    match self {
      Self::Libuv(watcher) => watcher.set_referenced(referenced),
      Self::Thread(watcher) => watcher.set_referenced(referenced),
    }
  }

  /// The end of a flush: where a wake-up takes a thread hop, asks for it now if
  /// `completions_waiting` says so (the libuv loop polls the notifier by itself, so it is
  /// not asked there).
  pub fn after_flush(&self, completions_waiting: impl FnOnce() -> bool) {
    if let Self::Thread(watcher) = self {
      if completions_waiting() {
        watcher.wake_soon();
      }
    }
  }

  /// A clock that changes only when the loop turns: two equal readings mean no loop phase
  /// ran in between. The threadsafe path has none to read and says 0: there the inline
  /// budget is renewed by each wake-up alone (`Scheduler::on_ready`).
  pub fn loop_time(&self) -> u64 {
    match self {
      Self::Libuv(watcher) => watcher.loop_time(),
      Self::Thread(_) => 0,
    }
  }

  /// Stops watching; the context is never woken again. `after_close`, if given, is removed
  /// once the runtime has let go of what watched (an environment being torn down must wait
  /// for that before its loop closes).
  pub fn close(self, after_close: Option<CleanupHook>) {
    match self {
      Self::Libuv(watcher) => watcher.close(after_close),
      Self::Thread(watcher) => {
        watcher.close();
        if let Some(hook) = after_close {
          hook.remove();
        }
      }
    }
  }
}
