//! The backend's tests (a child of `backend`, so that they can look at its state).

use super::*;
use std::alloc::Layout;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use caio_core::sys::wait_readable;
use caio_core::testing::{done, linked, op, results, run_until_done, temp_file};

const EBADF: i64 = -(libc::EBADF as i64);

/// One backend of each reaping kind: from the mapped ring, and through io_getevents.
fn both(capacity: usize) -> [AioBackend; 2] {
  [
    AioBackend::new(capacity).unwrap(),
    AioBackend::with_reaping(capacity, false).unwrap(),
  ]
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

/// A heap buffer aligned for O_DIRECT.
struct Aligned {
  ptr: NonNull<u8>,
  layout: Layout,
}

impl Aligned {
  fn new(len: usize) -> Aligned {
    let layout = Layout::from_size_align(len, 4096).unwrap();
    // SAFETY: the layout has a non-zero size.
    let ptr = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) }).unwrap();
    Aligned { ptr, layout }
  }

  fn bytes(&mut self) -> &mut [u8] {
    // SAFETY: the allocation holds layout.size() initialised (zeroed) bytes.
    unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
  }
}

impl Drop for Aligned {
  fn drop(&mut self) {
    // SAFETY: allocated in `new` with this layout.
    unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
  }
}

/// A temporary file with O_DIRECT set, in the first directory whose file system takes it
/// (tmpfs before Linux 6.6 does not).
fn direct_file() -> Option<(File, PathBuf)> {
  let candidates = [
    PathBuf::from("/var/tmp"),
    std::env::temp_dir(),
    std::env::current_dir().unwrap(),
  ];
  for dir in candidates {
    let Ok(file) = tempfile::tempfile_in(&dir) else {
      continue;
    };
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor `file` owns; takes no pointers.
    let set = unsafe {
      let flags = libc::fcntl(fd, libc::F_GETFL);
      libc::fcntl(fd, libc::F_SETFL, flags | libc::O_DIRECT) == 0
    };
    if set {
      return Some((file, dir));
    }
  }
  None
}

/// xorshift64: reproducible bytes and offsets without a dependency.
struct Rng(u64);

impl Rng {
  fn next(&mut self) -> u64 {
    self.0 ^= self.0 << 13;
    self.0 ^= self.0 >> 7;
    self.0 ^= self.0 << 17;
    self.0
  }
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
  for mut backend in both(16) {
    let file = temp_file(b"hello world");
    let fd = file.as_raw_fd();
    let mut payload = *b"HELLO";
    let mut head = [0u8; 5];
    let ops = [
      op(Opcode::Write, fd, 0, &mut payload, 1),
      fsync(fd, 2),
      Operation::sync(Opcode::Fdatasync, fd, 3),
    ];
    // SAFETY: the buffers outlive run_until_done, which reaps every completion.
    unsafe { push_all(&mut backend, ops) };
    backend.submit(false).unwrap();
    assert_eq!(results(&run_until_done(&mut backend, 3)), [5, 0, 0]);
    // SAFETY: as above.
    unsafe { push_all(&mut backend, [op(Opcode::Read, fd, 0, &mut head, 4)]) };
    assert_eq!(backend.submit(false).unwrap(), Submitted::default());
    assert_eq!(run_until_done(&mut backend, 1), [done(4, 5)]);
    assert_eq!(&head, b"HELLO");
  }
}

#[test]
fn ready_sees_the_ring_without_a_system_call() {
  let file = temp_file(b"abc");
  let mut backend = AioBackend::new(2).unwrap();
  assert!(!backend.ready());
  // SAFETY: syncs carry no buffer.
  unsafe { push_all(&mut backend, [fsync(file.as_raw_fd(), 1)]) };
  backend.submit(false).unwrap();
  let deadline = Instant::now() + Duration::from_secs(10);
  while !backend.ready() {
    assert!(Instant::now() < deadline, "the fsync never landed");
    std::thread::yield_now();
  }
  let mut out = Vec::new();
  backend.reap(&mut out);
  assert_eq!(out, [done(1, 0)]);
  assert!(!backend.ready());
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
  for mut backend in both(4) {
    let file = temp_file(b"abc");
    let (mut a, mut b) = ([0u8; 8], [0u8; 8]);
    let ops = [
      op(Opcode::Read, file.as_raw_fd(), 1, &mut a, 1),
      op(Opcode::Read, file.as_raw_fd(), 10, &mut b, 2),
    ];
    // SAFETY: the buffers outlive the reap below.
    unsafe { push_all(&mut backend, ops) };
    backend.submit(false).unwrap();
    assert_eq!(results(&run_until_done(&mut backend, 2)), [2, 0]);
    assert_eq!(&a[..2], b"bc");
  }
}

#[test]
fn refused_operations_complete_with_their_errno_and_the_rest_go_in() {
  for mut backend in both(8) {
    let file = temp_file(b"abcdef");
    let read_only = File::open("/proc/self/exe").unwrap();
    let dir = File::open(std::env::temp_dir()).unwrap();
    let mut bufs = [[0u8; 3]; 5];
    let [a, b, c, d, e] = &mut bufs;
    let ops = [
      op(Opcode::Read, file.as_raw_fd(), 0, a, 1),
      op(Opcode::Read, -1, 0, b, 2),
      op(Opcode::Read, file.as_raw_fd(), 3, c, 3),
      op(Opcode::Read, dir.as_raw_fd(), 0, d, 4),
      op(Opcode::Write, read_only.as_raw_fd(), 0, e, 5),
    ];
    // SAFETY: the buffers outlive the reap below.
    unsafe { push_all(&mut backend, ops) };
    backend.submit(false).unwrap();
    // Refusals are completed here, not by the kernel: the backend signals them itself.
    assert!(backend.notifier().clear());
    let done = run_until_done(&mut backend, 5);
    assert_eq!(results(&done), [3, EBADF, 3, -(libc::EISDIR as i64), EBADF]);
    assert_eq!((&bufs[0], &bufs[2]), (b"abc", b"def"));
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
fn the_link_flag_is_ignored() {
  for mut backend in both(4) {
    let file = temp_file(b"abc");
    let mut byte = [b'x'; 1];
    // A failing "chain head" does not cancel what follows it: chains are the scheduler's.
    let ops = [
      linked(op(Opcode::Write, -1, 0, &mut byte, 1)),
      Operation::sync(Opcode::Fdatasync, file.as_raw_fd(), 2),
    ];
    // SAFETY: `byte` outlives the reap below.
    unsafe { push_all(&mut backend, ops) };
    backend.submit(false).unwrap();
    assert_eq!(results(&run_until_done(&mut backend, 2)), [EBADF, 0]);
  }
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
fn full_at_capacity_and_room_again_after_a_reap() {
  let file = temp_file(b"x");
  let fd = file.as_raw_fd();
  let mut backend = AioBackend::new(2).unwrap();
  // SAFETY: syncs carry no buffer.
  unsafe { push_all(&mut backend, [fsync(fd, 1), fsync(fd, 2)]) };
  // SAFETY: as above.
  assert_eq!(unsafe { backend.push(fsync(fd, 3)) }, Err(Full));
  backend.submit(false).unwrap();
  // Still full while the completions are not reaped, even once the kernel is done.
  std::thread::sleep(Duration::from_millis(20));
  // SAFETY: as above.
  assert_eq!(unsafe { backend.push(fsync(fd, 3)) }, Err(Full));
  run_until_done(&mut backend, 2);
  // SAFETY: as above.
  unsafe { push_all(&mut backend, [fsync(fd, 3), fsync(fd, 4)]) };
  backend.submit(false).unwrap();
  assert_eq!(results(&run_until_done(&mut backend, 2)), [0, 0]);
}

#[test]
fn cancel_before_submission() {
  let file = temp_file(b"abc");
  let fd = file.as_raw_fd();
  let mut backend = AioBackend::new(4).unwrap();
  let mut buf = [0u8; 3];
  let ops = [fsync(fd, 1), op(Opcode::Read, fd, 0, &mut buf, 2)];
  // SAFETY: `buf` outlives the reap below.
  let places = unsafe { push_all(&mut backend, ops) };
  backend.cancel(2, places[1]);
  assert!(backend.notifier().clear(), "a local completion signals");
  backend.submit(false).unwrap();
  assert_eq!(results(&run_until_done(&mut backend, 2)), [0, ECANCELED]);
  assert_eq!(buf, [0u8; 3]);
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
  let direct = direct_file();
  let file = match &direct {
    Some((file, _)) => file.try_clone().unwrap(),
    None => temp_file(b""),
  };
  file.set_len(1 << 22).unwrap();
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
fn ten_thousand_random_reads_over_capacity_eight() {
  const FILE_LEN: usize = 1 << 20;
  const DEPTH: usize = 8;
  const TOTAL: usize = 10_000;
  let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
  let contents: Vec<u8> = (0..FILE_LEN).map(|_| rng.next() as u8).collect();
  let file = temp_file(&contents);
  for mut backend in both(DEPTH) {
    let mut buffers = vec![[0u8; 4096]; DEPTH];
    let mut requests = [(0usize, 0usize); DEPTH];
    let mut free: Vec<usize> = (0..DEPTH).collect();
    let (mut issued, mut checked) = (0, 0);
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while checked < TOTAL {
      assert!(Instant::now() < deadline, "timed out");
      while issued < TOTAL {
        let Some(slot) = free.pop() else { break };
        let offset = (rng.next() % (FILE_LEN as u64 + 64)) as usize;
        let len = 1 + (rng.next() % 4096) as usize;
        requests[slot] = (offset, len);
        buffers[slot].fill(0xAA);
        let buf = &mut buffers[slot][..len];
        let read = op(
          Opcode::Read,
          file.as_raw_fd(),
          offset as u64,
          buf,
          slot as u64,
        );
        // SAFETY: `buffers` outlives every reap in this loop, and a buffer is reused only
        // after its completion was reaped.
        unsafe { push_all(&mut backend, [read]) };
        issued += 1;
      }
      backend.submit(false).unwrap();
      out.clear();
      backend.reap(&mut out);
      if out.is_empty() {
        if !backend.ready() {
          wait_readable(backend.notifier().fd(), Duration::from_millis(50));
        }
        backend.notifier().clear();
        continue;
      }
      for c in &out {
        let slot = c.token as usize;
        let (offset, len) = requests[slot];
        let expected = &contents[offset.min(FILE_LEN)..(offset + len).min(FILE_LEN)];
        assert_eq!(c.result, expected.len() as i64, "read {len} at {offset}");
        assert!(buffers[slot][..expected.len()] == *expected);
        assert!(buffers[slot][expected.len()..len]
          .iter()
          .all(|&b| b == 0xAA));
        free.push(slot);
        checked += 1;
      }
    }
    assert_eq!(backend.outstanding, 0);
  }
}

#[test]
fn drop_with_operations_outstanding_returns() {
  let direct = direct_file();
  let file = match &direct {
    Some((file, _)) => file.try_clone().unwrap(),
    None => temp_file(b""),
  };
  file.set_len(1 << 24).unwrap();
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
