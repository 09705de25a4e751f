//! The Node-API fence: the only module that calls `sys::napi_*` (`threadsafe`: the
//! threadsafe functions of the completion thread).
//!
//! Thin, checked wrappers over the raw Node-API calls the addon makes, safe to call: the
//! raw pointers Node hands out (an external's data, a typed array's memory, a cleanup
//! hook's registration) are turned into references and owned values here, with the
//! reasons they hold. The addon's functions are raw `napi_callback`s (`callbacks.rs`)
//! rather than `#[napi]` methods so that each operation costs exactly the Node-API calls
//! it needs: no type-check round trips for arguments the facade has already validated.

use std::ffi::{c_void, CStr};
use std::ptr;

use caio_scheduler::wire::CALL_FIELDS;
use napi::sys;

#[cfg(unix)]
use crate::context::Shared;

#[cfg(unix)]
mod threadsafe;
#[cfg(unix)]
pub use threadsafe::{Called, ThreadsafeFunction};

/// A Node-API call failed; the status says how.
#[derive(Clone, Copy, Debug)]
pub struct Failed(#[allow(dead_code)] pub sys::napi_status);

pub type JsResult<T> = Result<T, Failed>;

/// Turns a `napi_status` into a `Result`.
#[inline]
pub fn check(status: sys::napi_status) -> JsResult<()> {
  if status == sys::Status::napi_ok {
    Ok(())
  } else {
    Err(Failed(status))
  }
}

/// A live environment on the JS thread, valid for the duration of one callback.
#[derive(Clone, Copy)]
pub struct Env(pub sys::napi_env);

impl Env {
  /// Reads up to `N` arguments; missing ones are `undefined`.
  #[inline]
  pub fn args<const N: usize>(
    self,
    info: sys::napi_callback_info,
  ) -> JsResult<[sys::napi_value; N]> {
    let mut argv = [ptr::null_mut(); N];
    let mut argc = N;
    // SAFETY: argv has room for argc values; `this` and `data` are not requested.
    check(unsafe {
      sys::napi_get_cb_info(
        self.0,
        info,
        &mut argc,
        argv.as_mut_ptr(),
        ptr::null_mut(),
        ptr::null_mut(),
      )
    })?;
    Ok(argv)
  }

  #[inline]
  pub fn undefined(self) -> sys::napi_value {
    let mut value = ptr::null_mut();
    // SAFETY: out-pointer is a local.
    unsafe { sys::napi_get_undefined(self.0, &mut value) };
    value
  }

  #[inline]
  pub fn null(self) -> sys::napi_value {
    let mut value = ptr::null_mut();
    // SAFETY: out-pointer is a local.
    unsafe { sys::napi_get_null(self.0, &mut value) };
    value
  }

  #[inline]
  pub fn number(self, n: f64) -> JsResult<sys::napi_value> {
    let mut value = ptr::null_mut();
    // SAFETY: out-pointer is a local.
    check(unsafe { sys::napi_create_double(self.0, n, &mut value) })?;
    Ok(value)
  }

  #[inline]
  pub fn boolean(self, b: bool) -> JsResult<sys::napi_value> {
    let mut value = ptr::null_mut();
    // SAFETY: out-pointer is a local.
    check(unsafe { sys::napi_get_boolean(self.0, b, &mut value) })?;
    Ok(value)
  }

  pub fn string(self, s: &str) -> JsResult<sys::napi_value> {
    let mut value = ptr::null_mut();
    // SAFETY: `s` is valid UTF-8 of the given length.
    check(unsafe {
      sys::napi_create_string_utf8(self.0, s.as_ptr().cast(), s.len() as isize, &mut value)
    })?;
    Ok(value)
  }

  #[inline]
  pub fn get_i32(self, value: sys::napi_value) -> JsResult<i32> {
    let mut n = 0;
    // SAFETY: out-pointer is a local.
    check(unsafe { sys::napi_get_value_int32(self.0, value, &mut n) })?;
    Ok(n)
  }

  #[inline]
  pub fn get_u32(self, value: sys::napi_value) -> JsResult<u32> {
    let mut n = 0;
    // SAFETY: out-pointer is a local.
    check(unsafe { sys::napi_get_value_uint32(self.0, value, &mut n) })?;
    Ok(n)
  }

  #[inline]
  pub fn get_f64(self, value: sys::napi_value) -> JsResult<f64> {
    let mut n = 0.0;
    // SAFETY: out-pointer is a local.
    check(unsafe { sys::napi_get_value_double(self.0, value, &mut n) })?;
    Ok(n)
  }

  #[inline]
  pub fn get_bool(self, value: sys::napi_value) -> JsResult<bool> {
    let mut b = false;
    // SAFETY: out-pointer is a local.
    check(unsafe { sys::napi_get_value_bool(self.0, value, &mut b) })?;
    Ok(b)
  }

  /// The bytes an `ArrayBufferView` spans: its data pointer and byte length.
  #[inline]
  pub fn view_bytes(self, value: sys::napi_value) -> JsResult<(*mut u8, usize)> {
    let mut kind = 0;
    let mut length = 0usize;
    let mut data: *mut c_void = ptr::null_mut();
    // SAFETY: out-pointers are locals; the array buffer and offset are not requested.
    let status = unsafe {
      sys::napi_get_typedarray_info(
        self.0,
        value,
        &mut kind,
        &mut length,
        &mut data,
        ptr::null_mut(),
        ptr::null_mut(),
      )
    };
    if status == sys::Status::napi_ok {
      return Ok((data.cast(), length * element_size(kind)));
    }
    // SAFETY: as above, for a DataView.
    check(unsafe {
      sys::napi_get_dataview_info(
        self.0,
        value,
        &mut length,
        &mut data,
        ptr::null_mut(),
        ptr::null_mut(),
      )
    })?;
    Ok((data.cast(), length))
  }

  #[cfg(unix)]
  /// The `iovec` area of a vectored operation, filled in: `vector` is the facade's array of
  /// the area (a `Uint8Array` of `IOVEC_ROOM` bytes per buffer) followed by the buffers.
  /// Writes one `iovec` per buffer, each describing the buffer's real extent, at the area's
  /// start, and returns where they start and their size in bytes: the operation's buffer.
  /// Fails when the shape is not that, without writing anything.
  pub fn io_vector(
    self,
    vector: sys::napi_value,
    max_iovecs: usize,
  ) -> Result<(*mut u8, usize), &'static str> {
    use caio_scheduler::wire::IOVEC_ROOM;
    let area = self
      .element(vector, 0)
      .map_err(|_| "a vector must be an array")?;
    let (area, room) = self
      .view_bytes(area)
      .map_err(|_| "a vector must start with its iovec area")?;
    let count = room / IOVEC_ROOM;
    if room % IOVEC_ROOM != 0
      || count > max_iovecs
      || (count > 0 && area.align_offset(std::mem::align_of::<libc::iovec>()) != 0)
    {
      return Err("a vector's iovec area must be an aligned Uint8Array of 16 bytes per buffer");
    }
    let mut iovecs = Vec::with_capacity(count);
    for index in 0..count {
      let buffer = self
        .element(vector, index as u32 + 1)
        .map_err(|_| "a vector must be an array")?;
      let (data, len) = self
        .view_bytes(buffer)
        .map_err(|_| "a vector's buffers must be ArrayBufferViews")?;
      iovecs.push(libc::iovec {
        iov_base: data.cast(),
        iov_len: len,
      });
    }
    // SAFETY: `area` spans `room` writable bytes of the facade's own Uint8Array, which no
    // JavaScript reads or writes (`lib/native.ts` makes it and only pins it); `count`
    // iovecs of `IOVEC_SIZE <= IOVEC_ROOM` bytes fit in it, and it is aligned for them
    // (checked above). No JavaScript runs during the copy.
    unsafe { ptr::copy_nonoverlapping(iovecs.as_ptr(), area.cast::<libc::iovec>(), count) };
    Ok((area, count * caio_core::IOVEC_SIZE))
  }

  /// Calls `f(args…)` with `undefined` as `this`.
  pub fn call(self, f: sys::napi_value, args: &[sys::napi_value]) -> JsResult<sys::napi_value> {
    let mut result = ptr::null_mut();
    // SAFETY: `args` is a live slice of handles in the current scope.
    check(unsafe {
      sys::napi_call_function(
        self.0,
        self.undefined(),
        f,
        args.len(),
        args.as_ptr(),
        &mut result,
      )
    })?;
    Ok(result)
  }

  /// A strong (count 1) or weak (count 0) reference.
  #[inline]
  pub fn reference(self, value: sys::napi_value, count: u32) -> JsResult<sys::napi_ref> {
    let mut reference = ptr::null_mut();
    // SAFETY: out-pointer is a local.
    check(unsafe { sys::napi_create_reference(self.0, value, count, &mut reference) })?;
    Ok(reference)
  }

  #[inline]
  pub fn reference_value(self, reference: sys::napi_ref) -> sys::napi_value {
    let mut value = ptr::null_mut();
    // SAFETY: `reference` is live (owned by the caller).
    unsafe { sys::napi_get_reference_value(self.0, reference, &mut value) };
    value
  }

  #[inline]
  pub fn delete_reference(self, reference: sys::napi_ref) {
    if !reference.is_null() {
      // SAFETY: each reference is deleted exactly once by its owner.
      unsafe { sys::napi_delete_reference(self.0, reference) };
    }
  }

  /// Throws a `TypeError` with a Node-style `code`; returns null for the callback to return.
  pub fn throw_type_error(self, code: &str, message: &str) -> sys::napi_value {
    let mut c = code.as_bytes().to_vec();
    c.push(0);
    let mut m = message.as_bytes().to_vec();
    m.push(0);
    // SAFETY: both strings are NUL-terminated locals.
    unsafe { sys::napi_throw_type_error(self.0, c.as_ptr().cast(), m.as_ptr().cast()) };
    ptr::null_mut()
  }

  /// Throws a `RangeError` with a Node-style `code`; returns null for the callback to return.
  pub fn throw_range_error(self, code: &str, message: &str) -> sys::napi_value {
    let mut c = code.as_bytes().to_vec();
    c.push(0);
    let mut m = message.as_bytes().to_vec();
    m.push(0);
    // SAFETY: both strings are NUL-terminated locals.
    unsafe { sys::napi_throw_range_error(self.0, c.as_ptr().cast(), m.as_ptr().cast()) };
    ptr::null_mut()
  }

  /// Throws a plain `Error`; returns null for the callback to return.
  pub fn throw_error(self, message: &str) -> sys::napi_value {
    let mut m = message.as_bytes().to_vec();
    m.push(0);
    // SAFETY: the message is a NUL-terminated local.
    unsafe { sys::napi_throw_error(self.0, ptr::null(), m.as_ptr().cast()) };
    ptr::null_mut()
  }
}

impl Env {
  /// Element `index` of an array (or any object).
  pub fn element(self, object: sys::napi_value, index: u32) -> JsResult<sys::napi_value> {
    let mut value = ptr::null_mut();
    // SAFETY: out-pointer is a local; Node checks the object.
    check(unsafe { sys::napi_get_element(self.0, object, index, &mut value) })?;
    Ok(value)
  }

  /// A string argument as UTF-8, or `None` when it is not a string.
  pub fn get_string(self, value: sys::napi_value) -> Option<String> {
    let mut length = 0usize;
    // SAFETY: asking for the length only.
    if unsafe { sys::napi_get_value_string_utf8(self.0, value, ptr::null_mut(), 0, &mut length) }
      != sys::Status::napi_ok
    {
      return None;
    }
    let mut bytes = vec![0u8; length + 1];
    // SAFETY: `bytes` has room for the string and its terminator.
    let status = unsafe {
      sys::napi_get_value_string_utf8(
        self.0,
        value,
        bytes.as_mut_ptr().cast(),
        bytes.len(),
        &mut length,
      )
    };
    check(status).ok()?;
    bytes.truncate(length);
    String::from_utf8(bytes).ok()
  }

  /// A plain object with the given number and boolean properties.
  pub fn object(
    self,
    numbers: &[(&CStr, f64)],
    booleans: &[(&CStr, bool)],
  ) -> JsResult<sys::napi_value> {
    let mut object = ptr::null_mut();
    // SAFETY: out-pointer is a local.
    check(unsafe { sys::napi_create_object(self.0, &mut object) })?;
    for &(name, n) in numbers {
      let value = self.number(n)?;
      // SAFETY: `object` and `value` are live handles of this scope; `name` is NUL-terminated.
      check(unsafe { sys::napi_set_named_property(self.0, object, name.as_ptr(), value) })?;
    }
    for &(name, b) in booleans {
      let value = self.boolean(b)?;
      // SAFETY: as above.
      check(unsafe { sys::napi_set_named_property(self.0, object, name.as_ptr(), value) })?;
    }
    Ok(object)
  }

  /// Calls `f(args…)`; if it threw, clears the exception (so that the addon's next
  /// Node-API call works) and yields `undefined`. For facade functions that must not throw
  /// and whose failure the addon can do nothing about.
  pub fn call_or_clear(self, f: sys::napi_value, args: &[sys::napi_value]) -> sys::napi_value {
    match self.call(f, args) {
      Ok(value) => value,
      Err(_) => {
        let mut exception = ptr::null_mut();
        // SAFETY: out-pointer is a local.
        unsafe { sys::napi_get_and_clear_last_exception(self.0, &mut exception) };
        self.undefined()
      }
    }
  }

  /// Makes `reference` strong (`true`) or weak again.
  pub fn hold(self, reference: sys::napi_ref, strong: bool) {
    if reference.is_null() {
      return;
    }
    let mut count = 0;
    // SAFETY: `reference` is live (owned by the caller), and each strengthening is paired
    // with one weakening by the caller's own state.
    unsafe {
      if strong {
        sys::napi_reference_ref(self.0, reference, &mut count);
      } else {
        sys::napi_reference_unref(self.0, reference, &mut count);
      }
    }
  }

  /// Reports `message` as an uncaught exception (`process.on('uncaughtException')`): the
  /// one way to raise an error from a callback that JavaScript did not call.
  pub fn fatal_exception(self, message: &str) {
    let Ok(text) = self.string(message) else {
      return;
    };
    let mut error = ptr::null_mut();
    // SAFETY: out-pointer is a local; `text` is a live string of this scope.
    unsafe {
      if sys::napi_create_error(self.0, ptr::null_mut(), text, &mut error) == sys::Status::napi_ok {
        sys::napi_fatal_exception(self.0, error);
      }
    }
  }

  #[cfg(unix)]
  /// Boxes `shared` into a fresh external tagged as a caio context, and returns the
  /// external with a reference to the box, which lives until the external's finalizer
  /// runs `teardown::finalize`.
  pub fn wrap_context<'a>(self, shared: Shared) -> JsResult<(sys::napi_value, &'a Shared)> {
    let data = Box::into_raw(Box::new(shared));
    let mut external = ptr::null_mut();
    // SAFETY: the external owns the box from here on; `finalize_context` frees it, once.
    let status = unsafe {
      sys::napi_create_external(
        self.0,
        data.cast(),
        Some(finalize_context),
        ptr::null_mut(),
        &mut external,
      )
    };
    if let Err(failed) = check(status) {
      // SAFETY: no external was made, so the box is still ours.
      drop(unsafe { Box::from_raw(data) });
      return Err(failed);
    }
    // SAFETY: tagging a fresh external of this env.
    check(unsafe { sys::napi_type_tag_object(self.0, external, &CONTEXT_TAG) })?;
    // SAFETY: the box lives until the finalizer, which cannot run while `external` is on
    // the stack of the callback that receives this reference.
    Ok((external, unsafe { &*data }))
  }

  #[cfg(unix)]
  /// The context an external made by [`Env::wrap_context`] owns; `None` for any other
  /// value, so that a foreign external is refused instead of misread.
  pub fn context<'a>(self, value: sys::napi_value) -> Option<&'a Shared> {
    let mut tagged = false;
    // SAFETY: out-pointer is a local; the call checks any value.
    let status =
      unsafe { sys::napi_check_object_type_tag(self.0, value, &CONTEXT_TAG, &mut tagged) };
    if status != sys::Status::napi_ok || !tagged {
      return None;
    }
    let mut data: *mut c_void = ptr::null_mut();
    // SAFETY: a tagged value is an external; out-pointer is a local.
    check(unsafe { sys::napi_get_value_external(self.0, value, &mut data) }).ok()?;
    // SAFETY: tagged externals are made by `wrap_context` only, and their box lives until
    // their finalizer runs — not before, since `value` is on the caller's stack. Only shared
    // references to it are made; its `RefCell` arbitrates mutation.
    Some(unsafe { &*data.cast::<Shared>() })
  }

  /// An async context for the callbacks the event loop makes into JavaScript.
  pub fn async_context(self, name: &str) -> JsResult<AsyncContext> {
    let name = self.string(name)?;
    let mut context = ptr::null_mut();
    // SAFETY: out-pointer is a local; a null resource lets Node make one.
    check(unsafe { sys::napi_async_init(self.0, ptr::null_mut(), name, &mut context) })?;
    Ok(AsyncContext(context))
  }

  /// Destroys an async context; its one caller, `teardown::finalize`, runs once per context.
  pub fn destroy_async_context(self, context: AsyncContext) {
    if !context.0.is_null() {
      // SAFETY: made by `async_context` and destroyed once, as above.
      unsafe { sys::napi_async_destroy(self.0, context.0) };
    }
  }

  /// Runs `body` inside a handle scope and a callback scope for `context`, as a callback
  /// from native code into JavaScript must: closing the callback scope runs the microtasks
  /// and `nextTick`s queued meanwhile, so `body` must hold no borrow that JavaScript could
  /// need when it returns.
  pub fn in_callback_scope(self, context: AsyncContext, body: impl FnOnce()) {
    let mut handle_scope = ptr::null_mut();
    let mut callback_scope = ptr::null_mut();
    // SAFETY: on the JS thread between loop phases, where opening scopes is allowed; the
    // resource object is ignored by Node for this call. Scopes close in reverse order.
    unsafe {
      sys::napi_open_handle_scope(self.0, &mut handle_scope);
      let mut resource = ptr::null_mut();
      sys::napi_create_object(self.0, &mut resource);
      sys::napi_open_callback_scope(self.0, resource, context.0, &mut callback_scope);
    }
    body();
    // SAFETY: the scopes opened above, closed once each.
    unsafe {
      sys::napi_close_callback_scope(self.0, callback_scope);
      sys::napi_close_handle_scope(self.0, handle_scope);
    }
  }

  #[cfg(unix)]
  /// Registers `teardown::on_env_teardown(shared, hook)` to run when the environment is
  /// torn down while the context lives. An `asynchronous` hook lets the teardown wait
  /// until the hook is removed (libuv closes a handle only on a later loop turn); a
  /// synchronous one is done when it returns, which is all a completion thread needs (it is
  /// joined there) — and Deno's asynchronous hooks free their handle twice.
  pub fn add_teardown_hook(self, shared: &Shared, asynchronous: bool) -> JsResult<CleanupHook> {
    let data = (shared as *const Shared).cast_mut().cast::<c_void>();
    if !asynchronous {
      // SAFETY: `shared` outlives the hook: `teardown::finalize`, which runs before its box
      // is freed, removes the hook unless it ran already.
      check(unsafe { sys::napi_add_env_cleanup_hook(self.0, Some(on_env_teardown_sync), data) })?;
      return Ok(CleanupHook::Registered { env: self.0, data });
    }
    let mut handle = ptr::null_mut();
    // SAFETY: as above. Out-pointer is a local.
    check(unsafe {
      sys::napi_add_async_cleanup_hook(self.0, Some(on_env_teardown), data, &mut handle)
    })?;
    Ok(CleanupHook::Async(handle))
  }

  /// The wire: a `Float64Array` of (slot, result) pairs and then the call area
  /// (`CALL_FIELDS` numbers), held strongly until [`Env::release_wire`].
  pub fn wire(self, value: sys::napi_value) -> Result<Wire, String> {
    let (data, bytes) = self
      .view_bytes(value)
      .map_err(|_| "the wire must be a Float64Array".to_string())?;
    let doubles = bytes / 8;
    if doubles < 2 + CALL_FIELDS || data.align_offset(8) != 0 {
      return Err(format!(
        "the wire must be a Float64Array of at least {} elements",
        2 + CALL_FIELDS
      ));
    }
    let pin = self
      .reference(value, 1)
      .map_err(|_| "a reference failed while creating the context".to_string())?;
    Ok(Wire {
      data: data.cast(),
      len: (doubles - CALL_FIELDS) & !1,
      call: data.cast::<f64>().wrapping_add(doubles - CALL_FIELDS),
      pin,
    })
  }

  /// Lets go of the wire.
  pub fn release_wire(self, wire: Wire) {
    self.delete_reference(wire.pin);
  }

  /// The numbers of a `Float64Array`, copied: JavaScript may run before they are all used.
  pub fn f64s(self, value: sys::napi_value) -> JsResult<Vec<f64>> {
    let (data, bytes) = self.view_bytes(value)?;
    let mut numbers = vec![0.0f64; bytes / 8];
    // SAFETY: `data` spans `bytes` bytes of this view, alive for this call; `numbers` has
    // room for all of them; a byte copy needs no alignment, and no JavaScript runs here.
    unsafe { ptr::copy_nonoverlapping(data, numbers.as_mut_ptr().cast::<u8>(), numbers.len() * 8) };
    Ok(numbers)
  }

  /// The libuv loop of this environment, where the runtime has one.
  pub fn uv_loop(self) -> Option<*mut sys::uv_loop_s> {
    let mut event_loop = ptr::null_mut();
    // SAFETY: out-pointer is a local.
    let status = unsafe { sys::napi_get_uv_event_loop(self.0, &mut event_loop) };
    (status == sys::Status::napi_ok && !event_loop.is_null()).then_some(event_loop)
  }

  /// Exports `functions` on `exports`.
  pub fn export(
    self,
    exports: sys::napi_value,
    functions: &[(&CStr, sys::napi_callback)],
  ) -> JsResult<()> {
    for &(name, callback) in functions {
      let mut function = ptr::null_mut();
      // SAFETY: `name` is NUL-terminated; `callback` is a plain function.
      check(unsafe {
        sys::napi_create_function(
          self.0,
          name.as_ptr(),
          name.to_bytes().len() as isize,
          callback,
          ptr::null_mut(),
          &mut function,
        )
      })?;
      // SAFETY: `exports` and `function` are live values of this env.
      check(unsafe { sys::napi_set_named_property(self.0, exports, name.as_ptr(), function) })?;
    }
    Ok(())
  }
}

/// An async context, from [`Env::async_context`].
#[derive(Clone, Copy)]
pub struct AsyncContext(sys::napi_async_context);

impl AsyncContext {
  pub const NONE: AsyncContext = AsyncContext(ptr::null_mut());
}

/// A registered environment cleanup hook; removing it consumes it, so it is removed once.
pub enum CleanupHook {
  /// An asynchronous hook, registered or running: the environment's teardown waits for its
  /// removal.
  Async(sys::napi_async_cleanup_hook_handle),
  /// A synchronous hook not yet run: removing it unregisters it.
  Registered {
    env: sys::napi_env,
    data: *mut c_void,
  },
  /// A synchronous hook that is running: there is nothing left to remove.
  Running,
}

impl CleanupHook {
  /// Removes the hook: Node waits for this before it finishes tearing the environment down.
  pub fn remove(self) {
    match self {
      // SAFETY: a live registration (made by `add_teardown_hook`, handed to the hook when
      // it runs), removed once: `self` is consumed.
      CleanupHook::Async(handle) => unsafe {
        sys::napi_remove_async_cleanup_hook(handle);
      },
      // SAFETY: the function and data `add_teardown_hook` registered, not yet run, and
      // removed once.
      CleanupHook::Registered { env, data } => unsafe {
        sys::napi_remove_env_cleanup_hook(env, Some(on_env_teardown_sync), data);
      },
      CleanupHook::Running => {}
    }
  }
}

/// The facade's wire: its memory, and the reference that keeps it alive.
pub struct Wire {
  data: *mut f64,
  /// Doubles of (slot, result) pairs at `data`.
  len: usize,
  /// The call area: `CALL_FIELDS` doubles after the pairs.
  call: *mut f64,
  pin: sys::napi_ref,
}

impl Wire {
  /// The call area, which the facade filled with one operation before calling `start`.
  pub fn call(&mut self) -> &mut [f64] {
    // SAFETY: `call` spans the last CALL_FIELDS doubles of the Float64Array that `pin` keeps
    // alive, apart from the pairs; only the JS thread touches it, and JavaScript reads or
    // writes it only between addon calls, while no slice of it is alive here.
    unsafe { std::slice::from_raw_parts_mut(self.call, CALL_FIELDS) }
  }

  /// Room for (slot, result) pairs, a whole number of them.
  pub fn pairs(&mut self) -> &mut [f64] {
    // SAFETY: `data` spans `len` doubles of a Float64Array that `pin` keeps alive until
    // `release_wire`; only the JS thread touches it, and JavaScript reads it only while no
    // slice of it is alive here (delivery.rs ends every borrow before calling `deliver`).
    unsafe { std::slice::from_raw_parts_mut(self.data, self.len) }
  }
}

#[cfg(unix)]
/// Tags our externals (see [`Env::context`]).
const CONTEXT_TAG: sys::napi_type_tag = sys::napi_type_tag {
  lower: 0x6361_696f_2d63_7478,
  upper: 0x9e37_79b9_7f4a_7c16,
};

#[cfg(unix)]
impl Env {
  /// An ArrayBuffer of `len` bytes of unspecified content in a mapping of its own
  /// (`crate::large`), which goes back to be reused when the ArrayBuffer is collected;
  /// `None` where Node-API allows no external ArrayBuffers (a V8 sandbox) or the memory
  /// cannot be had.
  pub fn large_array_buffer(self, len: usize) -> Option<sys::napi_value> {
    let mapping = crate::large::take(len)?;
    let mut buffer = ptr::null_mut();
    // SAFETY: the mapping has at least `len` bytes that nothing else refers to; from here
    // on the ArrayBuffer owns it, and `release_large` takes it back once, its capacity in
    // the hint.
    let status = unsafe {
      sys::napi_create_external_arraybuffer(
        self.0,
        mapping.at.cast(),
        len,
        Some(release_large),
        mapping.capacity as *mut c_void,
        &mut buffer,
      )
    };
    if status != sys::Status::napi_ok {
      return None; // `mapping` is still ours and drops here
    }
    // The garbage collector counts this memory, so that a loop of large reads lets go of
    // the buffers it dropped before it runs short.
    self.adjust_external_memory(mapping.capacity as i64);
    std::mem::forget(mapping);
    Some(buffer)
  }

  fn adjust_external_memory(self, change: i64) {
    let mut total = 0i64;
    // SAFETY: out-pointer is a local; the call runs no JavaScript.
    unsafe { sys::napi_adjust_external_memory(self.0, change, &mut total) };
  }
}

#[cfg(unix)]
unsafe extern "C" fn release_large(env: sys::napi_env, data: *mut c_void, hint: *mut c_void) {
  let capacity = hint as usize;
  // `data` and `capacity` are one mapping `large_array_buffer` handed to an ArrayBuffer
  // that has now been collected: nothing can reach the memory any more.
  crate::large::give_back(crate::large::Mapping {
    at: data.cast(),
    capacity,
  });
  Env(env).adjust_external_memory(-(capacity as i64));
}

#[cfg(unix)]
unsafe extern "C" fn finalize_context(
  raw_env: sys::napi_env,
  data: *mut c_void,
  _hint: *mut c_void,
) {
  // SAFETY: `data` is the box `wrap_context` made; Node runs a finalizer once, and after it
  // nothing can reach the box.
  let shared = unsafe { Box::from_raw(data.cast::<Shared>()) };
  crate::teardown::finalize(Env(raw_env), shared);
}

#[cfg(unix)]
unsafe extern "C" fn on_env_teardown(
  handle: sys::napi_async_cleanup_hook_handle,
  data: *mut c_void,
) {
  // SAFETY: registered by `add_teardown_hook` with a `Shared` that outlives the hook.
  let shared = unsafe { &*data.cast::<Shared>() };
  crate::teardown::on_env_teardown(shared, CleanupHook::Async(handle));
}

#[cfg(unix)]
unsafe extern "C" fn on_env_teardown_sync(data: *mut c_void) {
  // SAFETY: registered by `add_teardown_hook` with a `Shared` that outlives the hook.
  let shared = unsafe { &*data.cast::<Shared>() };
  crate::teardown::on_env_teardown(shared, CleanupHook::Running);
}

fn element_size(kind: sys::napi_typedarray_type) -> usize {
  use sys::TypedarrayType as T;
  match kind {
    T::int8_array | T::uint8_array | T::uint8_clamped_array => 1,
    T::int16_array | T::uint16_array => 2,
    T::int32_array | T::uint32_array | T::float32_array => 4,
    T::float64_array | T::bigint64_array | T::biguint64_array => 8,
    _ => 1,
  }
}
