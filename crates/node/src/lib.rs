//! caio's Node.js addon: the only crate that knows JavaScript.
//!
//! It exposes an internal, positional surface that the TypeScript facade (`index.ts`)
//! wraps; users never call it directly. A context is a JavaScript external owning a
//! [`context::Context`]; each I/O function takes it first and returns a Promise that is
//! resolved on the JS thread from Node's own event loop (see `event_loop`).

#![deny(clippy::undocumented_unsafe_blocks)]
#![allow(missing_docs)]
// Contexts need a Unix completion notifier (caio_core::Notifier). Elsewhere (Windows) the
// addon still loads, exports `probe`, `open` and the helpers, and says why no native
// backend works, so that the facade falls back to `js`; the context path is compiled out.
#![cfg_attr(not(unix), allow(dead_code, unused_imports))]

mod backends;
#[cfg(unix)]
mod context;
#[cfg(unix)]
mod event_loop;
mod js;

use std::ffi::c_void;
use std::ptr;

#[cfg(unix)]
use caio_core::{Opcode, Operation};
use napi::bindgen_prelude::{JsValue, Object};
use napi::sys;
use napi_derive::napi;

#[cfg(unix)]
use context::{Batch, Context};
use js::Env;

/// Tags our externals so a foreign one passed in is refused instead of misread.
#[cfg(unix)]
const CONTEXT_TAG: sys::napi_type_tag = sys::napi_type_tag {
  lower: 0x6361_696f_2d63_7478,
  upper: 0x9e37_79b9_7f4a_7c15,
};

/// Resolves the context external passed as an argument.
///
/// # Safety
/// Called on the JS thread inside a Node-API callback.
#[cfg(unix)]
#[inline]
unsafe fn context<'a>(env: Env, value: sys::napi_value) -> Option<&'a mut Context> {
  let mut tagged = false;
  // SAFETY: out-pointer is a local; the call checks any value.
  let status = unsafe { sys::napi_check_object_type_tag(env.0, value, &CONTEXT_TAG, &mut tagged) };
  if status != sys::Status::napi_ok || !tagged {
    return None;
  }
  let mut data: *mut c_void = ptr::null_mut();
  // SAFETY: tagged values are externals made by `open`, whose data is a boxed Context that
  // lives until their finalizer runs — not before, since `value` is on the stack.
  unsafe {
    sys::napi_get_value_external(env.0, value, &mut data);
    data.cast::<Context>().as_mut()
  }
}

macro_rules! callback {
  ($name:ident($env:ident, $info:ident) $body:block) => {
    unsafe extern "C" fn $name(
      raw_env: sys::napi_env,
      $info: sys::napi_callback_info,
    ) -> sys::napi_value {
      let $env = Env(raw_env);
      let result: Result<sys::napi_value, sys::napi_value> = (|| $body)();
      match result {
        Ok(value) => value,
        Err(thrown) => thrown,
      }
    }
  };
}

#[cfg(unix)]
fn bad_context(env: Env) -> sys::napi_value {
  env.throw_type_error("ERR_INVALID_ARG_TYPE", "not a caio native context")
}

fn internal(env: Env) -> sys::napi_value {
  env.throw_error("caio: a Node-API call failed inside the addon")
}

// open(backend, capacity, poolSize, sqpoll, makeError, deliver, completions) -> context
#[cfg(unix)]
callback!(open(env, info) {
  let [name, capacity, pool_size, sqpoll, make_error, deliver, completions] = env.args::<7>(info).map_err(|_| internal(env))?;
  let name = string_arg(env, name).ok_or_else(|| env.throw_type_error("ERR_INVALID_ARG_TYPE", "backend must be a string"))?;
  let capacity = env.get_u32(capacity).map_err(|_| env.throw_type_error("ERR_INVALID_ARG_TYPE", "capacity must be a number"))?;
  let pool_size = env.get_u32(pool_size).unwrap_or(0);
  let sqpoll = env.get_bool(sqpoll).unwrap_or(false);
  let options = backends::Options { capacity: capacity.max(1) as usize, pool_size: pool_size as usize, sqpoll };
  let opened = backends::open(&name, &options).map_err(|reason| env.throw_error(&reason))?;
  let details = opened.details;
  let ctx = Box::into_raw(Box::new(Context::new(env.0, opened.backend)));
  let mut external = ptr::null_mut();
  // SAFETY: `ctx` is a fresh Box handed to the external, freed by `finalize_context`.
  let status = unsafe { sys::napi_create_external(env.0, ctx.cast(), Some(finalize_context), ptr::null_mut(), &mut external) };
  if status != sys::Status::napi_ok {
    // SAFETY: the external was not created, so the Box is still ours.
    drop(unsafe { Box::from_raw(ctx) });
    return Err(internal(env));
  }
  // SAFETY: tagging a fresh external.
  unsafe { sys::napi_type_tag_object(env.0, external, &CONTEXT_TAG) };
  // SAFETY: `ctx` is the boxed context the external owns, at its final address.
  unsafe { Context::attach(ctx, env, external, make_error, deliver, completions) }.map_err(|reason| env.throw_error(&reason))?;
  // SAFETY: as above; the external keeps it alive.
  unsafe { (*ctx).details = details };
  Ok(external)
});

// open(backend, ...) where no native backend exists: throws why, as `probe` says it.
#[cfg(not(unix))]
callback!(open(env, info) {
  let [name] = env.args::<1>(info).map_err(|_| internal(env))?;
  let name = string_arg(env, name).unwrap_or_default();
  let reason = backends::probe(&name).err().unwrap_or_else(|| format!("cannot open backend {name:?}"));
  Err(env.throw_error(&reason))
});

#[cfg(unix)]
unsafe extern "C" fn finalize_context(
  raw_env: sys::napi_env,
  data: *mut c_void,
  _hint: *mut c_void,
) {
  // SAFETY: `data` is the Box created in `open`; the finalizer runs once.
  unsafe { Box::from_raw(data.cast::<Context>()).finalize(Env(raw_env)) };
}

// start(ctx, opcode, fd, offset, view, priority) -> slot, or -1 when the context is closed
#[cfg(unix)]
callback!(start(env, info) {
  let [ctx, opcode, fd, offset, view, priority] = env.args::<6>(info).map_err(|_| internal(env))?;
  // SAFETY: inside a Node-API callback on the JS thread.
  let ctx = unsafe { context(env, ctx) }.ok_or_else(|| bad_context(env))?;
  let opcode = env.get_u32(opcode).ok().and_then(Opcode::from_u32).ok_or_else(|| env.throw_type_error("ERR_INVALID_ARG_TYPE", "bad opcode"))?;
  let fd = env.get_i32(fd).map_err(|_| env.throw_type_error("ERR_INVALID_ARG_TYPE", "fd must be an integer"))?;
  let priority = env.get_u32(priority).unwrap_or(0).min(u32::from(u16::MAX)) as u16;
  let mut op = Operation::sync(opcode, fd, 0);
  op.priority = priority;
  if opcode.uses_buffer() {
    op.offset = env.get_offset(offset).map_err(|_| env.throw_type_error("ERR_INVALID_ARG_TYPE", "offset must be a non-negative safe integer or bigint"))?;
    let (data, length) = env.view_bytes(view).map_err(|_| env.throw_type_error("ERR_INVALID_ARG_TYPE", "buffer must be an ArrayBufferView"))?;
    // One operation moves at most 2^31-1 bytes, as one read(2) call on Linux does.
    op.buf = data;
    op.len = length.min(i32::MAX as usize) as u32;
    // The facade keeps `view` under the returned slot until the operation's result is
    // delivered, after its completion was reaped (lib/native.ts): no napi reference here.
  }
  if !ctx.has_room() {
    return Err(env.throw_error("caio: too many operations queued on one context"));
  }
  let slot = ctx.start(env, op).map_or(-1.0, f64::from);
  env.number(slot).map_err(|_| internal(env))
});

/// Doubles per operation in a batch descriptor: `[opcode | link << 8, fd, offset / 2^32,
/// offset % 2^32, priority]`.
#[cfg(unix)]
const BATCH_FIELDS: usize = 5;

// submit(ctx, descriptor: Float64Array, views: Array<ArrayBufferView | undefined>, results: Float64Array) -> Promise<void>
#[cfg(unix)]
callback!(submit(env, info) {
  let [ctx, descriptor, views, results] = env.args::<4>(info).map_err(|_| internal(env))?;
  // SAFETY: inside a Node-API callback on the JS thread.
  let ctx = unsafe { context(env, ctx) }.ok_or_else(|| bad_context(env))?;
  let bad = |what: &str| env.throw_type_error("ERR_INVALID_ARG_TYPE", what);
  let (fields, bytes) = env.view_bytes(descriptor).map_err(|_| bad("descriptor must be a Float64Array"))?;
  let (results_data, results_bytes) = env.view_bytes(results).map_err(|_| bad("results must be a Float64Array"))?;
  let count = bytes / (8 * BATCH_FIELDS);
  if bytes % (8 * BATCH_FIELDS) != 0 || results_bytes < count * 8 || fields.align_offset(8) != 0 || results_data.align_offset(8) != 0 {
    return Err(bad("descriptor and results must be Float64Arrays of matching length"));
  }
  // SAFETY: `fields` spans `bytes` bytes of f64s (checked above); JavaScript does not run
  // while this slice is alive.
  let fields = unsafe { std::slice::from_raw_parts(fields as *const f64, count * BATCH_FIELDS) };
  let mut ops = Vec::with_capacity(count);
  for (position, field) in fields.chunks_exact(BATCH_FIELDS).enumerate() {
    let code = field[0] as u32;
    let opcode = Opcode::from_u32(code & 0xff).ok_or_else(|| bad("bad opcode in batch"))?;
    let mut op = Operation::sync(opcode, field[1] as i32, 0);
    op.link = code & 0x100 != 0;
    op.in_batch = true;
    op.priority = field[4].clamp(0.0, f64::from(u16::MAX)) as u16;
    if opcode.uses_buffer() {
      let (high, low) = (field[2], field[3]);
      if !(0.0..=2_147_483_647.0).contains(&high) || !(0.0..=4_294_967_295.0).contains(&low) {
        return Err(bad("batch offset out of range"));
      }
      op.offset = ((high as u64) << 32) | low as u64;
      let mut view = ptr::null_mut();
      // SAFETY: out-pointer is a local; reading an element of any value is checked by Node.
      let status = unsafe { sys::napi_get_element(env.0, views, position as u32, &mut view) };
      js::check(status).map_err(|_| bad("views must be an array"))?;
      let (data, length) = env.view_bytes(view).map_err(|_| bad("batch buffer must be an ArrayBufferView"))?;
      op.buf = data;
      op.len = length.min(i32::MAX as usize) as u32;
    }
    ops.push(op);
  }
  // The last operation links to nothing: no backend may take what comes after it in its
  // queue for the rest of this batch's chain.
  if let Some(last) = ops.last_mut() {
    last.link = false;
  }
  // A linked chain goes into the backend whole, so it must fit there. (A closed context
  // has no backend, and rejects the batch as closed instead.)
  let capacity = ctx.capacity();
  let mut chain = 0;
  for op in &ops {
    chain += 1;
    if capacity > 0 && chain > capacity {
      return Err(env.throw_range_error("ERR_OUT_OF_RANGE", "a linked chain is longer than maxRequests"));
    }
    if !op.link {
      chain = 0;
    }
  }
  if !ctx.has_room() {
    return Err(env.throw_error("caio: too many operations queued on one context"));
  }
  let results_pin = env.reference(results, 1).map_err(|_| internal(env))?;
  let batch = Batch::new(ops, results_data.cast(), results_pin);
  ctx.start_batch(env, batch, views).map_err(|_| internal(env))
});

// flush(ctx)
#[cfg(unix)]
callback!(flush(env, info) {
  let [ctx] = env.args::<1>(info).map_err(|_| internal(env))?;
  // SAFETY: inside a Node-API callback on the JS thread.
  let ctx = unsafe { context(env, ctx) }.ok_or_else(|| bad_context(env))?;
  ctx.flush(env);
  Ok(env.undefined())
});

// lastToken(ctx) -> number
#[cfg(unix)]
callback!(last_token(env, info) {
  let [ctx] = env.args::<1>(info).map_err(|_| internal(env))?;
  // SAFETY: inside a Node-API callback on the JS thread.
  let ctx = unsafe { context(env, ctx) }.ok_or_else(|| bad_context(env))?;
  env.number(ctx.last_token() as f64).map_err(|_| internal(env))
});

// cancel(ctx, token)
#[cfg(unix)]
callback!(cancel(env, info) {
  let [ctx, token] = env.args::<2>(info).map_err(|_| internal(env))?;
  // SAFETY: inside a Node-API callback on the JS thread.
  let ctx = unsafe { context(env, ctx) }.ok_or_else(|| bad_context(env))?;
  if let Ok(token) = env.get_f64(token) {
    if (0.0..9_007_199_254_740_992.0).contains(&token) {
      ctx.cancel(env, token as u64);
    }
  }
  Ok(env.undefined())
});

// close(ctx) -> Promise
#[cfg(unix)]
callback!(close(env, info) {
  let [ctx] = env.args::<1>(info).map_err(|_| internal(env))?;
  // SAFETY: inside a Node-API callback on the JS thread.
  let ctx = unsafe { context(env, ctx) }.ok_or_else(|| bad_context(env))?;
  ctx.close(env).map_err(|_| internal(env))
});

// details(ctx) -> { poolSize, sqpoll }
#[cfg(unix)]
callback!(details(env, info) {
  let [ctx] = env.args::<1>(info).map_err(|_| internal(env))?;
  // SAFETY: inside a Node-API callback on the JS thread.
  let ctx = unsafe { context(env, ctx) }.ok_or_else(|| bad_context(env))?;
  let details = ctx.details;
  let mut object = ptr::null_mut();
  // SAFETY: out-pointer is a local; properties are set on the fresh object.
  unsafe {
    sys::napi_create_object(env.0, &mut object);
    let pool_size = env.number(details.pool_size as f64).map_err(|_| internal(env))?;
    sys::napi_set_named_property(env.0, object, c"poolSize".as_ptr(), pool_size);
    let sqpoll = env.boolean(details.sqpoll).map_err(|_| internal(env))?;
    sys::napi_set_named_property(env.0, object, c"sqpoll".as_ptr(), sqpoll);
  }
  Ok(object)
});

// address(view) -> number: where the view's bytes start, for alignedBuffer().
callback!(address(env, info) {
  let [view] = env.args::<1>(info).map_err(|_| internal(env))?;
  let (data, _) = env.view_bytes(view).map_err(|_| env.throw_type_error("ERR_INVALID_ARG_TYPE", "not an ArrayBufferView"))?;
  env.number(data as usize as f64).map_err(|_| internal(env))
});

// isDirect(fd) -> boolean: whether fd was opened with O_DIRECT.
callback!(is_direct(env, info) {
  let [fd] = env.args::<1>(info).map_err(|_| internal(env))?;
  let fd = env.get_i32(fd).unwrap_or(-1);
  env.boolean(caio_core::opened_with_direct_io(fd)).map_err(|_| internal(env))
});

// probe(backend) -> null | reason
callback!(probe(env, info) {
  let [name] = env.args::<1>(info).map_err(|_| internal(env))?;
  let name = string_arg(env, name).ok_or_else(|| env.throw_type_error("ERR_INVALID_ARG_TYPE", "backend must be a string"))?;
  match backends::probe(&name) {
    Ok(()) => Ok(env.null()),
    Err(reason) => env.string(&reason).map_err(|_| internal(env)),
  }
});

fn string_arg(env: Env, value: sys::napi_value) -> Option<String> {
  let mut length = 0usize;
  // SAFETY: asking for the length only.
  if unsafe { sys::napi_get_value_string_utf8(env.0, value, ptr::null_mut(), 0, &mut length) }
    != sys::Status::napi_ok
  {
    return None;
  }
  let mut bytes = vec![0u8; length + 1];
  // SAFETY: `bytes` has room for the string and its terminator.
  unsafe {
    sys::napi_get_value_string_utf8(
      env.0,
      value,
      bytes.as_mut_ptr().cast(),
      bytes.len(),
      &mut length,
    )
  };
  bytes.truncate(length);
  String::from_utf8(bytes).ok()
}

/// Node's names for OS errors as the native backends know them: `[errno, code, message]`
/// rows, so the test suite can hold them against `util.getSystemErrorMap()`.
#[napi(ts_return_type = "Array<[number, string, string]>")]
pub fn errno_names() -> Vec<(i32, String, String)> {
  caio_core::errno::ERRORS
    .iter()
    .map(|(errno, code, message)| (*errno, (*code).to_string(), (*message).to_string()))
    .collect()
}

#[napi(module_exports)]
pub fn init(exports: Object, env: napi::Env) -> napi::Result<()> {
  let (env, exports) = (env.raw(), exports.raw());
  let functions: &[(&str, sys::napi_callback)] = &[
    ("address", Some(address)),
    ("isDirect", Some(is_direct)),
    ("open", Some(open)),
    #[cfg(unix)]
    ("start", Some(start)),
    #[cfg(unix)]
    ("submit", Some(submit)),
    #[cfg(unix)]
    ("flush", Some(flush)),
    #[cfg(unix)]
    ("lastToken", Some(last_token)),
    #[cfg(unix)]
    ("cancel", Some(cancel)),
    #[cfg(unix)]
    ("close", Some(close)),
    #[cfg(unix)]
    ("details", Some(details)),
    ("probe", Some(probe)),
  ];
  for &(name, callback) in functions {
    let mut function = ptr::null_mut();
    // SAFETY: `name` is valid UTF-8 of the given length; `callback` is a plain function.
    let status = unsafe {
      sys::napi_create_function(
        env,
        name.as_ptr().cast(),
        name.len() as isize,
        callback,
        ptr::null_mut(),
        &mut function,
      )
    };
    if status != sys::Status::napi_ok {
      return Err(napi::Error::from_reason(format!("could not create {name}")));
    }
    let key = std::ffi::CString::new(name).map_err(|_| napi::Error::from_reason("bad name"))?;
    // SAFETY: `exports` and `function` are live values of this env; `key` is NUL-terminated.
    let status = unsafe { sys::napi_set_named_property(env, exports, key.as_ptr(), function) };
    if status != sys::Status::napi_ok {
      return Err(napi::Error::from_reason(format!("could not export {name}")));
    }
  }
  Ok(())
}
