//! Registered buffers and files: `RegisterBuffers`/`RegisterFiles` hand the kernel a set
//! (`io_uring_register`), and from then on every read or write whose buffer lies inside a
//! registered buffer is pushed as `READ_FIXED`/`WRITE_FIXED` with that buffer's index, and
//! every data operation on a registered descriptor with `IOSQE_FIXED_FILE` and its index:
//! the caller's operations do not change.
//!
//! Registering runs on the thread that owns the ring, inside `push`, so it never races the
//! submission queue; the kernel takes its own lock against an SQPOLL thread. Unregistering
//! waits: an `UnregisterBuffers` or `UnregisterFiles` pushed while operations still use the
//! set stays outstanding (new operations no longer use the set meanwhile) and is finished
//! by the reap that settles the last of them — so a retried operation never finds its index
//! gone, and the memory of the set is never let go of under an operation that uses it (the
//! registration rule in `caio_core`).
//!
//! Only kernels with `IORING_FEAT_RSRC_TAGS` (5.13) register here: before it, every
//! `io_uring_register` quiesced the ring, waiting inside the call for every operation in
//! flight, which may be forever (a read of an empty pipe). There the registration opcodes go
//! to the side pool (`UringBackend::performs`), which does ordinary I/O, as the other
//! backends do.

use std::os::fd::RawFd;

use caio_core::{Completion, FixedUse, Opcode, Operation, IOVEC_SIZE};

use crate::table::Fixed;
use crate::UringBackend;

/// The most buffers one registration takes (the kernel's `IORING_MAX_REG_BUFFERS`).
pub const MAX_REGISTERED_BUFFERS: usize = 1 << 14;

/// One kind of registered resource: whether a set is registered, and the unregister that
/// waits for the operations using it (the slot table counts them).
#[derive(Default)]
struct Registration {
  registered: bool,
  /// The slot of an unregister waiting for the set's operations to settle.
  draining: Option<usize>,
}

impl Registration {
  /// Whether new operations may use the set.
  fn usable(&self) -> bool {
    self.registered && self.draining.is_none()
  }
}

/// What is registered with one ring.
#[derive(Default)]
pub(crate) struct Registry {
  buffers: Registration,
  files: Registration,
  /// Registered buffers as `(start, end, index)`, by start address.
  buffer_ranges: Vec<(usize, usize, u16)>,
  /// Registered descriptors as `(fd, index)`, by descriptor (the first index of a
  /// descriptor registered twice).
  file_indices: Vec<(RawFd, u32)>,
  /// Whether either set may be used by a new operation: the one check on the push path.
  any_usable: bool,
  used: FixedUse,
}

impl Registry {
  fn refresh(&mut self) {
    self.any_usable = self.buffers.usable() || self.files.usable();
  }

  /// Which registered resources `op` may use; the slot table counts it as in use until
  /// its slot settles.
  #[inline]
  pub(crate) fn take_for(&mut self, op: &Operation) -> Fixed {
    if !self.any_usable {
      return Fixed::NONE;
    }
    self.lookup(op)
  }

  #[cold]
  fn lookup(&mut self, op: &Operation) -> Fixed {
    let mut fixed = Fixed::NONE;
    if self.buffers.usable()
      && op.opcode.uses_buffer()
      && op.len > 0
      && op.offset != caio_core::AT_CURSOR
    {
      let start = op.buf as usize;
      let end = start.saturating_add(op.len as usize);
      // The registered buffer starting last at or before `start`; a view that straddles
      // its end (or lies in a gap) is done the ordinary way.
      let after = self.buffer_ranges.partition_point(|range| range.0 <= start);
      if let Some(&(_, range_end, index)) = after.checked_sub(1).map(|i| &self.buffer_ranges[i]) {
        if end <= range_end {
          fixed.buffer = Some(index);
          self.used.buffers += 1;
        }
      }
    }
    if self.files.usable() && uses_file(op.opcode) {
      if let Ok(at) = self
        .file_indices
        .binary_search_by_key(&op.fd, |entry| entry.0)
      {
        fixed.file = Some(self.file_indices[at].1);
        self.used.files += 1;
      }
    }
    fixed
  }

  /// `fd` is being closed: operations on its number no longer use the registered file,
  /// which may otherwise outlive the descriptor (the kernel holds it until unregistered)
  /// while the number comes to name another file.
  #[cold]
  pub(crate) fn forget_file(&mut self, fd: RawFd) {
    if let Ok(at) = self.file_indices.binary_search_by_key(&fd, |entry| entry.0) {
      self.file_indices.remove(at);
    }
  }

  /// How many operations started on registered resources so far.
  pub(crate) fn used(&self) -> FixedUse {
    self.used
  }
}

/// Whether an operation on a registered descriptor uses the registered file: the data
/// operations. (`Close` of a fixed file would close the registered slot; the path and stat
/// operations take no fixed file.)
fn uses_file(opcode: Opcode) -> bool {
  opcode.is_data() && opcode != Opcode::Ftruncate
}

impl UringBackend {
  /// Does the registration operation in slot `index`: settles it in `done_here`, or, for an
  /// unregister that must wait for operations using the set, leaves it outstanding.
  pub(crate) fn register(&mut self, index: usize) {
    let op = self.table.slots[index].op;
    let result = match op.opcode {
      Opcode::RegisterBuffers => self.register_buffers(&op),
      Opcode::RegisterFiles => self.register_files(&op),
      Opcode::UnregisterBuffers | Opcode::UnregisterFiles => {
        let buffers = op.opcode == Opcode::UnregisterBuffers;
        let in_use = self.table.fixed_in_use(buffers);
        let kind = self.registry.kind(buffers);
        if !kind.registered {
          0
        } else if kind.draining.is_some() {
          -libc::EBUSY
        } else if in_use > 0 {
          kind.draining = Some(index);
          self.registry.refresh();
          return;
        } else {
          self.unregister(buffers)
        }
      }
      _ => -libc::EINVAL,
    };
    self.table.settle(index, result, self.done_here.list_mut());
    self.done_here.announce(&self.notifier);
  }

  fn register_buffers(&mut self, op: &Operation) -> i32 {
    if self.registry.buffers.registered {
      return -libc::EBUSY;
    }
    let count = op.len as usize / IOVEC_SIZE;
    if op.buf.is_null() || count == 0 || count > MAX_REGISTERED_BUFFERS {
      return -libc::EINVAL;
    }
    // SAFETY: the buffer rule: `op.buf` holds `count` iovecs (the addon wrote them into the
    // facade's aligned area, `Env::io_vector`), valid until this completion is reaped.
    let iovecs = unsafe { std::slice::from_raw_parts(op.buf.cast::<libc::iovec>(), count) };
    // SAFETY: the registration rule (caio_core): the memory the iovecs describe stays valid
    // until an UnregisterBuffers completes, which `unregister` does only once no operation
    // uses it, or until this backend is dropped, which closes the ring.
    if let Err(error) = unsafe { self.ring.submitter().register_buffers(iovecs) } {
      return -error.raw_os_error().unwrap_or(libc::EINVAL);
    }
    let mut ranges: Vec<(usize, usize, u16)> = iovecs
      .iter()
      .enumerate()
      .map(|(i, iov)| {
        let start = iov.iov_base as usize;
        (start, start.saturating_add(iov.iov_len), i as u16)
      })
      .collect();
    ranges.sort_unstable();
    self.registry.buffer_ranges = ranges;
    self.registry.buffers.registered = true;
    self.registry.refresh();
    0
  }

  fn register_files(&mut self, op: &Operation) -> i32 {
    if self.registry.files.registered {
      return -libc::EBUSY;
    }
    let count = op.len as usize / std::mem::size_of::<RawFd>();
    if op.buf.is_null() || count == 0 {
      return -libc::EINVAL;
    }
    // SAFETY: the buffer rule: `op.len` readable bytes at `op.buf`; read unaligned, as the
    // facade's Int32Array promises no alignment the addon checked.
    let fds: Vec<RawFd> = (0..count)
      .map(|i| unsafe { op.buf.cast::<RawFd>().add(i).read_unaligned() })
      .collect();
    if let Err(error) = self.ring.submitter().register_files(&fds) {
      return -error.raw_os_error().unwrap_or(libc::EINVAL);
    }
    let mut indices: Vec<(RawFd, u32)> = fds
      .iter()
      .enumerate()
      .map(|(i, &fd)| (fd, i as u32))
      .collect();
    // Stable: a descriptor registered twice keeps its first index.
    indices.sort_by_key(|entry| entry.0);
    indices.dedup_by_key(|entry| entry.0);
    self.registry.file_indices = indices;
    self.registry.files.registered = true;
    self.registry.refresh();
    0
  }

  /// Unregisters one set, which no outstanding operation uses.
  fn unregister(&mut self, buffers: bool) -> i32 {
    let outcome = if buffers {
      self.registry.buffer_ranges.clear();
      self.ring.submitter().unregister_buffers()
    } else {
      self.registry.file_indices.clear();
      self.ring.submitter().unregister_files()
    };
    let kind = self.registry.kind(buffers);
    kind.registered = false;
    kind.draining = None;
    self.registry.refresh();
    match outcome {
      Ok(()) => 0,
      Err(error) => -error.raw_os_error().unwrap_or(libc::EINVAL),
    }
  }

  /// Finishes the unregisters whose sets no operation uses any more: called by the reap
  /// after an operation using one settled.
  #[cold]
  pub(crate) fn finish_unregistering(&mut self, out: &mut Vec<Completion>) {
    for buffers in [true, false] {
      let in_use = self.table.fixed_in_use(buffers);
      if in_use == 0 {
        if let Some(index) = self.registry.kind(buffers).draining {
          let result = self.unregister(buffers);
          self.table.settle(index, result, out);
        }
      }
    }
  }
}

impl Registry {
  fn kind(&mut self, buffers: bool) -> &mut Registration {
    if buffers {
      &mut self.buffers
    } else {
      &mut self.files
    }
  }

  /// Whether descriptors are registered (and not being unregistered).
  pub(crate) fn has_files(&self) -> bool {
    self.files.usable()
  }

  /// Whether an unregister waits for operations to finish.
  pub(crate) fn draining(&self) -> bool {
    self.buffers.draining.is_some() || self.files.draining.is_some()
  }
}

#[cfg(test)]
mod tests {
  use std::io::Write;
  use std::os::fd::AsRawFd;

  use caio_core::testing::{assert_nothing_completes, done, op, pipe, run_until_done, temp_file};
  use caio_core::{Backend, FixedUse, Opcode, Operation};
  use io_uring::{opcode, squeue};

  use crate::ring::build_entry;
  use crate::table::Fixed;
  use crate::{UringBackend, UringOptions};

  const EBADF: i64 = -(libc::EBADF as i64);
  const EBUSY: i64 = -(libc::EBUSY as i64);

  fn backend(capacity: usize) -> UringBackend {
    UringBackend::new(capacity, UringOptions::default()).unwrap()
  }

  /// A `RegisterBuffers` of `buffers`, its iovecs kept in `iovecs`.
  fn register_buffers(
    buffers: &mut [&mut [u8]],
    iovecs: &mut Vec<libc::iovec>,
    token: u64,
  ) -> Operation {
    iovecs.clear();
    iovecs.extend(buffers.iter_mut().map(|b| libc::iovec {
      iov_base: b.as_mut_ptr().cast(),
      iov_len: b.len(),
    }));
    Operation {
      buf: iovecs.as_mut_ptr().cast(),
      len: (iovecs.len() * caio_core::IOVEC_SIZE) as u32,
      ..Operation::sync(Opcode::RegisterBuffers, 0, token)
    }
  }

  fn register_files(fds: &mut [i32], token: u64) -> Operation {
    Operation {
      buf: fds.as_mut_ptr().cast(),
      len: std::mem::size_of_val(fds) as u32,
      ..Operation::sync(Opcode::RegisterFiles, 0, token)
    }
  }

  /// Pushes `op`, submits, and returns its completion's result.
  fn run(backend: &mut UringBackend, op: Operation) -> i64 {
    // SAFETY: every buffer of the tests' operations outlives the reap below.
    unsafe { backend.push(op) }.unwrap();
    backend.submit(false).unwrap();
    run_until_done(backend, 1)[0].result
  }

  #[test]
  fn registers_where_the_kernel_does_not_quiesce_the_ring() {
    let ring = backend(4);
    assert!(
      ring.ring.params().is_feature_resource_tagging(),
      "this kernel has IORING_FEAT_RSRC_TAGS (5.13+)"
    );
    for opcode in [
      Opcode::RegisterBuffers,
      Opcode::UnregisterBuffers,
      Opcode::RegisterFiles,
      Opcode::UnregisterFiles,
    ] {
      assert!(ring.performs(&Operation::sync(opcode, 0, 1)), "{opcode:?}");
    }
  }

  #[test]
  fn reads_and_writes_inside_a_registered_buffer_are_fixed_and_move_the_right_bytes() {
    let file = temp_file(&[0u8; 16384]);
    let fd = file.as_raw_fd();
    let mut ring = backend(8);
    let mut memory = vec![0u8; 3 * 4096];
    let mut other = vec![0u8; 4096];
    let mut iovecs = Vec::new();
    let (first, second) = memory.split_at_mut(8192);
    let registration = register_buffers(&mut [first, second], &mut iovecs, 1);
    assert_eq!(run(&mut ring, registration), 0);
    // A write from inside the second buffer, a read into the middle of the first.
    memory[8192..12288].fill(0xab);
    let write = op(Opcode::Write, fd, 4096, &mut memory[8192..12288], 2);
    assert_eq!(run(&mut ring, write), 4096);
    assert_eq!(
      ring.fixed_use(),
      FixedUse {
        buffers: 1,
        files: 0
      }
    );
    let read = op(Opcode::Read, fd, 4096, &mut memory[100..4196], 3);
    assert_eq!(run(&mut ring, read), 4096);
    assert!(memory[100..4196].iter().all(|&b| b == 0xab));
    assert_eq!(ring.fixed_use().buffers, 2);
    // A view straddling the first buffer's end, and memory outside both: ordinary reads.
    memory[8000..8400].fill(0);
    let straddling = op(Opcode::Read, fd, 4096, &mut memory[8000..8400], 4);
    assert_eq!(run(&mut ring, straddling), 400);
    assert!(memory[8000..8400].iter().all(|&b| b == 0xab));
    let outside = op(Opcode::Read, fd, 4096, &mut other, 5);
    assert_eq!(run(&mut ring, outside), 4096);
    assert!(other.iter().all(|&b| b == 0xab));
    assert_eq!(
      ring.fixed_use().buffers,
      2,
      "neither of the last two was fixed"
    );
    assert_eq!(
      run(&mut ring, Operation::sync(Opcode::UnregisterBuffers, 0, 6)),
      0
    );
    let after = op(Opcode::Read, fd, 0, &mut memory[0..4096], 7);
    assert_eq!(run(&mut ring, after), 4096);
    assert_eq!(
      ring.fixed_use().buffers,
      2,
      "nothing is fixed once unregistered"
    );
  }

  #[test]
  fn builds_fixed_entries_from_the_slots_choice() {
    let mut buf = [0u8; 8];
    let read = op(Opcode::Read, 3, 0, &mut buf, 1);
    let write = Operation {
      opcode: Opcode::Write,
      ..read
    };
    let on_buffer = Fixed {
      buffer: Some(2),
      file: None,
    };
    let on_file = Fixed {
      buffer: None,
      file: Some(0),
    };
    let fixed_file = |entry: &squeue::Entry| format!("{entry:?}").contains("flags: 1,");
    assert_eq!(
      build_entry(&read, Fixed::NONE, 0).get_opcode(),
      u32::from(opcode::Read::CODE)
    );
    assert_eq!(
      build_entry(&read, on_buffer, 0).get_opcode(),
      u32::from(opcode::ReadFixed::CODE)
    );
    assert_eq!(
      build_entry(&write, on_buffer, 0).get_opcode(),
      u32::from(opcode::WriteFixed::CODE)
    );
    assert!(!fixed_file(&build_entry(&read, on_buffer, 0)));
    assert!(fixed_file(&build_entry(&read, on_file, 0)));
    let sync = Operation::sync(Opcode::Fdatasync, 3, 1);
    assert!(fixed_file(&build_entry(&sync, on_file, 0)));
    assert!(!fixed_file(&build_entry(&sync, Fixed::NONE, 0)));
  }

  #[test]
  fn operations_on_a_registered_descriptor_use_the_registered_file() {
    let file = temp_file(b"registered file");
    let fd = file.as_raw_fd();
    let mut ring = backend(8);
    let mut fds = [fd];
    assert_eq!(run(&mut ring, register_files(&mut fds, 1)), 0);
    let mut back = [0u8; 10];
    assert_eq!(run(&mut ring, op(Opcode::Read, fd, 0, &mut back, 2)), 10);
    assert_eq!(&back, b"registered");
    let mut more = *b"!";
    assert_eq!(run(&mut ring, op(Opcode::Write, fd, 15, &mut more, 3)), 1);
    assert_eq!(run(&mut ring, Operation::sync(Opcode::Fdatasync, fd, 4)), 0);
    assert_eq!(
      ring.fixed_use(),
      FixedUse {
        buffers: 0,
        files: 3
      }
    );
    assert_eq!(
      std::fs::read(format!("/proc/self/fd/{fd}")).unwrap(),
      b"registered file!"
    );
    // Registering again while registered is refused; unregistering twice is fine.
    assert_eq!(run(&mut ring, register_files(&mut fds, 5)), EBUSY);
    assert_eq!(
      run(&mut ring, Operation::sync(Opcode::UnregisterFiles, 0, 6)),
      0
    );
    assert_eq!(
      run(&mut ring, Operation::sync(Opcode::UnregisterFiles, 0, 7)),
      0
    );
    assert_eq!(run(&mut ring, op(Opcode::Read, fd, 0, &mut back, 8)), 10);
    assert_eq!(ring.fixed_use().files, 3);
    // A descriptor that is not open is the kernel's EBADF, and nothing is registered.
    let mut bad = [fd, i32::MAX];
    assert_eq!(run(&mut ring, register_files(&mut bad, 9)), EBADF);
    assert_eq!(run(&mut ring, op(Opcode::Read, fd, 0, &mut back, 10)), 10);
    assert_eq!(ring.fixed_use().files, 3);
  }

  #[test]
  fn closing_a_registered_descriptor_through_the_ring_stops_its_fixed_use() {
    let registered = temp_file(b"the registered file");
    let other = temp_file(b"another file");
    let mut ring = backend(4);
    // A descriptor of our own, closed through the ring and then reused for `other`. It is
    // numbered from 900 up: the tests beside this one in the process take the lowest free
    // numbers, so none of them is handed this one between the close and the dup2 (which
    // would close theirs).
    // SAFETY: duplicates a descriptor this test owns; the copy is closed below.
    let fd = unsafe { libc::fcntl(registered.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 900) };
    assert!(fd >= 900);
    let mut fds = [fd];
    assert_eq!(run(&mut ring, register_files(&mut fds, 1)), 0);
    let mut back = [0u8; 7];
    assert_eq!(run(&mut ring, op(Opcode::Read, fd, 0, &mut back, 2)), 7);
    assert_eq!(ring.fixed_use().files, 1);
    assert_eq!(run(&mut ring, Operation::sync(Opcode::Close, fd, 3)), 0);
    // SAFETY: `fd` is closed; dup2 makes the number name `other`, which this test owns.
    assert_eq!(unsafe { libc::dup2(other.as_raw_fd(), fd) }, fd);
    assert_eq!(run(&mut ring, op(Opcode::Read, fd, 0, &mut back, 4)), 7);
    assert_eq!(&back, b"another", "the number now names the other file");
    assert_eq!(
      ring.fixed_use().files,
      1,
      "and is no longer the registered file"
    );
    // SAFETY: closes the number dup2 made.
    unsafe { libc::close(fd) };
  }

  #[test]
  fn unregistering_waits_for_the_operations_using_the_set() {
    let (read_end, mut write_end) = pipe();
    let mut ring = backend(8);
    let mut memory = vec![0u8; 4096];
    let mut iovecs = Vec::new();
    let registration = register_buffers(&mut [&mut memory[..]], &mut iovecs, 1);
    assert_eq!(run(&mut ring, registration), 0);
    let mut fds = [read_end.as_raw_fd()];
    assert_eq!(run(&mut ring, register_files(&mut fds, 2)), 0);
    let blocked = op(Opcode::Read, read_end.as_raw_fd(), 0, &mut memory[..64], 3);
    // SAFETY: `memory` outlives every reap below.
    unsafe {
      ring.push(blocked).unwrap();
      ring
        .push(Operation::sync(Opcode::UnregisterBuffers, 0, 4))
        .unwrap();
      ring
        .push(Operation::sync(Opcode::UnregisterFiles, 0, 5))
        .unwrap();
    }
    ring.submit(false).unwrap();
    assert_eq!(
      ring.fixed_use(),
      FixedUse {
        buffers: 1,
        files: 1
      }
    );
    assert_nothing_completes(&mut ring);
    // Meanwhile new operations on the same memory and descriptor are ordinary ones.
    let file = temp_file(b"0123456789");
    let meanwhile = op(
      Opcode::Read,
      file.as_raw_fd(),
      0,
      &mut memory[1000..1010],
      6,
    );
    assert_eq!(run(&mut ring, meanwhile), 10);
    assert_eq!(
      ring.fixed_use(),
      FixedUse {
        buffers: 1,
        files: 1
      }
    );
    write_end.write_all(b"from the pipe").unwrap();
    assert_eq!(
      run_until_done(&mut ring, 3),
      [done(3, 13), done(4, 0), done(5, 0)]
    );
    assert_eq!(&memory[..13], b"from the pipe");
    assert!(!ring.registry.buffers.registered && !ring.registry.files.registered);
    // And a new set can be registered.
    let again = register_buffers(&mut [&mut memory[..]], &mut iovecs, 7);
    assert_eq!(run(&mut ring, again), 0);
    let registration = register_buffers(&mut [&mut memory[..]], &mut iovecs, 8);
    assert_eq!(run(&mut ring, registration), EBUSY, "one set at a time");
  }

  #[test]
  fn an_sqpoll_ring_registers_and_does_fixed_io_the_same_way() {
    let file = temp_file(&[0u8; 8192]);
    let fd = file.as_raw_fd();
    let mut ring = UringBackend::new(8, UringOptions { sqpoll: true }).unwrap();
    let mut memory = vec![0u8; 8192];
    let mut iovecs = Vec::new();
    let registration = register_buffers(&mut [&mut memory[..]], &mut iovecs, 1);
    assert_eq!(run(&mut ring, registration), 0);
    let mut fds = [fd];
    assert_eq!(run(&mut ring, register_files(&mut fds, 2)), 0);
    memory[..4096].fill(0x5a);
    let write = op(Opcode::Write, fd, 4096, &mut memory[..4096], 3);
    assert_eq!(run(&mut ring, write), 4096);
    let read = op(Opcode::Read, fd, 4096, &mut memory[4096..], 4);
    assert_eq!(run(&mut ring, read), 4096);
    assert!(memory[4096..].iter().all(|&b| b == 0x5a));
    assert_eq!(
      ring.fixed_use(),
      FixedUse {
        buffers: 2,
        files: 2
      }
    );
    assert_eq!(
      run(&mut ring, Operation::sync(Opcode::UnregisterBuffers, 0, 5)),
      0
    );
    assert_eq!(
      run(&mut ring, Operation::sync(Opcode::UnregisterFiles, 0, 6)),
      0
    );
  }

  #[test]
  fn dropping_with_an_unregister_waiting_cancels_and_returns() {
    let (read_end, _write_end) = pipe();
    let mut ring = backend(4);
    let mut memory = vec![0u8; 4096];
    let mut iovecs = Vec::new();
    let registration = register_buffers(&mut [&mut memory[..]], &mut iovecs, 1);
    assert_eq!(run(&mut ring, registration), 0);
    // SAFETY: `memory` outlives the backend, dropped below.
    unsafe {
      ring
        .push(op(
          Opcode::Read,
          read_end.as_raw_fd(),
          0,
          &mut memory[..8],
          2,
        ))
        .unwrap();
      ring
        .push(Operation::sync(Opcode::UnregisterBuffers, 0, 3))
        .unwrap();
    }
    ring.submit(false).unwrap();
    drop(ring);
    assert_eq!(memory[..8], [0u8; 8], "the cancelled read never wrote");
  }
}
