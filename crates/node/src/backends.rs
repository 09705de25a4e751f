//! The registry of native backends: how to probe each and how to open one.
//!
//! Adding a backend is one crate plus one arm in each match below.

use caio_core::Backend;

/// What the facade asked for when opening a context.
pub struct Options {
  /// Operations in the backend at once.
  pub capacity: usize,
  /// Worker threads for the `thread` backend (0: its default).
  pub pool_size: usize,
  /// Kernel-side submission polling for the `uring` backend.
  pub sqpoll: bool,
}

/// What a context reports about the backend it got.
#[derive(Clone, Copy, Default, Debug)]
pub struct Details {
  /// Worker threads (thread backend), else 0.
  pub pool_size: usize,
  /// Whether kernel-side submission polling is on (uring backend).
  pub sqpoll: bool,
}

/// A backend ready to use, and what it turned out to be.
pub struct Opened {
  pub backend: Box<dyn Backend>,
  pub details: Details,
}

/// Whether `name` can work in this process, and if not, why — in words for the user.
pub fn probe(name: &str) -> Result<(), String> {
  match name {
    "thread" => caio_core::Notifier::new()
      .map(drop)
      .map_err(|error| format!("cannot create a completion notifier: {error}")),
    "uring" => {
      Err("not built into this version of the addon (the uring backend is not written yet)".into())
    }
    "linux" => {
      Err("not built into this version of the addon (the linux backend is not written yet)".into())
    }
    other => Err(format!("no native backend named {other:?}")),
  }
}

/// Opens backend `name`.
pub fn open(name: &str, options: &Options) -> Result<Opened, String> {
  match name {
    "thread" => {
      let pool_size = match options.pool_size {
        0 => caio_thread::DEFAULT_POOL_SIZE,
        n => n,
      };
      let backend = caio_thread::ThreadBackend::new(options.capacity, pool_size)
        .map_err(|error| format!("cannot start the thread backend: {error}"))?;
      Ok(Opened {
        details: Details {
          pool_size: backend.pool_size(),
          sqpoll: false,
        },
        backend: Box::new(backend),
      })
    }
    other => Err(
      probe(other)
        .err()
        .unwrap_or_else(|| format!("cannot open backend {other:?}")),
    ),
  }
}
