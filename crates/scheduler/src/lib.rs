//! caio's scheduler: what every native backend needs between JavaScript and the kernel,
//! written once and free of both.
//!
//! A [`Scheduler`] owns one backend and gives every operation a slot from `start` until
//! its result has been delivered: a generational slot table whose [`token`]s never name a
//! slot's next tenant; the admission queue, in which operations beyond the backend's
//! capacity (`maxRequests`) wait in order; batches with one result per operation and one
//! delivery for all; linked chains, pushed whole to a backend that links, and fed one
//! operation at a time to one that does not; the per-tick [`policy`] (the inline budget,
//! early submits, the bounded spin for completions another thread is about to post); and
//! the outbox of results, which the caller moves onto its wire when it is ready to read
//! them.
//!
//! It makes no system call and calls nobody back. Every method returns before anything
//! else runs, so the caller can end its borrow of the scheduler before it hands results
//! to code that may call in again (a JavaScript `then` getter that starts, cancels or
//! closes operations while Promises settle): re-entry is then the ordinary case, and the
//! wire protocol alone keeps a slot from being reused before its result has been read.

mod batch;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod policy;
mod scheduler;
pub mod spin;
pub mod token;
pub mod wire;

pub use scheduler::{Refused, Scheduler};

#[cfg(test)]
mod tests;
