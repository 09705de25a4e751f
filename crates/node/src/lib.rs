//! caio's Node.js addon: the only crate that knows JavaScript.
//!
//! It exposes an internal, positional surface that the TypeScript facade
//! (`lib/native.ts`) wraps; users never call it directly. A context is a JavaScript
//! external owning a `context::Shared`; results cross back on a `Float64Array` the
//! facade owns (see `delivery`), on the JS thread, from Node's own event loop (see
//! `event_loop`).
//!
//! - `fence`: the only module that calls `sys::napi_*`.
//! - `callbacks`: the raw callbacks, one per exported function; panics stop there.
//! - `context`: one context, whose methods never call JavaScript.
//! - `delivery`: handing results to the facade, with no borrow held.
//! - `teardown`: the environment going away, and the finalizer.
//! - `event_loop`: what wakes a context: Node's libuv loop, or a completion thread and a
//!   threadsafe function where there is no libuv (Bun, Deno).
//! - `backends`: which backends exist and how to open each.

#![allow(missing_docs)]
// Contexts need a Unix completion notifier (caio_core::Notifier). Elsewhere (Windows) the
// addon still loads, exports `probe`, `open` and the helpers, and says why no native
// backend works, so that the facade falls back to `js`; the context path is compiled out.
#![cfg_attr(not(unix), allow(dead_code, unused_imports))]

mod backends;
mod callbacks;
#[cfg(unix)]
mod context;
#[cfg(unix)]
mod delivery;
#[cfg(unix)]
mod event_loop;
mod fence;
#[cfg(unix)]
mod large;
#[cfg(unix)]
mod teardown;

use std::ffi::CStr;

use napi::bindgen_prelude::{JsValue, Object};
use napi::sys;
use napi_derive::napi;

use fence::Env;

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
  use callbacks::*;
  let env = Env(env.raw());
  let mut functions: Vec<(&CStr, sys::napi_callback)> = vec![
    (c"address", Some(address)),
    (c"isDirect", Some(is_direct)),
    (c"open", Some(open)),
    (c"probe", Some(probe)),
  ];
  #[cfg(unix)]
  functions.extend::<[(&CStr, sys::napi_callback); 8]>([
    (c"largeBuffer", Some(large_buffer)),
    (c"probePath", Some(probe_path)),
    (c"start", Some(start)),
    (c"submit", Some(submit)),
    (c"flush", Some(flush)),
    (c"cancel", Some(cancel)),
    (c"close", Some(close)),
    (c"details", Some(details)),
  ]);
  #[cfg(unix)]
  if std::env::var_os("CAIO_TEST_HOOKS").is_some_and(|value| value == "1") {
    functions.push((c"panicForTest", Some(panic_for_test)));
  }
  env
    .export(exports.raw(), &functions)
    .map_err(|_| napi::Error::from_reason("caio: could not export the addon's functions"))
}
