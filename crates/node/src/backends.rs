//! The registry of native backends: how to probe each and how to open one.
//!
//! Adding a backend is one crate plus one arm in each match below.

#[cfg(unix)]
use caio_core::Backend;

/// What the facade asked for when opening a context.
pub struct Options {
  /// Operations in the backend at once.
  pub capacity: usize,
  /// Worker threads for the `thread` backend (0: its default).
  pub pool_size: usize,
  /// Kernel-side submission polling for the `uring` backend.
  #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
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
#[cfg(unix)]
pub struct Opened {
  pub backend: Box<dyn Backend>,
  pub details: Details,
}

/// Whether `name` can work in this process, and if not, why — in words for the user.
pub fn probe(name: &str) -> Result<(), String> {
  match name {
    #[cfg(unix)]
    "thread" => caio_core::Notifier::new()
      .map(drop)
      .map_err(|error| format!("cannot create a completion notifier: {error}")),
    #[cfg(not(unix))]
    "thread" => Err(
      "not available on Windows yet: the thread backend wakes Node's event loop through a \
       Unix completion notifier (an eventfd or a pipe), and caio has no Windows one"
        .into(),
    ),
    #[cfg(target_os = "linux")]
    "uring" => caio_uring::probe(),
    #[cfg(target_os = "linux")]
    "linux" => caio_linux_aio::probe(1),
    #[cfg(not(target_os = "linux"))]
    "uring" | "linux" => Err("needs Linux".into()),
    other => Err(format!("no native backend named {other:?}")),
  }
}

/// Opens backend `name`.
#[cfg(unix)]
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
    #[cfg(target_os = "linux")]
    "uring" => {
      let uring_options = caio_uring::UringOptions {
        sqpoll: options.sqpoll,
      };
      let backend = caio_uring::UringBackend::new(options.capacity, uring_options)
        .map_err(|error| format!("cannot set up an io_uring: {error}"))?;
      Ok(Opened {
        details: Details {
          pool_size: 0,
          sqpoll: backend.sqpoll_active(),
        },
        // Access, copyfile, and path operations an SQPOLL thread may not do, on a side pool.
        backend: Box::new(caio_thread::Offload::new(
          backend,
          caio_uring::UringBackend::performs,
        )),
      })
    }
    #[cfg(target_os = "linux")]
    "linux" => {
      let backend = caio_linux_aio::AioBackend::new(options.capacity)
        .map_err(|error| caio_linux_aio::setup_error_message(&error))?;
      Ok(Opened {
        details: Details::default(),
        // Kernel AIO has no path operations: they run on a side pool.
        backend: Box::new(caio_thread::Offload::new(
          backend,
          caio_linux_aio::AioBackend::performs,
        )),
      })
    }
    other => Err(
      probe(other)
        .err()
        .unwrap_or_else(|| format!("cannot open backend {other:?}")),
    ),
  }
}
