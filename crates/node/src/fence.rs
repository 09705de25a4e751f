//! The Node-API fence: the only file that calls `sys::napi_*`.
//!
//! Thin, checked wrappers over the raw Node-API calls the addon makes. Its hot functions
//! are raw `napi_callback`s rather than `#[napi]` methods so that each operation costs
//! exactly the Node-API calls it needs and no more: no type-check round trips for
//! arguments the TypeScript facade has already validated.

use std::ffi::{c_void, CStr};
use std::ptr;

use napi::sys;

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

  /// A file offset given as a number (exact below 2^53) or a bigint, in `0..=i64::MAX`.
  #[inline]
  pub fn get_offset(self, value: sys::napi_value) -> Option<u64> {
    if let Ok(n) = self.get_f64(value) {
      return caio_scheduler::wire::offset(n).ok();
    }
    let mut big = 0i64;
    let mut lossless = false;
    // SAFETY: out-pointers are locals; a value that is not a bigint just fails.
    let status =
      unsafe { sys::napi_get_value_bigint_int64(self.0, value, &mut big, &mut lossless) };
    (status == sys::Status::napi_ok && lossless && big >= 0).then_some(big as u64)
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

  /// Creates an external owning `data`, tagged with `tag`; `finalize(data)` runs when it is
  /// collected.
  ///
  /// # Safety
  /// `data` stays valid until `finalize` runs, which frees it.
  pub unsafe fn external(
    self,
    data: *mut c_void,
    finalize: sys::napi_finalize,
    tag: &sys::napi_type_tag,
  ) -> JsResult<sys::napi_value> {
    let mut external = ptr::null_mut();
    // SAFETY: the caller hands `data` to the external, which frees it through `finalize`.
    check(unsafe {
      sys::napi_create_external(self.0, data, finalize, ptr::null_mut(), &mut external)
    })?;
    // SAFETY: tagging a fresh external of this env.
    check(unsafe { sys::napi_type_tag_object(self.0, external, tag) })?;
    Ok(external)
  }

  /// The data of an external tagged `tag`, or `None` for any other value.
  pub fn external_data(
    self,
    value: sys::napi_value,
    tag: &sys::napi_type_tag,
  ) -> Option<*mut c_void> {
    let mut tagged = false;
    // SAFETY: out-pointer is a local; the call checks any value.
    let status = unsafe { sys::napi_check_object_type_tag(self.0, value, tag, &mut tagged) };
    if status != sys::Status::napi_ok || !tagged {
      return None;
    }
    let mut data: *mut c_void = ptr::null_mut();
    // SAFETY: a tagged value is an external; out-pointer is a local.
    check(unsafe { sys::napi_get_value_external(self.0, value, &mut data) }).ok()?;
    Some(data)
  }

  /// An async context for the callbacks the event loop makes into JavaScript.
  pub fn async_context(self, name: &str) -> JsResult<sys::napi_async_context> {
    let name = self.string(name)?;
    let mut context = ptr::null_mut();
    // SAFETY: out-pointer is a local; a null resource lets Node make one.
    check(unsafe { sys::napi_async_init(self.0, ptr::null_mut(), name, &mut context) })?;
    Ok(context)
  }

  /// # Safety
  /// `context` came from [`Env::async_context`] and is destroyed once.
  pub unsafe fn destroy_async_context(self, context: sys::napi_async_context) {
    if !context.is_null() {
      // SAFETY: the caller's promise.
      unsafe { sys::napi_async_destroy(self.0, context) };
    }
  }

  /// Runs `body` inside a handle scope and a callback scope for `context`, as a callback
  /// from native code into JavaScript must: closing the callback scope runs the microtasks
  /// and `nextTick`s queued meanwhile, so `body` must hold no borrow that JavaScript could
  /// need when it returns.
  pub fn in_callback_scope(self, context: sys::napi_async_context, body: impl FnOnce()) {
    let mut handle_scope = ptr::null_mut();
    let mut callback_scope = ptr::null_mut();
    // SAFETY: on the JS thread between loop phases, where opening scopes is allowed; the
    // resource object is ignored by Node for this call. Scopes close in reverse order.
    unsafe {
      sys::napi_open_handle_scope(self.0, &mut handle_scope);
      let mut resource = ptr::null_mut();
      sys::napi_create_object(self.0, &mut resource);
      sys::napi_open_callback_scope(self.0, resource, context, &mut callback_scope);
    }
    body();
    // SAFETY: the scopes opened above, closed once each.
    unsafe {
      sys::napi_close_callback_scope(self.0, callback_scope);
      sys::napi_close_handle_scope(self.0, handle_scope);
    }
  }

  /// Registers `hook(handle, data)` to run when the environment is torn down.
  ///
  /// # Safety
  /// `data` stays valid until the hook ran or was removed.
  pub unsafe fn add_cleanup_hook(
    self,
    hook: sys::napi_async_cleanup_hook,
    data: *mut c_void,
  ) -> JsResult<sys::napi_async_cleanup_hook_handle> {
    let mut handle = ptr::null_mut();
    // SAFETY: the caller's promise about `data`; out-pointer is a local.
    check(unsafe { sys::napi_add_async_cleanup_hook(self.0, hook, data, &mut handle) })?;
    Ok(handle)
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

/// Removes an environment cleanup hook, once, from wherever it ends up being removed.
///
/// # Safety
/// `handle` came from [`Env::add_cleanup_hook`] and was not removed yet.
pub unsafe fn remove_cleanup_hook(handle: sys::napi_async_cleanup_hook_handle) {
  // SAFETY: the caller's promise.
  unsafe { sys::napi_remove_async_cleanup_hook(handle) };
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
