//! The two ends of a context: its environment going away (a worker ends, the process
//! exits) while the context lives, and its external being collected. No JavaScript runs
//! in either.

use std::ffi::c_void;

use napi::sys;

use crate::context::Shared;
use crate::fence::{remove_cleanup_hook, Env};

/// The environment is being torn down while the context is still alive: cancel what is in
/// the backend, wait for it, release the loop handle, and let Node go on once libuv has
/// closed it.
///
/// # Safety
/// Called by Node with the `Shared` registered in `Context::connect`, which is live: the
/// finalizer removes the hook before freeing it.
pub unsafe extern "C" fn on_env_teardown(
  handle: sys::napi_async_cleanup_hook_handle,
  target: *mut c_void,
) {
  // SAFETY: the caller's promise.
  let shared = unsafe { &*target.cast::<Shared>() };
  let torn_down = crate::callbacks::guarded(|| {
    let mut ctx = shared
      .context
      .try_borrow_mut()
      .map_err(|_| crate::delivery::REENTERED.to_string())?;
    ctx.cleanup_hook = std::ptr::null_mut();
    ctx.tear_down(Some((after_teardown, handle.cast())));
    Ok(())
  });
  if torn_down.is_err() {
    // Node waits for this hook's removal; better a leak than an environment that hangs.
    // SAFETY: `handle` is this hook's own registration, not removed yet.
    unsafe { remove_cleanup_hook(handle) };
  }
}

unsafe fn after_teardown(handle: *mut c_void) {
  // SAFETY: `handle` is the registration `on_env_teardown` was given, removed once, here.
  unsafe { remove_cleanup_hook(handle.cast()) };
}

/// The external's finalizer: frees the context and everything JavaScript-side it holds.
///
/// # Safety
/// Called once by Node with the `Shared` that `open` boxed.
pub unsafe extern "C" fn finalize(raw_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
  // SAFETY: the caller's promise; nothing else can reach the box any more.
  let shared = unsafe { Box::from_raw(data.cast::<Shared>()) };
  let env = Env(raw_env);
  let _ = crate::callbacks::guarded(|| {
    let mut ctx = shared.context.into_inner();
    if !ctx.cleanup_hook.is_null() {
      // SAFETY: registered in `connect`, not run (it nulls the handle) nor removed yet.
      unsafe { remove_cleanup_hook(ctx.cleanup_hook) };
    }
    ctx.tear_down(None);
    let hooks = ctx.hooks;
    for reference in [hooks.this, hooks.deliver, hooks.wire] {
      env.delete_reference(reference);
    }
    // SAFETY: made in `connect`, destroyed once, here.
    unsafe { env.destroy_async_context(hooks.async_context) };
    Ok(())
  });
}
