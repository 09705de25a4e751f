//! The two ends of a context: its environment going away (a worker ends, the process
//! exits) while the context lives, and its external being collected. No JavaScript runs
//! in either; the fence's raw hooks call these with their arguments made safe.

use crate::callbacks::guarded;
use crate::context::Shared;
use crate::delivery::REENTERED;
use crate::fence::{CleanupHook, Env};

/// The environment is being torn down while the context is still alive: cancel what is in
/// the backend, wait for it, release the loop handle, and let Node go on (remove `hook`)
/// once libuv has closed it.
pub fn on_env_teardown(shared: &Shared, hook: CleanupHook) {
  let mut hook = Some(hook);
  let torn_down = guarded(|| {
    let mut ctx = shared
      .context
      .try_borrow_mut()
      .map_err(|_| REENTERED.to_string())?;
    // This hook is running: the finalizer must not remove it again.
    ctx.cleanup_hook = None;
    ctx.tear_down(hook.take());
    Ok(())
  });
  if let (Err(_), Some(hook)) = (torn_down, hook) {
    // Node waits for this hook's removal; better a leak than an environment that hangs.
    hook.remove();
  }
}

/// The external's finalizer: frees the context and everything JavaScript-side it holds.
pub fn finalize(env: Env, shared: Box<Shared>) {
  let _ = guarded(|| {
    let mut ctx = shared.context.into_inner();
    if let Some(hook) = ctx.cleanup_hook.take() {
      hook.remove();
    }
    ctx.tear_down(None);
    env.delete_reference(ctx.hooks.this);
    env.delete_reference(ctx.hooks.deliver);
    if let Some(wire) = ctx.wire.take() {
      env.release_wire(wire);
    }
    env.destroy_async_context(ctx.hooks.async_context);
    Ok(())
  });
}
