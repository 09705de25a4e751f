//! Thin, checked wrappers over the raw Node-API calls the hot path makes.
//!
//! The addon's hot functions are raw `napi_callback`s rather than `#[napi]` methods so that
//! each operation costs exactly the Node-API calls it needs and no more: no type-check
//! round trips for arguments the TypeScript facade has already validated.

use std::ffi::c_void;
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

  /// A file offset given as a number or a bigint, in `0..=i64::MAX`.
  #[inline]
  pub fn get_offset(self, value: sys::napi_value) -> JsResult<u64> {
    let mut n = 0.0;
    // SAFETY: out-pointer is a local.
    let status = unsafe { sys::napi_get_value_double(self.0, value, &mut n) };
    if status == sys::Status::napi_ok {
      return if (0.0..=9_007_199_254_740_991.0).contains(&n) && n.fract() == 0.0 {
        Ok(n as u64)
      } else {
        Err(Failed(sys::Status::napi_invalid_arg))
      };
    }
    let mut big = 0i64;
    let mut lossless = false;
    // SAFETY: out-pointers are locals.
    check(unsafe { sys::napi_get_value_bigint_int64(self.0, value, &mut big, &mut lossless) })?;
    if lossless && big >= 0 {
      Ok(big as u64)
    } else {
      Err(Failed(sys::Status::napi_invalid_arg))
    }
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

  /// Creates a Promise, returning it and its resolver.
  #[inline]
  pub fn promise(self) -> JsResult<(sys::napi_value, sys::napi_deferred)> {
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    // SAFETY: out-pointers are locals.
    check(unsafe { sys::napi_create_promise(self.0, &mut deferred, &mut promise) })?;
    Ok((promise, deferred))
  }

  /// Settles and frees a resolver.
  #[inline]
  pub fn settle(self, deferred: sys::napi_deferred, fulfilled: bool, value: sys::napi_value) {
    // SAFETY: each deferred is settled exactly once (callers free their slot right after).
    unsafe {
      if fulfilled {
        sys::napi_resolve_deferred(self.0, deferred, value);
      } else {
        sys::napi_reject_deferred(self.0, deferred, value);
      }
    }
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
