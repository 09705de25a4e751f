//! The completion path on Node.js: the notifier's descriptor is watched by Node's own
//! libuv loop through a `uv_poll_t`; when it becomes readable the callback runs on the JS
//! thread, between two loop phases, where Promises may be resolved directly.
//!
//! libuv's functions are looked up in the process when first needed, never linked: a
//! runtime without libuv (Deno) could not load an addon that names them, and one with
//! stubs that abort (Bun) must never have them called — the facade asks for this path
//! only under Node.

use std::ffi::{c_int, c_void, CStr};
use std::os::fd::RawFd;
use std::sync::OnceLock;

use napi::sys;

use crate::context::Shared;
use crate::fence::{CleanupHook, Env};

/// Storage for a `uv_poll_t`. Node 20's libuv 1.46 needs 160 bytes, 8-aligned, with the
/// user `data` pointer at offset 0 (measured against the `uv.h` Node ships); reserving more
/// keeps us safe against a libuv that grows the struct.
#[repr(C, align(16))]
struct UvPoll {
  data: *mut c_void,
  rest: [u8; 504],
}

type UvPollCb = unsafe extern "C" fn(handle: *mut UvPoll, status: c_int, events: c_int);
type UvCloseCb = unsafe extern "C" fn(handle: *mut UvPoll);

const UV_READABLE: c_int = 1;

/// The libuv functions this path calls, found in the running process.
struct Uv {
  poll_init: unsafe extern "C" fn(*mut sys::uv_loop_s, *mut UvPoll, c_int) -> c_int,
  poll_start: unsafe extern "C" fn(*mut UvPoll, c_int, UvPollCb) -> c_int,
  poll_stop: unsafe extern "C" fn(*mut UvPoll) -> c_int,
  close: unsafe extern "C" fn(*mut UvPoll, UvCloseCb),
  ref_: unsafe extern "C" fn(*mut UvPoll),
  unref: unsafe extern "C" fn(*mut UvPoll),
  now: unsafe extern "C" fn(*const sys::uv_loop_s) -> u64,
}

/// The function `name` in the process (the executable or anything it loaded), as `F`.
///
/// # Safety
/// `F` must be the `extern "C" fn` type of the C function of that name.
unsafe fn function<F: Copy>(name: &CStr) -> Result<F, String> {
  const { assert!(std::mem::size_of::<F>() == std::mem::size_of::<*mut c_void>()) };
  // SAFETY: `name` is NUL-terminated; RTLD_DEFAULT searches the global scope and changes
  // nothing.
  let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
  if address.is_null() {
    return Err(format!(
      "this runtime has no libuv ({} not found)",
      name.to_string_lossy()
    ));
  }
  // SAFETY: a non-null address of the function named, of type `F` (the caller's contract);
  // function pointers and data pointers have one size and representation on the platforms
  // with dlsym (the assertion above).
  Ok(unsafe { std::mem::transmute_copy::<*mut c_void, F>(&address) })
}

impl Uv {
  fn find() -> Result<Uv, String> {
    // SAFETY: each field's type is the C signature of the libuv function of that name
    // (uv.h, stable across libuv 1.x).
    unsafe {
      Ok(Uv {
        poll_init: function(c"uv_poll_init")?,
        poll_start: function(c"uv_poll_start")?,
        poll_stop: function(c"uv_poll_stop")?,
        close: function(c"uv_close")?,
        ref_: function(c"uv_ref")?,
        unref: function(c"uv_unref")?,
        now: function(c"uv_now")?,
      })
    }
  }
}

/// libuv, or why this process has none.
fn uv() -> Result<&'static Uv, String> {
  static UV: OnceLock<Result<Uv, String>> = OnceLock::new();
  UV.get_or_init(Uv::find).as_ref().map_err(Clone::clone)
}

/// Whether this path can work here, and if not, why.
pub fn probe() -> Result<(), String> {
  uv().map(drop)
}

struct Watch {
  handle: UvPoll,
  /// The context to wake: alive until the watcher is closed (see `start`).
  target: *const Shared,
  /// Removed once libuv has let go of the handle.
  after_close: Option<CleanupHook>,
}

/// Watches one descriptor on the loop of one `napi_env`.
pub struct PollWatcher {
  uv: &'static Uv,
  watch: *mut Watch,
  event_loop: *mut sys::uv_loop_s,
  referenced: bool,
}

impl PollWatcher {
  /// Starts watching `fd` on the loop of `env`; `delivery::on_ready(shared)` runs on the JS
  /// thread whenever `fd` is readable. The watcher starts unreferenced: an idle context
  /// must not keep the process alive. `shared` must be closed over by the watcher's owner:
  /// the context inside it holds the watcher, and closes it before the `Shared` is freed
  /// (`Context::tear_down`, which `teardown::finalize` runs first).
  pub fn start(env: Env, fd: RawFd, shared: &Shared) -> Result<PollWatcher, String> {
    let uv = uv()?;
    let Some(event_loop) = env.uv_loop() else {
      return Err("this runtime gives addons no libuv event loop".into());
    };
    let watch = Box::into_raw(Box::new(Watch {
      handle: UvPoll {
        data: std::ptr::null_mut(),
        rest: [0; 504],
      },
      target: shared,
      after_close: None,
    }));
    // SAFETY: `watch` is a fresh allocation that lives until the close callback frees it;
    // libuv may write the whole (oversized) handle; `data` is set after init, which clears it.
    unsafe {
      let handle = &raw mut (*watch).handle;
      let rc = (uv.poll_init)(event_loop, handle, fd);
      if rc != 0 {
        drop(Box::from_raw(watch));
        return Err(format!("uv_poll_init failed ({rc})"));
      }
      (*handle).data = watch.cast();
      let rc = (uv.poll_start)(handle, UV_READABLE, on_poll);
      if rc != 0 {
        (uv.close)(handle, free_watch);
        return Err(format!("uv_poll_start failed ({rc})"));
      }
      (uv.unref)(handle);
    }
    Ok(PollWatcher {
      uv,
      watch,
      event_loop,
      referenced: false,
    })
  }

  /// Makes the watcher keep the event loop alive (while operations are in flight) or not.
  pub fn set_referenced(&mut self, referenced: bool) {
    if self.referenced == referenced {
      return;
    }
    self.referenced = referenced;
    // SAFETY: the handle is initialised and not closed while `self` exists.
    unsafe {
      let handle = &raw mut (*self.watch).handle;
      if referenced {
        (self.uv.ref_)(handle)
      } else {
        (self.uv.unref)(handle)
      }
    }
  }

  /// The loop's cached clock: it changes only when the loop turns, so two equal readings
  /// mean no loop phase ran in between.
  pub fn loop_time(&self) -> u64 {
    // SAFETY: the loop outlives every handle on it, and so this watcher.
    unsafe { (self.uv.now)(self.event_loop) }
  }

  /// Stops watching and frees the handle once libuv is done with it; the context is never
  /// woken again. `after_close`, if given, is removed once libuv has released the handle
  /// (an environment being torn down must wait for that before its loop closes).
  pub fn close(self, after_close: Option<CleanupHook>) {
    // SAFETY: the handle is initialised and this is its only close; the close callback
    // frees the allocation after libuv stops using it.
    unsafe {
      (*self.watch).after_close = after_close;
      let handle = &raw mut (*self.watch).handle;
      (self.uv.poll_stop)(handle);
      (self.uv.close)(handle, free_watch);
    }
  }
}

unsafe extern "C" fn on_poll(handle: *mut UvPoll, _status: c_int, _events: c_int) {
  // SAFETY: `data` points at the Watch that owns this handle (set in `start`), alive until
  // the close callback; the poll is stopped before close, so no call comes after it, and
  // its target outlives the watcher (see `start`).
  let shared = unsafe { &*(*(*handle).data.cast::<Watch>()).target };
  crate::delivery::on_ready(shared);
}

unsafe extern "C" fn free_watch(handle: *mut UvPoll) {
  // SAFETY: libuv is done with the handle; `data` is the Box allocated in `start`.
  let watch = unsafe { Box::from_raw((*handle).data as *mut Watch) };
  if let Some(hook) = watch.after_close {
    hook.remove();
  }
}
