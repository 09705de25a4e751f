//! Node-API's threadsafe functions, as the completion thread uses them: a function with
//! no JavaScript behind it, whose every call runs `event_loop::thread::on_wake` on the JS
//! thread with the gate it was made with.

use std::ffi::c_void;
use std::ptr;
use std::rc::Rc;

use napi::sys;

use super::{check, Env, JsResult};
use crate::event_loop::thread::Gate;

/// A threadsafe function made by [`Env::threadsafe_function`]. `call` may be made from any
/// thread; everything else only on the JS thread, and only until it is released.
#[derive(Clone, Copy)]
pub struct ThreadsafeFunction(sys::napi_threadsafe_function);

// SAFETY: Node-API allows `napi_call_threadsafe_function` from any thread; the other
// methods take an `Env`, which exists only on the JS thread.
unsafe impl Send for ThreadsafeFunction {}

/// What a call from another thread came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Called {
  /// Queued: `on_wake` will run.
  Queued,
  /// The function is closing (its environment is going away): never call it again.
  Closing,
}

impl ThreadsafeFunction {
  /// Queues one call of `on_wake` without blocking (the queue is unbounded).
  pub fn call(self) -> Called {
    // SAFETY: the function is alive: its owner releases it only after the calling thread
    // has been joined, and its finalizer joins that thread first if the runtime finalizes
    // it on its own (`event_loop::thread`).
    let status = unsafe {
      sys::napi_call_threadsafe_function(
        self.0,
        ptr::null_mut(),
        sys::ThreadsafeFunctionCallMode::nonblocking,
      )
    };
    if status == sys::Status::napi_closing {
      Called::Closing
    } else {
      Called::Queued
    }
  }
}

impl Env {
  /// A threadsafe function whose calls run `on_wake(gate)` on this environment's JS
  /// thread. It holds a strong count of `gate` until its finalizer runs
  /// `event_loop::thread::on_finalized`. It starts referenced, as Node-API makes it.
  pub fn threadsafe_function(self, name: &str, gate: Rc<Gate>) -> JsResult<ThreadsafeFunction> {
    let name = self.string(name)?;
    let context = Rc::into_raw(gate).cast_mut().cast::<c_void>();
    let mut function = ptr::null_mut();
    // SAFETY: no JavaScript function (a call_js callback instead), an unbounded queue, one
    // acquisition (the owner's, released by `release`); the finalizer takes back the count
    // of `gate` moved into `context`. Out-pointer is a local.
    let status = unsafe {
      sys::napi_create_threadsafe_function(
        self.0,
        ptr::null_mut(),
        ptr::null_mut(),
        name,
        0,
        1,
        ptr::null_mut(),
        Some(finalize_threadsafe),
        context,
        Some(call_threadsafe),
        &mut function,
      )
    };
    if let Err(failed) = check(status) {
      // SAFETY: nothing was made, so the count moved into `context` is still ours.
      drop(unsafe { Rc::from_raw(context.cast::<Gate>()) });
      return Err(failed);
    }
    Ok(ThreadsafeFunction(function))
  }

  /// Makes `function` keep the event loop alive or not.
  pub fn hold_threadsafe_function(self, function: ThreadsafeFunction, referenced: bool) {
    // SAFETY: on the JS thread, before `release` (the caller's contract).
    unsafe {
      if referenced {
        sys::napi_ref_threadsafe_function(self.0, function.0);
      } else {
        sys::napi_unref_threadsafe_function(self.0, function.0);
      }
    }
  }

  /// Gives up the owner's acquisition; the finalizer runs once the queue is empty. The
  /// function must not be used after this.
  pub fn release_threadsafe_function(self, function: ThreadsafeFunction) {
    // SAFETY: the owner's one acquisition, released once (the caller's contract).
    unsafe {
      sys::napi_release_threadsafe_function(function.0, sys::ThreadsafeFunctionReleaseMode::release)
    };
  }
}

unsafe extern "C" fn call_threadsafe(
  env: sys::napi_env,
  _js_callback: sys::napi_value,
  context: *mut c_void,
  _data: *mut c_void,
) {
  // A null env: the function is being torn down with calls still queued.
  if env.is_null() {
    return;
  }
  let context = context.cast::<Gate>().cast_const();
  // SAFETY: `context` holds a strong count of the gate until the finalizer, which cannot
  // run during this call; a count of our own keeps the gate alive even if the delivery
  // below closes the context and a runtime finalizes the function before returning here.
  let gate = unsafe {
    Rc::increment_strong_count(context);
    Rc::from_raw(context)
  };
  // No panic may unwind into the runtime; `on_ready` reports its own, and this is the rest.
  let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
    crate::event_loop::thread::on_wake(Env(env), &gate)
  }));
}

unsafe extern "C" fn finalize_threadsafe(
  _env: sys::napi_env,
  _data: *mut c_void,
  context: *mut c_void,
) {
  // SAFETY: the count `threadsafe_function` moved into `context`, taken back once: a
  // finalizer runs once, and no call follows it.
  let gate = unsafe { Rc::from_raw(context.cast::<Gate>().cast_const()) };
  let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
    crate::event_loop::thread::on_finalized(&gate)
  }));
}
