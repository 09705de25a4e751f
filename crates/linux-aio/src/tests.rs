//! The backend's tests (a child of `backend`, so that they can look at its state).

use super::*;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use caio_core::testing::{contract, done, op, results, run_until_done, temp_file};

// `backend` includes this file by path, so a plain `mod support;` would look in `src/`.
#[path = "tests/support.rs"]
mod support;
use support::{direct_file, direct_file_or_ordinary, Aligned};

const EBADF: i64 = -(libc::EBADF as i64);

/// One backend of each reaping kind: from the mapped ring, and through io_getevents.
fn both(capacity: usize) -> [AioBackend; 2] {
  [
    AioBackend::new(capacity).unwrap(),
    AioBackend::with_reaping(capacity, false).unwrap(),
  ]
}

/// Runs the contract `check` on a fresh backend of each reaping kind.
fn on_both(capacity: usize, check: fn(&mut dyn Backend)) {
  for mut backend in both(capacity) {
    check(&mut backend);
  }
}

/// Pushes `ops` in order; their places.
///
/// # Safety
/// Every operation obeys the buffer rule.
unsafe fn push_all(
  backend: &mut AioBackend,
  ops: impl IntoIterator<Item = Operation>,
) -> Vec<Place> {
  // SAFETY: the caller upholds the buffer rule for every operation.
  ops
    .into_iter()
    .map(|op| unsafe { backend.push(op) }.unwrap())
    .collect()
}

fn fsync(fd: i32, token: u64) -> Operation {
  Operation::sync(Opcode::Fsync, fd, token)
}

#[test]
fn completions_are_read_from_the_mapped_ring_here() {
  let backend = AioBackend::new(8).unwrap();
  let ring = backend.ring.expect("the kernel's ring should be readable");
  assert!(ring.nr >= 8);
}

#[test]
fn declares_no_links_and_cheap_submits() {
  let backend = AioBackend::new(3).unwrap();
  assert_eq!(
    backend.traits(),
    Traits {
      capacity: 3,
      links: false,
      cheap_submit: true
    }
  );
}

#[test]
fn reads_writes_and_syncs() {
  on_both(16, contract::reads_writes_and_syncs);
}

/// Only the mapped ring is seen without a system call: `ready` of a backend reaping through
/// io_getevents says nothing of the kernel's completions.
#[test]
fn ready_says_whether_a_reap_finds_something() {
  contract::ready_says_whether_a_reap_finds_something(&mut AioBackend::new(2).unwrap());
}

#[test]
fn priority_is_passed_to_the_kernel() {
  let file = temp_file(b"abc");
  let mut backend = AioBackend::new(4).unwrap();
  let mut buf = [0u8; 3];
  let best_effort = Operation {
    priority: (2 << 13) | 4, // IOPRIO_CLASS_BE, level 4
    ..op(Opcode::Read, file.as_raw_fd(), 0, &mut buf, 1)
  };
  // SAFETY: `buf` outlives the reap below.
  unsafe { push_all(&mut backend, [best_effort]) };
  backend.submit(false).unwrap();
  assert_eq!(results(&run_until_done(&mut backend, 1)), [3]);
  assert_eq!(&buf, b"abc");
}

#[test]
fn files_without_kernel_aio_answer_as_the_plain_system_call_does() {
  let full = std::fs::OpenOptions::new()
    .write(true)
    .open("/dev/full")
    .unwrap();
  let zero = File::open("/dev/zero").unwrap();
  let mut backend = AioBackend::new(4).unwrap();
  let mut data = *b"x";
  let mut zeros = [7u8; 4];
  let ops = [
    op(Opcode::Write, full.as_raw_fd(), 0, &mut data, 1),
    op(Opcode::Read, zero.as_raw_fd(), 0, &mut zeros, 2),
  ];
  // SAFETY: both buffers outlive the reap below.
  unsafe { push_all(&mut backend, ops) };
  backend.submit(false).unwrap();
  let done = run_until_done(&mut backend, 2);
  assert_eq!(results(&done), [-(libc::ENOSPC as i64), 4]);
  assert_eq!(zeros, [0u8; 4]);
}

#[test]
fn short_read_at_end_of_file_and_empty_past_it() {
  on_both(4, contract::short_read_at_end_of_file_and_empty_past_it);
}

#[test]
fn errors_come_back_as_negative_errno() {
  on_both(8, contract::errors_come_back_as_negative_errno);
}

#[test]
fn refusals_among_accepted_operations_are_signalled_by_submit_itself() {
  for mut backend in both(4) {
    let file = temp_file(b"abc");
    let mut bufs = [[0u8; 3]; 2];
    let [a, b] = &mut bufs;
    let ops = [
      op(Opcode::Read, file.as_raw_fd(), 0, a, 1),
      op(Opcode::Read, -1, 0, b, 2),
    ];
    // SAFETY: the buffers outlive the reap below.
    unsafe { push_all(&mut backend, ops) };
    backend.submit(false).unwrap();
    // Refusals are completed here, not by the kernel: the backend signals them itself.
    assert!(backend.notifier().clear());
    assert_eq!(results(&run_until_done(&mut backend, 2)), [3, EBADF]);
    assert_eq!(&bufs[0], b"abc");
  }
}

#[test]
fn a_batch_of_nothing_but_refusals_signals_the_notifier() {
  let mut backend = AioBackend::new(2).unwrap();
  let mut buf = [0u8; 1];
  // SAFETY: `buf` outlives the reap below.
  unsafe { push_all(&mut backend, [op(Opcode::Read, -1, 0, &mut buf, 7)]) };
  backend.submit(false).unwrap();
  assert!(backend.notifier().clear());
  assert!(backend.ready());
  let mut out = Vec::new();
  backend.reap(&mut out);
  assert_eq!(out, [done(7, EBADF)]);
}

#[test]
fn refusals_stay_quiet_when_a_reap_follows_until_signalling_resumes() {
  let mut backend = AioBackend::new(2).unwrap();
  let mut buf = [0u8; 1];
  let refused = op(Opcode::Read, -1, 0, &mut buf, 0);
  let refused = |token| Operation { token, ..refused };
  // SAFETY: `buf` outlives the reaps below.
  unsafe { push_all(&mut backend, [refused(1)]) };
  backend.submit(true).unwrap();
  assert!(
    !backend.notifier().clear(),
    "quiet until signal_completions"
  );
  assert!(backend.ready());
  // Not reaped before signalling resumes: it is signalled then.
  backend.signal_completions();
  assert!(backend.notifier().clear());
  assert_eq!(run_until_done(&mut backend, 1), [done(1, EBADF)]);

  // Reaped in the quiet: nothing is left to signal.
  // SAFETY: as above.
  unsafe { push_all(&mut backend, [refused(2)]) };
  backend.submit(true).unwrap();
  let mut out = Vec::new();
  backend.reap(&mut out);
  assert_eq!(out, [done(2, EBADF)]);
  backend.signal_completions();
  assert!(!backend.notifier().clear());

  // And after it, refusals signal again.
  // SAFETY: as above.
  unsafe { push_all(&mut backend, [refused(3)]) };
  backend.submit(false).unwrap();
  assert!(backend.notifier().clear());
  assert_eq!(run_until_done(&mut backend, 1), [done(3, EBADF)]);
}

#[test]
fn links_are_ignored_so_a_failure_cancels_nothing() {
  on_both(4, contract::links_are_ignored_so_a_failure_cancels_nothing);
}

#[test]
fn o_direct_aligned_round_trip_and_unaligned_buffer() {
  let Some((file, dir)) = direct_file() else {
    eprintln!("no directory here takes O_DIRECT; skipped");
    return;
  };
  eprintln!("O_DIRECT file in {}", dir.display());
  let fd = file.as_raw_fd();
  for mut backend in both(4) {
    let mut out = Aligned::new(8192);
    let mut back = Aligned::new(8192);
    for (i, byte) in out.bytes().iter_mut().enumerate() {
      *byte = (i % 251) as u8;
    }
    // SAFETY: both buffers outlive the reaps below.
    unsafe { push_all(&mut backend, [op(Opcode::Write, fd, 4096, out.bytes(), 1)]) };
    backend.submit(false).unwrap();
    assert_eq!(results(&run_until_done(&mut backend, 1)), [8192]);
    // SAFETY: as above.
    unsafe { push_all(&mut backend, [op(Opcode::Read, fd, 4096, back.bytes(), 2)]) };
    backend.submit(false).unwrap();
    assert_eq!(results(&run_until_done(&mut backend, 1)), [8192]);
    assert!(out.bytes() == back.bytes());

    // An unaligned buffer, an unaligned length, an unaligned offset, all over written
    // blocks: a hole is zero-filled without any alignment check.
    let bad = [
      op(Opcode::Read, fd, 4096, &mut back.bytes()[1..4097], 3),
      op(Opcode::Read, fd, 4096, &mut back.bytes()[..100], 4),
      op(Opcode::Read, fd, 4097, &mut back.bytes()[..4096], 5),
    ];
    // SAFETY: `back` outlives the reap below.
    unsafe { push_all(&mut backend, bad) };
    backend.submit(false).unwrap();
    assert!(
      backend.local.is_empty(),
      "misalignment is reported by the completion, not by io_submit"
    );
    let done = run_until_done(&mut backend, 3);
    assert_eq!(results(&done), [-(libc::EINVAL as i64); 3]);
  }
}

#[test]
fn refuses_pushes_beyond_capacity_until_reaped() {
  on_both(2, contract::refuses_pushes_beyond_capacity_until_reaped);
}

#[test]
fn cancel_before_submit_withdraws_a_staged_op() {
  on_both(4, contract::cancel_before_submit_withdraws_a_staged_op);
}

#[test]
fn a_late_cancel_does_not_hit_a_later_op_with_the_same_token() {
  on_both(
    1,
    contract::a_late_cancel_does_not_hit_a_later_op_with_the_same_token,
  );
}

#[test]
fn cancel_ignores_a_wrong_token_an_unknown_place_and_a_late_call() {
  let file = temp_file(b"abc");
  let fd = file.as_raw_fd();
  let mut backend = AioBackend::new(1).unwrap();
  // SAFETY: syncs carry no buffer.
  let place = unsafe { push_all(&mut backend, [fsync(fd, 1)]) }[0];
  backend.cancel(2, place);
  backend.cancel(1, place + 1);
  backend.cancel(1, Place::MAX);
  assert!(backend.local.is_empty());
  backend.submit(false).unwrap();
  assert_eq!(run_until_done(&mut backend, 1), [done(1, 0)]);

  // The place is free now, then another operation's: a late cancel hits neither.
  backend.cancel(1, place);
  // SAFETY: as above.
  let again = unsafe { push_all(&mut backend, [fsync(fd, 3)]) }[0];
  assert_eq!(again, place, "capacity 1 reuses the one slot");
  backend.cancel(1, place);
  backend.submit(false).unwrap();
  assert_eq!(run_until_done(&mut backend, 1), [done(3, 0)]);
  let mut out = Vec::new();
  backend.reap(&mut out);
  assert!(out.is_empty());
}

#[test]
fn events_for_slots_not_in_flight_are_ignored() {
  let file = temp_file(b"abc");
  let mut backend = AioBackend::new(2).unwrap();
  // SAFETY: syncs carry no buffer.
  let staged = u64::from(unsafe { push_all(&mut backend, [fsync(file.as_raw_fd(), 1)]) }[0]);
  let mut out = Vec::new();
  for data in [staged, staged + 1, 2, u64::MAX] {
    let event = IoEvent {
      data,
      res: 5,
      ..IoEvent::default()
    };
    assert!(!backend.on_event(event, &mut out));
  }
  assert!(out.is_empty());
  assert_eq!((backend.in_flight, backend.outstanding), (0, 1));
  backend.submit(false).unwrap();
  assert_eq!(run_until_done(&mut backend, 1), [done(1, 0)]);
}

#[test]
fn cancel_in_flight_completes_each_operation_exactly_once() {
  let file = direct_file_or_ordinary(1 << 22);
  let fd = file.as_raw_fd();
  let mut backend = AioBackend::new(16).unwrap();
  let mut buffers: Vec<Aligned> = (0..8).map(|_| Aligned::new(1 << 19)).collect();
  let reads = buffers
    .iter_mut()
    .enumerate()
    .map(|(i, buf)| op(Opcode::Read, fd, (i as u64) << 19, buf.bytes(), i as u64));
  let ops: Vec<Operation> = reads.chain((8..16).map(|i| fsync(fd, i))).collect();
  // SAFETY: `buffers` outlives the reap below.
  let places = unsafe { push_all(&mut backend, ops) };
  backend.submit(false).unwrap();
  let in_flight = backend.in_flight;
  for (token, &place) in places.iter().enumerate() {
    backend.cancel(token as u64, place);
  }
  let done = run_until_done(&mut backend, 16);
  assert_eq!(
    done.iter().map(|c| c.token).collect::<Vec<_>>(),
    (0..16).collect::<Vec<_>>()
  );
  for c in &done {
    let real = if c.token < 8 { 1 << 19 } else { 0 };
    assert!(c.result == real || c.result == ECANCELED, "{c:?}");
  }
  eprintln!(
    "in flight when cancelled: {in_flight}; results: {:?}",
    results(&done)
  );
  std::thread::sleep(Duration::from_millis(20));
  let mut out = Vec::new();
  backend.reap(&mut out);
  assert!(out.is_empty(), "no second completion");
}

#[test]
fn io_cancel_of_file_io_is_refused_with_einval() {
  // Regular file reads and syncs are not cancellable in Linux: io_cancel finds no cancel
  // function for them.
  let Some((file, _)) = direct_file() else {
    eprintln!("no directory here takes O_DIRECT; skipped");
    return;
  };
  file.set_len(1 << 24).unwrap();
  let mut backend = AioBackend::new(2).unwrap();
  let mut buf = Aligned::new(1 << 24);
  let read = op(Opcode::Read, file.as_raw_fd(), 0, buf.bytes(), 1);
  // SAFETY: `buf` outlives the reap below.
  let place = unsafe { push_all(&mut backend, [read]) }[0];
  backend.submit(false).unwrap();
  let iocb = backend.iocb(place).unwrap();
  // SAFETY: the slot's iocb was just submitted in this context.
  let answer = unsafe { io_cancel(backend.ctx, iocb) };
  eprintln!("io_cancel of an in-flight O_DIRECT read: {answer:?}");
  assert_eq!(answer, Err(libc::EINVAL));
  assert_eq!(results(&run_until_done(&mut backend, 1)), [1 << 24]);
}

#[test]
fn ten_thousand_random_reads_match_the_file() {
  for mut backend in both(8) {
    contract::ten_thousand_random_reads_match_the_file(&mut backend);
    assert_eq!(backend.outstanding, 0);
  }
}

#[test]
fn drop_with_operations_outstanding_returns() {
  let file = direct_file_or_ordinary(1 << 24);
  let fd = file.as_raw_fd();
  // Declared before the backend, so they outlive it.
  let mut buffers: Vec<Aligned> = (0..16).map(|_| Aligned::new(1 << 20)).collect();
  let mut backend = AioBackend::new(64).unwrap();
  let reads = buffers
    .iter_mut()
    .enumerate()
    .map(|(i, buf)| op(Opcode::Read, fd, (i as u64) << 20, buf.bytes(), i as u64));
  let ops: Vec<Operation> = reads.chain((16..48).map(|i| fsync(fd, i))).collect();
  // SAFETY: `buffers` outlives the backend, whose drop waits for the kernel.
  unsafe { push_all(&mut backend, ops) };
  backend.submit(false).unwrap();
  // Never submitted: a staged operation.
  // SAFETY: as above.
  unsafe {
    push_all(
      &mut backend,
      [op(Opcode::Read, fd, 0, buffers[0].bytes(), 48)],
    )
  };
  let started = Instant::now();
  drop(backend);
  eprintln!("drop took {:?}", started.elapsed());
  assert!(buffers.iter_mut().all(|b| b.bytes().len() == 1 << 20));
}

#[test]
fn path_operations_and_cursor_io_with_the_side_pool() {
  let aio = AioBackend::new(4).unwrap();
  let mut offloaded = caio_thread::Offload::new(aio, AioBackend::performs);
  contract::path_operations_and_cursor_io(&mut offloaded);
  assert!(offloaded.pool_started());
  contract::read_small_reads_a_file_whole_or_hands_it_over(&mut offloaded);
}

#[test]
fn vectored_reads_and_writes() {
  on_both(2, contract::vectored_reads_and_writes);
}

#[test]
fn range_operations_on_the_side_pool() {
  let aio = AioBackend::new(4).unwrap();
  let mut offloaded = caio_thread::Offload::new(aio, AioBackend::performs);
  contract::range_operations(&mut offloaded);
  assert!(offloaded.pool_started(), "kernel AIO has no fallocate");
}

#[test]
fn registrations_go_to_the_side_pool_and_answer() {
  let aio = AioBackend::new(2).unwrap();
  let mut offloaded = caio_thread::Offload::new(aio, AioBackend::performs);
  contract::registrations_answer_and_check_descriptors(&mut offloaded);
}
