//! One native context: a backend, the Promises of its operations, and their buffers.
//!
//! Every operation gets a slot holding its Promise resolver and a strong reference to its
//! buffer. The reference is the pin that keeps the memory the backend writes into alive
//! (the buffer rule in `caio_core`): it is dropped in [`Context::settle`], after the
//! completion was reaped, and nowhere else — not on cancel, not on close. Operations beyond
//! the backend's capacity wait in a FIFO of slots, pinned already, and are pushed as
//! completions free room.

use std::collections::VecDeque;
use std::ffi::c_void;
use std::ptr;

use caio_core::{Backend, Completion, Opcode, Operation};
use napi::sys;

use crate::event_loop::CompletionWatcher;
use crate::js::{Env, JsResult};

/// How a fulfilled operation's Promise resolves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fulfil {
  /// With the byte count.
  Count,
  /// With the buffer itself (or a view of the bytes read, when fewer came).
  View,
  /// With `undefined` (syncs).
  Nothing,
}

impl Fulfil {
  pub fn from_u32(n: u32) -> Fulfil {
    match n {
      1 => Fulfil::View,
      2 => Fulfil::Nothing,
      _ => Fulfil::Count,
    }
  }
}

/// The reasons besides an errno that the error factory in JavaScript knows.
pub mod reason {
  /// The operation was cancelled through its AbortSignal.
  pub const ABORTED: i32 = 1;
  /// The context was closed before the operation reached the kernel.
  pub const CLOSED: i32 = 2;
}

/// Slot indices take the low bits of a token, a generation the rest, so that a token kept
/// by JavaScript after its operation settled never matches a reused slot. Both parts stay
/// below 2^53 so a token survives the trip through a JS number.
const INDEX_BITS: u32 = 24;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
const GENERATION_LIMIT: u32 = 1 << 29;

struct Slot {
  generation: u32,
  /// Null when the slot is free.
  deferred: sys::napi_deferred,
  /// The buffer's pin; null for syncs.
  pin: sys::napi_ref,
  op: Operation,
  fulfil: Fulfil,
  abort_requested: bool,
  in_backend: bool,
}

/// Operations settled inline (inside the flush that submitted them) before the context
/// lets the event loop turn. Buffered reads mostly complete inside `io_uring_enter`, so a
/// Promise chain could otherwise keep the JS thread in microtasks forever, starving timers
/// and other I/O.
const INLINE_BUDGET: usize = 4096;

/// A native context, owned by the JavaScript external that wraps it.
pub struct Context {
  env: sys::napi_env,
  backend: Option<Box<dyn Backend>>,
  watcher: Option<CompletionWatcher>,
  slots: Vec<Slot>,
  free: Vec<u32>,
  waiting: VecDeque<u32>,
  completions: Vec<Completion>,
  /// Slots in use: waiting in the FIFO or in the backend.
  outstanding: usize,
  /// Whether the loop handle and the self-reference are held (outstanding > 0).
  active: bool,
  unsubmitted: bool,
  closing: bool,
  close_waiters: Vec<sys::napi_deferred>,
  last_token: u64,
  inline_settled: usize,
  inline_loop_time: u64,
  js: Hooks,
  cleanup_hook: sys::napi_async_cleanup_hook_handle,
  /// What the backend turned out to be, for `details()`.
  pub details: crate::backends::Details,
}

/// JavaScript values the context keeps for its whole life.
struct Hooks {
  /// The external wrapping this context; strong while operations are outstanding, so a
  /// context dropped by its user is not collected under the kernel's feet.
  this: sys::napi_ref,
  /// `(code, opcode) => Error`: the facade's one error factory.
  make_error: sys::napi_ref,
  /// `(view, n) => view.subarray(0, n)`, for reads that came back short.
  shrink: sys::napi_ref,
  async_context: sys::napi_async_context,
}

impl Context {
  /// Wraps `backend` in a context for `env`; [`Context::attach`] must follow once the
  /// context has its final address.
  pub fn new(env: sys::napi_env, backend: Box<dyn Backend>) -> Context {
    Context {
      env,
      backend: Some(backend),
      watcher: None,
      slots: Vec::new(),
      free: Vec::new(),
      waiting: VecDeque::new(),
      completions: Vec::with_capacity(256),
      outstanding: 0,
      active: false,
      unsubmitted: false,
      closing: false,
      close_waiters: Vec::new(),
      last_token: 0,
      inline_settled: 0,
      inline_loop_time: 0,
      js: Hooks {
        this: ptr::null_mut(),
        make_error: ptr::null_mut(),
        shrink: ptr::null_mut(),
        async_context: ptr::null_mut(),
      },
      cleanup_hook: ptr::null_mut(),
      details: Default::default(),
    }
  }

  /// Connects a boxed context to its JavaScript wrapper and to the event loop.
  ///
  /// # Safety
  /// `this` points at the boxed context, which stays at that address until the
  /// external's finalizer frees it.
  pub unsafe fn attach(
    this: *mut Context,
    env: Env,
    external: sys::napi_value,
    make_error: sys::napi_value,
    shrink: sys::napi_value,
  ) -> Result<(), String> {
    let failed = |what: &str| format!("{what} failed while creating the context");
    // SAFETY: the caller guarantees `this` is the live, boxed context.
    let ctx = unsafe { &mut *this };
    ctx.js.this = env
      .reference(external, 0)
      .map_err(|_| failed("napi_create_reference"))?;
    ctx.js.make_error = env
      .reference(make_error, 1)
      .map_err(|_| failed("napi_create_reference"))?;
    ctx.js.shrink = env
      .reference(shrink, 1)
      .map_err(|_| failed("napi_create_reference"))?;
    let name = env
      .string("caio")
      .map_err(|_| failed("napi_create_string"))?;
    // SAFETY: out-pointer is a field of the live context; a null resource lets Node make one.
    let status =
      unsafe { sys::napi_async_init(env.0, ptr::null_mut(), name, &mut ctx.js.async_context) };
    crate::js::check(status).map_err(|_| failed("napi_async_init"))?;
    let fd = match &ctx.backend {
      Some(backend) => backend.notifier().fd(),
      None => return Err("the context has no backend".into()),
    };
    // SAFETY: `this` stays valid until the watcher is closed (in `release` or teardown).
    ctx.watcher =
      Some(unsafe { CompletionWatcher::start(env.0, fd, on_completions_ready, this.cast())? });
    // SAFETY: `this` outlives the hook: the finalizer removes it before freeing the context.
    let status = unsafe {
      sys::napi_add_async_cleanup_hook(
        env.0,
        Some(on_env_teardown),
        this.cast(),
        &mut ctx.cleanup_hook,
      )
    };
    crate::js::check(status).map_err(|_| failed("napi_add_async_cleanup_hook"))?;
    Ok(())
  }

  /// The token of the most recently started operation, for the facade's AbortSignal glue.
  pub fn last_token(&self) -> u64 {
    self.last_token
  }

  /// Starts one operation and returns its Promise. `pin` is the buffer to keep alive (null
  /// for syncs); `op.buf`/`op.len` must lie inside it.
  pub fn start(
    &mut self,
    env: Env,
    mut op: Operation,
    fulfil: Fulfil,
    pin: sys::napi_value,
  ) -> JsResult<sys::napi_value> {
    let (promise, deferred) = env.promise()?;
    if self.closing || self.backend.is_none() {
      let error = self.make_error(env, reason::CLOSED, op.opcode);
      env.settle(deferred, false, error);
      return Ok(promise);
    }
    let pin = if pin.is_null() {
      ptr::null_mut()
    } else {
      env.reference(pin, 1)?
    };
    let index = self.allocate_slot();
    let slot = &mut self.slots[index as usize];
    op.token = (u64::from(slot.generation) << INDEX_BITS) | u64::from(index);
    slot.deferred = deferred;
    slot.pin = pin;
    slot.op = op;
    slot.fulfil = fulfil;
    slot.abort_requested = false;
    slot.in_backend = false;
    self.last_token = op.token;
    self.outstanding += 1;
    if !(self.waiting.is_empty() && self.push(index)) {
      self.waiting.push_back(index);
    }
    self.sync_activity(env);
    Ok(promise)
  }

  fn allocate_slot(&mut self) -> u32 {
    if let Some(index) = self.free.pop() {
      return index;
    }
    let index = self.slots.len() as u32;
    self.slots.push(Slot {
      generation: 0,
      deferred: ptr::null_mut(),
      pin: ptr::null_mut(),
      op: Operation::sync(Opcode::Fsync, -1, 0),
      fulfil: Fulfil::Nothing,
      abort_requested: false,
      in_backend: false,
    });
    index
  }

  /// Whether the context can take another operation (the FIFO holds slot indices within
  /// `INDEX_BITS`).
  pub fn has_room(&self) -> bool {
    !self.free.is_empty() || (self.slots.len() as u64) < INDEX_MASK
  }

  /// Hands a slot's operation to the backend; false when the backend is full.
  fn push(&mut self, index: u32) -> bool {
    let Some(backend) = self.backend.as_mut() else {
      return false;
    };
    let slot = &mut self.slots[index as usize];
    // SAFETY: the buffer rule: `slot.pin` holds the buffer `op.buf` points into, and is
    // released only in `settle`, after this operation's completion was reaped.
    if unsafe { backend.push(slot.op) }.is_err() {
      return false;
    }
    slot.in_backend = true;
    self.unsubmitted = true;
    true
  }

  /// Submits everything pushed since the last flush and, within the inline budget, settles
  /// what already completed. The facade calls it once per tick in which operations started.
  pub fn flush(&mut self, env: Env) {
    self.submit();
    let loop_time = self
      .watcher
      .as_ref()
      .map_or(0, CompletionWatcher::loop_time);
    if loop_time != self.inline_loop_time {
      self.inline_loop_time = loop_time;
      self.inline_settled = 0;
    }
    if self.inline_settled < INLINE_BUDGET {
      self.inline_settled += self.reap_and_settle(env);
    }
    self.sync_activity(env);
  }

  fn submit(&mut self) {
    if !self.unsubmitted {
      return;
    }
    if let Some(backend) = self.backend.as_mut() {
      // A failed submit leaves the operations with the backend, which retries them on the
      // next call; they are never lost.
      if backend.submit().is_ok() {
        self.unsubmitted = false;
      }
    }
  }

  /// Settles every completion that is ready, refilling the backend from the FIFO as room
  /// frees up. Returns how many operations it settled.
  fn reap_and_settle(&mut self, env: Env) -> usize {
    let mut settled = 0;
    loop {
      let Some(backend) = self.backend.as_mut() else {
        break;
      };
      let mut ready = std::mem::take(&mut self.completions);
      backend.reap(&mut ready);
      if ready.is_empty() {
        self.completions = ready;
        break;
      }
      settled += ready.len();
      for completion in ready.drain(..) {
        self.settle(env, completion);
      }
      self.completions = ready;
      while let Some(&index) = self.waiting.front() {
        if !self.push(index) {
          break;
        }
        self.waiting.pop_front();
      }
      self.submit();
    }
    if self.closing && self.outstanding == 0 {
      self.finish_close(env);
    }
    settled
  }

  fn settle(&mut self, env: Env, completion: Completion) {
    let index = (completion.token & INDEX_MASK) as usize;
    let Some(slot) = self.slots.get(index) else {
      return;
    };
    if slot.deferred.is_null() || (completion.token >> INDEX_BITS) as u32 != slot.generation {
      return;
    }
    let (deferred, pin, op, fulfil, aborted) = (
      slot.deferred,
      slot.pin,
      slot.op,
      slot.fulfil,
      slot.abort_requested,
    );
    let (fulfilled, value) = if completion.result >= 0 {
      (
        true,
        self.fulfilment(env, fulfil, pin, op.len, completion.result as u64),
      )
    } else {
      let errno = (-completion.result) as i32;
      let code = if aborted && errno == libc::ECANCELED {
        reason::ABORTED
      } else {
        -errno
      };
      (false, self.make_error(env, code, op.opcode))
    };
    env.settle(deferred, fulfilled, value);
    env.delete_reference(pin);
    self.free_slot(index);
  }

  fn fulfilment(
    &self,
    env: Env,
    fulfil: Fulfil,
    pin: sys::napi_ref,
    len: u32,
    count: u64,
  ) -> sys::napi_value {
    match fulfil {
      Fulfil::Count => env.number(count as f64).unwrap_or_else(|_| env.undefined()),
      Fulfil::Nothing => env.undefined(),
      Fulfil::View => {
        let view = env.reference_value(pin);
        if count == u64::from(len) {
          return view;
        }
        let shrink = env.reference_value(self.js.shrink);
        let count = env.number(count as f64).unwrap_or_else(|_| env.undefined());
        call_or_clear(env, shrink, &[view, count])
      }
    }
  }

  fn free_slot(&mut self, index: usize) {
    let slot = &mut self.slots[index];
    slot.deferred = ptr::null_mut();
    slot.pin = ptr::null_mut();
    slot.generation = (slot.generation + 1) % GENERATION_LIMIT;
    self.free.push(index as u32);
    self.outstanding -= 1;
  }

  /// Builds the facade's Node-shaped error: `code` is a negative errno or a [`reason`].
  fn make_error(&self, env: Env, code: i32, opcode: Opcode) -> sys::napi_value {
    let factory = env.reference_value(self.js.make_error);
    let args = [
      env
        .number(f64::from(code))
        .unwrap_or_else(|_| env.undefined()),
      env
        .number(f64::from(opcode as u8))
        .unwrap_or_else(|_| env.undefined()),
    ];
    call_or_clear(env, factory, &args)
  }

  /// Asks for the operation `token` to be cancelled: one still in the FIFO is dropped and
  /// rejected at once; one in the backend is cancelled there, and rejects with an
  /// AbortError only if the cancellation took effect.
  pub fn cancel(&mut self, env: Env, token: u64) {
    let index = (token & INDEX_MASK) as usize;
    let Some(slot) = self.slots.get_mut(index) else {
      return;
    };
    if slot.deferred.is_null() || (token >> INDEX_BITS) as u32 != slot.generation {
      return; // already settled
    }
    slot.abort_requested = true;
    if slot.in_backend {
      if let Some(backend) = self.backend.as_mut() {
        backend.cancel(token);
        self.unsubmitted = true;
        self.submit();
      }
      return;
    }
    if let Some(position) = self.waiting.iter().position(|&i| i as usize == index) {
      self.waiting.remove(position);
    }
    self.settle(
      env,
      Completion {
        token,
        result: -i64::from(libc::ECANCELED),
      },
    );
    self.sync_activity(env);
  }

  /// Starts closing: operations still in the FIFO reject with `ERR_CAIO_CLOSED`, those in
  /// the backend finish, then the backend and loop handle are released and every Promise
  /// `close` returned resolves.
  pub fn close(&mut self, env: Env) -> JsResult<sys::napi_value> {
    let (promise, deferred) = env.promise()?;
    self.close_waiters.push(deferred);
    if !self.closing {
      self.closing = true;
      while let Some(index) = self.waiting.pop_front() {
        let slot = &self.slots[index as usize];
        let (deferred, pin, opcode) = (slot.deferred, slot.pin, slot.op.opcode);
        let error = self.make_error(env, reason::CLOSED, opcode);
        env.settle(deferred, false, error);
        env.delete_reference(pin);
        self.free_slot(index as usize);
      }
      self.submit();
    }
    if self.outstanding == 0 {
      self.finish_close(env);
    }
    self.sync_activity(env);
    Ok(promise)
  }

  fn finish_close(&mut self, env: Env) {
    self.release();
    let undefined = env.undefined();
    for deferred in self.close_waiters.drain(..) {
      env.settle(deferred, true, undefined);
    }
  }

  /// Drops the backend (which returns only once nothing it ran can touch a buffer) and
  /// stops watching the loop.
  fn release(&mut self) {
    self.backend = None;
    if let Some(watcher) = self.watcher.take() {
      watcher.close(None);
    }
  }

  /// Holds the loop handle and the self-reference exactly while operations are outstanding.
  fn sync_activity(&mut self, env: Env) {
    let busy = self.outstanding > 0;
    if busy == self.active {
      return;
    }
    self.active = busy;
    if let Some(watcher) = self.watcher.as_mut() {
      watcher.set_referenced(busy);
    }
    let mut count = 0;
    // SAFETY: `this` is the live reference created in `attach`.
    unsafe {
      if busy {
        sys::napi_reference_ref(env.0, self.js.this, &mut count);
      } else {
        sys::napi_reference_unref(env.0, self.js.this, &mut count);
      }
    }
  }

  /// The finalizer's half of teardown: everything JavaScript-side the context holds.
  ///
  /// # Safety
  /// Called once, from the external's finalizer, with `env` live.
  pub unsafe fn finalize(mut self: Box<Self>, env: Env) {
    self.release();
    if !self.cleanup_hook.is_null() {
      // SAFETY: the hook was registered in `attach` and has not run (it nulls the handle).
      unsafe { sys::napi_remove_async_cleanup_hook(self.cleanup_hook) };
    }
    env.delete_reference(self.js.make_error);
    env.delete_reference(self.js.shrink);
    env.delete_reference(self.js.this);
    if !self.js.async_context.is_null() {
      // SAFETY: created in `attach`, destroyed once here.
      unsafe { sys::napi_async_destroy(env.0, self.js.async_context) };
    }
  }
}

/// Calls a facade helper; if it threw, clears the exception so the addon's next Node-API
/// call works, and yields `undefined`.
fn call_or_clear(env: Env, f: sys::napi_value, args: &[sys::napi_value]) -> sys::napi_value {
  match env.call(f, args) {
    Ok(value) => value,
    Err(_) => {
      let mut exception = ptr::null_mut();
      // SAFETY: out-pointer is a local.
      unsafe { sys::napi_get_and_clear_last_exception(env.0, &mut exception) };
      env.undefined()
    }
  }
}

/// The loop watcher's callback: completions may be ready.
///
/// # Safety
/// `target` is the context that started the watcher; it is live while the watcher is.
unsafe fn on_completions_ready(target: *mut c_void) {
  let this = target.cast::<Context>();
  // SAFETY: the watcher is closed before the context is freed, so `this` is live; the
  // borrow ends before any JavaScript runs that might call back into the context.
  let (env, async_context) = unsafe {
    let ctx = &mut *this;
    if let Some(backend) = ctx.backend.as_ref() {
      backend.notifier().clear();
    }
    (ctx.env, ctx.js.async_context)
  };
  let env = Env(env);
  let mut handle_scope = ptr::null_mut();
  let mut callback_scope = ptr::null_mut();
  // SAFETY: on the JS thread between loop phases, where opening scopes is allowed; the
  // callback scope makes Node run microtasks and nextTicks when it closes, as for any
  // callback from native code. The resource object is ignored by Node for this call.
  unsafe {
    sys::napi_open_handle_scope(env.0, &mut handle_scope);
    let mut resource = ptr::null_mut();
    sys::napi_create_object(env.0, &mut resource);
    sys::napi_open_callback_scope(env.0, resource, async_context, &mut callback_scope);
    {
      let ctx = &mut *this;
      ctx.inline_settled = 0;
      ctx.reap_and_settle(env);
      ctx.sync_activity(env);
    }
    // Microtasks run here and may start, flush or close operations on this very context.
    sys::napi_close_callback_scope(env.0, callback_scope);
    sys::napi_close_handle_scope(env.0, handle_scope);
  }
}

/// The environment is going away (a worker ends, or the process exits) while the context
/// is still alive: wait for the backend, release the loop handle, and let Node go on once
/// libuv has closed it.
unsafe extern "C" fn on_env_teardown(
  handle: sys::napi_async_cleanup_hook_handle,
  target: *mut c_void,
) {
  // SAFETY: the hook is removed before the context is freed, so `target` is live. No
  // JavaScript runs during teardown.
  let watcher = unsafe {
    let ctx = &mut *target.cast::<Context>();
    ctx.cleanup_hook = ptr::null_mut();
    ctx.closing = true;
    if let Some(backend) = ctx.backend.as_mut() {
      for slot in ctx
        .slots
        .iter()
        .filter(|slot| slot.in_backend && !slot.deferred.is_null())
      {
        backend.cancel(slot.op.token);
      }
      let _ = backend.submit();
    }
    // Dropping the backend blocks until every operation in it has completed.
    ctx.backend = None;
    ctx.watcher.take()
  };
  match watcher {
    Some(watcher) => watcher.close(Some((remove_cleanup_hook, handle.cast()))),
    // SAFETY: `handle` is this hook's own registration.
    None => unsafe { remove_cleanup_hook(handle.cast()) },
  }
}

unsafe fn remove_cleanup_hook(handle: *mut c_void) {
  // SAFETY: `handle` is the registration passed to `on_env_teardown`, removed once.
  unsafe { sys::napi_remove_async_cleanup_hook(handle.cast()) };
}
