//! The raw Node-API callbacks the addon exports, one per function of its surface.
//!
//! Each one reads its arguments, borrows its context for the work and no longer, and ends
//! with `delivery::deliver` where results may have settled. A panic anywhere below is
//! caught here and thrown as a JavaScript `Error`: it never unwinds into Node.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

#[cfg(unix)]
use caio_scheduler::wire::{self, BatchError, BATCH_FIELDS};
#[cfg(unix)]
use caio_scheduler::Refused;
use napi::sys;

use crate::backends;
#[cfg(unix)]
use crate::context::{Context, Shared};
#[cfg(unix)]
use crate::delivery::{self, REENTERED};
#[cfg(unix)]
use crate::event_loop::Path;
use crate::fence::Env;

/// Runs `body`, turning a panic into its message.
pub fn guarded<T>(body: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
  catch_unwind(AssertUnwindSafe(body))
    .unwrap_or_else(|payload| Err(panic_message(payload.as_ref())))
}

/// What a caught panic said, as the message of the Error it becomes.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
  let said = payload
    .downcast_ref::<&str>()
    .map(|s| s.to_string())
    .or_else(|| payload.downcast_ref::<String>().cloned())
    .unwrap_or_else(|| "a panic".into());
  format!("caio: internal error in the native addon: {said}")
}

/// A callback's way out: the value to return, or `Err` once an exception is pending.
type Outcome = Result<sys::napi_value, Thrown>;

/// An exception is pending in the environment.
pub struct Thrown;

macro_rules! callback {
  ($(#[$meta:meta])* $name:ident($env:ident, $info:ident) $body:block) => {
    $(#[$meta])*
    pub extern "C" fn $name(
      raw_env: sys::napi_env,
      $info: sys::napi_callback_info,
    ) -> sys::napi_value {
      let $env = Env(raw_env);
      let outcome = catch_unwind(AssertUnwindSafe(|| -> Outcome { $body }));
      match outcome {
        Ok(Ok(value)) => value,
        Ok(Err(Thrown)) => ptr::null_mut(),
        Err(payload) => {
          $env.throw_error(&panic_message(payload.as_ref()));
          ptr::null_mut()
        }
      }
    }
  };
}

fn type_error(env: Env, message: &str) -> Thrown {
  env.throw_type_error("ERR_INVALID_ARG_TYPE", message);
  Thrown
}

fn internal(env: Env) -> Thrown {
  env.throw_error("caio: a Node-API call failed inside the addon");
  Thrown
}

#[cfg(unix)]
fn reentered(env: Env) -> Thrown {
  env.throw_error(REENTERED);
  Thrown
}

/// The context an argument names.
#[cfg(unix)]
fn shared<'a>(env: Env, value: sys::napi_value) -> Result<&'a Shared, Thrown> {
  env
    .context(value)
    .ok_or_else(|| type_error(env, "not a caio native context"))
}

/// Borrows the context for one step of a callback.
#[cfg(unix)]
fn borrow<'a>(env: Env, shared: &'a Shared) -> Result<std::cell::RefMut<'a, Context>, Thrown> {
  shared.context.try_borrow_mut().map_err(|_| reentered(env))
}

#[cfg(unix)]
fn delivered(env: Env, shared: &Shared) -> Result<(), Thrown> {
  delivery::deliver(env, shared).map_err(|_| reentered(env))
}

fn number(env: Env, n: f64) -> Outcome {
  env.number(n).map_err(|_| internal(env))
}

#[cfg(unix)]
fn too_many(env: Env) -> Thrown {
  env.throw_error("caio: too many operations queued on one context");
  Thrown
}

callback!(
  /// `open(backend, capacity, poolSize, sqpoll, deliver, wire, path) -> context`, its
  /// completions reaching the JS thread along `path` (`'libuv'` or `'threadsafe-function'`).
  #[cfg(unix)]
  open(env, info) {
    let [name, capacity, pool_size, sqpoll, deliver, wire, path] = env.args::<7>(info).map_err(|_| internal(env))?;
    let name = env.get_string(name).ok_or_else(|| type_error(env, "backend must be a string"))?;
    let path = env
      .get_string(path)
      .and_then(|path| Path::parse(&path))
      .ok_or_else(|| type_error(env, "path must be 'libuv' or 'threadsafe-function'"))?;
    if let Err(reason) = path.probe() {
      env.throw_error(&reason);
      return Err(Thrown);
    }
    let capacity = env.get_u32(capacity).map_err(|_| type_error(env, "capacity must be a number"))?;
    let options = backends::Options {
      capacity: capacity.max(1) as usize,
      pool_size: env.get_u32(pool_size).unwrap_or(0) as usize,
      sqpoll: env.get_bool(sqpoll).unwrap_or(false),
    };
    let opened = backends::open(&name, &options).map_err(|reason| {
      env.throw_error(&reason);
      Thrown
    })?;
    let shared = Shared {
      env: env.0,
      context: RefCell::new(Context::new(opened.backend, opened.details)),
    };
    let (external, shared) = env.wrap_context(shared).map_err(|_| internal(env))?;
    Context::connect(shared, env, external, deliver, wire, path).map_err(|reason| {
      env.throw_error(&reason);
      Thrown
    })?;
    Ok(external)
  }
);

callback!(
  /// `open(backend, ...)` where no native backend exists: throws why, as `probe` says it.
  #[cfg(not(unix))]
  open(env, info) {
    let [name] = env.args::<1>(info).map_err(|_| internal(env))?;
    let name = env.get_string(name).unwrap_or_default();
    let reason = backends::probe(&name).err().unwrap_or_else(|| format!("cannot open backend {name:?}"));
    env.throw_error(&reason);
    Err(Thrown)
  }
);

callback!(
  /// `start(ctx, view)`: starts the operation the facade wrote into the wire's call area
  /// (`[opcode, fd, offset / 2^32, offset % 2^32, priority]`, see `caio_scheduler::wire`)
  /// and writes its token there, or -1 when the context is closed. The offset is (-1, 0)
  /// for a read or write at the file position; a path operation carries its flags there and
  /// its path in `view` (see `caio_core::Opcode`); for a vectored one `view` is the array
  /// `[iovec area, ...buffers]` (`Env::io_vector`). The result is delivered under slot
  /// `token % 2^24`, never within this call.
  #[cfg(unix)]
  start(env, info) {
    let [ctx, view] = env.args::<2>(info).map_err(|_| internal(env))?;
    let shared = shared(env, ctx)?;
    // The call area is copied out, so that no borrow is held while the buffers are read
    // (an array's elements are Node-API property reads).
    let fields = {
      let mut ctx = borrow(env, shared)?;
      let Some(wire) = ctx.wire.as_mut() else {
        return Err(internal(env));
      };
      let mut fields = [0.0; wire::CALL_FIELDS];
      fields.copy_from_slice(wire.call());
      fields
    };
    let mut op = wire::decode_call(&fields).map_err(|refusal| type_error(env, refusal.message()))?;
    if op.opcode.holds_iovecs() {
      let (data, length) = env
        .io_vector(view, wire::max_iovecs(op.opcode))
        .map_err(|message| type_error(env, message))?;
      op.buf = data;
      op.len = wire::length(length);
    } else if op.opcode.has_buffer() {
      let (data, length) = env.view_bytes(view).map_err(|_| type_error(env, "buffer must be an ArrayBufferView"))?;
      op.buf = data;
      op.len = wire::length(length);
    }
    let mut ctx = borrow(env, shared)?;
    // SAFETY: the buffer rule: the facade keeps `view` under the token's slot until the
    // slot's result is delivered, which happens only after its completion was reaped.
    let started = unsafe { ctx.scheduler.start(op) };
    ctx.hold_while_busy(env);
    let token = match started {
      Ok(token) => token as f64,
      Err(Refused::Closed) => -1.0,
      Err(_) => return Err(too_many(env)),
    };
    if let Some(wire) = ctx.wire.as_mut() {
      wire.call()[wire::CALL_TOKEN] = token;
    }
    Ok(env.undefined())
  }
);

callback!(
  /// `submit(ctx, descriptor, views, results) -> token`, or -1 when the context is closed.
  /// The batch's slot is delivered with result 0 once every operation has its result in
  /// `results`, never within this call.
  #[cfg(unix)]
  submit(env, info) {
    let [ctx, descriptor, views, results] = env.args::<4>(info).map_err(|_| internal(env))?;
    let shared = shared(env, ctx)?;
    let fields = env.f64s(descriptor).map_err(|_| type_error(env, "descriptor must be a Float64Array"))?;
    let (results_data, results_bytes) = env.view_bytes(results).map_err(|_| type_error(env, "results must be a Float64Array"))?;
    let count = fields.len() / BATCH_FIELDS;
    if fields.len() % BATCH_FIELDS != 0 || results_bytes < count * 8 || results_data.align_offset(8) != 0 {
      return Err(type_error(env, "descriptor and results must be Float64Arrays of matching length"));
    }
    let ops = wire::decode_batch(&fields, |position, opcode| {
      let view = env.element(views, position as u32).map_err(|_| "views must be an array")?;
      if opcode.holds_iovecs() {
        return env.io_vector(view, wire::max_iovecs(opcode));
      }
      env.view_bytes(view).map_err(|_| "a batch buffer must be an ArrayBufferView")
    })
    .map_err(|error| match error {
      BatchError::Refused(refusal) => type_error(env, refusal.message()),
      BatchError::Buffer(message) => type_error(env, message),
    })?;
    let started = {
      let mut ctx = borrow(env, shared)?;
      // SAFETY: the buffer rule: the facade keeps `views` and `results` under the batch's
      // slot until its delivery, which comes after every completion of it was reaped.
      let started = unsafe { ctx.scheduler.start_batch(ops, results_data.cast()) };
      ctx.hold_while_busy(env);
      started
    };
    match started {
      Ok(token) => number(env, token as f64),
      Err(Refused::Closed) => number(env, -1.0),
      Err(Refused::ChainTooLong) => {
        env.throw_range_error("ERR_OUT_OF_RANGE", "a linked chain is longer than maxRequests");
        Err(Thrown)
      }
      Err(Refused::TooMany) => Err(too_many(env)),
    }
  }
);

callback!(
  /// `flush(ctx)`: submits what this tick started and delivers what completed inline.
  #[cfg(unix)]
  flush(env, info) {
    let [ctx] = env.args::<1>(info).map_err(|_| internal(env))?;
    let shared = shared(env, ctx)?;
    borrow(env, shared)?.flush();
    delivered(env, shared)?;
    Ok(env.undefined())
  }
);

callback!(
  /// `cancel(ctx, token)`: a token that names nothing outstanding is ignored.
  #[cfg(unix)]
  cancel(env, info) {
    let [ctx, token] = env.args::<2>(info).map_err(|_| internal(env))?;
    let shared = shared(env, ctx)?;
    if let Ok(token) = env.get_f64(token) {
      if token.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&token) {
        borrow(env, shared)?.scheduler.cancel(token as u64);
      }
    }
    delivered(env, shared)?;
    Ok(env.undefined())
  }
);

callback!(
  /// `close(ctx)`: queued operations settle as closed; once the rest has finished, the
  /// pair (-1, 0) is delivered — within this call if nothing is outstanding.
  #[cfg(unix)]
  close(env, info) {
    let [ctx] = env.args::<1>(info).map_err(|_| internal(env))?;
    let shared = shared(env, ctx)?;
    borrow(env, shared)?.scheduler.close();
    delivered(env, shared)?;
    Ok(env.undefined())
  }
);

callback!(
  /// `details(ctx) -> { poolSize, sqpoll, fixedBufferOps, fixedFileOps }`: the last two
  /// count the operations started on registered buffers and files (0 once closed).
  #[cfg(unix)]
  details(env, info) {
    let [ctx] = env.args::<1>(info).map_err(|_| internal(env))?;
    let (details, fixed) = {
      let ctx = borrow(env, shared(env, ctx)?)?;
      let fixed = ctx.scheduler.backend().map(|backend| backend.fixed_use()).unwrap_or_default();
      (ctx.details, fixed)
    };
    env
      .object(
        &[
          (c"poolSize", details.pool_size as f64),
          (c"fixedBufferOps", fixed.buffers as f64),
          (c"fixedFileOps", fixed.files as f64),
        ],
        &[(c"sqpoll", details.sqpoll)],
      )
      .map_err(|_| internal(env))
  }
);

callback!(
  /// `panicForTest(ctx)`: panics with the context borrowed, so that a test can see the
  /// panic thrown as an Error and the context usable afterwards. Exported only when
  /// `CAIO_TEST_HOOKS=1` was set as the addon loaded.
  #[cfg(unix)]
  panic_for_test(env, info) {
    let [ctx] = env.args::<1>(info).map_err(|_| internal(env))?;
    let ctx = borrow(env, shared(env, ctx)?)?;
    panic!("deliberate panic with {} operations outstanding", ctx.scheduler.outstanding());
  }
);

callback!(
  /// `address(view) -> number`: where the view's bytes start, for `alignedBuffer()`.
  address(env, info) {
    let [view] = env.args::<1>(info).map_err(|_| internal(env))?;
    let (data, _) = env.view_bytes(view).map_err(|_| type_error(env, "not an ArrayBufferView"))?;
    number(env, data as usize as f64)
  }
);

callback!(
  /// `largeBuffer(size) -> ArrayBuffer | undefined`: `size` bytes of unspecified content for
  /// reading a large file whole, in memory that is reused once collected (`crate::large`);
  /// `undefined` below `large::LARGE` or where it cannot be made, for the caller to allocate
  /// the ordinary way.
  #[cfg(unix)]
  large_buffer(env, info) {
    let [size] = env.args::<1>(info).map_err(|_| internal(env))?;
    let size = env.get_f64(size).map_err(|_| type_error(env, "size must be a number"))?;
    if !(0.0..=9_007_199_254_740_991.0).contains(&size) || size.fract() != 0.0 {
      return Err(type_error(env, "size must be a non-negative safe integer"));
    }
    let size = size as usize;
    if size < crate::large::LARGE {
      return Ok(env.undefined());
    }
    Ok(env.large_array_buffer(size).unwrap_or_else(|| env.undefined()))
  }
);

callback!(
  /// `isDirect(fd) -> boolean`: whether `fd` was opened with `O_DIRECT`.
  is_direct(env, info) {
    let [fd] = env.args::<1>(info).map_err(|_| internal(env))?;
    let fd = env.get_i32(fd).unwrap_or(-1);
    env.boolean(caio_core::opened_with_direct_io(fd)).map_err(|_| internal(env))
  }
);

callback!(
  /// `probe(backend) -> null | reason`
  probe(env, info) {
    let [name] = env.args::<1>(info).map_err(|_| internal(env))?;
    let name = env.get_string(name).ok_or_else(|| type_error(env, "backend must be a string"))?;
    match backends::probe(&name) {
      Ok(()) => Ok(env.null()),
      Err(reason) => env.string(&reason).map_err(|_| internal(env)),
    }
  }
);

callback!(
  /// `probePath(path) -> null | reason`: whether completions can reach the JS thread along
  /// `path` (`'libuv'`, `'threadsafe-function'`) in this process.
  #[cfg(unix)]
  probe_path(env, info) {
    let [path] = env.args::<1>(info).map_err(|_| internal(env))?;
    let name = env.get_string(path).ok_or_else(|| type_error(env, "path must be a string"))?;
    let outcome = match Path::parse(&name) {
      Some(path) => path.probe(),
      None => Err(format!("no completion path named {name:?}")),
    };
    match outcome {
      Ok(()) => Ok(env.null()),
      Err(reason) => env.string(&reason).map_err(|_| internal(env)),
    }
  }
);
