//! The scheduler over the scripted backend (`crate::fake`).

use caio_core::{Opcode, Operation, Share, Submitted, Traits};

use crate::fake::{fake, Call, CancelMode, Fake, OnSubmit, ECANCELED};
use crate::policy::{EARLY_SUBMIT, INLINE_BUDGET, INLINE_TIME_NS};
use crate::token::{self, INDEX_MASK};
use crate::wire::result::{ABORTED, CLOSED};
use crate::wire::CLOSED_SLOT;
use crate::{Refused, Scheduler};

const EIO: i64 = -5;

fn traits(capacity: usize, links: bool, cheap_submit: bool) -> Traits {
  Traits {
    capacity,
    links,
    cheap_submit,
  }
}

fn scheduler(capacity: usize, links: bool) -> (Scheduler, Fake) {
  with_traits(traits(capacity, links, false))
}

/// Flushes, completes `token` with `result` in the fake, and reaps it.
fn flush_complete_reap(s: &mut Scheduler, f: &Fake, token: u64, result: i64) {
  s.flush(1);
  f.complete(token, result);
  s.on_ready();
}

fn with_traits(traits: Traits) -> (Scheduler, Fake) {
  let (backend, fake) = fake(traits);
  (Scheduler::new(backend), fake)
}

fn fsync() -> Operation {
  Operation::sync(Opcode::Fsync, 3, 0)
}

fn linked(op: Operation) -> Operation {
  Operation { link: true, ..op }
}

thread_local! {
  /// The buffers of the test running on this thread: freed with the thread, after the test
  /// and its scheduler are gone.
  /// Vecs, not Boxes: moving a Box would retag it and invalidate the pointer the fake
  /// holds, under Miri's Stacked Borrows.
  static BUFFERS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A read of `len` bytes into memory that outlives the test's scheduler: the fake writes
/// into it when it reaps a positive result.
fn read(len: u32) -> Operation {
  let mut buffer = vec![0u8; len as usize];
  let buf = buffer.as_mut_ptr();
  BUFFERS.with(|buffers| buffers.borrow_mut().push(buffer));
  Operation {
    opcode: Opcode::Read,
    fd: 3,
    offset: 0,
    buf,
    len,
    token: 0,
    priority: 0,
    link: false,
    share: Share::Alone,
  }
}

fn write(len: u32) -> Operation {
  Operation {
    opcode: Opcode::Write,
    ..read(len)
  }
}

fn start(s: &mut Scheduler, op: Operation) -> u64 {
  // SAFETY: syncs carry no buffer, and the buffers of `read` outlive the scheduler.
  unsafe { s.start(op) }.expect("started")
}

/// A batch's results array, owned outside the scheduler and read only through the pointer
/// the scheduler was given, freed when the test ends.
struct Results {
  ptr: *mut f64,
  len: usize,
}

impl Results {
  fn new(len: usize) -> Results {
    let ptr = Box::into_raw(vec![f64::NAN; len].into_boxed_slice()) as *mut f64;
    Results { ptr, len }
  }

  fn get(&self) -> Vec<f64> {
    // SAFETY: `ptr` holds `len` f64s until drop; the scheduler is not running.
    unsafe { std::slice::from_raw_parts(self.ptr, self.len) }.to_vec()
  }
}

impl Drop for Results {
  fn drop(&mut self) {
    let slice = std::ptr::slice_from_raw_parts_mut(self.ptr, self.len);
    // SAFETY: made by `Box::into_raw` in `new`, freed once.
    drop(unsafe { Box::from_raw(slice) });
  }
}

fn try_batch(s: &mut Scheduler, ops: Vec<Operation>) -> Result<(u64, Results), Refused> {
  let results = Results::new(ops.len());
  // SAFETY: the ops' buffers outlive the scheduler (see `read`); every test keeps `results`
  // alive until after the batch is delivered or the scheduler is gone.
  unsafe { s.start_batch(ops, results.ptr) }.map(|token| (token, results))
}

fn batch(s: &mut Scheduler, ops: Vec<Operation>) -> (u64, Results) {
  try_batch(s, ops).expect("batch started")
}

fn slot(token: u64) -> f64 {
  (token & INDEX_MASK) as f64
}

/// Takes one delivery of at most `pairs` pairs, and leaves it unfinished.
fn take(s: &mut Scheduler, pairs: usize) -> Vec<(f64, f64)> {
  let mut wire = vec![f64::NAN; pairs * 2];
  let count = s.take_deliveries(&mut wire);
  wire[..count * 2].chunks(2).map(|p| (p[0], p[1])).collect()
}

/// Takes and finishes deliveries until none is left.
fn deliver(s: &mut Scheduler) -> Vec<(f64, f64)> {
  let mut all = Vec::new();
  loop {
    let pairs = take(s, 3);
    s.finish_delivery();
    if pairs.is_empty() {
      return all;
    }
    all.extend(pairs);
  }
}

/// The token of operation `position` of the batch `batch` as the backend sees it.
fn op_token(batch: u64, position: usize) -> u64 {
  let parts = token::decode(batch);
  token::batch_op_token(parts.index as u32, parts.generation, position)
}

fn pushed_links(f: &Fake) -> Vec<bool> {
  f.pushed().iter().map(|op| op.link).collect()
}

// ---- admission -------------------------------------------------------------------------

#[test]
fn operations_beyond_capacity_wait_in_order_and_go_in_as_completions_make_room() {
  let (mut s, f) = scheduler(2, false);
  let t: Vec<u64> = (0..5).map(|_| start(&mut s, fsync())).collect();
  assert_eq!(f.pushed_tokens(), t[..2]);
  assert_eq!(s.outstanding(), 5);
  flush_complete_reap(&mut s, &f, t[1], 0);
  assert_eq!(f.pushed_tokens(), t[..3]);
  f.complete(t[0], 1);
  f.complete(t[2], 2);
  s.on_ready();
  assert_eq!(f.pushed_tokens(), t);
  f.complete(t[4], 4);
  f.complete(t[3], 3);
  s.on_ready();
  assert_eq!(
    deliver(&mut s),
    [
      (slot(t[1]), 0.0),
      (slot(t[0]), 1.0),
      (slot(t[2]), 2.0),
      (slot(t[4]), 4.0),
      (slot(t[3]), 3.0)
    ]
  );
  assert_eq!(f.pushes_over_capacity(), 0);
  assert_eq!(s.outstanding(), 0);
}

#[test]
fn batches_and_single_operations_wait_in_one_fifo() {
  let (mut s, f) = scheduler(1, false);
  let a = start(&mut s, fsync());
  let (b, _results) = batch(&mut s, vec![fsync(), fsync()]);
  let d = start(&mut s, fsync());
  s.flush(1);
  for _ in 0..4 {
    f.complete_all(0);
    s.on_ready();
  }
  assert_eq!(
    f.pushed_tokens(),
    [a, op_token(b, 0), op_token(b, 1), d],
    "in the order they started"
  );
  assert_eq!(f.pushes_over_capacity(), 0);
}

#[test]
fn a_refused_push_leaves_the_operation_queued_until_a_flush_finds_the_backend_willing() {
  let (mut s, f) = scheduler(4, false);
  f.refuse_pushes(true);
  let a = start(&mut s, fsync());
  let b = start(&mut s, fsync());
  assert!(f.pushed().is_empty());
  f.refuse_pushes(false);
  s.flush(1);
  assert_eq!(
    f.pushed_tokens(),
    [a, b],
    "nothing in the backend, yet the queue moved"
  );
  f.complete_all(0);
  s.on_ready();
  assert_eq!(deliver(&mut s), [(slot(a), 0.0), (slot(b), 0.0)]);
}

#[test]
fn a_refused_push_keeps_a_batch_operation_queued_instead_of_losing_it() {
  // Regression: a batch operation whose push was refused was taken off the queue as if
  // pushed, and never ran: its batch never settled and close never finished.
  for links in [false, true] {
    let (mut s, f) = scheduler(4, links);
    f.refuse_pushes(true);
    let (b, results) = batch(&mut s, vec![linked(fsync()), fsync(), fsync()]);
    assert!(f.pushed().is_empty());
    f.refuse_pushes(false);
    s.flush(1);
    for _ in 0..3 {
      f.complete_all(7);
      s.on_ready();
    }
    assert_eq!(deliver(&mut s), [(slot(b), 0.0)], "links: {links}");
    assert_eq!(results.get(), [7.0, 7.0, 7.0]);
    s.close();
    assert_eq!(deliver(&mut s), [(CLOSED_SLOT, 0.0)]);
    assert!(f.dropped());
  }
}

// ---- deliveries ------------------------------------------------------------------------

#[test]
fn results_are_delivered_as_slot_and_result_pairs_in_the_order_they_settled() {
  let (mut s, f) = scheduler(8, false);
  let a = start(&mut s, fsync());
  let b = start(&mut s, read(4096));
  let c = start(&mut s, fsync());
  s.flush(1);
  f.complete(c, EIO);
  f.complete(a, 0);
  f.complete(b, 4096);
  s.on_ready();
  assert!(s.has_deliveries());
  assert_eq!(
    deliver(&mut s),
    [(slot(c), EIO as f64), (slot(a), 0.0), (slot(b), 4096.0)]
  );
  assert!(!s.has_deliveries());
}

#[test]
fn a_slot_is_reused_only_after_its_delivery_is_finished() {
  let (mut s, f) = scheduler(8, false);
  let a = start(&mut s, fsync());
  flush_complete_reap(&mut s, &f, a, 0);
  assert_eq!(take(&mut s, 4), [(slot(a), 0.0)]);
  let b = start(&mut s, fsync());
  assert_ne!(slot(b), slot(a), "a slot on the wire is not free yet");
  s.finish_delivery();
  let c = start(&mut s, fsync());
  assert_eq!(slot(c), slot(a), "finished: the slot is free again");
  assert_ne!(c, a, "with a new generation");
}

#[test]
fn an_operation_started_between_take_and_finish_never_gets_an_old_slot_or_result() {
  let (mut s, f) = scheduler(8, false);
  let old: Vec<u64> = (0..3).map(|_| start(&mut s, fsync())).collect();
  s.flush(1);
  f.complete_all(5);
  s.on_ready();
  let wire = take(&mut s, 8);
  assert_eq!(wire.len(), 3);
  let new: Vec<u64> = (0..3).map(|_| start(&mut s, fsync())).collect();
  for token in &new {
    assert!(old.iter().all(|o| slot(*o) != slot(*token)));
  }
  s.flush(1);
  f.complete_all(9);
  s.on_ready();
  s.finish_delivery();
  let pairs = deliver(&mut s);
  assert_eq!(
    pairs,
    new.iter().map(|t| (slot(*t), 9.0)).collect::<Vec<_>>()
  );
}

#[test]
fn take_deliveries_returns_nothing_while_a_delivery_is_unfinished() {
  let (mut s, f) = scheduler(8, false);
  let a = start(&mut s, fsync());
  let b = start(&mut s, fsync());
  s.flush(1);
  f.complete_all(0);
  s.on_ready();
  assert_eq!(take(&mut s, 1), [(slot(a), 0.0)]);
  assert!(take(&mut s, 8).is_empty(), "the first is still being read");
  assert!(s.has_deliveries());
  s.finish_delivery();
  assert_eq!(take(&mut s, 8), [(slot(b), 0.0)]);
  s.finish_delivery();
}

#[test]
fn busy_until_the_last_result_has_been_read_off_the_wire() {
  let (mut s, f) = scheduler(8, false);
  assert!(!s.busy(), "a fresh scheduler holds nothing");
  let a = start(&mut s, fsync());
  assert!(s.busy(), "an operation outstanding");
  flush_complete_reap(&mut s, &f, a, 0);
  assert_eq!(s.outstanding(), 0);
  assert!(s.busy(), "its result waits in the outbox");
  assert_eq!(take(&mut s, 4), [(slot(a), 0.0)]);
  assert!(s.busy(), "its result is on the wire, being read");
  s.finish_delivery();
  assert!(!s.busy(), "read: nothing left");
}

#[test]
fn take_deliveries_moves_only_whole_pairs_that_fit() {
  let (mut s, f) = scheduler(8, false);
  let a = start(&mut s, fsync());
  flush_complete_reap(&mut s, &f, a, 3);
  let mut wire = [f64::NAN; 1];
  assert_eq!(s.take_deliveries(&mut wire), 0, "no room for a pair");
  let mut wire = [f64::NAN; 3];
  assert_eq!(
    s.take_deliveries(&mut wire),
    1,
    "a short wire did not block the next take"
  );
  assert_eq!(wire[..2], [slot(a), 3.0]);
  assert!(wire[2].is_nan());
  s.finish_delivery();
}

// ---- re-entrant calls ------------------------------------------------------------------

#[test]
fn start_cancel_and_close_between_take_and_finish_settle_each_operation_rightly() {
  let (mut s, f) = scheduler(2, false);
  let a = start(&mut s, fsync());
  let b = start(&mut s, fsync());
  flush_complete_reap(&mut s, &f, a, 1);
  assert_eq!(take(&mut s, 8), [(slot(a), 1.0)]);
  // What a `then` getter might do while the pair of `a` is read off the wire:
  let c = start(&mut s, fsync()); // into the backend: `a` made room
  let d = start(&mut s, fsync()); // queued
  s.cancel(a); // stale: `a` settled
  s.cancel(b); // in the backend
  s.close(); // `d` is dropped from the queue
  for token in [c, d] {
    assert_ne!(slot(token), slot(a));
  }
  let b_place = f.place_of(b).unwrap();
  assert_eq!(f.cancels(), [(b, b_place)]);
  assert!(take(&mut s, 8).is_empty(), "unfinished");
  s.finish_delivery();
  assert_eq!(deliver(&mut s), [(slot(d), CLOSED)]);
  flush_complete_reap(&mut s, &f, c, 3);
  assert_eq!(
    deliver(&mut s),
    [(slot(b), ABORTED), (slot(c), 3.0), (CLOSED_SLOT, 0.0)]
  );
  assert!(f.dropped());
  assert!(f.held_at_drop().is_empty());
}

#[test]
fn start_cancel_and_close_between_two_deliveries_settle_each_operation_rightly() {
  let (mut s, f) = scheduler(8, false);
  let a = start(&mut s, fsync());
  let b = start(&mut s, fsync());
  flush_complete_reap(&mut s, &f, a, 1);
  assert_eq!(deliver(&mut s), [(slot(a), 1.0)]);
  let c = start(&mut s, fsync());
  assert_eq!(slot(c), slot(a), "a's slot is free: finished");
  s.cancel(a); // stale: must not hit `c`, the slot's new tenant
  assert!(f.cancels().is_empty());
  let (e, results) = batch(&mut s, vec![fsync(), fsync()]);
  s.cancel(e);
  flush_complete_reap(&mut s, &f, b, 2);
  assert_eq!(
    deliver(&mut s),
    [(slot(e), 0.0), (slot(b), 2.0)],
    "e's cancellations completed first"
  );
  assert_eq!(results.get(), [ABORTED, ABORTED]);
  s.close();
  f.complete(c, 3);
  s.on_ready();
  assert_eq!(deliver(&mut s), [(slot(c), 3.0), (CLOSED_SLOT, 0.0)]);
}

#[test]
fn close_during_an_unfinished_delivery_delivers_the_closed_pair_after_it() {
  let (mut s, f) = scheduler(8, false);
  let a = start(&mut s, fsync());
  flush_complete_reap(&mut s, &f, a, 0);
  assert_eq!(take(&mut s, 8), [(slot(a), 0.0)]);
  s.close();
  assert!(
    f.dropped(),
    "nothing outstanding: the backend is gone at once"
  );
  assert!(take(&mut s, 8).is_empty());
  s.finish_delivery();
  assert_eq!(deliver(&mut s), [(CLOSED_SLOT, 0.0)]);
}

// ---- cancel ----------------------------------------------------------------------------

#[test]
fn cancelling_a_queued_operation_delivers_aborted_at_once_and_never_pushes_it() {
  let (mut s, f) = scheduler(1, false);
  let a = start(&mut s, fsync());
  let b = start(&mut s, fsync());
  s.cancel(b);
  assert_eq!(deliver(&mut s), [(slot(b), ABORTED)]);
  assert!(f.cancels().is_empty());
  flush_complete_reap(&mut s, &f, a, 0);
  assert_eq!(f.pushed_tokens(), [a]);
  assert_eq!(deliver(&mut s), [(slot(a), 0.0)]);
}

#[test]
fn cancelling_an_operation_in_the_backend_cancels_it_there_at_its_place() {
  let (mut s, f) = scheduler(4, false);
  let _a = start(&mut s, fsync());
  let b = start(&mut s, fsync());
  s.flush(1);
  let place = f.place_of(b).unwrap();
  f.take_calls();
  s.cancel(b);
  let calls = f.take_calls();
  assert!(matches!(
    calls[..],
    [Call::Cancel { token, place: p, hit: true }, Call::Submit { .. }] if token == b && p == place
  ));
  assert!(!s.has_deliveries(), "settles only with its completion");
  s.on_ready();
  assert_eq!(deliver(&mut s), [(slot(b), ABORTED)]);
}

#[test]
fn a_cancel_too_late_delivers_the_real_result_and_aborted_only_for_ecanceled() {
  let (mut s, f) = scheduler(4, false);
  f.set_cancel(CancelMode::TooLate);
  let a = start(&mut s, read(512));
  let b = start(&mut s, fsync());
  let c = start(&mut s, fsync());
  s.flush(1);
  s.cancel(a);
  s.cancel(b);
  f.complete(a, 512);
  f.complete(b, ECANCELED);
  f.complete(c, ECANCELED); // never cancelled: a plain -ECANCELED
  s.on_ready();
  assert_eq!(
    deliver(&mut s),
    [
      (slot(a), 512.0),
      (slot(b), ABORTED),
      (slot(c), ECANCELED as f64)
    ]
  );
}

#[test]
fn stale_tokens_are_ignored_by_cancel() {
  let (mut s, f) = scheduler(4, false);
  let a = start(&mut s, fsync());
  flush_complete_reap(&mut s, &f, a, 7);
  s.cancel(a); // settled, not delivered yet
  assert_eq!(deliver(&mut s), [(slot(a), 7.0)]);
  let b = start(&mut s, fsync());
  assert_eq!(slot(b), slot(a));
  s.cancel(a); // its slot has a new tenant
  s.cancel(op_token(b, 0)); // an operation-of-a-batch token, never JavaScript's
  s.cancel(12345); // a slot that never existed
  s.cancel(u64::MAX);
  assert!(f.cancels().is_empty());
  flush_complete_reap(&mut s, &f, b, 8);
  assert_eq!(deliver(&mut s), [(slot(b), 8.0)]);
}

#[test]
fn a_cancel_of_an_empty_batch_never_hits_the_next_tenant_of_its_slot() {
  // Regression: an empty batch settled without moving its slot's generation on, so the
  // slot's next operation got the very same token, and a late cancel aborted it.
  let (mut s, f) = scheduler(4, false);
  let (empty, _results) = batch(&mut s, vec![]);
  assert_eq!(deliver(&mut s), [(slot(empty), 0.0)]);
  let b = start(&mut s, fsync());
  assert_eq!(slot(b), slot(empty));
  assert_ne!(b, empty);
  s.cancel(empty);
  assert!(f.cancels().is_empty());
  flush_complete_reap(&mut s, &f, b, 0);
  assert_eq!(deliver(&mut s), [(slot(b), 0.0)]);
}

// ---- batches ---------------------------------------------------------------------------

#[test]
fn a_batch_is_delivered_once_with_result_zero_after_all_its_operations_have_results() {
  let (mut s, f) = scheduler(8, false);
  let (b, results) = batch(&mut s, vec![fsync(), read(100), write(10)]);
  assert_eq!(s.outstanding(), 1);
  let tokens = f.pushed_tokens();
  assert_eq!(tokens, [op_token(b, 0), op_token(b, 1), op_token(b, 2)]);
  for (position, token) in tokens.iter().enumerate() {
    let parts = token::decode(*token);
    assert_eq!(parts.index as f64, slot(b));
    assert_eq!(parts.position, Some(position));
  }
  flush_complete_reap(&mut s, &f, tokens[2], EIO);
  assert!(!s.has_deliveries());
  let seen = results.get();
  assert!(
    seen[0].is_nan() && seen[1].is_nan(),
    "untouched until they settle"
  );
  assert_eq!(seen[2], EIO as f64, "written as it settled");
  f.complete(tokens[1], 60);
  f.complete(tokens[0], 0);
  s.on_ready();
  assert_eq!(deliver(&mut s), [(slot(b), 0.0)]);
  assert_eq!(results.get(), [0.0, 60.0, EIO as f64]);
  assert_eq!(s.outstanding(), 0);
}

#[test]
fn an_empty_batch_is_delivered_at_once_with_result_zero() {
  let (mut s, f) = scheduler(8, false);
  let (b, _results) = batch(&mut s, vec![]);
  assert_eq!(deliver(&mut s), [(slot(b), 0.0)]);
  assert!(f.pushed().is_empty());
  assert_eq!(s.outstanding(), 0);
}

#[test]
fn a_batch_larger_than_capacity_goes_in_as_room_frees_up() {
  let (mut s, f) = scheduler(2, false);
  let (b, results) = batch(&mut s, (0..5).map(|_| fsync()).collect());
  s.flush(1);
  let mut value = 0;
  while !s.has_deliveries() {
    assert!(f.outstanding() <= 2);
    f.complete_all_with(|_| {
      value += 1;
      value
    });
    s.on_ready();
  }
  assert_eq!(deliver(&mut s), [(slot(b), 0.0)]);
  assert_eq!(results.get(), [1.0, 2.0, 3.0, 4.0, 5.0]);
  assert_eq!(f.pushes_over_capacity(), 0);
}

#[test]
fn aborting_a_batch_aborts_what_is_queued_at_once_and_cancels_what_is_in_the_backend() {
  let (mut s, f) = scheduler(2, false);
  f.set_cancel(CancelMode::TooLate);
  let (b, results) = batch(&mut s, (0..4).map(|_| fsync()).collect());
  s.flush(1);
  let places: Vec<_> = f
    .held_tokens()
    .iter()
    .map(|t| (*t, f.place_of(*t).unwrap()))
    .collect();
  s.cancel(b);
  assert_eq!(f.cancels(), places);
  let seen = results.get();
  assert!(seen[0].is_nan() && seen[1].is_nan());
  assert_eq!(seen[2..], [ABORTED, ABORTED]);
  assert!(!s.has_deliveries());
  f.complete(op_token(b, 0), 0);
  f.complete(op_token(b, 1), ECANCELED);
  s.on_ready();
  assert_eq!(deliver(&mut s), [(slot(b), 0.0)]);
  assert_eq!(results.get(), [0.0, ABORTED, ABORTED, ABORTED]);
  assert_eq!(f.pushed().len(), 2, "the aborted ones never went in");
}

#[test]
fn shares_alternate_over_the_unlinked_reads_of_batches_only() {
  for links in [true, false] {
    let (mut s, f) = scheduler(16, links);
    let (_b, _r) = batch(
      &mut s,
      vec![
        read(8),         // Elsewhere
        read(8),         // Here
        write(8),        // not a read
        linked(read(8)), // linked on
        read(8),         // linked to
        read(0),         // moves nothing
        fsync(),         // not a read
        read(8),         // Elsewhere
      ],
    );
    start(&mut s, read(8)); // not in a batch
    let (_c, _r2) = batch(&mut s, vec![read(8)]); // the turn goes on across batches
    s.flush(1);
    // Without links, the read linked to goes in after the one before it succeeded.
    f.complete_all_with(|op| if op.link || links { -1 } else { 0 });
    s.on_ready();
    let mut shares: Vec<(u64, Share)> = f.pushed().iter().map(|op| (op.token, op.share)).collect();
    shares.sort_by_key(|(token, _)| {
      token::decode(*token).index * 100 + token::decode(*token).position.unwrap_or(50)
    });
    let shares: Vec<Share> = shares.into_iter().map(|(_, share)| share).collect();
    use Share::*;
    let expected = [
      Elsewhere, Here, Alone, Alone, Alone, Alone, Alone, Elsewhere, Alone, Here,
    ];
    assert_eq!(shares, expected, "links: {links}");
  }
}

// ---- linked chains ---------------------------------------------------------------------

#[test]
fn a_linking_backend_is_pushed_each_chain_whole_and_the_last_operation_never_links() {
  let (mut s, f) = scheduler(8, true);
  let (_b, _r) = batch(
    &mut s,
    vec![linked(fsync()), linked(fsync()), fsync(), linked(fsync())],
  );
  assert_eq!(pushed_links(&f), [true, true, false, false]);
}

#[test]
fn a_chain_waits_until_a_linking_backend_has_room_for_all_of_it() {
  let (mut s, f) = scheduler(3, true);
  let x = start(&mut s, fsync());
  let (b, _r) = batch(&mut s, vec![linked(fsync()), linked(fsync()), fsync()]);
  let y = start(&mut s, fsync());
  assert_eq!(
    f.pushed_tokens(),
    [x],
    "room for 2 of 3; and y waits behind the chain"
  );
  flush_complete_reap(&mut s, &f, x, 0);
  assert_eq!(
    f.pushed_tokens(),
    [x, op_token(b, 0), op_token(b, 1), op_token(b, 2)]
  );
  assert_eq!(pushed_links(&f), [false, true, true, false]);
  f.complete_all(0);
  s.on_ready();
  assert_eq!(f.pushed_tokens().last(), Some(&y));
}

#[test]
fn a_chain_longer_than_capacity_is_refused_by_a_linking_backend_only() {
  let (mut s, f) = scheduler(2, true);
  let refused = try_batch(&mut s, vec![linked(fsync()), linked(fsync()), fsync()]);
  assert_eq!(refused.err(), Some(Refused::ChainTooLong));
  assert!(f.pushed().is_empty());
  assert_eq!(s.outstanding(), 0);
  let (b, _r) = batch(
    &mut s,
    vec![linked(fsync()), fsync(), linked(fsync()), fsync()],
  );
  assert_eq!(slot(b), 0.0, "the refused batch took no slot");
  let (mut s, _f) = scheduler(2, false);
  assert!(try_batch(&mut s, vec![linked(fsync()), linked(fsync()), fsync()]).is_ok());
}

#[test]
fn on_a_linking_backend_a_failure_cancels_the_rest_of_its_chain() {
  let (mut s, f) = scheduler(8, true);
  let (b, results) = batch(
    &mut s,
    vec![linked(fsync()), linked(fsync()), fsync(), fsync()],
  );
  s.flush(1);
  f.complete(op_token(b, 0), EIO);
  f.complete(op_token(b, 3), 0);
  s.on_ready();
  assert_eq!(deliver(&mut s), [(slot(b), 0.0)]);
  assert_eq!(
    results.get(),
    [EIO as f64, ECANCELED as f64, ECANCELED as f64, 0.0]
  );
}

#[test]
fn aborting_a_chain_on_a_linking_backend_cancels_each_operation_and_delivers_aborted() {
  let (mut s, f) = scheduler(8, true);
  let (b, results) = batch(&mut s, vec![linked(fsync()), linked(fsync()), fsync()]);
  s.flush(1);
  s.cancel(b);
  let cancelled: Vec<u64> = f.cancels().iter().map(|c| c.0).collect();
  assert_eq!(cancelled, [op_token(b, 0), op_token(b, 1), op_token(b, 2)]);
  s.on_ready();
  assert_eq!(deliver(&mut s), [(slot(b), 0.0)]);
  assert_eq!(results.get(), [ABORTED, ABORTED, ABORTED]);
}

#[test]
fn without_links_a_chain_goes_in_one_operation_at_a_time_each_after_a_success() {
  let (mut s, f) = scheduler(8, false);
  let (b, results) = batch(&mut s, vec![linked(fsync()), linked(read(16)), fsync()]);
  assert_eq!(f.pushed_tokens(), [op_token(b, 0)]);
  s.flush(1);
  f.complete(op_token(b, 0), 0);
  s.on_ready();
  assert_eq!(f.pushed_tokens(), [op_token(b, 0), op_token(b, 1)]);
  f.complete(op_token(b, 1), 16);
  s.on_ready();
  f.complete(op_token(b, 2), 0);
  s.on_ready();
  assert_eq!(
    pushed_links(&f),
    [false, false, false],
    "never a linked push"
  );
  assert_eq!(deliver(&mut s), [(slot(b), 0.0)]);
  assert_eq!(results.get(), [0.0, 16.0, 0.0]);
}

#[test]
fn a_chain_with_an_operation_the_backend_does_not_link_is_fed_one_at_a_time() {
  let (mut s, f) = scheduler(8, true);
  f.refuse_to_link(caio_core::Opcode::Fdatasync);
  let fdsync = || Operation::sync(caio_core::Opcode::Fdatasync, 3, 0);
  let (b, results) = batch(
    &mut s,
    vec![
      linked(write(8)),
      linked(fdsync()),
      fsync(),
      linked(fsync()),
      fsync(),
    ],
  );
  assert_eq!(
    f.pushed_tokens(),
    [op_token(b, 0), op_token(b, 3), op_token(b, 4)],
    "the fed chain's head alone; the other chain whole"
  );
  assert_eq!(pushed_links(&f), [false, true, false]);
  s.flush(1);
  f.complete(op_token(b, 0), 8);
  s.on_ready();
  assert_eq!(f.pushed_tokens().last(), Some(&op_token(b, 1)));
  f.complete(op_token(b, 1), EIO);
  f.complete(op_token(b, 3), 0);
  f.complete(op_token(b, 4), 0);
  s.on_ready();
  assert_eq!(
    f.pushed().len(),
    4,
    "the rest of the failed chain never went in"
  );
  assert_eq!(deliver(&mut s), [(slot(b), 0.0)]);
  assert_eq!(results.get(), [8.0, EIO as f64, ECANCELED as f64, 0.0, 0.0]);
}

#[test]
fn without_links_the_rest_of_a_chain_fails_with_ecanceled_after_a_failure() {
  let (mut s, f) = scheduler(8, false);
  let (b, results) = batch(
    &mut s,
    vec![linked(fsync()), linked(fsync()), fsync(), fsync()],
  );
  assert_eq!(f.pushed_tokens(), [op_token(b, 0), op_token(b, 3)]);
  s.flush(1);
  f.complete(op_token(b, 0), EIO);
  s.on_ready();
  assert_eq!(f.pushed().len(), 2, "the rest never went in");
  f.complete(op_token(b, 3), 0);
  s.on_ready();
  assert_eq!(deliver(&mut s), [(slot(b), 0.0)]);
  assert_eq!(
    results.get(),
    [EIO as f64, ECANCELED as f64, ECANCELED as f64, 0.0]
  );
}

#[test]
fn without_links_aborting_a_chain_aborts_what_was_not_pushed_yet() {
  let (mut s, f) = scheduler(8, false);
  f.set_cancel(CancelMode::TooLate);
  let (b, results) = batch(&mut s, vec![linked(fsync()), linked(fsync()), fsync()]);
  s.flush(1);
  s.cancel(b);
  assert_eq!(f.cancels().len(), 1);
  assert_eq!(results.get()[1..], [ABORTED, ABORTED]);
  f.complete(op_token(b, 0), 0);
  s.on_ready();
  assert_eq!(
    f.pushed().len(),
    1,
    "a success after an abort does not go on"
  );
  assert_eq!(deliver(&mut s), [(slot(b), 0.0)]);
  assert_eq!(results.get(), [0.0, ABORTED, ABORTED]);
}

#[test]
fn without_links_the_next_operation_of_a_chain_goes_ahead_of_the_queue() {
  let (mut s, f) = scheduler(1, false);
  let (b, _r) = batch(&mut s, vec![linked(fsync()), fsync()]);
  let x = start(&mut s, fsync());
  s.flush(1);
  f.complete(op_token(b, 0), 0);
  s.on_ready();
  assert_eq!(f.pushed_tokens(), [op_token(b, 0), op_token(b, 1)]);
  f.complete(op_token(b, 1), 0);
  s.on_ready();
  assert_eq!(f.pushed_tokens().last(), Some(&x));
}

// ---- close -----------------------------------------------------------------------------

#[test]
fn close_drops_queued_operations_lets_running_ones_finish_then_drops_the_backend() {
  let (mut s, f) = scheduler(1, false);
  let a = start(&mut s, fsync());
  let b = start(&mut s, fsync());
  let (c, results) = batch(&mut s, vec![fsync(), fsync()]);
  s.flush(1);
  s.close();
  assert_eq!(deliver(&mut s), [(slot(b), CLOSED), (slot(c), 0.0)]);
  assert_eq!(results.get(), [CLOSED, CLOSED]);
  assert!(!f.dropped(), "a is still running");
  // SAFETY: a sync carries no buffer.
  assert_eq!(unsafe { s.start(fsync()) }, Err(Refused::Closed));
  assert_eq!(
    try_batch(&mut s, vec![fsync()]).err(),
    Some(Refused::Closed)
  );
  f.complete(a, 9);
  s.on_ready();
  assert_eq!(deliver(&mut s), [(slot(a), 9.0), (CLOSED_SLOT, 0.0)]);
  assert!(f.dropped());
  assert!(f.held_at_drop().is_empty());
  assert!(s.backend().is_none());
  assert_eq!(f.pushed_tokens(), [a]);
}

#[test]
fn close_with_nothing_outstanding_delivers_the_closed_pair_at_once() {
  let (mut s, f) = scheduler(1, false);
  s.close();
  assert!(f.dropped());
  assert_eq!(deliver(&mut s), [(CLOSED_SLOT, 0.0)]);
}

#[test]
fn close_keeps_a_batch_partly_in_the_backend_until_its_operations_finish() {
  let (mut s, f) = scheduler(2, false);
  let (b, results) = batch(&mut s, (0..3).map(|_| fsync()).collect());
  s.flush(1);
  s.close();
  assert!(!s.has_deliveries());
  assert_eq!(results.get()[2], CLOSED);
  f.complete_all(1);
  s.on_ready();
  assert_eq!(deliver(&mut s), [(slot(b), 0.0), (CLOSED_SLOT, 0.0)]);
  assert_eq!(results.get(), [1.0, 1.0, CLOSED]);
}

#[test]
fn closing_again_delivers_a_closed_pair_only_once_the_backend_is_gone() {
  let (mut s, f) = scheduler(1, false);
  let a = start(&mut s, fsync());
  s.flush(1);
  s.close();
  s.close();
  assert!(!s.has_deliveries());
  f.complete(a, 0);
  s.on_ready();
  assert_eq!(deliver(&mut s), [(slot(a), 0.0), (CLOSED_SLOT, 0.0)]);
  s.close();
  assert_eq!(deliver(&mut s), [(CLOSED_SLOT, 0.0)]);
}

#[test]
fn close_lets_a_started_chain_run_on_and_drops_the_chains_not_started_with_any_backend() {
  // Regression: without links, a chain whose first operation was in the backend at the
  // close had the rest of it dropped with CLOSED when another chain of its batch still
  // waited in the queue, and run on when none did; a linking backend always runs it on.
  for links in [true, false] {
    // Room for the first chain only: a linking backend takes it whole, the other its head.
    let (mut s, f) = scheduler(if links { 2 } else { 1 }, links);
    let (b, results) = batch(
      &mut s,
      vec![linked(fsync()), fsync(), linked(fsync()), fsync()],
    );
    s.flush(1);
    s.close();
    assert_eq!(results.get()[2..], [CLOSED, CLOSED], "links: {links}");
    for _ in 0..2 {
      f.complete_all(4);
      s.on_ready();
    }
    assert_eq!(deliver(&mut s), [(slot(b), 0.0), (CLOSED_SLOT, 0.0)]);
    assert_eq!(results.get(), [4.0, 4.0, CLOSED, CLOSED], "links: {links}");
    assert!(f.dropped());
  }
}

#[test]
fn tear_down_cancels_everything_in_the_backend_drops_it_and_delivers_nothing() {
  let (mut s, f) = scheduler(2, false);
  let a = start(&mut s, fsync());
  let (b, _results) = batch(&mut s, (0..3).map(|_| fsync()).collect());
  s.flush(1);
  let expected: Vec<_> = [a, op_token(b, 0)]
    .iter()
    .map(|t| (*t, f.place_of(*t).unwrap()))
    .collect();
  f.take_calls();
  s.tear_down();
  assert_eq!(f.cancels(), expected);
  assert!(matches!(f.calls().last(), Some(Call::Submit { .. })));
  assert!(f.dropped());
  assert_eq!(f.held_at_drop().len(), 2);
  assert!(deliver(&mut s).is_empty());
  s.close();
  s.tear_down();
}

// ---- the per-tick policy ---------------------------------------------------------------

#[test]
fn flush_submits_with_a_reap_to_follow_and_settles_what_completed_inside_it() {
  let (mut s, f) = scheduler(8, false);
  f.on_submit(OnSubmit::Complete(0));
  let a = start(&mut s, fsync());
  let b = start(&mut s, fsync());
  assert!(
    f.submits().is_empty(),
    "submitted once per tick, by the flush"
  );
  s.flush(1);
  assert_eq!(f.submits(), [true]);
  assert_eq!(deliver(&mut s), [(slot(a), 0.0), (slot(b), 0.0)]);
  assert_eq!(f.signals(), 1, "the quiet ends with the flush");
  assert!(!f.quiet());
}

#[test]
fn the_inline_budget_runs_out_and_is_renewed_when_the_loop_time_changes() {
  let (mut s, f) = scheduler(INLINE_BUDGET + 8, false);
  f.on_submit(OnSubmit::Complete(0));
  for _ in 0..INLINE_BUDGET {
    start(&mut s, fsync());
  }
  s.flush(1);
  assert_eq!(deliver(&mut s).len(), INLINE_BUDGET, "all inline");
  let a = start(&mut s, fsync());
  s.flush(1);
  assert_eq!(f.submits().last(), Some(&false), "no reap follows");
  assert!(
    !s.has_deliveries(),
    "the budget is spent in this turn of the loop"
  );
  s.flush(2);
  assert_eq!(
    deliver(&mut s),
    [(slot(a), 0.0)],
    "a new turn: inline again"
  );
  // on_ready means the loop turned too.
  for _ in 0..INLINE_BUDGET - 1 {
    start(&mut s, fsync());
  }
  s.flush(2);
  assert_eq!(deliver(&mut s).len(), INLINE_BUDGET - 1);
  let b = start(&mut s, fsync());
  s.flush(2);
  assert!(!s.has_deliveries());
  s.on_ready();
  assert_eq!(deliver(&mut s), [(slot(b), 0.0)]);
  let c = start(&mut s, fsync());
  s.flush(2);
  assert_eq!(deliver(&mut s), [(slot(c), 0.0)], "renewed by on_ready");
}

#[test]
fn the_inline_time_runs_out_and_is_renewed_when_the_loop_turns() {
  let (mut s, f) = scheduler(8, false);
  f.on_submit(OnSubmit::Complete(0));
  let a = start(&mut s, fsync());
  s.flush_at(1, 1_000);
  assert_eq!(deliver(&mut s), [(slot(a), 0.0)], "the turn's first flush");
  let b = start(&mut s, fsync());
  s.flush_at(1, 1_000 + INLINE_TIME_NS - 1);
  assert_eq!(deliver(&mut s), [(slot(b), 0.0)], "still within the time");
  let c = start(&mut s, fsync());
  s.flush_at(1, 1_000 + INLINE_TIME_NS);
  assert_eq!(f.submits().last(), Some(&false), "no reap follows");
  assert!(!s.has_deliveries(), "the time is spent in this turn");
  s.on_ready();
  assert_eq!(deliver(&mut s), [(slot(c), 0.0)]);
  // The clock of the new turn starts at its first flush, however late that is.
  let d = start(&mut s, fsync());
  s.flush_at(1, 10 * INLINE_TIME_NS);
  assert_eq!(deliver(&mut s), [(slot(d), 0.0)], "renewed by on_ready");
  let e = start(&mut s, fsync());
  s.flush_at(1, 12 * INLINE_TIME_NS);
  assert!(!s.has_deliveries());
  let g = start(&mut s, fsync());
  s.flush_at(2, 12 * INLINE_TIME_NS);
  assert_eq!(
    deliver(&mut s),
    [(slot(e), 0.0), (slot(g), 0.0)],
    "a new loop time renews it too"
  );
}

#[test]
fn early_submits_start_for_a_cheap_submit_backend_after_a_flush_found_most_still_running() {
  let (mut s, f) = with_traits(traits(64, false, true));
  for _ in 0..EARLY_SUBMIT {
    start(&mut s, fsync());
  }
  s.flush(1);
  assert_eq!(f.submits(), [true]);
  for _ in 0..EARLY_SUBMIT - 1 {
    start(&mut s, fsync());
  }
  assert_eq!(f.submits().len(), 1);
  start(&mut s, fsync());
  assert_eq!(
    f.submits(),
    [true, true],
    "submitted early, a reap to follow"
  );
  assert_eq!(f.unsubmitted(), 0);
  let signals = f.signals();
  s.flush(1);
  assert_eq!(f.submits().len(), 2, "nothing left for the flush to submit");
  assert_eq!(
    f.signals(),
    signals + 1,
    "but the early submit's quiet ends"
  );
  // A tick whose operations complete inline switches early submits off again.
  f.complete_all(0);
  s.on_ready();
  f.on_submit(OnSubmit::Complete(0));
  for _ in 0..EARLY_SUBMIT {
    start(&mut s, fsync());
  }
  s.flush(2);
  let submits = f.submits().len();
  for _ in 0..EARLY_SUBMIT {
    start(&mut s, fsync());
  }
  assert_eq!(f.submits().len(), submits, "no early submit");
}

#[test]
fn early_submits_never_start_for_a_backend_whose_submit_is_not_cheap() {
  let (mut s, f) = with_traits(traits(64, false, false));
  for _ in 0..EARLY_SUBMIT {
    start(&mut s, fsync());
  }
  s.flush(1);
  for _ in 0..4 * EARLY_SUBMIT {
    start(&mut s, fsync());
  }
  assert_eq!(f.submits().len(), 1);
}

#[test]
fn a_flush_spins_on_ready_only_after_a_submit_said_completions_come_soon() {
  let (mut s, f) = scheduler(8, false);
  // Posted at the first poll of `ready()`: a reap before it finds nothing, so only a spin
  // settles them inside the flush (and no clock decides, not even Miri's).
  f.on_submit(OnSubmit::CompleteOnPoll(5, 1));
  let a = start(&mut s, fsync());
  s.flush(1);
  assert_eq!(f.polls(), 0, "not soon: no spin");
  assert!(!s.has_deliveries());
  f.set_submitted(Submitted {
    completions_soon: true,
  });
  let b = start(&mut s, fsync());
  s.flush(1);
  assert!(f.polls() >= 1, "spun until the completions came");
  assert_eq!(deliver(&mut s), [(slot(a), 5.0), (slot(b), 5.0)]);
}

#[test]
fn a_flush_spins_only_while_nothing_settled_and_skips_the_spin_after_a_miss() {
  let (mut s, f) = scheduler(8, false);
  f.set_submitted(Submitted {
    completions_soon: true,
  });
  s.flush(1);
  assert_eq!(f.polls(), 0, "nothing in the backend: nothing to wait for");
  f.on_submit(OnSubmit::Complete(1));
  start(&mut s, fsync());
  s.flush(1);
  assert_eq!(f.polls(), 0, "settled inline: the caller has work");
  f.on_submit(OnSubmit::Run);
  start(&mut s, fsync());
  s.flush(1);
  let polls = f.polls();
  assert!(polls > 0, "spun in vain until its budget ran out");
  assert_eq!(deliver(&mut s).len(), 1, "only the inline one");
  start(&mut s, fsync());
  s.flush(1);
  assert_eq!(
    f.polls(),
    polls,
    "after a miss, the next flush skips the spin"
  );
}

#[test]
fn every_quiet_submit_is_ended_by_signal_completions_before_the_call_returns() {
  let (mut s, f) = with_traits(traits(16, false, true));
  let mut quiet_submits = 0;
  for tick in 0..6u64 {
    for _ in 0..6 {
      start(&mut s, fsync());
      // Early submits may leave the quiet on between starts: the tick's flush ends it.
    }
    s.flush(tick);
    assert!(!f.quiet(), "flush left the backend quiet");
    f.complete_all(0);
    s.on_ready();
    assert!(!f.quiet(), "on_ready left the backend quiet");
    deliver(&mut s);
    let calls = f.take_calls();
    let quiet = |c: &Call| {
      matches!(
        c,
        Call::Submit {
          reap_follows: true,
          ok: true
        }
      )
    };
    if let Some(last) = calls.iter().rposition(quiet) {
      quiet_submits += calls.iter().filter(|c| quiet(c)).count();
      assert!(
        calls[last..]
          .iter()
          .any(|c| matches!(c, Call::SignalCompletions)),
        "tick {tick}: a quiet submit without signal_completions after it"
      );
    }
  }
  // Each flush, and from the second tick on an early submit at the fourth start.
  assert_eq!(quiet_submits, 6 + 5);
}

#[test]
fn a_failed_submit_is_tried_again_by_the_next_flush() {
  let (mut s, f) = scheduler(4, false);
  f.fail_submits(true);
  let a = start(&mut s, fsync());
  s.flush(1);
  assert_eq!(f.unsubmitted(), 1);
  f.fail_submits(false);
  s.flush(1);
  assert_eq!(f.unsubmitted(), 0);
  f.complete(a, 0);
  s.on_ready();
  assert_eq!(deliver(&mut s), [(slot(a), 0.0)]);
}

#[test]
fn on_ready_clears_the_notifier_and_settles_everything_that_completed() {
  let (mut s, f) = scheduler(4, false);
  let t: Vec<u64> = (0..3).map(|_| start(&mut s, fsync())).collect();
  s.flush(1);
  f.complete_all(2);
  assert!(f.notifications() > 0);
  s.on_ready();
  assert!(f.notifier_made());
  assert_eq!(deliver(&mut s).len(), t.len());
}

#[test]
fn tear_down_after_a_finished_close_delivers_nothing_either() {
  // Regression (found by the fuzzer): with the backend already dropped by a close,
  // tear_down returned before clearing the outbox, and the closed pair was delivered.
  let (mut s, f) = scheduler(2, false);
  let a = start(&mut s, fsync());
  flush_complete_reap(&mut s, &f, a, 0);
  s.close();
  assert!(f.dropped());
  s.tear_down();
  assert!(deliver(&mut s).is_empty());
}

#[test]
fn completions_another_thread_posts_late_settle_at_the_next_on_ready() {
  // From a fuzz run: completions that a flush's spin did not wait for arrive later, and the
  // event loop's on_ready settles them (the fake needed `post_staged` to show it).
  let (mut s, f) = scheduler(4, false);
  f.on_submit(OnSubmit::CompleteOnPoll(3, 1000));
  let a = start(&mut s, fsync());
  s.flush(1);
  s.on_ready();
  assert!(!s.has_deliveries(), "not posted yet");
  assert_eq!(f.post_staged(), 1);
  assert!(f.notifications() > 0, "posting wakes the loop");
  s.on_ready();
  assert_eq!(deliver(&mut s), [(slot(a), 3.0)]);
  s.close();
  assert_eq!(deliver(&mut s), [(CLOSED_SLOT, 0.0)]);
}
