use super::*;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const EBADF: i64 = -(libc::EBADF as i64);
const ECANCELED: i64 = -(libc::ECANCELED as i64);
const EINVAL: i64 = -(libc::EINVAL as i64);

fn backend(capacity: usize) -> UringBackend {
  UringBackend::new(capacity, UringOptions::default()).unwrap()
}

/// Waits, reaps, and returns once `count` completions arrived, sorted by token.
fn run_until_done(backend: &mut UringBackend, count: usize) -> Vec<Completion> {
  let mut out = Vec::new();
  let deadline = Instant::now() + Duration::from_secs(10);
  while out.len() < count {
    assert!(
      Instant::now() < deadline,
      "timed out waiting for completions"
    );
    backend.wait(Duration::from_millis(50));
    backend.notifier().clear();
    backend.reap(&mut out);
  }
  assert_eq!(out.len(), count, "more completions than operations");
  out.sort_by_key(|c| c.token);
  out
}

/// Reaps for a while and asserts nothing completes.
fn assert_nothing_completes(backend: &mut UringBackend) {
  let mut out = Vec::new();
  for _ in 0..5 {
    backend.wait(Duration::from_millis(10));
    backend.reap(&mut out);
  }
  assert_eq!(out, []);
}

fn op(opcode: Opcode, fd: RawFd, offset: u64, buf: &mut [u8], token: u64) -> Operation {
  Operation {
    opcode,
    fd,
    offset,
    buf: buf.as_mut_ptr(),
    len: buf.len() as u32,
    token,
    priority: 0,
    link: false,
    in_batch: false,
  }
}

fn temp_file(contents: &[u8]) -> File {
  let mut file = tempfile::tempfile().unwrap();
  file.write_all(contents).unwrap();
  file
}

/// (read end, write end), both blocking.
fn pipe() -> (File, File) {
  let mut fds = [0 as libc::c_int; 2];
  // SAFETY: `fds` has room for the two descriptors pipe2 writes.
  assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
  // SAFETY: both descriptors were just created and are owned by nobody else.
  unsafe {
    (
      File::from(OwnedFd::from_raw_fd(fds[0])),
      File::from(OwnedFd::from_raw_fd(fds[1])),
    )
  }
}

fn done(token: u64, result: i64) -> Completion {
  Completion { token, result }
}

#[test]
fn sizes_the_rings_from_the_capacity() {
  let small = backend(3);
  assert_eq!(small.capacity(), 3);
  assert_eq!(small.sq_entries, 8);
  assert!(small.ring.params().cq_entries() >= 16);
  let odd = backend(100);
  assert_eq!(odd.sq_entries, 128);
  assert!(odd.ring.params().cq_entries() >= 256);
  assert_eq!(backend(0).capacity(), 1);
  assert!(!small.sqpoll_active());
}

#[test]
fn reads_writes_and_syncs() {
  let file = temp_file(b"hello world");
  let fd = file.as_raw_fd();
  let mut backend = backend(16);
  let mut payload = *b"HELLO";
  let mut head = [0u8; 11];
  // SAFETY: the buffers outlive run_until_done, which reaps every completion.
  unsafe {
    backend
      .push(op(Opcode::Write, fd, 0, &mut payload, 1))
      .unwrap();
    backend.push(Operation::sync(Opcode::Fsync, fd, 2)).unwrap();
    backend
      .push(Operation::sync(Opcode::Fdatasync, fd, 3))
      .unwrap();
  }
  backend.submit().unwrap();
  assert_eq!(
    run_until_done(&mut backend, 3),
    [done(1, 5), done(2, 0), done(3, 0)]
  );
  // SAFETY: as above.
  unsafe { backend.push(op(Opcode::Read, fd, 0, &mut head, 4)).unwrap() };
  backend.submit().unwrap();
  assert_eq!(run_until_done(&mut backend, 1), [done(4, 11)]);
  assert_eq!(&head, b"HELLO world");
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
  backend.submit().unwrap();
  assert_eq!(run_until_done(&mut backend, 1), [done(1, 1)]);
  // SAFETY: as above.
  unsafe {
    let mut read = op(Opcode::Read, fd, far, &mut back, 2);
    read.priority = best_effort;
    backend.push(read).unwrap();
    // Beyond i64::MAX: refused, never taken for "at the file position" (-1).
    backend
      .push(op(Opcode::Read, fd, u64::MAX, &mut [0u8; 1], 3))
      .unwrap();
  }
  backend.submit().unwrap();
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
  backend.submit().unwrap();
  assert_eq!(
    run_until_done(&mut backend, 3),
    [done(1, 3), done(2, EINVAL), done(3, 3)]
  );
  assert_eq!(bufs, [*b"abc", [0; 3], *b"abc"]);
}

#[test]
fn short_read_at_end_of_file_and_empty_past_it() {
  let file = temp_file(b"abc");
  let mut backend = backend(4);
  let (mut a, mut b) = ([0u8; 8], [0u8; 8]);
  // SAFETY: the buffers outlive the reap below.
  unsafe {
    backend
      .push(op(Opcode::Read, file.as_raw_fd(), 1, &mut a, 1))
      .unwrap();
    backend
      .push(op(Opcode::Read, file.as_raw_fd(), 10, &mut b, 2))
      .unwrap();
  }
  backend.submit().unwrap();
  assert_eq!(run_until_done(&mut backend, 2), [done(1, 2), done(2, 0)]);
  assert_eq!(&a[..2], b"bc");
}

#[test]
fn errors_come_back_as_negative_errno() {
  let mut backend = backend(4);
  let mut bufs = [[0u8; 4]; 4];
  let [a, b, c, d] = &mut bufs;
  let dir = File::open(std::env::temp_dir()).unwrap();
  let read_only = temp_file(b"data");
  let path = format!("/proc/self/fd/{}", read_only.as_raw_fd());
  let read_only = File::open(path).unwrap();
  // SAFETY: the buffers outlive the reap below.
  unsafe {
    backend.push(op(Opcode::Read, -1, 0, a, 1)).unwrap();
    backend
      .push(op(Opcode::Read, dir.as_raw_fd(), 0, b, 2))
      .unwrap();
    backend
      .push(op(Opcode::Write, read_only.as_raw_fd(), 0, c, 3))
      .unwrap();
    backend.push(op(Opcode::Read, 999_999, 0, d, 4)).unwrap();
  }
  backend.submit().unwrap();
  assert_eq!(
    run_until_done(&mut backend, 4),
    // A directory reads as EISDIR through io_uring too, as through pread.
    [
      done(1, EBADF),
      done(2, -(libc::EISDIR as i64)),
      done(3, EBADF),
      done(4, EBADF)
    ]
  );
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
  backend.submit().unwrap();
  assert_eq!(run_until_done(&mut backend, 1), [done(1, 4)]);
  assert_eq!(&buf[..4], b"pipe");
}

#[test]
fn cancels_a_blocked_pipe_read_without_touching_its_buffer() {
  let (mut read, mut write) = pipe();
  let mut backend = backend(4);
  let mut buf = [7u8; 16];
  // SAFETY: the buffer outlives the reap below.
  unsafe {
    backend
      .push(op(Opcode::Read, read.as_raw_fd(), 0, &mut buf, 1))
      .unwrap();
  }
  backend.submit().unwrap();
  assert_nothing_completes(&mut backend);
  backend.cancel(1);
  backend.cancel(1); // twice is once
  backend.cancel(99); // unknown: nothing happens
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
  unsafe {
    backend
      .push(op(Opcode::Read, read.as_raw_fd(), 0, &mut a, 1))
      .unwrap();
  }
  // Never submitted by the caller: the cancel request goes in right behind it.
  backend.cancel(1);
  assert_eq!(run_until_done(&mut backend, 1), [done(1, ECANCELED)]);
  assert_eq!(a, [7u8; 4]);

  // SAFETY: as above.
  unsafe {
    backend
      .push(op(Opcode::Read, file.as_raw_fd(), 0, &mut b, 2))
      .unwrap();
  }
  backend.submit().unwrap();
  backend.wait(Duration::from_secs(1)); // its completion is in the queue, not reaped
  backend.cancel(2); // too late: it settles with its real result
  assert_eq!(run_until_done(&mut backend, 1), [done(2, 3)]);
  assert_eq!(&b, b"abc");
}

#[test]
fn cancels_a_whole_ring_of_blocked_reads() {
  for capacity in [8, 5, 64] {
    let (read, _write) = pipe();
    let mut backend = backend(capacity);
    let mut bufs = vec![[9u8; 4]; capacity];
    // SAFETY: the buffers outlive the reap below.
    unsafe {
      for (i, buf) in bufs.iter_mut().enumerate() {
        backend
          .push(op(Opcode::Read, read.as_raw_fd(), 0, buf, i as u64))
          .unwrap();
      }
    }
    backend.submit().unwrap();
    for token in 0..capacity as u64 {
      backend.cancel(token);
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
  backend.submit().unwrap();
  assert_nothing_completes(&mut backend);
  write.write_all(b"late").unwrap();
  assert_eq!(run_until_done(&mut backend, 1), [done(1, 4)]);
  assert_eq!(&buf, b"late");
}

/// Takes a slot for `op` as push does, without giving it to the kernel, so that a test can
/// play the kernel's part. Returns its `user_data`.
fn take_slot(backend: &mut UringBackend, op: Operation) -> u64 {
  let index = backend.table.free.pop().unwrap() as usize;
  let slot = &mut backend.table.slots[index];
  slot.generation += 1;
  slot.op = op;
  slot.busy = true;
  slot.cancel = CancelState::None;
  slot.retries = 0;
  backend.table.outstanding += 1;
  user_data(index, slot.generation)
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
  backend.cancel(1);
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
    backend.wait(Duration::from_millis(10));
    backend.reap(&mut out);
  }
  assert_eq!(out, []);
}

#[test]
fn refuses_pushes_beyond_capacity_until_reaped() {
  let file = temp_file(b"x");
  let fd = file.as_raw_fd();
  for capacity in [3, 8] {
    let mut backend = backend(capacity);
    // SAFETY: syncs carry no buffer.
    unsafe {
      for token in 0..capacity as u64 {
        backend
          .push(Operation::sync(Opcode::Fsync, fd, token))
          .unwrap();
      }
      assert_eq!(
        backend.push(Operation::sync(Opcode::Fsync, fd, 99)),
        Err(Full)
      );
    }
    backend.submit().unwrap();
    run_until_done(&mut backend, capacity);
    // SAFETY: as above.
    unsafe {
      for token in 0..capacity as u64 {
        backend
          .push(Operation::sync(Opcode::Fsync, fd, token))
          .unwrap();
      }
    }
    backend.submit().unwrap();
    run_until_done(&mut backend, capacity);
  }
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
    backend.submit().unwrap();
    let completions = run_until_done(&mut backend, 5);
    assert!(completions.iter().all(|c| c.result == 2), "{completions:?}");
    let mut back = [0u8; 4];
    // SAFETY: `back` outlives the reap below.
    unsafe { backend.push(op(Opcode::Read, fd, 0, &mut back, 9)).unwrap() };
    backend.submit().unwrap();
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
    backend.submit().unwrap();
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
  contents.iter_mut().for_each(|b| *b = rng.next() as u8);
  let file = temp_file(&vec![0u8; contents.len()]);
  let fd = file.as_raw_fd();
  let mut backend = UringBackend::new(32, UringOptions { sqpoll: true }).unwrap();
  assert_eq!(
    backend.sqpoll_active(),
    backend.ring.params().is_setup_sqpoll()
  );
  // Any user may have an SQPOLL thread since 5.11; before, the backend falls back.
  if crate::probe::kernel_version().is_some_and(|version| version >= (5, 11)) {
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
  backend.submit().unwrap();
  let completions = run_until_done(&mut backend, 16);
  assert!(completions.iter().all(|c| c.result == 4096));
  // After the kernel thread went to sleep, a submit must wake it.
  std::thread::sleep(Duration::from_millis(3 * u64::from(SQPOLL_IDLE_MS)));
  let mut back = vec![0u8; contents.len()];
  // SAFETY: `back` outlives the reap below.
  unsafe { backend.push(op(Opcode::Read, fd, 0, &mut back, 1)).unwrap() };
  backend.submit().unwrap();
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
  unsafe {
    backend
      .push(op(Opcode::Read, read.as_raw_fd(), 0, &mut buf, 1))
      .unwrap();
  }
  backend.submit().unwrap();
  assert_nothing_completes(&mut backend);
  backend.cancel(1);
  assert_eq!(run_until_done(&mut backend, 1), [done(1, ECANCELED)]);
  assert_eq!(buf, [3u8; 4]);
}

/// xorshift64*, enough randomness for offsets.
struct Rng(u64);

impl Rng {
  fn next(&mut self) -> u64 {
    self.0 ^= self.0 >> 12;
    self.0 ^= self.0 << 25;
    self.0 ^= self.0 >> 27;
    self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
  }
}

#[test]
fn ten_thousand_random_reads_through_a_small_ring() {
  const SIZE: usize = 1 << 20;
  const CAPACITY: usize = 13;
  let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
  let contents: Vec<u8> = (0..SIZE).map(|_| rng.next() as u8).collect();
  let file = temp_file(&contents);
  let fd = file.as_raw_fd();
  let mut backend = backend(CAPACITY);
  let mut buffers = vec![[0u8; 4096]; CAPACITY];
  // What each slot of `buffers` was asked to read: (offset, len), or None when free.
  let mut asked: Vec<Option<(usize, usize)>> = vec![None; CAPACITY];
  let mut issued = 0;
  let mut checked = 0;
  let mut out = Vec::new();
  let deadline = Instant::now() + Duration::from_secs(60);
  while checked < 10_000 {
    assert!(Instant::now() < deadline, "timed out");
    for (i, buffer) in buffers.iter_mut().enumerate() {
      if issued == 10_000 || asked[i].is_some() {
        continue;
      }
      // Some reads run past the end of the file, to see short reads among them.
      let offset = rng.next() as usize % (SIZE + 2048);
      let len = 1 + rng.next() as usize % 4096;
      buffer.fill(0xAA);
      // SAFETY: `buffers` outlives the loop, which reaps every completion.
      let pushed = unsafe {
        backend.push(op(
          Opcode::Read,
          fd,
          offset as u64,
          &mut buffer[..len],
          i as u64,
        ))
      };
      pushed.unwrap();
      asked[i] = Some((offset, len));
      issued += 1;
    }
    backend.submit().unwrap();
    backend.reap(&mut out);
    if out.is_empty() {
      backend.wait(Duration::from_millis(100));
      backend.reap(&mut out);
    }
    for completion in out.drain(..) {
      let i = completion.token as usize;
      let (offset, len) = asked[i].take().unwrap();
      let expected = &contents[offset.min(SIZE)..(offset + len).min(SIZE)];
      assert_eq!(completion.result, expected.len() as i64);
      assert!(buffers[i][..expected.len()] == *expected);
      assert!(buffers[i][expected.len()..].iter().all(|&b| b == 0xAA));
      checked += 1;
    }
  }
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
      backend.submit().unwrap();
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
  backend.submit().unwrap();
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
  // Per buffer: the token using it and whether it reads the pipe, or None when free.
  let mut using: Vec<Option<(u64, bool)>> = vec![None; 8];
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
      let from_pipe = rng.next() % 3 == 0;
      let fd = if from_pipe {
        read.as_raw_fd()
      } else {
        file.as_raw_fd()
      };
      buffer.fill(0);
      let token = (next_token << 8) | i as u64;
      next_token += 1;
      // SAFETY: `buffers` outlives the loop, which reaps every completion.
      unsafe {
        backend
          .push(op(Opcode::Read, fd, 0, buffer, token))
          .unwrap()
      };
      using[i] = Some((token, from_pipe));
    }
    if rng.next() % 2 == 0 {
      backend.submit().unwrap();
    }
    // Cancel a few at random: staged, in flight, completed but not reaped, or long gone.
    for _ in 0..rng.next() % 4 {
      let i = (rng.next() % 8) as usize;
      match using[i] {
        Some((token, _)) if rng.next() % 4 != 0 => backend.cancel(token),
        _ => backend.cancel(rng.next() % (next_token << 8).max(1)),
      }
    }
    backend.submit().unwrap();
    backend.reap(&mut out);
    if out.is_empty() {
      backend.wait(Duration::from_millis(20));
      backend.reap(&mut out);
    }
    for completion in out.drain(..) {
      let i = (completion.token & 0xff) as usize;
      let (token, from_pipe) = using[i].take().expect("a second completion");
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
    if rng.next() % 8 == 0 {
      for (token, _) in using.iter().flatten().filter(|(_, pipe)| *pipe) {
        backend.cancel(*token);
      }
    }
  }
  for (token, _) in using.iter().flatten() {
    backend.cancel(*token);
  }
  let left = using.iter().flatten().count();
  run_until_done(&mut backend, left);
  run_until_quiet(&mut backend);
  assert_eq!(backend.table.outstanding, 0);
  assert_eq!(backend.table.deferred_cancels, 0);
}

#[test]
fn await_inline_waits_for_the_sqpoll_thread_only() {
  let file = temp_file(&[7u8; 4096]);
  let mut plain = backend(8);
  let mut byte = [0u8; 1];
  // SAFETY: `byte` outlives the reap below.
  unsafe { plain.push(op(Opcode::Read, file.as_raw_fd(), 0, &mut byte, 1)) }.unwrap();
  plain.submit().unwrap();
  assert!(!plain.await_inline(), "a ring without SQPOLL never waits");
  run_until_done(&mut plain, 1);

  let mut polled = UringBackend::new(8, UringOptions { sqpoll: true }).unwrap();
  if !polled.sqpoll_active() {
    return; // refused by this kernel: nothing to wait for, and the test above covers it
  }
  assert!(!polled.await_inline(), "nothing outstanding: no wait");
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
    polled.submit().unwrap();
    let mut out = Vec::new();
    // A cached read takes the kernel thread microseconds; allow for a busy machine by
    // asking a few times (each miss only makes later calls skip the spin).
    let deadline = Instant::now() + Duration::from_secs(5);
    while out.is_empty() {
      assert!(Instant::now() < deadline, "the read never completed");
      if polled.await_inline() {
        waited += 1;
      } else {
        polled.wait(Duration::from_millis(1));
      }
      polled.reap(&mut out);
    }
    assert_eq!(out, [done(round, 4096)]);
  }
  assert!(buf.iter().all(|&b| b == 7));
}

/// With SQPOLL: `count` batch reads of 4 KiB blocks of `file`, each into its own buffer.
fn batch_reads(file: &File, buffers: &mut [[u8; 4096]]) -> Vec<Operation> {
  buffers
    .iter_mut()
    .enumerate()
    .map(|(i, buf)| Operation {
      in_batch: true,
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
  backend.set_quiet(true);
  for op in &ops {
    // SAFETY: `buffers` outlives every reap below.
    unsafe { backend.push(*op) }.unwrap();
  }
  backend.submit().unwrap();
  // Every other read was done by submit itself: they are ready without any wait.
  let mut out = Vec::new();
  backend.reap(&mut out);
  let here: Vec<u64> = out.iter().map(|c| c.token).filter(|t| t % 2 == 1).collect();
  assert_eq!(
    here,
    [1, 3, 5, 7],
    "the held reads were not done by submit: {out:?}"
  );
  backend.set_quiet(false);
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
  for op in &ops {
    // SAFETY: `buffers` outlives every reap below.
    unsafe { backend.push(*op) }.unwrap();
  }
  // Token 3 is held (the second of each pair): cancelling it before the submit is certain.
  backend.cancel(3);
  let mut out = Vec::new();
  backend.reap(&mut out);
  assert_eq!(out, [done(3, ECANCELED)]);
  assert!(
    notifier_is_readable(&backend),
    "a cancel settled outside a reap must signal"
  );
  backend.notifier().clear();
  // Not quiet: the held read (token 1) goes to the ring like the others.
  backend.submit().unwrap();
  let mut rest = run_until_done(&mut backend, 3);
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

fn notifier_is_readable(backend: &UringBackend) -> bool {
  let mut pfd = libc::pollfd {
    fd: backend.notifier().fd(),
    events: libc::POLLIN,
    revents: 0,
  };
  // SAFETY: one valid pollfd, no wait.
  unsafe { libc::poll(&mut pfd, 1, 0) == 1 }
}
