use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use caio_core::testing::{
  contract, done, notifier_is_readable, op, pipe, run_until_done, temp_file,
};
use caio_core::{Backend, Opcode, Operation, Share, Traits};

use super::*;

const ECANCELED: i64 = -(libc::ECANCELED as i64);

/// What one reap gives at once, as (token, result) pairs.
fn reap_now(backend: &mut ThreadBackend) -> Vec<(u64, i64)> {
  let mut out = Vec::new();
  backend.reap(&mut out);
  out.iter().map(|c| (c.token, c.result)).collect()
}

fn contents(file: &File) -> Vec<u8> {
  let mut bytes = Vec::new();
  let mut reader = file;
  reader.seek(SeekFrom::Start(0)).unwrap();
  reader.read_to_end(&mut bytes).unwrap();
  bytes
}

#[test]
fn declares_no_links_and_its_capacity() {
  let backend = ThreadBackend::new(0, 0).unwrap();
  assert_eq!(backend.pool_size(), 1, "at least one worker");
  assert_eq!(
    backend.traits(),
    Traits {
      capacity: 1,
      links: false,
      cheap_submit: false
    }
  );
}

#[test]
fn places_are_all_zero_since_a_cancel_finds_its_operation_by_token() {
  let file = temp_file(b"");
  let fd = file.as_raw_fd();
  let mut backend = ThreadBackend::new(2, 1).unwrap();
  // SAFETY: syncs carry no buffer.
  unsafe {
    assert_eq!(backend.push(Operation::sync(Opcode::Fsync, fd, 1)), Ok(0));
    assert_eq!(backend.push(Operation::sync(Opcode::Fsync, fd, 2)), Ok(0));
  }
  backend.submit(false).unwrap();
  assert_eq!(run_until_done(&mut backend, 2), [done(1, 0), done(2, 0)]);
}

#[test]
fn reads_writes_and_syncs() {
  contract::reads_writes_and_syncs(&mut ThreadBackend::new(16, 2).unwrap());
}

#[test]
fn short_read_at_end_of_file_and_empty_past_it() {
  contract::short_read_at_end_of_file_and_empty_past_it(&mut ThreadBackend::new(4, 1).unwrap());
}

#[test]
fn errors_come_back_as_negative_errno() {
  contract::errors_come_back_as_negative_errno(&mut ThreadBackend::new(8, 1).unwrap());
}

#[test]
fn refuses_pushes_beyond_capacity_until_reaped() {
  contract::refuses_pushes_beyond_capacity_until_reaped(&mut ThreadBackend::new(2, 1).unwrap());
}

#[test]
fn links_are_ignored_so_a_failure_cancels_nothing() {
  contract::links_are_ignored_so_a_failure_cancels_nothing(&mut ThreadBackend::new(4, 2).unwrap());
}

#[test]
fn ready_says_whether_a_reap_finds_something() {
  contract::ready_says_whether_a_reap_finds_something(&mut ThreadBackend::new(4, 1).unwrap());
}

#[test]
fn ten_thousand_random_reads_match_the_file() {
  contract::ten_thousand_random_reads_match_the_file(&mut ThreadBackend::new(8, 2).unwrap());
}

/// Spins until the workers took every queued job.
fn until_queue_is_empty(backend: &ThreadBackend) {
  let deadline = Instant::now() + Duration::from_secs(10);
  while backend.shared.job_count.load(Ordering::Acquire) > 0 {
    assert!(Instant::now() < deadline, "no worker took the jobs");
    std::hint::spin_loop();
  }
}

#[test]
fn cancel_withdraws_jobs_no_worker_started_from_its_hand_or_the_queue() {
  let busy = temp_file(b"");
  let target = temp_file(b"keep");
  let mut backend = ThreadBackend::new(4, 1).unwrap();
  let mut big = vec![1u8; 64 << 20];
  let (mut small, mut later) = (*b"lost", *b"gone");
  // SAFETY: the buffers outlive the reaps below.
  unsafe {
    // Writes always go to the pool (a cached read could be answered on this thread). The
    // only worker takes both at once and is busy with the big one while the small one
    // waits in its hand.
    backend
      .push(op(Opcode::Write, busy.as_raw_fd(), 0, &mut big, 1))
      .unwrap();
    backend
      .push(op(Opcode::Write, target.as_raw_fd(), 0, &mut small, 2))
      .unwrap();
  }
  backend.submit(false).unwrap();
  until_queue_is_empty(&backend);
  backend.cancel(2, 0);
  // SAFETY: as above. The worker is still busy: this one waits in the queue.
  unsafe {
    backend
      .push(op(Opcode::Write, target.as_raw_fd(), 0, &mut later, 3))
      .unwrap()
  };
  backend.submit(false).unwrap();
  backend.cancel(3, 0);
  assert_eq!(
    run_until_done(&mut backend, 3),
    [done(1, 64 << 20), done(2, ECANCELED), done(3, ECANCELED)]
  );
  assert_eq!(
    contents(&target),
    b"keep",
    "a cancelled write never reaches its file"
  );
}

#[test]
fn cancel_before_submit_withdraws_a_staged_op() {
  contract::cancel_before_submit_withdraws_a_staged_op(&mut ThreadBackend::new(4, 1).unwrap());
}

#[test]
fn a_late_cancel_does_not_hit_a_later_op_with_the_same_token() {
  contract::a_late_cancel_does_not_hit_a_later_op_with_the_same_token(
    &mut ThreadBackend::new(4, 1).unwrap(),
  );
}

#[test]
fn many_operations_in_flight_all_complete() {
  let file = temp_file(&vec![7u8; 1 << 16]);
  let mut backend = ThreadBackend::new(256, 8).unwrap();
  let mut buffers = vec![[0u8; 256]; 256];
  // SAFETY: `buffers` outlives the reap below.
  unsafe {
    for (i, buf) in buffers.iter_mut().enumerate() {
      let read = op(
        Opcode::Read,
        file.as_raw_fd(),
        i as u64 * 256,
        buf,
        i as u64,
      );
      backend.push(read).unwrap();
    }
  }
  backend.submit(false).unwrap();
  let done = run_until_done(&mut backend, 256);
  assert!(done.iter().all(|c| c.result == 256));
  assert!(buffers.iter().all(|b| b.iter().all(|&x| x == 7)));
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
#[test]
fn cached_reads_are_answered_by_submit_itself_and_signal_unless_reap_follows() {
  let file = temp_file(b"in the page cache");
  let mut backend = ThreadBackend::new(4, 1).unwrap();
  let mut buf = [0u8; 6];
  for reap_follows in [false, true] {
    backend.notifier().clear();
    // SAFETY: `buf` outlives the reap below.
    unsafe {
      backend
        .push(op(Opcode::Read, file.as_raw_fd(), 3, &mut buf, 7))
        .unwrap()
    };
    let submitted = backend.submit(reap_follows).unwrap();
    assert!(!submitted.completions_soon, "nothing went to the pool");
    assert_eq!(
      notifier_is_readable(&backend),
      !reap_follows,
      "{reap_follows}"
    );
    assert!(backend.ready());
    assert_eq!(reap_now(&mut backend), [(7, 6)], "no worker needed");
    assert!(!backend.ready());
    assert_eq!(&buf, b"the pa");
    backend.signal_completions();
    assert_eq!(notifier_is_readable(&backend), !reap_follows, "all reaped");
  }
  // Signalling again with an answer nobody reaped signals, so it is never lost.
  backend.notifier().clear();
  // SAFETY: `buf` outlives the reap below.
  unsafe {
    backend
      .push(op(Opcode::Read, file.as_raw_fd(), 100, &mut buf, 8))
      .unwrap()
  };
  backend.submit(true).unwrap();
  assert!(!notifier_is_readable(&backend));
  backend.signal_completions();
  assert!(notifier_is_readable(&backend));
  assert_eq!(reap_now(&mut backend), [(8, 0)], "past the end: empty");
}

#[test]
fn reads_marked_elsewhere_go_to_one_worker_and_what_it_cannot_read_cached_goes_back() {
  let contents: Vec<u8> = (0..8u8).flat_map(|i| [i + 1; 512]).collect();
  let file = temp_file(&contents);
  let mut backend = ThreadBackend::new(16, 2).unwrap();
  let mut buffers = [[0u8; 512]; 8];
  for (i, buf) in buffers.iter_mut().enumerate() {
    let share = if i % 2 == 0 {
      Share::Here
    } else {
      Share::Elsewhere
    };
    let read = Operation {
      share,
      ..op(
        Opcode::Read,
        file.as_raw_fd(),
        i as u64 * 512,
        buf,
        i as u64,
      )
    };
    // SAFETY: `buffers` outlives every reap below.
    unsafe { backend.push(read) }.unwrap();
  }
  let submitted = backend.submit(true).unwrap();
  assert_eq!(submitted.completions_soon, READS_IF_CACHED);
  if READS_IF_CACHED {
    // The reads marked Here were answered by submit itself; the rest are the pool's share,
    // which comes soon: poll `ready` for it, as the scheduler does.
    let here: Vec<u64> = reap_now(&mut backend).iter().map(|&(t, _)| t).collect();
    assert!(here.starts_with(&[0, 2, 4, 6]), "{here:?}");
    assert!(here[4..].iter().all(|t| t % 2 == 1), "{here:?}");
    let mut out: Vec<_> = here.iter().map(|&token| done(token, 512)).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.len() < 8 {
      assert!(Instant::now() < deadline, "the pool's share never came");
      if backend.ready() {
        backend.reap(&mut out);
      } else {
        std::hint::spin_loop();
      }
    }
    assert!(out.iter().all(|c| c.result == 512), "{out:?}");
  } else {
    let done = run_until_done(&mut backend, 8);
    assert!(done.iter().all(|c| c.result == 512), "{done:?}");
  }
  for (i, buf) in buffers.iter().enumerate() {
    assert!(
      buf.iter().all(|&b| b == i as u8 + 1),
      "block {i} read wrong bytes"
    );
  }
  backend.signal_completions();

  // Only reads are shares: a write marked Elsewhere is an ordinary job.
  let mut byte = *b"!";
  let write = Operation {
    share: Share::Elsewhere,
    ..op(Opcode::Write, file.as_raw_fd(), 0, &mut byte, 9)
  };
  // SAFETY: `byte` outlives the reap below.
  unsafe { backend.push(write) }.unwrap();
  assert!(!backend.submit(false).unwrap().completions_soon);
  assert_eq!(run_until_done(&mut backend, 1), [done(9, 1)]);

  // A share the page cache cannot answer (a pipe refuses preadv2 with ESPIPE) goes back to
  // the queue as an ordinary job, which reports the error as pread gives it.
  let (reader, _writer) = pipe();
  let mut byte = [0u8; 1];
  for token in 10..12 {
    let read = Operation {
      share: Share::Elsewhere,
      ..op(Opcode::Read, reader.as_raw_fd(), 0, &mut byte, token)
    };
    // SAFETY: `byte` outlives the reap below; neither read moves any byte (ESPIPE).
    unsafe { backend.push(read) }.unwrap();
  }
  backend.submit(false).unwrap();
  let espipe = -i64::from(libc::ESPIPE);
  assert_eq!(
    run_until_done(&mut backend, 2),
    [done(10, espipe), done(11, espipe)]
  );
}

#[test]
fn path_operations_and_cursor_io() {
  contract::path_operations_and_cursor_io(&mut ThreadBackend::new(4, 2).unwrap());
}

#[test]
fn read_small_reads_a_file_whole_or_hands_it_over() {
  contract::read_small_reads_a_file_whole_or_hands_it_over(&mut ThreadBackend::new(4, 2).unwrap());
}

#[test]
fn offload_sends_what_the_backend_does_not_do_to_its_pool() {
  // A thread backend that "does" only reads and writes: the rest goes to the side pool,
  // which signals the same notifier and is reaped with it.
  let inner = ThreadBackend::new(4, 1).unwrap();
  let mut offloaded = crate::Offload::new(inner, |_, op| op.opcode.uses_buffer());
  contract::path_operations_and_cursor_io(&mut offloaded);
  assert!(offloaded.pool_started());
  contract::reads_writes_and_syncs(&mut offloaded);
}

#[test]
fn vectored_reads_and_writes() {
  contract::vectored_reads_and_writes(&mut ThreadBackend::new(2, 2).unwrap());
}

#[test]
fn range_operations() {
  contract::range_operations(&mut ThreadBackend::new(2, 2).unwrap());
}

#[test]
fn registrations_answer_and_check_descriptors() {
  contract::registrations_answer_and_check_descriptors(&mut ThreadBackend::new(2, 1).unwrap());
}
