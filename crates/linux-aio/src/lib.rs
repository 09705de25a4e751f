//! The `linux` backend: kernel AIO (`io_setup`/`io_submit`/`io_getevents`/`io_cancel`/
//! `io_destroy`) through raw system calls, without libaio.
//!
//! Operations become `iocb`s in a slab the backend allocates once, at its capacity, and
//! never moves: the kernel keeps pointers to them while they are in flight. Every `iocb`
//! carries `IOCB_FLAG_RESFD`, so the kernel signals the
//! [`Notifier`](caio_core::Notifier)'s eventfd by itself whenever a completion lands; one
//! `io_submit` per [`Backend::submit`](caio_core::Backend::submit) hands the kernel a batch.
//!
//! Completions are read from the ring the kernel maps at the context's address, without a
//! system call; when the ring does not look like one (wrong magic, incompatible features),
//! reaping falls back to a non-blocking `io_getevents`.
//!
//! Kernel AIO has no linked operations, and the backend keeps none: it declares
//! `links: false`, so the scheduler pushes a chain one operation at a time, and it ignores
//! [`Operation::link`](caio_core::Operation::link). Operations the kernel refuses at
//! `io_submit` (a bad file descriptor, a file without kernel AIO) and operations cancelled
//! before submission complete locally, and the backend signals the notifier for them
//! itself.
//!
//! Buffered files work, but `io_submit` then does the copy before it returns; the backend
//! is truly asynchronous with `O_DIRECT`.

#![cfg(target_os = "linux")]

mod abi;
mod backend;
mod probe;
mod ring;
mod syscalls;

pub use backend::AioBackend;
pub use probe::{aio_headroom, probe, setup_error_message};
