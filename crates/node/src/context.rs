//! One native context: a backend, the Promises of its operations, and their buffers.
//!
//! A single operation's Promise is made and settled by the facade (`lib/native.ts`): it
//! keeps the Promise's resolvers and the operation's buffer in arrays indexed by the
//! operation's slot, and the context hands it each completion as a (slot, result) pair in
//! a shared `Float64Array`, many per call (see [`Context::deliver_pending`]). Those arrays
//! are the pin that keeps the memory the backend writes into alive (the buffer rule in
//! `caio_core`): the facade lets go of a buffer only when its completion is delivered,
//! after it was reaped — not on cancel, not on close. A batch has one Promise, made here,
//! and a strong reference to its views, dropped when its last completion was reaped.
//! Operations beyond the backend's capacity wait in a FIFO of slots, pinned already, and
//! are pushed as completions free room.

use std::collections::VecDeque;
use std::ffi::c_void;
use std::ptr;

use caio_core::{Backend, Completion, Opcode, Operation};
use napi::sys;

use crate::event_loop::CompletionWatcher;
use crate::js::{Env, JsResult};

/// Slot indices take the low bits of a token, a generation the rest, so that a token kept
/// by JavaScript after its operation settled never matches a reused slot. Both parts stay
/// below 2^53 so a token survives the trip through a JS number.
const INDEX_BITS: u32 = 24;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
const GENERATION_LIMIT: u32 = 1 << 29;
/// Tokens of operations inside a batch (which never reach JavaScript) also carry their
/// position in the batch, and the low 8 bits of the batch slot's generation.
const BATCH_BIT: u64 = 1 << 63;
const BATCH_OP_SHIFT: u32 = 32;

/// Results that are not an errno, turned into an AbortError / `ERR_CAIO_CLOSED` by the
/// facade: in a batch's result array, in the completions handed to the facade, and as the
/// code given to its error factory.
pub mod marker {
  /// Cancelled through the batch's AbortSignal.
  pub const ABORTED: f64 = -1_048_577.0;
  /// Dropped from the queue because the context closed.
  pub const CLOSED: f64 = -1_048_578.0;
}

/// What a token names: a slot, and for batch operations their position.
#[derive(Clone, Copy)]
struct TokenParts {
  index: usize,
  generation: u32,
  batch_op: Option<usize>,
}

fn single_token(index: u32, generation: u32) -> u64 {
  (u64::from(generation) << INDEX_BITS) | u64::from(index)
}

fn batch_token(index: u32, generation: u32, op: usize) -> u64 {
  BATCH_BIT
    | ((op as u64) << BATCH_OP_SHIFT)
    | (u64::from(generation & 0xff) << INDEX_BITS)
    | u64::from(index)
}

fn decode(token: u64) -> TokenParts {
  let index = (token & INDEX_MASK) as usize;
  if token & BATCH_BIT == 0 {
    TokenParts {
      index,
      generation: (token >> INDEX_BITS) as u32,
      batch_op: None,
    }
  } else {
    TokenParts {
      index,
      generation: ((token >> INDEX_BITS) & 0xff) as u32,
      batch_op: Some(((token & !BATCH_BIT) >> BATCH_OP_SHIFT) as usize),
    }
  }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum OpState {
  Waiting,
  InBackend,
  Done,
}

/// One `submit(ops)` call: its operations, where each one is, and where results go.
pub struct Batch {
  ops: Vec<Operation>,
  state: Vec<OpState>,
  /// The facade's `Float64Array` of results, one per operation, pinned by `results_pin`.
  results: *mut f64,
  results_pin: sys::napi_ref,
  remaining: usize,
  /// The batch's Promise resolver, set when it starts.
  deferred: sys::napi_deferred,
  /// The pin on the facade's array of the batch's views, set when it starts.
  views_pin: sys::napi_ref,
}

impl Batch {
  /// A batch of `ops` writing its results to `results` (which `results_pin` keeps alive and
  /// which has room for one `f64` per operation).
  pub fn new(ops: Vec<Operation>, results: *mut f64, results_pin: sys::napi_ref) -> Batch {
    let count = ops.len();
    Batch {
      ops,
      state: vec![OpState::Waiting; count],
      results,
      results_pin,
      remaining: count,
      deferred: ptr::null_mut(),
      views_pin: ptr::null_mut(),
    }
  }

  /// The operations from `first` to the end of its linked chain.
  fn chain(&self, first: usize) -> std::ops::Range<usize> {
    let mut end = first;
    while end + 1 < self.ops.len() && self.ops[end].link {
      end += 1;
    }
    first..end + 1
  }

  fn record(&mut self, op: usize, value: f64) {
    // SAFETY: `results` spans one f64 per operation (checked when the batch was made) and is
    // kept alive by `results_pin` until the batch settles; only the JS thread writes it.
    unsafe { *self.results.add(op) = value };
    self.state[op] = OpState::Done;
    self.remaining -= 1;
  }
}

enum Work {
  Free,
  Single { op: Operation, in_backend: bool },
  Batch(Box<Batch>),
}

struct Slot {
  generation: u32,
  abort_requested: bool,
  work: Work,
}

/// Operations settled inline (inside the flush that submitted them) before the context
/// lets the event loop turn. Buffered reads mostly complete inside `io_uring_enter`, so a
/// Promise chain could otherwise keep the JS thread in microtasks forever, starving timers
/// and other I/O.
const INLINE_BUDGET: usize = 4096;

/// While completions arrive from a device rather than inside the submitting call, a tick's
/// operations go to a backend that takes them cheaply (see `Backend::submits_cheaply`) this
/// many at a time as they start, instead of all at the tick's end: the device starts on the
/// first ones while JavaScript is still issuing the rest (a virtio disk completes a whole
/// tick's reads together, so the JavaScript time between their completion and their
/// resubmission is idle time of the device). O_DIRECT 4 KiB reads at 64 in flight, beside
/// fio in one bench run: 0.84-0.88x fio's ops/s -> 0.96x (uring), 1.02x (linux); 2 and 8
/// did worse than 4. Cached reads complete inside the submitting call, and there one submit
/// per tick stays cheaper (early submits cost 5 % at 64 in flight), so the context submits
/// early only after a flush found most of its tick's operations still running.
const EARLY_SUBMIT: usize = 4;

/// A native context, owned by the JavaScript external that wraps it.
pub struct Context {
  env: sys::napi_env,
  backend: Option<Box<dyn Backend>>,
  watcher: Option<CompletionWatcher>,
  slots: Vec<Slot>,
  free: Vec<u32>,
  /// Tokens of operations (or heads of linked chains) waiting for room in the backend.
  waiting: VecDeque<u64>,
  /// Operations pushed into the backend and not yet reaped.
  in_backend: usize,
  completions: Vec<Completion>,
  /// Slots in use: waiting in the FIFO or in the backend.
  outstanding: usize,
  /// Whether the loop handle and the self-reference are held (outstanding > 0).
  active: bool,
  /// Operations pushed into the backend since it was last told to submit.
  unsubmitted: usize,
  /// Operations pushed into the backend since the last flush, early submits included.
  pushed_this_tick: usize,
  /// Whether to submit every `EARLY_SUBMIT` operations rather than once per tick.
  submit_early: bool,
  /// Promises settled from completions so far: flushes wait inline only until one is.
  promises_settled: u64,
  /// Whether the backend was asked not to signal the notifier (see `Backend::set_quiet`).
  quiet: bool,
  closing: bool,
  close_waiters: Vec<sys::napi_deferred>,
  last_token: u64,
  inline_settled: usize,
  inline_loop_time: u64,
  js: Hooks,
  /// The facade's completion list: `delivery_capacity` (slot, result) pairs of f64, of
  /// which the first `delivered` are waiting to be handed over.
  delivery: *mut f64,
  delivery_capacity: usize,
  delivered: usize,
  /// Results recorded while the list was full and a delivery under way.
  undelivered: VecDeque<(u32, f64)>,
  /// Whether `deliver_pending` is handing results over (further up the stack).
  delivering: bool,
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
  /// `(count) => void`: settles the first `count` completions of the completion list.
  /// Strong while operations are outstanding, like `this` (it holds the facade's engine,
  /// which holds the external: a strong reference for life would be a cycle through a
  /// root, and a dropped context would never be collected).
  deliver: sys::napi_ref,
  /// The completion list (a `Float64Array`); strong for the context's life.
  delivery_pin: sys::napi_ref,
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
      in_backend: 0,
      completions: Vec::with_capacity(256),
      outstanding: 0,
      active: false,
      unsubmitted: 0,
      pushed_this_tick: 0,
      submit_early: false,
      promises_settled: 0,
      quiet: false,
      closing: false,
      close_waiters: Vec::new(),
      last_token: 0,
      inline_settled: 0,
      inline_loop_time: 0,
      js: Hooks {
        this: ptr::null_mut(),
        make_error: ptr::null_mut(),
        deliver: ptr::null_mut(),
        delivery_pin: ptr::null_mut(),
        async_context: ptr::null_mut(),
      },
      delivery: ptr::null_mut(),
      delivery_capacity: 0,
      delivered: 0,
      undelivered: VecDeque::new(),
      delivering: false,
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
    deliver: sys::napi_value,
    delivery: sys::napi_value,
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
    let (list, bytes) = env
      .view_bytes(delivery)
      .map_err(|_| "the completion list must be a Float64Array".to_string())?;
    if bytes < 16 || list.align_offset(8) != 0 {
      return Err("the completion list must be a Float64Array of at least 2 elements".into());
    }
    ctx.js.delivery_pin = env
      .reference(delivery, 1)
      .map_err(|_| failed("napi_create_reference"))?;
    ctx.delivery = list.cast();
    ctx.delivery_capacity = bytes / 16;
    ctx.js.deliver = env
      .reference(deliver, 0)
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

  /// Starts one operation and returns its slot, under which the facade keeps its Promise
  /// and buffer until [`Context::deliver_pending`] hands over its result; `None` when the
  /// context is closed. `op.buf`/`op.len` must lie inside the buffer the facade keeps.
  pub fn start(&mut self, env: Env, mut op: Operation) -> Option<u32> {
    if self.closing || self.backend.is_none() {
      return None;
    }
    let index = self.allocate_slot();
    let slot = &mut self.slots[index as usize];
    op.token = single_token(index, slot.generation);
    slot.abort_requested = false;
    slot.work = Work::Single {
      op,
      in_backend: false,
    };
    self.last_token = op.token;
    self.outstanding += 1;
    self.enqueue(op.token);
    if self.submit_early && self.unsubmitted >= EARLY_SUBMIT {
      // The tick's flush is queued and will reap; until then nobody need be signalled.
      self.set_quiet(true);
      self.submit();
    }
    self.sync_activity(env);
    Some(index)
  }

  /// Starts a batch and returns one Promise for all of it, resolved with `undefined` once
  /// every operation has a result in the batch's result array. `pin` keeps the batch's
  /// buffers alive (the facade's array of views); each operation's `buf`/`len` lies inside
  /// one of them.
  pub fn start_batch(
    &mut self,
    env: Env,
    mut batch: Batch,
    pin: sys::napi_value,
  ) -> JsResult<sys::napi_value> {
    let (promise, deferred) = env.promise()?;
    if self.closing || self.backend.is_none() {
      let error = self.make_error(env, marker::CLOSED, &Operation::sync(Opcode::Read, -1, 0));
      env.settle(deferred, false, error);
      env.delete_reference(batch.results_pin);
      return Ok(promise);
    }
    if batch.ops.is_empty() {
      env.settle(deferred, true, env.undefined());
      env.delete_reference(batch.results_pin);
      return Ok(promise);
    }
    batch.views_pin = env.reference(pin, 1)?;
    batch.deferred = deferred;
    let index = self.allocate_slot();
    let generation = self.slots[index as usize].generation;
    for (position, op) in batch.ops.iter_mut().enumerate() {
      op.token = batch_token(index, generation, position);
    }
    let mut heads = Vec::new();
    let mut first = 0;
    while first < batch.ops.len() {
      heads.push(batch.ops[first].token);
      first = batch.chain(first).end;
    }
    self.outstanding += batch.ops.len();
    let slot = &mut self.slots[index as usize];
    slot.abort_requested = false;
    slot.work = Work::Batch(Box::new(batch));
    self.last_token = single_token(index, generation);
    for head in heads {
      self.enqueue(head);
    }
    self.sync_activity(env);
    Ok(promise)
  }

  /// Pushes the operation (or linked chain) `token` names into the backend, or queues it
  /// behind the ones already waiting, so the FIFO keeps its order.
  fn enqueue(&mut self, token: u64) {
    if !(self.waiting.is_empty() && self.push(token)) {
      self.waiting.push_back(token);
    }
  }

  fn allocate_slot(&mut self) -> u32 {
    if let Some(index) = self.free.pop() {
      return index;
    }
    let index = self.slots.len() as u32;
    self.slots.push(Slot {
      generation: 0,
      abort_requested: false,
      work: Work::Free,
    });
    index
  }

  /// Whether the context can take another operation (slot indices fit in `INDEX_BITS`).
  pub fn has_room(&self) -> bool {
    !self.free.is_empty() || (self.slots.len() as u64) < INDEX_MASK
  }

  /// The most operations one linked chain may hold: all of it must fit in the backend.
  pub fn capacity(&self) -> usize {
    self
      .backend
      .as_ref()
      .map_or(0, |backend| backend.capacity())
  }

  /// Hands the operation `token` names — with the rest of its chain, for a linked batch
  /// operation — to the backend; false when the backend has no room for all of it.
  fn push(&mut self, token: u64) -> bool {
    let Some(backend) = self.backend.as_mut() else {
      return false;
    };
    let parts = decode(token);
    let room = backend.capacity().saturating_sub(self.in_backend);
    match (&mut self.slots[parts.index].work, parts.batch_op) {
      (Work::Single { op, in_backend, .. }, None) => {
        if room == 0 {
          return false;
        }
        // SAFETY: the buffer rule: the facade holds the buffer `op.buf` points into under this
        // slot until `deliver_pending` hands over its result, which `settle` records only
        // after this operation's completion was reaped.
        if unsafe { backend.push(*op) }.is_err() {
          return false;
        }
        *in_backend = true;
        self.in_backend += 1;
      }
      (Work::Batch(batch), Some(first)) => {
        let chain = batch.chain(first);
        if chain.len() > room {
          return false;
        }
        for position in chain {
          // SAFETY: the buffer rule: the batch's `views_pin` holds every view of the batch, and is
          // released only when the batch's last completion has been reaped. There is room
          // for the whole chain, so no push in it fails.
          if unsafe { backend.push(batch.ops[position]) }.is_err() {
            break;
          }
          batch.state[position] = OpState::InBackend;
          self.in_backend += 1;
        }
      }
      _ => return false,
    }
    self.unsubmitted += 1;
    self.pushed_this_tick += 1;
    true
  }

  /// Submits everything pushed since the last flush and, within the inline budget, settles
  /// what already completed. The facade calls it once per tick in which operations started.
  pub fn flush(&mut self, env: Env) {
    let loop_time = self
      .watcher
      .as_ref()
      .map_or(0, CompletionWatcher::loop_time);
    if loop_time != self.inline_loop_time {
      self.inline_loop_time = loop_time;
      self.inline_settled = 0;
    }
    let inline = self.inline_settled < INLINE_BUDGET;
    if inline {
      self.set_quiet(true);
    }
    self.submit();
    let pushed = std::mem::take(&mut self.pushed_this_tick);
    if inline {
      let promises_before = self.promises_settled;
      let mut settled = self.reap_and_settle(env);
      // Completions another thread is about to post (SQPOLL) are cheaper to wait a few
      // microseconds for than to be woken for — until a Promise settles, whose reaction
      // will issue more work: beyond that, waiting would only keep JavaScript from it.
      while self.promises_settled == promises_before
        && self.in_backend > 0
        && self.inline_settled + settled < INLINE_BUDGET
        && self
          .backend
          .as_mut()
          .is_some_and(|backend| backend.await_inline())
      {
        settled += self.reap_and_settle(env);
      }
      self.inline_settled += settled;
      if pushed >= EARLY_SUBMIT {
        self.submit_early = settled * 2 < pushed
          && self
            .backend
            .as_ref()
            .is_some_and(|backend| backend.submits_cheaply());
      }
    }
    self.set_quiet(false);
    self.sync_activity(env);
  }

  fn set_quiet(&mut self, quiet: bool) {
    if self.quiet == quiet {
      return;
    }
    if let Some(backend) = self.backend.as_mut() {
      backend.set_quiet(quiet);
      self.quiet = quiet;
    }
  }

  fn submit(&mut self) {
    if self.unsubmitted > 0 {
      self.submit_now();
    }
  }

  /// Submits even with nothing pushed: cancel requests go in this way.
  fn submit_now(&mut self) {
    if let Some(backend) = self.backend.as_mut() {
      // A failed submit leaves the operations with the backend, which retries them on the
      // next call; they are never lost.
      if backend.submit().is_ok() {
        self.unsubmitted = 0;
      }
    }
  }

  /// Settles every completion that is ready, refilling the backend from the FIFO as room
  /// frees up. Returns how many operations it settled.
  fn reap_and_settle(&mut self, env: Env) -> usize {
    let mut settled = 0;
    while let Some(backend) = self.backend.as_mut() {
      let mut ready = std::mem::take(&mut self.completions);
      backend.reap(&mut ready);
      if ready.is_empty() {
        self.completions = ready;
        break;
      }
      settled += ready.len();
      self.in_backend -= ready.len();
      for completion in ready.drain(..) {
        self.settle(env, completion);
      }
      self.completions = ready;
      while let Some(&token) = self.waiting.front() {
        if !self.push(token) {
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
    let parts = decode(completion.token);
    let Some(slot) = self.slots.get_mut(parts.index) else {
      return;
    };
    let generation = if parts.batch_op.is_some() {
      slot.generation & 0xff
    } else {
      slot.generation
    };
    if matches!(slot.work, Work::Free) || parts.generation != generation {
      return;
    }
    let value = if slot.abort_requested && completion.result == -i64::from(libc::ECANCELED) {
      marker::ABORTED
    } else {
      completion.result as f64
    };
    match (&mut slot.work, parts.batch_op) {
      (Work::Single { .. }, None) => {
        self.retire_slot(parts.index);
        self.outstanding -= 1;
        self.promises_settled += 1;
        self.record_delivery(env, parts.index as u32, value);
      }
      (Work::Batch(batch), Some(position))
        if batch.state.get(position) == Some(&OpState::InBackend) =>
      {
        batch.record(position, value);
        self.outstanding -= 1;
        self.finish_batch_if_done(env, parts.index);
      }
      _ => {}
    }
  }

  /// Resolves a batch's Promise once all its operations have results.
  fn finish_batch_if_done(&mut self, env: Env, index: usize) {
    let slot = &mut self.slots[index];
    let Work::Batch(batch) = &slot.work else {
      return;
    };
    if batch.remaining > 0 {
      return;
    }
    env.settle(batch.deferred, true, env.undefined());
    self.promises_settled += 1;
    env.delete_reference(batch.views_pin);
    env.delete_reference(batch.results_pin);
    self.free_slot(index);
  }

  /// Queues a single operation's result for the facade: a byte count, a negative errno, or
  /// a [`marker`]. The list is handed over when it is full and whenever control is about to
  /// return to JavaScript (`sync_activity`).
  fn record_delivery(&mut self, env: Env, index: u32, value: f64) {
    if self.delivered == self.delivery_capacity {
      self.deliver_pending(env);
      if self.delivered == self.delivery_capacity {
        // Still full: a delivery is under way further up the stack, and hands this over
        // once it has room.
        self.undelivered.push_back((index, value));
        return;
      }
    }
    self.write_delivery(index, value);
  }

  fn write_delivery(&mut self, index: u32, value: f64) {
    debug_assert!(self.delivered < self.delivery_capacity);
    // SAFETY: `delivery` spans `delivery_capacity` pairs (checked in `attach`) of a
    // Float64Array that `delivery_pin` keeps alive for the context's life, and `delivered` is
    // below that; only the JS thread touches it.
    unsafe {
      let pair = self.delivery.add(2 * self.delivered);
      *pair = f64::from(index);
      *pair.add(1) = value;
    }
    self.delivered += 1;
  }

  /// Hands the recorded results to the facade, which settles their Promises and lets go of
  /// their buffers; only then are their slots free for new operations.
  ///
  /// Settling a Promise runs no user code — except a `then` getter that someone put on
  /// `Uint8Array.prototype` (resolving with a Buffer looks it up), which may start, cancel
  /// or close operations of this very context while the facade is still reading the list.
  /// So results recorded meanwhile go after the pairs being read (or wait in
  /// `undelivered`), a nested call hands nothing over, and a slot is reused only after its
  /// own result was handed over: a new operation never receives an old one's result.
  fn deliver_pending(&mut self, env: Env) {
    if self.delivering {
      return;
    }
    self.delivering = true;
    while self.delivered > 0 {
      let count = self.delivered;
      let deliver = env.reference_value(self.js.deliver);
      // A null `deliver`: the facade is gone, and nobody waits for these Promises.
      if !deliver.is_null() {
        let argument = env.number(count as f64).unwrap_or_else(|_| env.undefined());
        call_or_clear(env, deliver, &[argument]);
      }
      // SAFETY: as in `write_delivery`; `count <= delivered <= delivery_capacity`, so both
      // ranges lie inside the list, and `ptr::copy` allows them to overlap.
      unsafe {
        for pair in 0..count {
          self.free.push(*self.delivery.add(2 * pair) as u32);
        }
        ptr::copy(
          self.delivery.add(2 * count),
          self.delivery,
          2 * (self.delivered - count),
        );
      }
      self.delivered -= count;
      while self.delivered < self.delivery_capacity {
        let Some((index, value)) = self.undelivered.pop_front() else {
          break;
        };
        self.write_delivery(index, value);
      }
    }
    self.delivering = false;
  }

  /// Ends a slot's operation; the slot is free for reuse once its result was delivered.
  fn retire_slot(&mut self, index: usize) {
    let slot = &mut self.slots[index];
    slot.work = Work::Free;
    slot.generation = (slot.generation + 1) % GENERATION_LIMIT;
  }

  fn free_slot(&mut self, index: usize) {
    self.retire_slot(index);
    self.free.push(index as u32);
  }

  /// Builds the facade's Node-shaped error: `code` is a negative errno or a [`marker`].
  fn make_error(&self, env: Env, code: f64, op: &Operation) -> sys::napi_value {
    let factory = env.reference_value(self.js.make_error);
    let number = |n: f64| env.number(n).unwrap_or_else(|_| env.undefined());
    let args = [
      number(code),
      number(f64::from(op.opcode as u8)),
      number(f64::from(op.fd)),
    ];
    call_or_clear(env, factory, &args)
  }

  /// Asks for the operation or batch `token` (as `last_token` gave it) to be cancelled:
  /// what is still in the FIFO is dropped and settles as aborted at once; what is in the
  /// backend is cancelled there, and settles as aborted only if the cancellation took effect.
  pub fn cancel(&mut self, env: Env, token: u64) {
    let parts = decode(token);
    let Some(slot) = self.slots.get_mut(parts.index) else {
      return;
    };
    if matches!(slot.work, Work::Free)
      || parts.batch_op.is_some()
      || parts.generation != slot.generation
    {
      return; // already settled
    }
    slot.abort_requested = true;
    let mut to_cancel = Vec::new();
    match &mut slot.work {
      Work::Single {
        in_backend: true, ..
      } => to_cancel.push(token),
      Work::Single {
        in_backend: false, ..
      } => {
        self.waiting.retain(|&waiting| waiting != token);
        self.settle_unsubmitted(env, token);
      }
      Work::Batch(batch) => {
        to_cancel.extend(
          (0..batch.ops.len())
            .filter(|&i| batch.state[i] == OpState::InBackend)
            .map(|i| batch.ops[i].token),
        );
        let index = parts.index;
        self
          .waiting
          .retain(|&waiting| decode(waiting).index != index);
        self.drop_waiting_batch_ops(env, index, marker::ABORTED);
      }
      Work::Free => {}
    }
    if !to_cancel.is_empty() {
      if let Some(backend) = self.backend.as_mut() {
        for token in to_cancel {
          backend.cancel(token);
        }
        self.submit_now();
      }
    }
    self.sync_activity(env);
  }

  /// Settles a single operation that never reached the backend as aborted (or closed).
  fn settle_unsubmitted(&mut self, env: Env, token: u64) {
    let index = decode(token).index;
    if !matches!(self.slots[index].work, Work::Single { .. }) {
      return;
    }
    let value = if self.closing {
      marker::CLOSED
    } else {
      marker::ABORTED
    };
    self.retire_slot(index);
    self.outstanding -= 1;
    self.record_delivery(env, index as u32, value);
  }

  /// Gives every operation of batch `index` still waiting in the FIFO the result `value`.
  fn drop_waiting_batch_ops(&mut self, env: Env, index: usize, value: f64) {
    let Work::Batch(batch) = &mut self.slots[index].work else {
      return;
    };
    let mut dropped = 0;
    for position in 0..batch.ops.len() {
      if batch.state[position] == OpState::Waiting {
        batch.record(position, value);
        dropped += 1;
      }
    }
    self.outstanding -= dropped;
    self.finish_batch_if_done(env, index);
  }

  /// Starts closing: operations still in the FIFO reject with `ERR_CAIO_CLOSED`, those in
  /// the backend finish, then the backend and loop handle are released and every Promise
  /// `close` returned resolves.
  pub fn close(&mut self, env: Env) -> JsResult<sys::napi_value> {
    let (promise, deferred) = env.promise()?;
    self.close_waiters.push(deferred);
    if !self.closing {
      self.closing = true;
      while let Some(token) = self.waiting.pop_front() {
        let parts = decode(token);
        if parts.batch_op.is_some() {
          self.drop_waiting_batch_ops(env, parts.index, marker::CLOSED);
        } else {
          self.settle_unsubmitted(env, token);
        }
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
    // The operations' Promises settle before the close's.
    self.deliver_pending(env);
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

  /// Tokens of every operation currently in the backend.
  fn tokens_in_backend(&self) -> Vec<u64> {
    let mut tokens = Vec::new();
    for slot in self.slots.iter() {
      match &slot.work {
        Work::Single {
          op,
          in_backend: true,
          ..
        } => tokens.push(op.token),
        Work::Batch(batch) => tokens.extend(
          (0..batch.ops.len())
            .filter(|&i| batch.state[i] == OpState::InBackend)
            .map(|i| batch.ops[i].token),
        ),
        _ => {}
      }
    }
    tokens
  }

  /// Hands over recorded results, then holds the loop handle and the references to the
  /// external and the facade's `deliver` exactly while operations are outstanding. Every
  /// path from JavaScript into the context, and the loop's callback, ends here.
  fn sync_activity(&mut self, env: Env) {
    self.deliver_pending(env);
    let busy = self.outstanding > 0;
    if busy == self.active {
      return;
    }
    self.active = busy;
    if let Some(watcher) = self.watcher.as_mut() {
      watcher.set_referenced(busy);
    }
    let mut count = 0;
    // SAFETY: `this` and `deliver` are the live references created in `attach`.
    unsafe {
      for reference in [self.js.this, self.js.deliver] {
        if busy {
          sys::napi_reference_ref(env.0, reference, &mut count);
        } else {
          sys::napi_reference_unref(env.0, reference, &mut count);
        }
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
    env.delete_reference(self.js.deliver);
    env.delete_reference(self.js.delivery_pin);
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
    let tokens = ctx.tokens_in_backend();
    if let Some(backend) = ctx.backend.as_mut() {
      for token in tokens {
        backend.cancel(token);
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
