//! What every backend promises, checked once: each backend's tests call these on a backend
//! of their own making, one `#[test]` per check, so that each backend names and runs every
//! check that applies to it.
//!
//! A check panics (fails its test) when the backend breaks the promise it is named after.
//! The backend passed in must be fresh: nothing pushed, nothing outstanding.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::{done, linked, op, results, run_until_done, temp_file, wait_until_ready, Rng};
use crate::{Backend, Full, Opcode, Operation, Submitted};

const EBADF: i64 = -(libc::EBADF as i64);
const ECANCELED: i64 = -(libc::ECANCELED as i64);
const EISDIR: i64 = -(libc::EISDIR as i64);

/// A write, an fsync and an fdatasync complete with their results, and a read then sees what
/// was written. Neither submit says completions come soon. Needs a capacity of 3.
pub fn reads_writes_and_syncs(backend: &mut dyn Backend) {
  let file = temp_file(b"hello world");
  let fd = file.as_raw_fd();
  let mut payload = *b"HELLO";
  let mut back = [0u8; 11];
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
  assert_eq!(backend.submit(false).unwrap(), Submitted::default());
  assert_eq!(
    run_until_done(backend, 3),
    [done(1, 5), done(2, 0), done(3, 0)]
  );
  // SAFETY: as above.
  unsafe { backend.push(op(Opcode::Read, fd, 0, &mut back, 4)) }.unwrap();
  assert_eq!(backend.submit(false).unwrap(), Submitted::default());
  assert_eq!(run_until_done(backend, 1), [done(4, 11)]);
  assert_eq!(&back, b"HELLO world");
}

/// A read that runs over the end of the file returns what there is; one past the end
/// returns 0. Needs a capacity of 2.
pub fn short_read_at_end_of_file_and_empty_past_it(backend: &mut dyn Backend) {
  let file = temp_file(b"abc");
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
  backend.submit(false).unwrap();
  assert_eq!(run_until_done(backend, 2), [done(1, 2), done(2, 0)]);
  assert_eq!(&a[..2], b"bc");
}

/// Failures complete with the negative errno the plain system call gives (a bad descriptor,
/// a directory, a write to a read-only descriptor, a descriptor nobody opened), and do not
/// hold back the good operations among them. Needs a capacity of 6.
pub fn errors_come_back_as_negative_errno(backend: &mut dyn Backend) {
  let file = temp_file(b"abcdef");
  let dir = File::open(std::env::temp_dir()).unwrap();
  let writable = temp_file(b"data");
  let read_only = File::open(format!("/proc/self/fd/{}", writable.as_raw_fd())).unwrap();
  let mut bufs = [[0u8; 3]; 6];
  let [a, b, c, d, e, f] = &mut bufs;
  // SAFETY: the buffers outlive the reap below.
  unsafe {
    backend
      .push(op(Opcode::Read, file.as_raw_fd(), 0, a, 1))
      .unwrap();
    backend.push(op(Opcode::Read, -1, 0, b, 2)).unwrap();
    backend
      .push(op(Opcode::Read, file.as_raw_fd(), 3, c, 3))
      .unwrap();
    backend
      .push(op(Opcode::Read, dir.as_raw_fd(), 0, d, 4))
      .unwrap();
    backend
      .push(op(Opcode::Write, read_only.as_raw_fd(), 0, e, 5))
      .unwrap();
    backend.push(op(Opcode::Read, 999_999, 0, f, 6)).unwrap();
  }
  backend.submit(false).unwrap();
  assert_eq!(
    results(&run_until_done(backend, 6)),
    [3, EBADF, 3, EISDIR, EBADF, EBADF]
  );
  assert_eq!((&bufs[0], &bufs[2]), (b"abc", b"def"));
}

/// Once `capacity` operations are outstanding a push is refused with [`Full`], and stays
/// refused while their completions wait unreaped, even after the work is done; reaping
/// them makes room for `capacity` more.
pub fn refuses_pushes_beyond_capacity_until_reaped(backend: &mut dyn Backend) {
  let file = temp_file(b"x");
  let fd = file.as_raw_fd();
  let capacity = backend.traits().capacity as u64;
  let fsync = |token| Operation::sync(Opcode::Fsync, fd, token);
  // SAFETY: syncs carry no buffer.
  unsafe {
    for token in 0..capacity {
      backend.push(fsync(token)).unwrap();
    }
    assert_eq!(backend.push(fsync(99)), Err(Full));
  }
  backend.submit(false).unwrap();
  std::thread::sleep(Duration::from_millis(20));
  // SAFETY: as above.
  assert_eq!(unsafe { backend.push(fsync(99)) }, Err(Full));
  run_until_done(backend, capacity as usize);
  // SAFETY: as above.
  unsafe {
    for token in 0..capacity {
      backend.push(fsync(token)).unwrap();
    }
  }
  backend.submit(false).unwrap();
  let again = run_until_done(backend, capacity as usize);
  assert!(again.iter().all(|c| c.result == 0), "{again:?}");
}

/// A backend that declares no links ignores the link flag: a failing "chain head" cancels
/// nothing after it, since chains are the scheduler's. Needs a capacity of 2.
pub fn links_are_ignored_so_a_failure_cancels_nothing(backend: &mut dyn Backend) {
  assert!(!backend.traits().links, "this backend declares links");
  let file = temp_file(b"abc");
  let mut byte = *b"x";
  // SAFETY: `byte` outlives the reap below.
  unsafe {
    backend
      .push(linked(op(Opcode::Write, -1, 0, &mut byte, 1)))
      .unwrap();
    backend
      .push(Operation::sync(Opcode::Fdatasync, file.as_raw_fd(), 2))
      .unwrap();
  }
  backend.submit(false).unwrap();
  assert_eq!(run_until_done(backend, 2), [done(1, EBADF), done(2, 0)]);
}

/// A cancel before the submit withdraws a staged operation: it completes with `-ECANCELED`
/// at once (signalling the notifier), never runs, and the operation pushed beside it runs
/// as usual. Needs a capacity of 2.
pub fn cancel_before_submit_withdraws_a_staged_op(backend: &mut dyn Backend) {
  let file = temp_file(b"abc");
  let fd = file.as_raw_fd();
  let (mut lost, mut back) = (*b"xyz", [0u8; 3]);
  // SAFETY: both buffers outlive the reap below.
  let place = unsafe {
    let place = backend
      .push(op(Opcode::Write, fd, 0, &mut lost, 1))
      .unwrap();
    backend.push(op(Opcode::Read, fd, 0, &mut back, 2)).unwrap();
    place
  };
  backend.cancel(1, place);
  assert!(
    backend.notifier().clear(),
    "a cancel settled outside a reap signals"
  );
  backend.submit(false).unwrap();
  assert_eq!(run_until_done(backend, 2), [done(1, ECANCELED), done(2, 3)]);
  assert_eq!(&back, b"abc", "the cancelled write never ran");
}

/// A cancel for an operation already reaped does nothing, even to a later operation with
/// the same token at the same place. Needs a capacity of 1.
pub fn a_late_cancel_does_not_hit_a_later_op_with_the_same_token(backend: &mut dyn Backend) {
  let file = temp_file(b"");
  let mut bytes = *b"xy";
  for round in 0..3u64 {
    // SAFETY: `bytes` outlives the reap below.
    let place = unsafe {
      backend.push(op(
        Opcode::Write,
        file.as_raw_fd(),
        round * 2,
        &mut bytes,
        7,
      ))
    }
    .unwrap();
    backend.submit(false).unwrap();
    assert_eq!(run_until_done(backend, 1), [done(7, 2)]);
    // Reaped already: nothing to cancel, and nothing may be remembered for token 7.
    backend.cancel(7, place);
  }
  let mut back = [0u8; 8];
  // SAFETY: `back` outlives the reap below.
  unsafe { backend.push(op(Opcode::Read, file.as_raw_fd(), 0, &mut back, 8)) }.unwrap();
  backend.submit(false).unwrap();
  assert_eq!(run_until_done(backend, 1), [done(8, 6)]);
  assert_eq!(&back[..6], b"xyxyxy");
}

/// `ready` is false with nothing done, true once a completion waits (and until it is
/// reaped), false again after the reap that took it. Only for backends whose `ready` sees
/// the kernel's completions. Needs a capacity of 1.
pub fn ready_says_whether_a_reap_finds_something(backend: &mut dyn Backend) {
  let file = temp_file(b"abc");
  let mut buf = [0u8; 3];
  assert!(!backend.ready(), "an idle backend has nothing");
  // SAFETY: the buffer outlives the reap below.
  unsafe { backend.push(op(Opcode::Read, file.as_raw_fd(), 0, &mut buf, 1)) }.unwrap();
  backend.submit(false).unwrap();
  wait_until_ready(backend);
  assert!(backend.ready(), "ready until reaped");
  let mut out = Vec::new();
  backend.reap(&mut out);
  assert_eq!(out, [done(1, 3)]);
  assert!(!backend.ready(), "nothing left after the reap");
  assert_eq!(&buf, b"abc");
}

/// Ten thousand reads of random lengths at random offsets, some running past the end of
/// the file, `capacity` at a time: each returns exactly the file's bytes there and touches
/// nothing of its buffer beyond them.
pub fn ten_thousand_random_reads_match_the_file(backend: &mut dyn Backend) {
  const SIZE: usize = 1 << 20;
  const TOTAL: usize = 10_000;
  let capacity = backend.traits().capacity;
  let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
  let contents: Vec<u8> = (0..SIZE).map(|_| rng.next_u64() as u8).collect();
  let file = temp_file(&contents);
  let fd = file.as_raw_fd();
  let mut buffers = vec![[0u8; 4096]; capacity];
  // What each of `buffers` was asked to read: (offset, len), or None when free.
  let mut asked: Vec<Option<(usize, usize)>> = vec![None; capacity];
  let (mut issued, mut checked) = (0, 0);
  let mut out = Vec::new();
  let deadline = Instant::now() + Duration::from_secs(60);
  while checked < TOTAL {
    assert!(Instant::now() < deadline, "timed out");
    for (i, buffer) in buffers.iter_mut().enumerate() {
      if issued == TOTAL || asked[i].is_some() {
        continue;
      }
      let offset = rng.next_u64() as usize % (SIZE + 2048);
      let len = 1 + rng.next_u64() as usize % 4096;
      buffer.fill(0xAA);
      let read = op(
        Opcode::Read,
        fd,
        offset as u64,
        &mut buffer[..len],
        i as u64,
      );
      // SAFETY: `buffers` outlives the loop, which reaps every completion, and a buffer is
      // reused only after its completion was reaped.
      unsafe { backend.push(read) }.unwrap();
      asked[i] = Some((offset, len));
      issued += 1;
    }
    backend.submit(false).unwrap();
    backend.reap(&mut out);
    if out.is_empty() {
      if !backend.ready() {
        crate::sys::wait_readable(backend.notifier().fd(), Duration::from_millis(100));
      }
      backend.notifier().clear();
      backend.reap(&mut out);
    }
    for completion in out.drain(..) {
      let i = completion.token as usize;
      let (offset, len) = asked[i].take().expect("one completion per read");
      let expected = &contents[offset.min(SIZE)..(offset + len).min(SIZE)];
      assert_eq!(
        completion.result,
        expected.len() as i64,
        "read {len} at {offset}"
      );
      assert!(buffers[i][..expected.len()] == *expected);
      assert!(buffers[i][expected.len()..].iter().all(|&b| b == 0xAA));
      checked += 1;
    }
  }
}

/// One operation run alone to its completion's result.
fn run_one(backend: &mut dyn Backend, op: Operation) -> i64 {
  // SAFETY: the callers' buffers outlive this call, which reaps the completion.
  unsafe { backend.push(op) }.unwrap();
  backend.submit(false).unwrap();
  run_until_done(backend, 1)[0].result
}

/// `path` as a path operation's buffer: its bytes, NUL-terminated, after `room` zeroes.
fn path_buffer(room: usize, paths: &[&std::path::Path]) -> Vec<u8> {
  let mut buffer = vec![0u8; room];
  for path in paths {
    buffer.extend_from_slice(path.as_os_str().as_encoded_bytes());
    buffer.push(0);
  }
  buffer
}

/// The size a statx answer area holds.
fn statx_size(area: &[u8]) -> u64 {
  u64::from_le_bytes(area[40..48].try_into().unwrap())
}

/// Every path operation does what its system call does and fails with its errno, and reads
/// and writes at [`AT_CURSOR`](crate::AT_CURSOR) use and advance the file position. Needs a
/// capacity of 1.
pub fn path_operations_and_cursor_io(backend: &mut dyn Backend) {
  use crate::{AT_CURSOR, STATX_SIZE};
  const ENOENT: i64 = -(libc::ENOENT as i64);
  const EEXIST: i64 = -(libc::EEXIST as i64);
  let dir = tempfile::tempdir().unwrap();
  let sub = dir.path().join("sub");
  let file = sub.join("file");
  let moved = sub.join("moved");
  let copy = sub.join("copy");
  let with_buffer = |opcode, offset, buffer: &mut Vec<u8>| Operation {
    offset,
    buf: buffer.as_mut_ptr(),
    len: buffer.len() as u32,
    ..Operation::sync(opcode, 0, 9)
  };
  let mut sub_path = path_buffer(0, &[&sub]);
  assert_eq!(
    run_one(backend, with_buffer(Opcode::Mkdir, 0o755, &mut sub_path)),
    0
  );
  assert_eq!(
    run_one(backend, with_buffer(Opcode::Mkdir, 0o755, &mut sub_path)),
    EEXIST
  );

  let mut file_path = path_buffer(0, &[&file]);
  let create = (libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC) as u64 | (0o600 << 32);
  let fd = run_one(backend, with_buffer(Opcode::Open, create, &mut file_path));
  assert!(fd >= 0, "open: {fd}");
  let fd = fd as i32;
  for (token, part) in [b"ab", b"cd"].iter().enumerate() {
    let mut part = **part;
    let write = op(Opcode::Write, fd, AT_CURSOR, &mut part, token as u64);
    assert_eq!(run_one(backend, write), 2, "write at the file position");
  }
  // SAFETY: takes no pointer; rewinds the descriptor this test opened.
  assert_eq!(unsafe { libc::lseek(fd, 1, libc::SEEK_SET) }, 1);
  let mut back = [0u8; 2];
  assert_eq!(
    run_one(backend, op(Opcode::Read, fd, AT_CURSOR, &mut back, 3)),
    2
  );
  assert_eq!(&back, b"bc");
  assert_eq!(
    run_one(backend, op(Opcode::Read, fd, AT_CURSOR, &mut back, 4)),
    1
  );
  assert_eq!(back[0], b'd');

  let mut area = vec![0u8; STATX_SIZE];
  let fstat = Operation {
    fd,
    ..with_buffer(Opcode::Fstat, 0, &mut area)
  };
  assert_eq!(run_one(backend, fstat), 0);
  assert_eq!(statx_size(&area), 4);
  let truncate = Operation {
    offset: 3,
    ..Operation::sync(Opcode::Ftruncate, fd, 5)
  };
  assert_eq!(run_one(backend, truncate), 0);
  assert_eq!(run_one(backend, Operation::sync(Opcode::Close, fd, 6)), 0);
  assert_eq!(
    run_one(backend, Operation::sync(Opcode::Close, fd, 7)),
    EBADF
  );

  let mut stat = path_buffer(STATX_SIZE, &[&file]);
  assert_eq!(run_one(backend, with_buffer(Opcode::Stat, 0, &mut stat)), 0);
  assert_eq!(statx_size(&stat), 3);
  let mut copy_paths = path_buffer(0, &[&file, &copy]);
  assert_eq!(
    run_one(backend, with_buffer(Opcode::Copyfile, 0, &mut copy_paths)),
    0
  );
  assert_eq!(std::fs::read(&copy).unwrap(), b"abc");
  let mut rename_paths = path_buffer(0, &[&file, &moved]);
  assert_eq!(
    run_one(backend, with_buffer(Opcode::Rename, 0, &mut rename_paths)),
    0
  );
  assert_eq!(
    run_one(backend, with_buffer(Opcode::Rename, 0, &mut rename_paths)),
    ENOENT
  );
  let mut gone = path_buffer(0, &[&file]);
  assert_eq!(
    run_one(backend, with_buffer(Opcode::Access, 0, &mut gone)),
    ENOENT
  );
  let mut stat_gone = path_buffer(STATX_SIZE, &[&file]);
  assert_eq!(
    run_one(backend, with_buffer(Opcode::Stat, 0, &mut stat_gone)),
    ENOENT
  );
  for path in [&moved, &copy] {
    let mut path = path_buffer(0, &[path]);
    assert_eq!(
      run_one(backend, with_buffer(Opcode::Access, 0, &mut path)),
      0
    );
    assert_eq!(
      run_one(backend, with_buffer(Opcode::Unlink, 0, &mut path)),
      0
    );
  }
  let rmdir = libc::AT_REMOVEDIR as u64;
  assert_eq!(
    run_one(backend, with_buffer(Opcode::Unlink, rmdir, &mut sub_path)),
    0
  );
  let mut no_nul = b"/tmp".to_vec();
  assert_eq!(
    run_one(backend, with_buffer(Opcode::Unlink, 0, &mut no_nul)),
    -(libc::EINVAL as i64),
    "a path without its NUL is refused, never read past"
  );
}

/// `ReadSmall` reads a small regular file whole and closes it, and hands back an open
/// descriptor at position 0 for a file too big or a directory. Needs a capacity of 1.
pub fn read_small_reads_a_file_whole_or_hands_it_over(backend: &mut dyn Backend) {
  let dir = tempfile::tempdir().unwrap();
  let file = dir.path().join("small");
  std::fs::write(&file, b"hello").unwrap();
  let read_small = |buffer: &mut Vec<u8>| Operation {
    offset: libc::O_RDONLY as u64,
    buf: buffer.as_mut_ptr(),
    len: buffer.len() as u32,
    ..Operation::sync(Opcode::ReadSmall, 0, 1)
  };
  let path_len = file.as_os_str().len() + 1;
  let mut roomy = path_buffer(0, &[&file]);
  roomy.resize(path_len + 16, 0);
  assert_eq!(run_one(backend, read_small(&mut roomy)), 5);
  assert_eq!(&roomy[path_len..path_len + 5], b"hello");

  for (name, mut buffer) in [
    ("too big", path_buffer(0, &[&file])),
    ("a directory", path_buffer(0, &[dir.path()])),
  ] {
    let room = buffer.len() - buffer.iter().position(|&b| b == 0).unwrap() - 1;
    buffer.resize(buffer.len() + 3, 0);
    let room = room + 3;
    let result = run_one(backend, read_small(&mut buffer));
    assert!(result > room as i64, "{name}: {result}");
    let fd = (result - room as i64 - 1) as i32;
    // SAFETY: takes no pointer; the descriptor is this test's to close.
    let position = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
    assert_eq!(position, 0, "{name}: at position 0");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::close(fd) }, 0, "{name}: handed over open");
  }
  let mut missing = path_buffer(0, &[&dir.path().join("missing")]);
  missing.resize(missing.len() + 8, 0);
  assert_eq!(
    run_one(backend, read_small(&mut missing)),
    -(libc::ENOENT as i64)
  );
}

/// A range operation (`Fallocate`, `SyncRange`, `Fadvise`) on `fd` over `length` bytes at
/// `offset`, its arguments in `area`.
fn range_op(
  opcode: Opcode,
  fd: i32,
  offset: u64,
  length: u64,
  flags: u32,
  area: &mut [u8; crate::RANGE_ARGS_SIZE],
) -> Operation {
  *area = crate::RangeArgs { length, flags }.encode();
  Operation {
    offset,
    buf: area.as_mut_ptr(),
    len: area.len() as u32,
    ..Operation::sync(opcode, fd, 11)
  }
}

/// A vectored operation over `buffers`, its iovecs in `iovecs`.
fn vectored(
  opcode: Opcode,
  fd: i32,
  offset: u64,
  buffers: &mut [&mut [u8]],
  iovecs: &mut Vec<libc::iovec>,
) -> Operation {
  iovecs.clear();
  iovecs.extend(buffers.iter_mut().map(|buffer| libc::iovec {
    iov_base: buffer.as_mut_ptr().cast(),
    iov_len: buffer.len(),
  }));
  Operation {
    offset,
    buf: iovecs.as_mut_ptr().cast(),
    len: (iovecs.len() * crate::IOVEC_SIZE) as u32,
    ..Operation::sync(opcode, fd, 12)
  }
}

/// `fstat`'s size and 512-byte blocks of `file`.
fn size_and_blocks(file: &File) -> (u64, u64) {
  use std::os::unix::fs::MetadataExt;
  let meta = file.metadata().unwrap();
  (meta.len(), meta.blocks())
}

/// `Readv` and `Writev` move their buffers in order at the offset (empty buffers among
/// them), a vectored read comes back short at end of file, both fail as `preadv` and
/// `pwritev` do, and at [`AT_CURSOR`](crate::AT_CURSOR) they use and move the file
/// position as `readv` and `writev` do. Needs a capacity of 1.
pub fn vectored_reads_and_writes(backend: &mut dyn Backend) {
  const EINVAL: i64 = -(libc::EINVAL as i64);
  let file = temp_file(b"0123456789");
  let fd = file.as_raw_fd();
  let mut iovecs = Vec::new();
  let (mut a, mut b, mut c) = (*b"ab", *b"", *b"cde");
  let write = vectored(
    Opcode::Writev,
    fd,
    2,
    &mut [&mut a, &mut b, &mut c],
    &mut iovecs,
  );
  assert_eq!(run_one(backend, write), 5);
  assert_eq!(
    std::fs::read(format!("/proc/self/fd/{fd}")).unwrap(),
    b"01abcde789"
  );
  let (mut x, mut y, mut z) = ([0u8; 3], [0u8; 0], [0xAAu8; 8]);
  let read = vectored(
    Opcode::Readv,
    fd,
    1,
    &mut [&mut x, &mut y, &mut z],
    &mut iovecs,
  );
  assert_eq!(run_one(backend, read), 9, "short at end of file");
  assert_eq!((&x, &z[..6]), (b"1ab", &b"cde789"[..]));
  assert!(
    z[6..].iter().all(|&byte| byte == 0xAA),
    "nothing past the end touched"
  );
  let read = vectored(Opcode::Readv, -1, 0, &mut [&mut x], &mut iovecs);
  assert_eq!(run_one(backend, read), EBADF);
  let read = vectored(
    Opcode::Readv,
    fd,
    i64::MAX as u64 + 1,
    &mut [&mut x],
    &mut iovecs,
  );
  assert_eq!(run_one(backend, read), EINVAL, "an offset past i64::MAX");
  let past = vectored(Opcode::Readv, fd, 100, &mut [&mut x], &mut iovecs);
  assert_eq!(run_one(backend, past), 0, "empty past the end");

  // SAFETY: takes no pointer; moves the position of the descriptor this test made.
  assert_eq!(unsafe { libc::lseek(fd, 8, libc::SEEK_SET) }, 8);
  let (mut p, mut q) = (*b"P", *b"QR");
  let at_cursor = vectored(
    Opcode::Writev,
    fd,
    crate::AT_CURSOR,
    &mut [&mut p, &mut q],
    &mut iovecs,
  );
  assert_eq!(
    run_one(backend, at_cursor),
    3,
    "a writev at the file position"
  );
  assert_eq!(
    std::fs::read(format!("/proc/self/fd/{fd}")).unwrap(),
    b"01abcde7PQR"
  );
  // SAFETY: as above.
  assert_eq!(unsafe { libc::lseek(fd, 2, libc::SEEK_SET) }, 2);
  let mut two = [0u8; 2];
  let read = vectored(
    Opcode::Readv,
    fd,
    crate::AT_CURSOR,
    &mut [&mut two, &mut x],
    &mut iovecs,
  );
  assert_eq!(run_one(backend, read), 5, "a readv at the file position");
  assert_eq!((&two, &x), (b"ab", b"cde"));
  // SAFETY: as above.
  let position = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
  assert_eq!(position, 7, "and it moved the position");
}

/// `Fallocate` allocates (growing the file or, with `KEEP_SIZE`, not), punches holes that
/// read back as zeros, and refuses what `fallocate(2)` refuses; `SyncRange` and `Fadvise`
/// do what their calls do and fail as they fail. Needs a capacity of 1.
pub fn range_operations(backend: &mut dyn Backend) {
  const EINVAL: i64 = -(libc::EINVAL as i64);
  const ESPIPE: i64 = -(libc::ESPIPE as i64);
  const KEEP_SIZE: u32 = libc::FALLOC_FL_KEEP_SIZE as u32;
  const PUNCH_HOLE: u32 = libc::FALLOC_FL_PUNCH_HOLE as u32;
  let file = temp_file(b"");
  let fd = file.as_raw_fd();
  let mut area = [0u8; crate::RANGE_ARGS_SIZE];
  let keep = range_op(Opcode::Fallocate, fd, 0, 1 << 20, KEEP_SIZE, &mut area);
  assert_eq!(run_one(backend, keep), 0);
  let (size, blocks) = size_and_blocks(&file);
  assert_eq!(size, 0, "KEEP_SIZE keeps the size");
  assert!(blocks >= 2048, "1 MiB allocated: {blocks} blocks");
  let grow = range_op(Opcode::Fallocate, fd, 4096, 8192, 0, &mut area);
  assert_eq!(run_one(backend, grow), 0);
  assert_eq!(
    size_and_blocks(&file).0,
    12288,
    "a plain fallocate grows the file"
  );

  let mut data = vec![0x5Au8; 12288];
  assert_eq!(
    run_one(backend, op(Opcode::Write, fd, 0, &mut data, 1)),
    12288
  );
  let mut area2 = [0u8; crate::RANGE_ARGS_SIZE];
  let punch = range_op(
    Opcode::Fallocate,
    fd,
    4096,
    4096,
    PUNCH_HOLE | KEEP_SIZE,
    &mut area2,
  );
  assert_eq!(run_one(backend, punch), 0);
  let mut back = vec![0xFFu8; 12288];
  assert_eq!(
    run_one(backend, op(Opcode::Read, fd, 0, &mut back, 2)),
    12288
  );
  assert!(back[..4096].iter().all(|&b| b == 0x5A));
  assert!(
    back[4096..8192].iter().all(|&b| b == 0),
    "the hole reads as zeros"
  );
  assert!(back[8192..].iter().all(|&b| b == 0x5A));
  assert_eq!(size_and_blocks(&file).0, 12288, "punching keeps the size");
  let alone = range_op(Opcode::Fallocate, fd, 0, 4096, PUNCH_HOLE, &mut area);
  assert_eq!(
    run_one(backend, alone),
    -(libc::EOPNOTSUPP as i64),
    "PUNCH_HOLE needs KEEP_SIZE"
  );
  let empty = range_op(Opcode::Fallocate, fd, 0, 0, 0, &mut area);
  assert_eq!(run_one(backend, empty), EINVAL, "a length of 0");
  let bad_fd = range_op(Opcode::Fallocate, -1, 0, 4096, 0, &mut area);
  assert_eq!(run_one(backend, bad_fd), EBADF);

  let write_out = libc::SYNC_FILE_RANGE_WRITE;
  let wait_all = write_out | libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
  for (length, flags) in [(0, write_out), (4096, wait_all), (1 << 33, wait_all)] {
    let sync = range_op(Opcode::SyncRange, fd, 0, length, flags, &mut area);
    assert_eq!(run_one(backend, sync), 0, "sync_file_range of {length}");
  }
  let bad_flags = range_op(Opcode::SyncRange, fd, 0, 0, 8, &mut area);
  assert_eq!(run_one(backend, bad_flags), EINVAL);
  let bad_fd = range_op(Opcode::SyncRange, -1, 0, 0, write_out, &mut area);
  assert_eq!(run_one(backend, bad_fd), EBADF);

  for (length, advice) in [
    (0, libc::POSIX_FADV_WILLNEED),
    (1 << 33, libc::POSIX_FADV_DONTNEED),
  ] {
    let advise = range_op(Opcode::Fadvise, fd, 0, length, advice as u32, &mut area);
    assert_eq!(run_one(backend, advise), 0, "fadvise of {length}");
  }
  let bad_advice = range_op(Opcode::Fadvise, fd, 0, 0, 99, &mut area);
  assert_eq!(run_one(backend, bad_advice), EINVAL);
  let (pipe_read, _pipe_write) = super::pipe();
  let on_pipe = range_op(Opcode::Fadvise, pipe_read.as_raw_fd(), 0, 0, 0, &mut area);
  assert_eq!(run_one(backend, on_pipe), ESPIPE);
  let mut short = [0u8; 4];
  let truncated = Operation {
    buf: short.as_mut_ptr(),
    len: 4,
    ..Operation::sync(Opcode::Fallocate, fd, 13)
  };
  assert_eq!(
    run_one(backend, truncated),
    EINVAL,
    "an argument area too short"
  );
}

/// A backend that links: `Writev` → `Fadvise` → `Fdatasync` linked run in order and
/// succeed, and a failing `Writev` at the head of a chain cancels the `Readv` and the sync
/// behind it. Needs a capacity of 3.
pub fn storage_operations_link(backend: &mut dyn Backend) {
  assert!(backend.traits().links, "this backend declares no links");
  let file = temp_file(b"");
  let fd = file.as_raw_fd();
  let mut iovecs = Vec::new();
  let (mut a, mut b) = (*b"log ", *b"entry");
  let mut area = [0u8; crate::RANGE_ARGS_SIZE];
  let mut write = vectored(Opcode::Writev, fd, 0, &mut [&mut a, &mut b], &mut iovecs);
  write.token = 1;
  let mut advise = range_op(
    Opcode::Fadvise,
    fd,
    0,
    0,
    libc::POSIX_FADV_DONTNEED as u32,
    &mut area,
  );
  advise.token = 2;
  let chain = [
    linked(write),
    linked(advise),
    Operation::sync(Opcode::Fdatasync, fd, 3),
  ];
  assert!(chain.iter().all(|op| backend.links_itself(op)));
  // SAFETY: the buffers, iovecs and argument area outlive the reap below.
  unsafe {
    for op in chain {
      backend.push(op).unwrap();
    }
  }
  backend.submit(false).unwrap();
  assert_eq!(
    run_until_done(backend, 3),
    [done(1, 9), done(2, 0), done(3, 0)]
  );
  assert_eq!(
    std::fs::read(format!("/proc/self/fd/{fd}")).unwrap(),
    b"log entry"
  );

  let read_only = File::open(format!("/proc/self/fd/{fd}")).unwrap();
  let mut more = *b"never";
  let mut refused = vectored(
    Opcode::Writev,
    read_only.as_raw_fd(),
    0,
    &mut [&mut more],
    &mut iovecs,
  );
  refused.token = 4;
  let mut back = [0u8; 4];
  let mut back_iovecs = Vec::new();
  let mut read = vectored(Opcode::Readv, fd, 0, &mut [&mut back], &mut back_iovecs);
  read.token = 5;
  // SAFETY: as above.
  unsafe {
    backend.push(linked(refused)).unwrap();
    backend.push(linked(read)).unwrap();
    backend
      .push(Operation::sync(Opcode::Fdatasync, fd, 6))
      .unwrap();
  }
  backend.submit(false).unwrap();
  assert_eq!(
    run_until_done(backend, 3),
    [done(4, EBADF), done(5, ECANCELED), done(6, ECANCELED)]
  );
  assert_eq!(back, [0; 4], "the cancelled read never ran");
}

/// Registering buffers and descriptors, and unregistering them, answers 0 whether or not the
/// backend has registered resources; a descriptor that is not open is `EBADF`; reads and
/// writes inside the registered memory move the right bytes; unregistering with nothing
/// registered is 0. Needs a capacity of 2.
pub fn registrations_answer_and_check_descriptors(backend: &mut dyn Backend) {
  let file = temp_file(b"registered");
  let fd = file.as_raw_fd();
  let mut memory = [0u8; 64];
  let mut iovecs = [libc::iovec {
    iov_base: memory.as_mut_ptr().cast(),
    iov_len: memory.len(),
  }];
  let register = |opcode, buf: *mut u8, len: usize, token| Operation {
    buf,
    len: len as u32,
    ..Operation::sync(opcode, 0, token)
  };
  let mut fds = [fd];
  let mut bad = [fd, i32::MAX];
  let steps = [
    register(
      Opcode::RegisterBuffers,
      iovecs.as_mut_ptr().cast(),
      crate::IOVEC_SIZE,
      1,
    ),
    register(Opcode::RegisterFiles, bad.as_mut_ptr().cast(), 8, 2),
    register(Opcode::RegisterFiles, fds.as_mut_ptr().cast(), 4, 3),
  ];
  for step in steps {
    // SAFETY: the iovecs, the memory they describe and the descriptor arrays outlive the
    // backend's use of them: the reap below, and the unregisters at the end.
    unsafe { backend.push(step).unwrap() };
    backend.submit(false).unwrap();
    let token = step.token;
    let expected = if token == 2 { EBADF } else { 0 };
    assert_eq!(
      run_until_done(backend, 1),
      [done(token, expected)],
      "{:?}",
      step.opcode
    );
  }
  // SAFETY: `memory` is registered and outlives the reaps below.
  unsafe {
    backend
      .push(op(Opcode::Read, fd, 0, &mut memory[..10], 4))
      .unwrap();
  }
  backend.submit(false).unwrap();
  assert_eq!(run_until_done(backend, 1), [done(4, 10)]);
  assert_eq!(&memory[..10], b"registered");
  for (opcode, token) in [
    (Opcode::UnregisterBuffers, 5),
    (Opcode::UnregisterFiles, 6),
    (Opcode::UnregisterBuffers, 7),
  ] {
    // SAFETY: takes no buffer.
    unsafe { backend.push(Operation::sync(opcode, 0, token)).unwrap() };
    backend.submit(false).unwrap();
    assert_eq!(run_until_done(backend, 1), [done(token, 0)], "{opcode:?}");
  }
}
