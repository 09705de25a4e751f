//! The delivery protocol: how results cross from the scheduler to the facade.
//!
//! The facade owns a `Float64Array`, the wire. A delivery borrows the context, moves up
//! to a wire's worth of (slot, result) pairs onto it, ends the borrow, and calls the
//! facade's `deliver(count)`, which settles their Promises and lets go of their buffers.
//! Only then does it borrow the context again to tell the scheduler the pairs were read,
//! which frees their slots: a slot's next tenant can never receive its last one's result.
//!
//! Settling a Promise runs no user code, except a `then` getter someone put on
//! `Uint8Array.prototype` (resolving with a Buffer looks it up), which may start, cancel
//! or close operations of this same context while `deliver` runs. Each of those is an
//! ordinary callback that borrows the context afresh; one that wants to deliver finds the
//! wire busy and leaves its results to the delivery under way, which loops until the
//! scheduler has none left.

use crate::callbacks::guarded;
use crate::context::Shared;
use crate::fence::Env;

/// Why a callback could not borrow its context: only a bug in this crate makes it so,
/// since no borrow is ever held while JavaScript runs.
#[derive(Debug)]
pub struct Busy;

/// Hands every waiting result to the facade, then holds or releases what a busy context
/// holds. Every callback that may have settled something ends here.
pub fn deliver(env: Env, shared: &Shared) -> Result<(), Busy> {
  loop {
    let (count, hooks) = {
      let mut ctx = shared.context.try_borrow_mut().map_err(|_| Busy)?;
      (ctx.take_deliveries(), ctx.hooks)
    };
    if count == 0 {
      break;
    }
    // The borrow has ended: `deliver` may call into this context again.
    let deliver = env.reference_value(hooks.deliver);
    // A null `deliver` means the facade is gone, and nobody waits for these Promises.
    if !deliver.is_null() {
      let count = env.number(count as f64).unwrap_or_else(|_| env.undefined());
      env.call_or_clear(deliver, &[count]);
    }
    let mut ctx = shared.context.try_borrow_mut().map_err(|_| Busy)?;
    ctx.scheduler.finish_delivery();
  }
  let mut ctx = shared.context.try_borrow_mut().map_err(|_| Busy)?;
  ctx.hold_while_busy(env);
  Ok(())
}

/// The loop watcher's callback: completions may be ready.
pub fn on_ready(shared: &Shared) {
  let env = Env(shared.env);
  let reaped = guarded(|| {
    let mut ctx = shared
      .context
      .try_borrow_mut()
      .map_err(|_| REENTERED.to_string())?;
    ctx.scheduler.on_ready();
    Ok(ctx.hooks.async_context)
  });
  let outcome = reaped.and_then(|async_context| {
    let mut delivered = Ok(());
    // Closing the callback scope runs the microtasks the delivery queued, which may start,
    // flush or close operations of this context, or drop the last reference to it: nothing
    // touches `shared` after this call.
    env.in_callback_scope(async_context, || {
      delivered = guarded(|| deliver(env, shared).map_err(|_| REENTERED.to_string()));
    });
    delivered
  });
  if let Err(message) = outcome {
    // No JavaScript called this callback, so nobody can catch a throw: report it as an
    // uncaught exception, which `process.on('uncaughtException')` sees.
    env.fatal_exception(&message);
  }
}

/// What a callback says when it finds its context borrowed.
pub const REENTERED: &str = "caio: a context was re-entered while borrowed (a bug in caio)";
