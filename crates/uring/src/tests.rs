use super::*;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;

use caio_core::cached::READS_IF_CACHED;
use caio_core::testing::{
  assert_nothing_completes, contract, done, notifier_is_readable, op, pipe, run_until_done,
  temp_file, wait_until_ready, Rng,
};
use caio_core::{Opcode, Share};

use crate::ring::SQPOLL_IDLE_MS;
use crate::table::INDEX_MASK;

const EBADF: i64 = -(libc::EBADF as i64);
const ECANCELED: i64 = -(libc::ECANCELED as i64);
const EINVAL: i64 = -(libc::EINVAL as i64);

fn backend(capacity: usize) -> UringBackend {
  UringBackend::new(capacity, UringOptions::default()).unwrap()
}

/// Waits up to `timeout` for the notifier unless a reap would find something already, then
/// reaps into `out`.
fn wait_and_reap(backend: &mut UringBackend, out: &mut Vec<Completion>, timeout: Duration) {
  if !backend.ready() {
    caio_core::sys::wait_readable(backend.notifier().fd(), timeout);
  }
  backend.notifier().clear();
  backend.reap(out);
}

#[test]
fn sizes_the_rings_from_the_capacity() {
  let small = backend(3);
  assert_eq!(
    small.traits(),
    Traits {
      capacity: 3,
      links: true,
      cheap_submit: true
    }
  );
  assert_eq!(small.sq_entries, 8);
  assert!(small.ring.params().cq_entries() >= 16);
  let odd = backend(100);
  assert_eq!(odd.sq_entries, 128);
  assert!(odd.ring.params().cq_entries() >= 256);
  assert_eq!(backend(0).traits().capacity, 1);
  assert!(!small.sqpoll_active());
}

#[test]
fn reads_writes_and_syncs() {
  contract::reads_writes_and_syncs(&mut backend(16));
}

#[test]
fn large_offsets_and_priorities() {
  let file = temp_file(b"");
  let fd = file.as_raw_fd();
  let mut backend = backend(8);
  let mut byte = *b"z";
  let mut back = [0u8; 1];
  let far = 1u64 << 40; // a sparse file 1 TiB long
                        // Best-effort class, level 4: allowed to anybody.
  let best_effort = (2 << 13) | 4;
  // SAFETY: the buffers outlive the reaps below.
  unsafe {
    let mut write = op(Opcode::Write, fd, far, &mut byte, 1);
    write.priority = best_effort;
    backend.push(write).unwrap();
  }
  backend.submit(false).unwrap();
  assert_eq!(run_until_done(&mut backend, 1), [done(1, 1)]);
  // SAFETY: as above.
  unsafe {
    let mut read = op(Opcode::Read, fd, far, &mut back, 2);
    read.priority = best_effort;
    backend.push(read).unwrap();
    // Beyond i64::MAX: refused, never taken for "at the file position" (-1), which only
    // AT_CURSOR asks for.
    backend
      .push(op(Opcode::Read, fd, u64::MAX - 1, &mut [0u8; 1], 3))
      .unwrap();
  }
  backend.submit(false).unwrap();
  assert_eq!(
    run_until_done(&mut backend, 2),
    [done(2, 1), done(3, EINVAL)]
  );
  assert_eq!(&back, b"z");
}

#[test]
fn a_refused_entry_does_not_hold_back_the_ones_after_it() {
  let file = temp_file(b"abc");
  let fd = file.as_raw_fd();
  let mut backend = backend(8);
  let mut bufs = [[0u8; 3]; 3];
  let [a, b, c] = &mut bufs;
  // SAFETY: the buffers outlive the reap below.
  unsafe {
    backend.push(op(Opcode::Read, fd, 0, a, 1)).unwrap();
    // Priority class 7 does not exist: the kernel fails this entry while preparing it,
    // which without IORING_SETUP_SUBMIT_ALL stops that io_uring_enter right there.
    let mut bad = op(Opcode::Read, fd, 0, b, 2);
    bad.priority = 7 << 13;
    backend.push(bad).unwrap();
    backend.push(op(Opcode::Read, fd, 0, c, 3)).unwrap();
  }
  backend.submit(false).unwrap();
  assert_eq!(
    run_until_done(&mut backend, 3),
    [done(1, 3), done(2, EINVAL), done(3, 3)]
  );
  assert_eq!(bufs, [*b"abc", [0; 3], *b"abc"]);
}

#[test]
fn short_read_at_end_of_file_and_empty_past_it() {
  contract::short_read_at_end_of_file_and_empty_past_it(&mut backend(4));
}

#[test]
fn errors_come_back_as_negative_errno() {
  // A directory reads as EISDIR through io_uring too, as through pread.
  contract::errors_come_back_as_negative_errno(&mut backend(8));
}

#[test]
fn a_pipe_read_ignores_the_offset() {
  let (read, mut write) = pipe();
  let mut backend = backend(4);
  let mut buf = [0u8; 8];
  write.write_all(b"pipe").unwrap();
  // SAFETY: the buffer outlives the reap below.
  unsafe {
    backend
      .push(op(Opcode::Read, read.as_raw_fd(), 12345, &mut buf, 1))
      .unwrap();
  }
  backend.submit(false).unwrap();
  assert_eq!(run_until_done(&mut backend, 1), [done(1, 4)]);
  assert_eq!(&buf[..4], b"pipe");
}

#[test]
fn cancels_a_blocked_pipe_read_without_touching_its_buffer() {
  let (mut read, mut write) = pipe();
  let mut backend = backend(4);
  let mut buf = [7u8; 16];
  // SAFETY: the buffer outlives the reap below.
  let place = unsafe { backend.push(op(Opcode::Read, read.as_raw_fd(), 0, &mut buf, 1)) }.unwrap();
  backend.submit(false).unwrap();
  assert_nothing_completes(&mut backend);
  backend.cancel(1, place);
  backend.cancel(1, place); // twice is once
  backend.cancel(99, place); // another token: nothing happens
  assert_eq!(run_until_done(&mut backend, 1), [done(1, ECANCELED)]);
  assert_eq!(buf, [7u8; 16]);
  // The cancelled read took nothing out of the pipe.
  write.write_all(b"later").unwrap();
  let mut back = [0u8; 5];
  read.read_exact(&mut back).unwrap();
  assert_eq!(&back, b"later");
  assert_eq!(backend.table.cancels_in_flight, 0);
}

#[test]
fn cancel_before_submit_and_after_completion() {
  let (read, _write) = pipe();
  let file = temp_file(b"abc");
  let mut backend = backend(4);
  let mut a = [7u8; 4];
  let mut b = [0u8; 3];
  // SAFETY: the buffers outlive the reaps below.
  let place = unsafe { backend.push(op(Opcode::Read, read.as_raw_fd(), 0, &mut a, 1)) }.unwrap();
  // Never submitted by the caller: the cancel request goes in right behind it.
  backend.cancel(1, place);
  assert_eq!(run_until_done(&mut backend, 1), [done(1, ECANCELED)]);
  assert_eq!(a, [7u8; 4]);

  // SAFETY: as above.
  let place = unsafe { backend.push(op(Opcode::Read, file.as_raw_fd(), 0, &mut b, 2)) }.unwrap();
  backend.submit(false).unwrap();
  wait_until_ready(&backend); // its completion is in the queue, not reaped
  backend.cancel(2, place); // too late: it settles with its real result
  assert_eq!(run_until_done(&mut backend, 1), [done(2, 3)]);
  assert_eq!(&b, b"abc");
}

#[test]
fn cancels_a_whole_ring_of_blocked_reads() {
  for capacity in [8, 5, 64] {
    let (read, _write) = pipe();
    let mut backend = backend(capacity);
    let mut bufs = vec![[9u8; 4]; capacity];
    let mut places = Vec::new();
    for (i, buf) in bufs.iter_mut().enumerate() {
      // SAFETY: the buffers outlive the reap below.
      let place = unsafe { backend.push(op(Opcode::Read, read.as_raw_fd(), 0, buf, i as u64)) };
      places.push(place.unwrap());
    }
    backend.submit(false).unwrap();
    for (token, place) in places.into_iter().enumerate() {
      backend.cancel(token as u64, place);
    }
    let completions = run_until_done(&mut backend, capacity);
    assert!(completions.iter().all(|c| c.result == ECANCELED));
    assert!(bufs.iter().all(|b| *b == [9u8; 4]));
    assert_eq!(backend.table.deferred_cancels, 0);
  }
}

#[test]
fn a_pipe_read_waits_even_in_non_blocking_mode() {
  // Pipes support IOCB_NOWAIT, so io_uring polls them instead of answering EAGAIN for
  // O_NONBLOCK (pread would): the read waits for data like a blocking one.
  let (read, mut write) = pipe();
  // SAFETY: fcntl on a descriptor this test owns, no pointers.
  unsafe {
    let flags = libc::fcntl(read.as_raw_fd(), libc::F_GETFL);
    libc::fcntl(read.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
  }
  let mut backend = backend(4);
  let mut buf = [0u8; 4];
  // SAFETY: the buffer outlives the reap below.
  unsafe {
    backend
      .push(op(Opcode::Read, read.as_raw_fd(), 0, &mut buf, 1))
      .unwrap();
  }
  backend.submit(false).unwrap();
  assert_nothing_completes(&mut backend);
  write.write_all(b"late").unwrap();
  assert_eq!(run_until_done(&mut backend, 1), [done(1, 4)]);
  assert_eq!(&buf, b"late");
}

/// Takes a slot for `op` as push does, without giving it to the kernel, so that a test can
/// play the kernel's part. Returns its `user_data`.
fn take_slot(backend: &mut UringBackend, op: Operation) -> u64 {
  let index = backend.table.take(op).unwrap();
  backend.table.outstanding += 1;
  user_data(index, backend.table.slots[index].generation)
}

#[test]
fn eagain_and_eintr_are_resubmitted_not_surfaced() {
  let file = temp_file(b"retry");
  let mut backend = backend(4);
  let mut bufs = [[0u8; 5]; 2];
  let [a, b] = &mut bufs;
  let first = take_slot(&mut backend, op(Opcode::Read, file.as_raw_fd(), 0, a, 1));
  let second = take_slot(&mut backend, op(Opcode::Read, file.as_raw_fd(), 0, b, 2));
  let mut out = Vec::new();
  backend
    .table
    .complete(first, -libc::EAGAIN, false, &mut out);
  backend
    .table
    .complete(second, -libc::EINTR, false, &mut out);
  assert_eq!(out, []);
  assert_eq!(backend.table.retry.len(), 2);
  // The next reap resubmits both, for real this time.
  backend.reap(&mut out);
  out.extend(run_until_done(&mut backend, 2 - out.len()));
  out.sort_by_key(|c| c.token);
  assert_eq!(out, [done(1, 5), done(2, 5)]);
  assert_eq!(bufs, [*b"retry"; 2]);
  assert_eq!(backend.table.outstanding, 0);
}

#[test]
fn eagain_is_surfaced_where_retrying_would_be_wrong() {
  let (read, _write) = pipe();
  // SAFETY: fcntl on a descriptor this test owns, no pointers.
  unsafe {
    let flags = libc::fcntl(read.as_raw_fd(), libc::F_GETFL);
    libc::fcntl(read.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
  }
  let file = temp_file(b"x");
  let mut backend = backend(4);
  let mut bufs = [[0u8; 1]; 3];
  let [a, b, c] = &mut bufs;
  let mut out = Vec::new();
  // Non-blocking descriptor: EAGAIN is its answer.
  let nonblocking = take_slot(&mut backend, op(Opcode::Read, read.as_raw_fd(), 0, a, 1));
  backend
    .table
    .complete(nonblocking, -libc::EAGAIN, false, &mut out);
  // Linked: the kernel already cancelled the rest of the chain.
  let mut linked = op(Opcode::Read, file.as_raw_fd(), 0, b, 2);
  linked.link = true;
  let linked = take_slot(&mut backend, linked);
  backend
    .table
    .complete(linked, -libc::EAGAIN, false, &mut out);
  // Cancelled: interrupted by our own cancel request.
  let cancelled = take_slot(&mut backend, op(Opcode::Read, file.as_raw_fd(), 0, c, 3));
  backend.table.slots[(cancelled & INDEX_MASK) as usize].cancel = CancelState::Sent;
  backend
    .table
    .complete(cancelled, -libc::EINTR, false, &mut out);
  let eagain = -(libc::EAGAIN as i64);
  assert_eq!(out, [done(1, eagain), done(2, eagain), done(3, ECANCELED)]);
  assert_eq!(backend.table.outstanding, 0);
  assert!(backend.table.retry.is_empty());
}

#[test]
fn cancelling_an_operation_parked_for_a_retry_settles_it() {
  let file = temp_file(b"x");
  let mut backend = backend(4);
  let mut buf = [0u8; 1];
  let parked = take_slot(
    &mut backend,
    op(Opcode::Read, file.as_raw_fd(), 0, &mut buf, 1),
  );
  let mut out = Vec::new();
  backend
    .table
    .complete(parked, -libc::EAGAIN, false, &mut out);
  backend.cancel(1, (parked & INDEX_MASK) as Place);
  assert_eq!(run_until_done(&mut backend, 1), [done(1, ECANCELED)]);
  assert_eq!(buf, [0u8]);
  // The cancel request that went to the kernel found nothing; its completion is swallowed.
  run_until_quiet(&mut backend);
  assert_eq!(backend.table.cancels_in_flight, 0);
  assert_eq!(backend.table.deferred_cancels, 0);
}

/// Reaps until no cancel request is left in flight, asserting nothing else completes.
fn run_until_quiet(backend: &mut UringBackend) {
  let mut out = Vec::new();
  let deadline = Instant::now() + Duration::from_secs(10);
  while backend.table.cancels_in_flight > 0 {
    assert!(Instant::now() < deadline, "timed out");
    wait_and_reap(backend, &mut out, Duration::from_millis(10));
  }
  assert_eq!(out, []);
}

#[test]
fn refuses_pushes_beyond_capacity_until_reaped() {
  for capacity in [3, 8] {
    contract::refuses_pushes_beyond_capacity_until_reaped(&mut backend(capacity));
  }
}

#[test]
fn a_late_cancel_does_not_hit_a_later_op_with_the_same_token() {
  contract::a_late_cancel_does_not_hit_a_later_op_with_the_same_token(&mut backend(1));
}

#[test]
fn linked_chain_runs_in_order_and_cancels_after_a_failure() {
  for sqpoll in [false, true] {
    let file = temp_file(b"");
    let fd = file.as_raw_fd();
    let mut backend = UringBackend::new(8, UringOptions { sqpoll }).unwrap();
    // The same offset each time: only the last write in chain order may remain.
    let mut parts: Vec<[u8; 2]> = (0..5u8).map(|i| [b'a' + i, b'A' + i]).collect();
    // SAFETY: `parts` outlives the reap below.
    unsafe {
      for (i, part) in parts.iter_mut().enumerate() {
        let mut write = op(Opcode::Write, fd, (i / 2) as u64, part, i as u64);
        write.link = i < 4;
        backend.push(write).unwrap();
        if sqpoll && i < 4 {
          // The kernel thread must not see a chain before its end.
          assert_eq!(backend.chain.len(), i + 1);
          assert!(backend.ring.submission().is_empty());
        }
      }
    }
    assert!(backend.chain.is_empty());
    backend.submit(false).unwrap();
    let completions = run_until_done(&mut backend, 5);
    assert!(completions.iter().all(|c| c.result == 2), "{completions:?}");
    let mut back = [0u8; 4];
    // SAFETY: `back` outlives the reap below.
    unsafe { backend.push(op(Opcode::Read, fd, 0, &mut back, 9)).unwrap() };
    backend.submit(false).unwrap();
    assert_eq!(run_until_done(&mut backend, 1), [done(9, 4)]);
    // Offsets 0,0,1,1,2 in that order: "aA" "bB" "cC"@1 "dD"@1 "eE"@2.
    assert_eq!(&back, b"bdeE");

    let mut byte = [0u8; 1];
    // SAFETY: `byte` outlives the reap below.
    unsafe {
      let mut bad = op(Opcode::Write, -1, 0, &mut byte, 20);
      bad.link = true;
      backend.push(bad).unwrap();
      backend
        .push(Operation::sync(Opcode::Fdatasync, fd, 21))
        .unwrap();
    }
    backend.submit(false).unwrap();
    assert_eq!(
      run_until_done(&mut backend, 2),
      [done(20, EBADF), done(21, ECANCELED)]
    );
  }
}

#[test]
fn sqpoll_moves_the_right_bytes_whatever_the_kernel_grants() {
  let mut contents = vec![0u8; 64 * 1024];
  let mut rng = Rng(7);
  contents.iter_mut().for_each(|b| *b = rng.next_u64() as u8);
  let file = temp_file(&vec![0u8; contents.len()]);
  let fd = file.as_raw_fd();
  let mut backend = UringBackend::new(32, UringOptions { sqpoll: true }).unwrap();
  assert_eq!(
    backend.sqpoll_active(),
    backend.ring.params().is_setup_sqpoll()
  );
  // Any user may have an SQPOLL thread since 5.11; before, the backend falls back.
  if caio_core::sys::kernel_version().is_some_and(|version| version >= (5, 11)) {
    assert!(backend.sqpoll_active());
  }
  let chunks: Vec<&mut [u8]> = contents.chunks_mut(4096).collect();
  // SAFETY: `contents` outlives the reap below.
  unsafe {
    for (i, chunk) in chunks.into_iter().enumerate() {
      let offset = (i * 4096) as u64;
      backend
        .push(op(Opcode::Write, fd, offset, chunk, i as u64))
        .unwrap();
    }
  }
  backend.submit(false).unwrap();
  let completions = run_until_done(&mut backend, 16);
  assert!(completions.iter().all(|c| c.result == 4096));
  // After the kernel thread went to sleep, a submit must wake it.
  std::thread::sleep(Duration::from_millis(3 * u64::from(SQPOLL_IDLE_MS)));
  let mut back = vec![0u8; contents.len()];
  // SAFETY: `back` outlives the reap below.
  unsafe { backend.push(op(Opcode::Read, fd, 0, &mut back, 1)).unwrap() };
  backend.submit(false).unwrap();
  assert_eq!(
    run_until_done(&mut backend, 1),
    [done(1, contents.len() as i64)]
  );
  assert!(back == contents);
}

#[test]
fn sqpoll_cancels_and_drops() {
  let (read, _write) = pipe();
  let mut backend = UringBackend::new(4, UringOptions { sqpoll: true }).unwrap();
  let mut buf = [3u8; 4];
  // SAFETY: the buffer outlives the reap below.
  let place = unsafe { backend.push(op(Opcode::Read, read.as_raw_fd(), 0, &mut buf, 1)) }.unwrap();
  backend.submit(false).unwrap();
  assert_nothing_completes(&mut backend);
  backend.cancel(1, place);
  assert_eq!(run_until_done(&mut backend, 1), [done(1, ECANCELED)]);
  assert_eq!(buf, [3u8; 4]);
}

#[test]
fn ten_thousand_random_reads_match_the_file() {
  const CAPACITY: usize = 13;
  let mut backend = backend(CAPACITY);
  contract::ten_thousand_random_reads_match_the_file(&mut backend);
  assert_eq!(backend.table.outstanding, 0);
  assert_eq!(backend.table.free.len(), CAPACITY);
}

#[test]
fn dropping_with_operations_outstanding_cancels_them_first() {
  let (mut read, mut write) = pipe();
  let file = temp_file(b"data");
  let mut buffers = vec![[5u8; 8]; 4];
  let read_fd = read.as_raw_fd();
  let file_fd = file.as_raw_fd();
  let buffers_at = buffers.as_mut_ptr() as usize;
  let (tx, rx) = std::sync::mpsc::channel();
  // Dropped on another thread, so that a hang fails the test instead of stalling it.
  std::thread::spawn(move || {
    let mut backend = backend(4);
    let buffers = buffers_at as *mut [u8; 8];
    // SAFETY: `buffers` outlives the backend: the test thread waits for this one.
    unsafe {
      for i in 0..3 {
        let buf = std::slice::from_raw_parts_mut(buffers.add(i).cast::<u8>(), 8);
        backend
          .push(op(Opcode::Read, read_fd, 0, buf, i as u64))
          .unwrap();
      }
      // One more, pushed and never submitted by the caller.
      let buf = std::slice::from_raw_parts_mut(buffers.add(3).cast::<u8>(), 8);
      backend.submit(false).unwrap();
      backend.push(op(Opcode::Read, file_fd, 0, buf, 3)).unwrap();
    }
    drop(backend);
    tx.send(()).unwrap();
  });
  rx.recv_timeout(Duration::from_secs(10))
    .expect("drop hung with operations outstanding");
  // Nobody reads the pipe any more: what is written now stays there.
  write.write_all(b"after").unwrap();
  let mut back = [0u8; 5];
  read.read_exact(&mut back).unwrap();
  assert_eq!(&back, b"after");
  assert!(buffers[..3].iter().all(|b| *b == [5u8; 8]));
  // The file read either ran or was cancelled; it is finished either way.
  assert!(buffers[3] == [5u8; 8] || buffers[3][..4] == *b"data");
}

#[test]
fn wait_returns_when_idle() {
  let mut backend = backend(4);
  let start = Instant::now();
  backend.wait(Duration::from_millis(20));
  assert!(start.elapsed() < Duration::from_secs(5));
  let mut out = Vec::new();
  backend.reap(&mut out);
  assert_eq!(out, []);
}

#[test]
fn the_notifier_fires_for_completions() {
  let file = temp_file(b"abc");
  let mut backend = backend(4);
  let mut buf = [0u8; 3];
  assert!(!backend.notifier().clear());
  // SAFETY: the buffer outlives the reap below.
  unsafe {
    backend
      .push(op(Opcode::Read, file.as_raw_fd(), 0, &mut buf, 1))
      .unwrap();
  }
  backend.submit(false).unwrap();
  let mut pfd = libc::pollfd {
    fd: backend.notifier().fd(),
    events: libc::POLLIN,
    revents: 0,
  };
  // SAFETY: one valid pollfd.
  assert_eq!(unsafe { libc::poll(&mut pfd, 1, 5000) }, 1);
  assert!(backend.notifier().clear());
  let mut out = Vec::new();
  backend.reap(&mut out);
  assert_eq!(out, [done(1, 3)]);
}

#[test]
fn cancel_storm_settles_every_operation_exactly_once() {
  let (read, _write) = pipe();
  let file = temp_file(b"storm");
  let mut backend = backend(8);
  let mut buffers = [[0u8; 5]; 8];
  // Per buffer: the token using it, whether it reads the pipe and where the backend keeps
  // it, or None when free.
  let mut using: Vec<Option<(u64, bool, Place)>> = vec![None; 8];
  let mut rng = Rng(42);
  let mut next_token = 0u64;
  let mut settled = 0;
  let mut out = Vec::new();
  let deadline = Instant::now() + Duration::from_secs(30);
  while settled < 3000 {
    assert!(Instant::now() < deadline, "timed out");
    for (i, buffer) in buffers.iter_mut().enumerate() {
      if using[i].is_some() {
        continue;
      }
      let from_pipe = rng.next_u64() % 3 == 0;
      let fd = if from_pipe {
        read.as_raw_fd()
      } else {
        file.as_raw_fd()
      };
      buffer.fill(0);
      let token = (next_token << 8) | i as u64;
      next_token += 1;
      // SAFETY: `buffers` outlives the loop, which reaps every completion.
      let place = unsafe { backend.push(op(Opcode::Read, fd, 0, buffer, token)) }.unwrap();
      using[i] = Some((token, from_pipe, place));
    }
    if rng.next_u64() % 2 == 0 {
      backend.submit(false).unwrap();
    }
    // Cancel a few at random: staged, in flight, completed but not reaped, or long gone,
    // and at places that may be another operation's, free, or beyond the table.
    for _ in 0..rng.next_u64() % 4 {
      let i = (rng.next_u64() % 8) as usize;
      match using[i] {
        Some((token, _, place)) if rng.next_u64() % 4 != 0 => backend.cancel(token, place),
        _ => {
          let place = match rng.next_u64() % 4 {
            0 => u32::MAX,
            _ => (rng.next_u64() % 16) as Place,
          };
          backend.cancel(rng.next_u64() % (next_token << 8).max(1), place)
        }
      }
    }
    backend.submit(false).unwrap();
    backend.reap(&mut out);
    if out.is_empty() {
      wait_and_reap(&mut backend, &mut out, Duration::from_millis(20));
    }
    for completion in out.drain(..) {
      let i = (completion.token & 0xff) as usize;
      let (token, from_pipe, _) = using[i].take().expect("a second completion");
      assert_eq!(completion.token, token);
      if from_pipe {
        assert_eq!(completion.result, ECANCELED);
        assert_eq!(buffers[i], [0u8; 5]);
      } else if completion.result == 5 {
        assert_eq!(&buffers[i], b"storm");
      } else {
        assert_eq!(completion.result, ECANCELED);
      }
      settled += 1;
    }
    // Pipe reads nobody cancelled block forever: cancel them all now and then.
    if rng.next_u64() % 8 == 0 {
      for (token, _, place) in using.iter().flatten().filter(|(_, pipe, _)| *pipe) {
        backend.cancel(*token, *place);
      }
    }
  }
  for (token, _, place) in using.iter().flatten() {
    backend.cancel(*token, *place);
  }
  let left = using.iter().flatten().count();
  run_until_done(&mut backend, left);
  run_until_quiet(&mut backend);
  assert_eq!(backend.table.outstanding, 0);
  assert_eq!(backend.table.deferred_cancels, 0);
}

#[test]
fn a_cancel_names_its_operation_by_place_and_token() {
  let (read, mut write) = pipe();
  let file = temp_file(b"abc");
  let mut backend = backend(4);
  let mut bufs = [[7u8; 3]; 3];
  let [a, b, c] = &mut bufs;
  // SAFETY: the buffers outlive the reaps below.
  let (first, second) = unsafe {
    (
      backend.push(op(Opcode::Read, read.as_raw_fd(), 0, a, 1)),
      backend.push(op(Opcode::Read, read.as_raw_fd(), 0, b, 2)),
    )
  };
  let (first, second) = (first.unwrap(), second.unwrap());
  assert_ne!(first, second);
  backend.submit(false).unwrap();
  // Another operation's place, a free one, and places beyond the table: all ignored.
  backend.cancel(1, second);
  backend.cancel(2, first);
  backend.cancel(1, 3);
  backend.cancel(1, 4);
  backend.cancel(1, u32::MAX);
  assert_nothing_completes(&mut backend);
  backend.cancel(1, first);
  assert_eq!(run_until_done(&mut backend, 1), [done(1, ECANCELED)]);
  // Reaped: its place is free, and then another operation's.
  backend.cancel(1, first);
  // SAFETY: as above.
  let third = unsafe { backend.push(op(Opcode::Read, file.as_raw_fd(), 0, c, 3)) }.unwrap();
  assert_eq!(third, first, "a freed slot is the next one taken");
  backend.cancel(1, third);
  backend.submit(false).unwrap();
  assert_eq!(run_until_done(&mut backend, 1), [done(3, 3)]);
  write.write_all(b"xyz").unwrap();
  assert_eq!(run_until_done(&mut backend, 1), [done(2, 3)]);
  assert_eq!(bufs, [[7u8; 3], *b"xyz", *b"abc"]);
}

#[test]
fn ready_says_whether_a_reap_finds_something() {
  contract::ready_says_whether_a_reap_finds_something(&mut backend(4));
}

#[test]
fn a_quiet_submit_signals_nothing_until_signal_completions() {
  let file = temp_file(b"abc");
  let mut backend = backend(4);
  let mut buf = [0u8; 3];
  // SAFETY: the buffer outlives the reap below.
  unsafe { backend.push(op(Opcode::Read, file.as_raw_fd(), 0, &mut buf, 1)) }.unwrap();
  backend.submit(true).unwrap();
  wait_until_ready(&backend);
  if caio_core::sys::kernel_version().is_some_and(|version| version >= (5, 8)) {
    assert!(
      !notifier_is_readable(&backend),
      "the eventfd fired while quiet"
    );
  }
  // The caller did not reap it: ending the quiet must signal for it.
  backend.signal_completions();
  assert!(notifier_is_readable(&backend));
  assert_eq!(run_until_done(&mut backend, 1), [done(1, 3)]);
  // And signalling is on again.
  backend.notifier().clear();
  // SAFETY: as above.
  unsafe { backend.push(op(Opcode::Read, file.as_raw_fd(), 0, &mut buf, 2)) }.unwrap();
  backend.submit(false).unwrap();
  wait_until_ready(&backend);
  caio_core::sys::wait_readable(backend.notifier().fd(), Duration::from_secs(5));
  assert!(notifier_is_readable(&backend));
  assert_eq!(run_until_done(&mut backend, 1), [done(2, 3)]);
}

/// Polls `ready()` for up to `budget`, as the scheduler does after a submit that said
/// completions come soon. Returns whether one came.
fn spin_until_ready(backend: &UringBackend, budget: Duration) -> bool {
  let start = Instant::now();
  while start.elapsed() < budget {
    if backend.ready() {
      return true;
    }
    std::hint::spin_loop();
  }
  backend.ready()
}

#[test]
fn completions_come_soon_from_the_sqpoll_thread_only() {
  let file = temp_file(&[7u8; 4096]);
  let mut plain = backend(8);
  let mut byte = [0u8; 1];
  // SAFETY: `byte` outlives the reap below.
  unsafe { plain.push(op(Opcode::Read, file.as_raw_fd(), 0, &mut byte, 1)) }.unwrap();
  assert_eq!(
    plain.submit(true).unwrap(),
    Submitted {
      completions_soon: false
    },
    "a ring without SQPOLL has no other thread to wait for"
  );
  plain.signal_completions();
  run_until_done(&mut plain, 1);

  let mut polled = UringBackend::new(8, UringOptions { sqpoll: true }).unwrap();
  if !polled.sqpoll_active() {
    return; // refused by this kernel: nothing to wait for, and the test above covers it
  }
  assert!(
    !polled.submit(true).unwrap().completions_soon,
    "nothing outstanding: nothing to wait for"
  );
  polled.signal_completions();
  let mut buf = [0u8; 4096];
  let mut waited = 0;
  // At least 50 rounds, and on until one completion came within a spin: on a machine busy
  // with other tests the kernel thread may get no core for a while.
  let patience = Instant::now() + Duration::from_secs(20);
  let mut round = 0;
  while round < 50 || waited == 0 {
    assert!(
      Instant::now() < patience,
      "no cached read completed within a spin in 20 s of tries"
    );
    round += 1;
    // SAFETY: `buf` outlives the reap below.
    unsafe { polled.push(op(Opcode::Read, file.as_raw_fd(), 0, &mut buf, round)) }.unwrap();
    assert!(polled.submit(true).unwrap().completions_soon);
    let mut out = Vec::new();
    if spin_until_ready(&polled, Duration::from_micros(200)) {
      waited += 1;
    }
    polled.reap(&mut out);
    polled.signal_completions();
    if out.is_empty() {
      out = run_until_done(&mut polled, 1);
    }
    assert_eq!(out, [done(round, 4096)]);
  }
  assert!(buf.iter().all(|&b| b == 7));
}

/// Batch reads of 4 KiB blocks of `file`, each into its own buffer, shared as the scheduler
/// shares them: every second one [`Share::Here`].
fn batch_reads(file: &File, buffers: &mut [[u8; 4096]]) -> Vec<Operation> {
  buffers
    .iter_mut()
    .enumerate()
    .map(|(i, buf)| Operation {
      share: if i % 2 == 1 {
        Share::Here
      } else {
        Share::Elsewhere
      },
      ..op(
        Opcode::Read,
        file.as_raw_fd(),
        (i * 4096) as u64,
        buf,
        i as u64,
      )
    })
    .collect()
}

/// A file of `blocks` 4 KiB blocks, block `i` filled with byte `i + 1`.
fn numbered_blocks(blocks: usize) -> File {
  let contents: Vec<u8> = (0..blocks).flat_map(|i| [i as u8 + 1; 4096]).collect();
  temp_file(&contents)
}

#[test]
fn sqpoll_batch_reads_are_shared_with_the_submitting_thread_when_it_reaps() {
  let file = numbered_blocks(8);
  let mut backend = UringBackend::new(16, UringOptions { sqpoll: true }).unwrap();
  if !backend.sqpoll_active() || !READS_IF_CACHED {
    return; // no kernel thread to share with; every read is the ring's, as other tests check
  }
  let mut buffers = [[0u8; 4096]; 8];
  let ops = batch_reads(&file, &mut buffers);
  for op in &ops {
    // SAFETY: `buffers` outlives every reap below.
    unsafe { backend.push(*op) }.unwrap();
  }
  backend.submit(true).unwrap();
  // The reads marked Here were done by submit itself: they are ready without any wait.
  let mut out = Vec::new();
  backend.reap(&mut out);
  let here: Vec<u64> = out.iter().map(|c| c.token).filter(|t| t % 2 == 1).collect();
  assert_eq!(
    here,
    [1, 3, 5, 7],
    "the held reads were not done by submit: {out:?}"
  );
  backend.signal_completions();
  let rest = run_until_done(&mut backend, 8 - out.len());
  out.extend(rest);
  out.sort_by_key(|c| c.token);
  assert_eq!(out, (0..8).map(|t| done(t, 4096)).collect::<Vec<_>>());
  for (i, buf) in buffers.iter().enumerate() {
    assert!(
      buf.iter().all(|&b| b == i as u8 + 1),
      "block {i} read wrong bytes"
    );
  }
  assert_eq!(backend.table.outstanding, 0);
}

#[test]
fn sqpoll_held_reads_go_to_the_ring_when_nobody_reaps_inline_or_are_cancelled() {
  let file = numbered_blocks(4);
  let mut backend = UringBackend::new(8, UringOptions { sqpoll: true }).unwrap();
  if !backend.sqpoll_active() {
    return;
  }
  let mut buffers = [[0u8; 4096]; 4];
  let ops = batch_reads(&file, &mut buffers);
  let mut places = Vec::new();
  for op in &ops {
    // SAFETY: `buffers` outlives every reap below.
    places.push(unsafe { backend.push(*op) }.unwrap());
  }
  // Token 3 is held (marked Here): cancelling it before the submit is certain.
  backend.cancel(3, places[3]);
  let mut out = Vec::new();
  backend.reap(&mut out);
  assert_eq!(out.first(), Some(&done(3, ECANCELED)));
  // The kernel thread may already have done the reads that were never held (0 and 2):
  // SQPOLL picks up what is in the ring without waiting for a submit.
  let mut rest = out.split_off(1);
  assert!(
    rest.iter().all(|c| c.token == 0 || c.token == 2),
    "only unheld reads complete before the submit: {rest:?}"
  );
  assert!(
    notifier_is_readable(&backend),
    "a cancel settled outside a reap must signal"
  );
  backend.notifier().clear();
  // Not quiet: the held read (token 1) goes to the ring like the others.
  backend.submit(false).unwrap();
  let left = 3 - rest.len();
  rest.extend(run_until_done(&mut backend, left));
  rest.sort_by_key(|c| c.token);
  assert_eq!(rest, [done(0, 4096), done(1, 4096), done(2, 4096)]);
  for (i, buf) in buffers.iter().take(3).enumerate() {
    assert!(
      buf.iter().all(|&b| b == i as u8 + 1),
      "block {i} read wrong bytes"
    );
  }
  assert!(
    buffers[3].iter().all(|&b| b == 0),
    "the cancelled read touched its buffer"
  );
}

#[test]
fn path_operations_and_cursor_io_with_the_side_pool() {
  let mut offloaded = caio_thread::Offload::new(backend(4), UringBackend::performs);
  contract::path_operations_and_cursor_io(&mut offloaded);
  assert!(
    offloaded.pool_started(),
    "access and copyfile have no io_uring opcode"
  );
  contract::read_small_reads_a_file_whole_or_hands_it_over(&mut offloaded);
}

#[test]
fn does_the_path_opcodes_the_kernel_has_and_refuses_the_rest() {
  let mut ring = backend(4);
  let mut path = b"/\0".to_vec();
  let with = |opcode, path: &mut Vec<u8>| Operation {
    buf: path.as_mut_ptr(),
    len: path.len() as u32,
    ..Operation::sync(opcode, 0, 1)
  };
  assert!(ring.performs(&with(Opcode::Unlink, &mut path)));
  assert!(!ring.performs(&with(Opcode::Access, &mut path)));
  assert!(
    !ring.performs(&with(Opcode::Copyfile, &mut path)),
    "one path where two belong"
  );
  let mut no_nul = b"/tmp".to_vec();
  assert!(!ring.performs(&with(Opcode::Unlink, &mut no_nul)));
  // Pushed all the same: refused, and the kernel never sees the path.
  // SAFETY: `no_nul` outlives the reap below.
  unsafe { ring.push(with(Opcode::Unlink, &mut no_nul)) }.unwrap();
  ring.submit(false).unwrap();
  assert_eq!(run_until_done(&mut ring, 1), [done(1, EINVAL)]);
}

#[test]
fn vectored_reads_and_writes() {
  contract::vectored_reads_and_writes(&mut backend(2));
}

#[test]
fn storage_operations_link() {
  contract::storage_operations_link(&mut backend(4));
}

#[test]
fn range_operations_with_the_side_pool() {
  let mut offloaded = caio_thread::Offload::new(backend(4), UringBackend::performs);
  contract::range_operations(&mut offloaded);
  assert!(
    offloaded.pool_started(),
    "a sync_file_range or fadvise longer than 32 bits does not fit an entry"
  );
}

#[test]
fn does_the_range_opcodes_whose_arguments_fit_an_entry() {
  let ring = backend(4);
  let mut area = [0u8; caio_core::RANGE_ARGS_SIZE];
  let mut with = |opcode, length: u64| {
    area = caio_core::RangeArgs { length, flags: 0 }.encode();
    Operation {
      buf: area.as_mut_ptr(),
      len: area.len() as u32,
      ..Operation::sync(opcode, 0, 1)
    }
  };
  for opcode in [Opcode::Fallocate, Opcode::SyncRange, Opcode::Fadvise] {
    assert!(ring.performs(&with(opcode, 4096)), "{opcode:?}");
  }
  assert!(ring.performs(&with(Opcode::Fallocate, 1 << 40)));
  assert!(!ring.performs(&with(Opcode::SyncRange, 1 << 32)));
  assert!(!ring.performs(&with(Opcode::Fadvise, 1 << 32)));
  let short = Operation {
    len: 8,
    ..with(Opcode::Fallocate, 4096)
  };
  assert!(!ring.performs(&short), "an argument area too short");
  assert!(ring.performs(&Operation::sync(Opcode::Readv, 0, 1)));
}

#[test]
fn links_only_the_operations_whose_failure_the_kernel_lets_break_a_chain() {
  let ring = backend(4);
  let linked_op = |opcode| caio_core::testing::linked(Operation::sync(opcode, 0, 1));
  for opcode in [
    Opcode::Read,
    Opcode::Write,
    Opcode::Readv,
    Opcode::Writev,
    Opcode::Fadvise,
  ] {
    assert!(ring.links_itself(&linked_op(opcode)), "{opcode:?}");
  }
  for opcode in [
    Opcode::Fsync,
    Opcode::Fdatasync,
    Opcode::Fallocate,
    Opcode::SyncRange,
    Opcode::Ftruncate,
  ] {
    assert!(
      !ring.links_itself(&linked_op(opcode)),
      "{opcode:?} linking on"
    );
    assert!(
      ring.links_itself(&Operation::sync(opcode, 0, 1)),
      "{opcode:?} at the end of a chain"
    );
  }
}

#[test]
fn registrations_answer_and_check_descriptors() {
  contract::registrations_answer_and_check_descriptors(&mut backend(2));
}

#[test]
fn completions_left_as_deferred_task_work_are_posted_by_the_reap() {
  let mut backend = backend(4);
  // This kernel (6.1 and later) grants the deferred ring, whose flags come together.
  assert!(backend.ring.params().is_setup_single_issuer());
  let file = temp_file(b"data");
  // SAFETY: a sync has no buffer.
  unsafe {
    backend
      .push(Operation::sync(Opcode::Fsync, file.as_raw_fd(), 7))
      .unwrap();
  }
  backend.submit(false).unwrap();
  // An fsync is always punted to io-wq, so its completion is task work, signalled once.
  assert!(caio_core::sys::wait_readable(
    backend.notifier().fd(),
    Duration::from_secs(5)
  ));
  // SAFETY: no other CompletionQueue is alive.
  let posted = !unsafe { backend.ring.completion_shared() }.is_empty();
  assert!(
    !posted,
    "posted before any enter: the task work was not deferred"
  );
  assert!(backend.ready());
  backend.notifier().clear();
  let mut out = Vec::new();
  backend.reap(&mut out);
  assert_eq!(out, [done(7, 0)]);
}

#[test]
fn lets_more_operations_block_in_io_wq_than_the_kernel_default() {
  let backend = backend(4);
  let mut limits = [0, 0];
  backend
    .ring
    .submitter()
    .register_iowq_max_workers(&mut limits)
    .unwrap();
  assert!(limits[0] >= BLOCKING_WORKERS, "{limits:?}");
}
