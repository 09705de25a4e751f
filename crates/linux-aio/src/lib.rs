//! The `linux` backend: kernel AIO (`io_setup`/`io_submit`/`io_getevents`/`io_cancel`/
//! `io_destroy`) through raw system calls, without libaio.
//!
//! Operations become `iocb`s in a slab the backend allocates once, at its capacity, and
//! never moves: the kernel keeps pointers to them while they are in flight (it writes
//! `aio_key` at submission and reads it back for `io_cancel`). Every `iocb` carries
//! `IOCB_FLAG_RESFD`, so the kernel signals the [`Notifier`]'s eventfd by itself whenever
//! a completion lands; one `io_submit` per [`Backend::submit`] hands the kernel a batch.
//!
//! Completions are read from the ring the kernel maps at the context's address, without a
//! system call, as seastar does (the ring header says `head` is "written to by userland");
//! when the ring does not look like one (wrong magic, incompatible features), reaping falls
//! back to a non-blocking `io_getevents`.
//!
//! Kernel AIO has no linked operations, so chains are kept here: only the first operation
//! of a chain is submitted, the next one when it succeeded, and the rest complete with
//! `-ECANCELED` once one failed. Operations the kernel refuses at `io_submit` (a bad file
//! descriptor, say) and chain members cancelled before submission complete locally, and
//! the backend signals the notifier for them itself.
//!
//! Buffered files work, but `io_submit` then does the copy before it returns; the backend
//! is truly asynchronous with `O_DIRECT`.

#![cfg(target_os = "linux")]

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use caio_core::{Backend, Completion, Full, Notifier, Opcode, Operation};

const IOCB_CMD_PREAD: u16 = 0;
const IOCB_CMD_PWRITE: u16 = 1;
const IOCB_CMD_FSYNC: u16 = 2;
const IOCB_CMD_FDSYNC: u16 = 3;

/// `aio_resfd` is valid: signal that eventfd on completion.
const IOCB_FLAG_RESFD: u32 = 1 << 0;
/// `aio_reqprio` is valid: an `ioprio` value for the request.
const IOCB_FLAG_IOPRIO: u32 = 1 << 1;

/// `AIO_RING_MAGIC` from fs/aio.c.
const AIO_RING_MAGIC: u32 = 0xa10a_10a1;

/// No slot: the end of a chain, or no chain open.
const NONE: u32 = u32::MAX;

const ECANCELED: i64 = -(libc::ECANCELED as i64);

/// `aio_context_t`: the address of the context's completion ring in this process.
type AioContext = libc::c_ulong;

/// `struct iocb` from `linux/aio_abi.h`. `aio_key` and `aio_rw_flags` share a 64-bit word
/// whose order depends on the byte order (the header's `PADDED` macro).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Iocb {
  aio_data: u64,
  #[cfg(target_endian = "little")]
  aio_key: u32,
  aio_rw_flags: i32,
  #[cfg(target_endian = "big")]
  aio_key: u32,
  aio_lio_opcode: u16,
  aio_reqprio: i16,
  aio_fildes: u32,
  aio_buf: u64,
  aio_nbytes: u64,
  aio_offset: i64,
  aio_reserved2: u64,
  aio_flags: u32,
  aio_resfd: u32,
}

/// `struct io_event` from `linux/aio_abi.h`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct IoEvent {
  /// The `aio_data` of the iocb: here, its slot index.
  data: u64,
  /// The address of the iocb.
  obj: u64,
  /// Bytes moved or a negative errno.
  res: i64,
  res2: i64,
}

/// The header of the completion ring the kernel maps at the context's address (`struct
/// aio_ring` in fs/aio.c). `io_event`s follow it, `header_length` bytes from its start.
#[repr(C)]
struct RingHeader {
  id: u32,
  nr: u32,
  /// Next event to consume: written by whoever reaps, userland included.
  head: AtomicU32,
  /// Next event the kernel fills: published after the event is written.
  tail: AtomicU32,
  magic: u32,
  compat_features: u32,
  incompat_features: u32,
  header_length: u32,
}

/// The completion ring of one context, when it can be read from userland.
#[derive(Clone, Copy)]
struct Ring {
  header: NonNull<RingHeader>,
  events: NonNull<IoEvent>,
  nr: u32,
}

impl Ring {
  /// Finds the ring mapped at `ctx`, if it is one this code understands.
  fn find(ctx: AioContext) -> Option<Ring> {
    // SAFETY: sysconf takes no pointers.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    let addr = ctx as usize;
    if page == 0 || addr == 0 || addr % page != 0 || !is_mapped(addr, size_of::<RingHeader>()) {
      return None;
    }
    let header = addr as *const RingHeader;
    // SAFETY: `addr` starts a mapped page (checked above), and the header is 32 bytes of
    // plain integers. The kernel maps the ring readable and writable at the context's
    // address and unmaps it only in io_destroy.
    let (magic, incompat, header_length, nr) = unsafe {
      (
        (*header).magic,
        (*header).incompat_features,
        (*header).header_length,
        (*header).nr,
      )
    };
    let events_len = (nr as usize).checked_mul(size_of::<IoEvent>())?;
    if magic != AIO_RING_MAGIC
      || incompat != 0
      || header_length as usize != size_of::<RingHeader>()
      || nr == 0
      || !is_mapped(addr, size_of::<RingHeader>() + events_len)
    {
      return None;
    }
    Some(Ring {
      header: NonNull::new(addr as *mut RingHeader)?,
      events: NonNull::new((addr + header_length as usize) as *mut IoEvent)?,
      nr,
    })
  }

  fn header(&self) -> &RingHeader {
    // SAFETY: the ring stays mapped until io_destroy, which runs in Drop after the last
    // use of the ring.
    unsafe { self.header.as_ref() }
  }

  /// Whether completed events wait in the ring.
  fn has_events(&self) -> bool {
    let header = self.header();
    header.head.load(Ordering::Relaxed) != header.tail.load(Ordering::Acquire)
  }
}

/// Whether every page of `[addr, addr + len)` is mapped in this process.
fn is_mapped(addr: usize, len: usize) -> bool {
  // SAFETY: sysconf takes no pointers.
  let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
  let pages = len.div_ceil(page);
  let mut residency = vec![0u8; pages];
  // SAFETY: mincore only looks at the page tables for the range and writes one byte per
  // page into `residency`, which has room for all of them; it fails with ENOMEM when part
  // of the range is not mapped, which is the question asked.
  unsafe { libc::mincore(addr as *mut libc::c_void, len, residency.as_mut_ptr()) == 0 }
}

fn last_errno() -> i32 {
  io::Error::last_os_error()
    .raw_os_error()
    .unwrap_or(libc::EIO)
}

fn io_setup(nr_events: usize) -> io::Result<AioContext> {
  let nr =
    libc::c_uint::try_from(nr_events).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
  let mut ctx: AioContext = 0;
  // SAFETY: io_setup writes one aio_context_t through the pointer, which points at a live
  // local holding 0 as the kernel requires.
  let rc = unsafe { libc::syscall(libc::SYS_io_setup, nr, &mut ctx as *mut AioContext) };
  if rc < 0 {
    Err(io::Error::last_os_error())
  } else {
    Ok(ctx)
  }
}

/// Destroys a context. The kernel waits for its requests to finish first.
fn io_destroy(ctx: AioContext) {
  // SAFETY: takes no pointers; after it the ring mapping at `ctx` is gone, and no caller
  // touches it again.
  unsafe { libc::syscall(libc::SYS_io_destroy, ctx) };
}

/// Submits `iocbs` in order. Returns how many the kernel took (fewer than asked when one
/// was refused after others went in), or the errno refusing the first one.
///
/// # Safety
/// Every pointer points at an iocb that stays where it is, unfreed, until its completion is
/// reaped or the context destroyed, and the buffers they describe obey the buffer rule.
unsafe fn io_submit(ctx: AioContext, iocbs: &mut [*mut Iocb]) -> Result<usize, i32> {
  // SAFETY: the caller vouches for the iocbs; the pointer array itself is a live slice.
  let rc = unsafe {
    libc::syscall(
      libc::SYS_io_submit,
      ctx,
      iocbs.len() as libc::c_long,
      iocbs.as_mut_ptr(),
    )
  };
  if rc < 0 {
    Err(last_errno())
  } else {
    Ok(rc as usize)
  }
}

/// Reads between `min_nr` and `events.len()` completions into `events`; `None` waits
/// without a time limit.
fn io_getevents(
  ctx: AioContext,
  min_nr: usize,
  events: &mut [IoEvent],
  timeout: Option<&libc::timespec>,
) -> Result<usize, i32> {
  let timeout = timeout.map_or(std::ptr::null(), |t| t as *const libc::timespec);
  // SAFETY: the kernel writes at most `events.len()` io_events into the live slice and
  // only reads the timespec, a live reference or null.
  let rc = unsafe {
    libc::syscall(
      libc::SYS_io_getevents,
      ctx,
      min_nr as libc::c_long,
      events.len() as libc::c_long,
      events.as_mut_ptr(),
      timeout,
    )
  };
  if rc < 0 {
    Err(last_errno())
  } else {
    Ok(rc as usize)
  }
}

/// Asks the kernel to cancel a submitted iocb. `Ok` means the old contract (the event is
/// returned here and never posted to the ring); modern kernels answer `EINPROGRESS` when
/// they cancelled and post the event themselves, and `EINVAL` when the request cannot be
/// cancelled, which is every read, write and sync of a regular file.
///
/// # Safety
/// `iocb` points at a readable iocb (the kernel reads its `aio_key`).
unsafe fn io_cancel(ctx: AioContext, iocb: *mut Iocb) -> Result<(), i32> {
  let mut result = IoEvent::default();
  // SAFETY: the caller vouches for `iocb`; the kernel may write one io_event into the
  // live local `result`.
  let rc = unsafe { libc::syscall(libc::SYS_io_cancel, ctx, iocb, &mut result as *mut IoEvent) };
  if rc < 0 {
    Err(last_errno())
  } else {
    Ok(())
  }
}

/// Where an operation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
  /// The slot holds nothing.
  Free,
  /// A chain member whose predecessor has not completed yet.
  Waiting,
  /// Ready for the next `io_submit`, its pointer in `staged`.
  Staged,
  /// The kernel has it.
  InFlight,
}

/// What the backend knows of one slot besides its iocb.
#[derive(Clone, Copy, Debug)]
struct Slot {
  token: u64,
  /// The next operation of the chain, or [`NONE`].
  next: u32,
  /// The previous operation of the chain while this one is `Waiting`, or [`NONE`].
  prev: u32,
  state: State,
}

impl Slot {
  const FREE: Slot = Slot {
    token: 0,
    next: NONE,
    prev: NONE,
    state: State::Free,
  };
}

/// One kernel AIO context, the iocbs it may be handed, and the chains kept on its behalf.
///
/// A chain moves on after any non-negative result, short reads and writes included (as the
/// `thread` backend does). [`Backend::wait`] polls the notifier, so it can sleep out its
/// timeout when completions are ready but the notifier was already cleared; reap after
/// clearing, as the event loop does.
pub struct AioBackend {
  ctx: AioContext,
  /// The completion ring when it can be read without a system call.
  ring: Option<Ring>,
  notifier: Notifier,
  /// `capacity` iocbs, allocated once and never moved: the kernel keeps pointers to them.
  /// Only ever accessed through this pointer.
  iocbs: NonNull<Iocb>,
  slots: Box<[Slot]>,
  free: Vec<u32>,
  /// Iocbs for the next `io_submit`, in order.
  staged: Vec<*mut Iocb>,
  /// Completions made here (refused at submission, cancelled before it) awaiting a reap.
  local: Vec<Completion>,
  /// Room for `io_getevents`.
  events: Box<[IoEvent]>,
  capacity: usize,
  /// Pushed and not yet reaped.
  outstanding: usize,
  /// Submitted and not yet completed.
  in_flight: usize,
  /// The last operation pushed, when it was linked to whatever comes next.
  chain_tail: u32,
}

// SAFETY: the raw pointers refer to memory this backend owns (the iocb slab, and the ring
// the kernel mapped for its context), not to anything tied to the creating thread; a kernel
// AIO context may be used from any thread of the process. Operation buffers travel under
// the buffer rule, which does not depend on the thread.
unsafe impl Send for AioBackend {}

impl AioBackend {
  /// Creates a kernel AIO context for at most `capacity` outstanding operations (at least
  /// one). Fails with the `io_setup` error; [`setup_error_message`] explains it.
  pub fn new(capacity: usize) -> io::Result<AioBackend> {
    AioBackend::with_reaping(capacity, true)
  }

  fn with_reaping(capacity: usize, from_ring: bool) -> io::Result<AioBackend> {
    let capacity = capacity.max(1);
    if capacity >= NONE as usize {
      return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let notifier = Notifier::new()?;
    let ctx = io_setup(capacity)?;
    let ring = if from_ring { Ring::find(ctx) } else { None };
    let slab = Box::into_raw(vec![Iocb::default(); capacity].into_boxed_slice());
    Ok(AioBackend {
      ctx,
      ring,
      notifier,
      iocbs: NonNull::new(slab.cast::<Iocb>()).expect("Box::into_raw is never null"),
      slots: vec![Slot::FREE; capacity].into_boxed_slice(),
      free: (0..capacity as u32).rev().collect(),
      staged: Vec::with_capacity(capacity),
      local: Vec::with_capacity(capacity),
      events: vec![IoEvent::default(); capacity].into_boxed_slice(),
      capacity,
      outstanding: 0,
      in_flight: 0,
      chain_tail: NONE,
    })
  }

  /// The address of slot `index`'s iocb.
  fn iocb(&self, index: u32) -> *mut Iocb {
    assert!((index as usize) < self.capacity);
    // SAFETY: `index` is within the slab of `capacity` iocbs.
    unsafe { self.iocbs.as_ptr().add(index as usize) }
  }

  /// The slot index of an iocb of the slab.
  fn index_of(&self, iocb: *mut Iocb) -> u32 {
    ((iocb as usize - self.iocbs.as_ptr() as usize) / size_of::<Iocb>()) as u32
  }

  /// Hands the staged iocbs to the kernel, completing into `out` those it refuses.
  fn submit_staged(&mut self, out: &mut Vec<Completion>) {
    while !self.staged.is_empty() {
      // SAFETY: staged pointers point into the slab, which stays put until Drop has seen
      // every submitted iocb complete; the buffers they describe were pushed under the
      // buffer rule.
      match unsafe { io_submit(self.ctx, &mut self.staged) } {
        Ok(0) => break,
        Ok(taken) => {
          for i in 0..taken {
            let index = self.index_of(self.staged[i]);
            self.slots[index as usize].state = State::InFlight;
          }
          self.staged.drain(..taken);
          self.in_flight += taken;
        }
        Err(libc::EINTR) => {}
        Err(libc::EAGAIN) => {
          // The kernel is out of resources: keep the rest for the next submit or reap.
          // With nothing in flight no completion would wake the event loop to retry.
          if self.in_flight == 0 {
            self.notifier.signal();
          }
          break;
        }
        Err(errno) => {
          // The error belongs to the first iocb: it never reached the kernel.
          let iocb = self.staged.remove(0);
          let index = self.index_of(iocb);
          let result = self.refusal(index, errno);
          self.settle(index, result, out);
        }
      }
    }
  }

  /// The result for an iocb `io_submit` refused with `errno`. `EINVAL` there means the file
  /// cannot do kernel AIO at all — a directory, `/dev/full`, `/proc/self/mem`, anything
  /// without `read_iter`/`write_iter` — not that the request is wrong (a misaligned
  /// `O_DIRECT` request fails in its completion instead). Such an operation is done with
  /// the plain system call, at once, so that it ends as it would on every other backend:
  /// `EISDIR`, `ENOSPC`, `EIO`, or done.
  fn refusal(&self, index: u32, errno: i32) -> i64 {
    // SAFETY: the slot's iocb is in the slab and the kernel is done with it (refused).
    let iocb = unsafe { *self.iocb(index) };
    if errno != libc::EINVAL {
      return -(errno as i64);
    }
    let fd = iocb.aio_fildes as libc::c_int;
    let buf = iocb.aio_buf as usize as *mut libc::c_void;
    let len = iocb.aio_nbytes as usize;
    loop {
      // SAFETY: the buffer rule (caio_core docs): the pusher keeps `aio_buf` valid for
      // `aio_nbytes` bytes until this operation's completion is reaped, which is later.
      let rc = unsafe {
        match iocb.aio_lio_opcode {
          IOCB_CMD_PREAD => libc::pread(fd, buf, len, iocb.aio_offset) as i64,
          IOCB_CMD_PWRITE => libc::pwrite(fd, buf, len, iocb.aio_offset) as i64,
          IOCB_CMD_FSYNC => libc::fsync(fd) as i64,
          IOCB_CMD_FDSYNC => libc::fdatasync(fd) as i64,
          _ => return -(errno as i64),
        }
      };
      if rc >= 0 {
        return rc;
      }
      let error = io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO);
      if error != libc::EINTR {
        return -(error as i64);
      }
    }
  }

  /// Completes slot `index` with `result` into `out`, then starts the next operation of
  /// its chain if it succeeded or cancels the rest of the chain if it failed.
  fn settle(&mut self, index: u32, result: i64, out: &mut Vec<Completion>) {
    let slot = self.slots[index as usize];
    out.push(Completion {
      token: slot.token,
      result,
    });
    self.release(index);
    if slot.next == NONE {
      return;
    }
    if result >= 0 {
      let next = &mut self.slots[slot.next as usize];
      next.prev = NONE;
      next.state = State::Staged;
      let iocb = self.iocb(slot.next);
      self.staged.push(iocb);
    } else {
      self.cancel_from(slot.next, out);
    }
  }

  /// Completes slot `index` and every chain member after it with `-ECANCELED`. None of
  /// them has reached the kernel.
  fn cancel_from(&mut self, mut index: u32, out: &mut Vec<Completion>) {
    while index != NONE {
      let slot = self.slots[index as usize];
      debug_assert!(matches!(slot.state, State::Waiting | State::Staged));
      out.push(Completion {
        token: slot.token,
        result: ECANCELED,
      });
      self.release(index);
      index = slot.next;
    }
  }

  fn release(&mut self, index: u32) {
    self.slots[index as usize] = Slot::FREE;
    self.free.push(index);
    if self.chain_tail == index {
      self.chain_tail = NONE;
    }
  }

  /// Settles one event from the kernel.
  fn on_event(&mut self, event: IoEvent, out: &mut Vec<Completion>) {
    let index = event.data as usize;
    if self.slots.get(index).map(|slot| slot.state) != Some(State::InFlight) {
      debug_assert!(false, "event for slot {index}, which is not in flight");
      return;
    }
    self.in_flight -= 1;
    self.settle(index as u32, event.res, out);
  }

  /// Settles every completion the kernel has posted. Returns how many.
  fn harvest(&mut self, out: &mut Vec<Completion>) -> usize {
    if self.in_flight == 0 {
      return 0;
    }
    match self.ring {
      Some(ring) => self.harvest_ring(ring, out),
      None => self.harvest_syscall(out),
    }
  }

  fn harvest_ring(&mut self, ring: Ring, out: &mut Vec<Completion>) -> usize {
    let mut count = 0;
    loop {
      let header = ring.header();
      // Only this backend moves `head` (the kernel does too, but only inside io_getevents,
      // which Drop alone calls on a ring-reaping backend).
      let mut head = header.head.load(Ordering::Relaxed);
      // The kernel writes the event, then publishes `tail` with a release barrier.
      let tail = header.tail.load(Ordering::Acquire);
      if head == tail {
        return count;
      }
      if head >= ring.nr || tail >= ring.nr {
        // Not a ring we understand after all: let the kernel read it.
        self.ring = None;
        return count + self.harvest_syscall(out);
      }
      while head != tail {
        // SAFETY: head < nr, so the event lies in the mapping (checked in Ring::find); the
        // acquire load of `tail` orders this read after the kernel's write.
        let event = unsafe { ring.events.as_ptr().add(head as usize).read() };
        head = if head + 1 == ring.nr { 0 } else { head + 1 };
        self.on_event(event, out);
        count += 1;
      }
      // Hands the entries back to the kernel once they are copied out.
      header.head.store(head, Ordering::Release);
    }
  }

  fn harvest_syscall(&mut self, out: &mut Vec<Completion>) -> usize {
    const NOW: libc::timespec = libc::timespec {
      tv_sec: 0,
      tv_nsec: 0,
    };
    let mut count = 0;
    while self.in_flight > 0 {
      let want = self.in_flight.min(self.events.len());
      let got = match io_getevents(self.ctx, 0, &mut self.events[..want], Some(&NOW)) {
        Ok(got) => got,
        Err(libc::EINTR) => continue,
        Err(_) => break,
      };
      for i in 0..got {
        let event = self.events[i];
        self.on_event(event, out);
      }
      count += got;
      if got < want {
        break;
      }
    }
    count
  }
}

impl Backend for AioBackend {
  fn capacity(&self) -> usize {
    self.capacity
  }

  unsafe fn push(&mut self, op: Operation) -> Result<(), Full> {
    if self.outstanding >= self.capacity {
      return Err(Full);
    }
    // Fewer than `capacity` outstanding means a free slot: slots are held only by
    // operations pushed and not yet completed.
    let index = self.free.pop().ok_or(Full)?;
    let (opcode, buf, nbytes, offset) = match op.opcode {
      Opcode::Read => (
        IOCB_CMD_PREAD,
        op.buf as usize as u64,
        op.len as u64,
        op.offset as i64,
      ),
      Opcode::Write => (
        IOCB_CMD_PWRITE,
        op.buf as usize as u64,
        op.len as u64,
        op.offset as i64,
      ),
      Opcode::Fsync => (IOCB_CMD_FSYNC, 0, 0, 0),
      Opcode::Fdatasync => (IOCB_CMD_FDSYNC, 0, 0, 0),
    };
    let mut flags = IOCB_FLAG_RESFD;
    if op.priority != 0 {
      flags |= IOCB_FLAG_IOPRIO;
    }
    let iocb = self.iocb(index);
    // SAFETY: `iocb` is a free slot of the slab: the kernel holds no submission of it, and
    // nothing else refers to it.
    unsafe {
      iocb.write(Iocb {
        aio_data: index as u64,
        aio_key: 0,
        aio_rw_flags: 0,
        aio_lio_opcode: opcode,
        aio_reqprio: op.priority as i16,
        aio_fildes: op.fd as u32,
        aio_buf: buf,
        aio_nbytes: nbytes,
        aio_offset: offset,
        aio_reserved2: 0,
        aio_flags: flags,
        aio_resfd: self.notifier.fd() as u32,
      })
    };
    let prev = self.chain_tail;
    self.slots[index as usize] = Slot {
      token: op.token,
      next: NONE,
      prev,
      state: if prev == NONE {
        State::Staged
      } else {
        State::Waiting
      },
    };
    if prev == NONE {
      self.staged.push(iocb);
    } else {
      self.slots[prev as usize].next = index;
    }
    self.chain_tail = if op.link { index } else { NONE };
    self.outstanding += 1;
    Ok(())
  }

  fn submit(&mut self) -> io::Result<()> {
    if self.staged.is_empty() {
      return Ok(());
    }
    let mut local = std::mem::take(&mut self.local);
    let before = local.len();
    self.submit_staged(&mut local);
    let refused = local.len() > before;
    self.local = local;
    if refused {
      self.notifier.signal();
    }
    Ok(())
  }

  fn reap(&mut self, out: &mut Vec<Completion>) {
    if self.outstanding == 0 {
      return;
    }
    let before = out.len();
    out.append(&mut self.local);
    loop {
      if !self.staged.is_empty() {
        self.submit_staged(out);
      }
      // Chain members staged by these completions go in on the next turn; buffered I/O
      // often completes inside io_submit, so whole chains can finish in one reap.
      if self.harvest(out) == 0 || self.staged.is_empty() {
        break;
      }
    }
    self.outstanding -= out.len() - before;
  }

  fn cancel(&mut self, token: u64) {
    let Some(index) = self
      .slots
      .iter()
      .position(|slot| slot.state != State::Free && slot.token == token)
    else {
      return;
    };
    let index = index as u32;
    let mut local = std::mem::take(&mut self.local);
    let before = local.len();
    let slot = self.slots[index as usize];
    match slot.state {
      State::Waiting | State::Staged => {
        if slot.state == State::Staged {
          let iocb = self.iocb(index);
          if let Some(position) = self.staged.iter().position(|&p| p == iocb) {
            self.staged.remove(position);
          }
        }
        if slot.prev != NONE {
          self.slots[slot.prev as usize].next = NONE;
        }
        self.cancel_from(index, &mut local);
      }
      State::InFlight => {
        // SAFETY: the iocb is in the slab, submitted to this context.
        if unsafe { io_cancel(self.ctx, self.iocb(index)) }.is_ok() {
          // The old contract: cancelled, and the event is not posted to the ring.
          self.in_flight -= 1;
          self.settle(index, ECANCELED, &mut local);
        }
        // Otherwise EINPROGRESS (cancelled; the kernel posts the event) or EINVAL/EAGAIN
        // (not cancellable): either way its one completion comes from the ring.
      }
      State::Free => {}
    }
    let produced = local.len() > before;
    self.local = local;
    if produced {
      self.notifier.signal();
    }
  }

  /// One `io_submit`.
  fn submits_cheaply(&self) -> bool {
    true
  }

  fn notifier(&self) -> &Notifier {
    &self.notifier
  }

  fn wait(&mut self, timeout: Duration) {
    if !self.local.is_empty() || self.ring.is_some_and(|ring| ring.has_events()) {
      return;
    }
    let mut pfd = libc::pollfd {
      fd: self.notifier.fd(),
      events: libc::POLLIN,
      revents: 0,
    };
    let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd on a descriptor the notifier keeps open.
    unsafe { libc::poll(&mut pfd, 1, millis) };
  }
}

impl Drop for AioBackend {
  fn drop(&mut self) {
    // Staged and waiting operations never reached the kernel: their buffers are untouched.
    // Ask the kernel to give up on the rest, then wait until it has let go of every
    // buffer, which is what makes dropping sound (the buffer rule).
    for index in 0..self.capacity as u32 {
      if self.slots[index as usize].state != State::InFlight {
        continue;
      }
      // SAFETY: the iocb is in the slab, submitted to this context.
      if unsafe { io_cancel(self.ctx, self.iocb(index)) }.is_ok() {
        self.slots[index as usize].state = State::Free;
        self.in_flight -= 1;
      }
    }
    while self.in_flight > 0 {
      let want = self.in_flight.min(self.events.len());
      match io_getevents(self.ctx, 1, &mut self.events[..want], None) {
        Ok(got) => {
          for i in 0..got {
            let slot = self.slots.get_mut(self.events[i].data as usize);
            if let Some(slot) = slot.filter(|slot| slot.state == State::InFlight) {
              slot.state = State::Free;
              self.in_flight -= 1;
            }
          }
        }
        Err(libc::EINTR) => {}
        // Cannot happen on a live context; io_destroy below waits for every request anyway.
        Err(_) => break,
      }
    }
    io_destroy(self.ctx);
    let slab = std::ptr::slice_from_raw_parts_mut(self.iocbs.as_ptr(), self.capacity);
    // SAFETY: the slab came from Box::into_raw with this length in `with_reaping`, and the
    // kernel no longer knows the context that pointed into it.
    drop(unsafe { Box::from_raw(slab) });
  }
}

/// Checks that kernel AIO can serve a context of `capacity` operations here: Linux 4.18 or
/// newer (for `IOCB_CMD_FSYNC`), and an `io_setup` that succeeds. The error says why not
/// and what to do, ready to show a user.
pub fn probe(capacity: usize) -> Result<(), String> {
  if let Some((major, minor)) = kernel_version() {
    if (major, minor) < (4, 18) {
      return Err(format!(
        "kernel AIO with fsync needs Linux 4.18 or newer; this kernel is {major}.{minor}"
      ));
    }
  }
  match io_setup(capacity.max(1)) {
    Ok(ctx) => {
      io_destroy(ctx);
      Ok(())
    }
    Err(error) => Err(setup_error_message(&error)),
  }
}

/// Explains an `io_setup` failure (from [`AioBackend::new`] or [`probe`]) to a user.
pub fn setup_error_message(error: &io::Error) -> String {
  match error.raw_os_error() {
    Some(libc::ENOSYS) => "kernel AIO is not available (io_setup: ENOSYS — seccomp filter or a \
                           kernel built without CONFIG_AIO)"
      .to_string(),
    Some(libc::EAGAIN) => {
      let usage = match aio_headroom() {
        Some((used, max)) => format!(": {used} of {max} in use"),
        None => String::new(),
      };
      format!(
        "fs.aio-max-nr is exhausted{usage} (read /proc/sys/fs/aio-nr and aio-max-nr); lower \
         maxRequests or raise the sysctl"
      )
    }
    _ => format!("io_setup failed: {error}"),
  }
}

/// The system-wide count of AIO requests reserved by contexts and the most allowed:
/// `/proc/sys/fs/aio-nr` and `/proc/sys/fs/aio-max-nr`. `None` when either is unreadable.
pub fn aio_headroom() -> Option<(u64, u64)> {
  let read =
    |path: &str| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
  Some((
    read("/proc/sys/fs/aio-nr")?,
    read("/proc/sys/fs/aio-max-nr")?,
  ))
}

/// The running kernel's major and minor version, from `uname`.
fn kernel_version() -> Option<(u32, u32)> {
  let mut uts = MaybeUninit::<libc::utsname>::zeroed();
  // SAFETY: uname fills the live, zeroed struct.
  if unsafe { libc::uname(uts.as_mut_ptr()) } != 0 {
    return None;
  }
  // SAFETY: zeroed, then filled by uname: every field is initialised.
  let uts = unsafe { uts.assume_init() };
  let release: Vec<u8> = uts
    .release
    .iter()
    .take_while(|&&c| c != 0)
    .map(|&c| c as u8)
    .collect();
  parse_release(&String::from_utf8_lossy(&release))
}

/// `"6.18.44-foo"` → `(6, 18)`.
fn parse_release(release: &str) -> Option<(u32, u32)> {
  let mut numbers = release.split(|c: char| !c.is_ascii_digit());
  let major = numbers.next()?.parse().ok()?;
  let minor = numbers.next()?.parse().ok()?;
  Some((major, minor))
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::alloc::Layout;
  use std::fs::File;
  use std::io::Write;
  use std::os::fd::AsRawFd;
  use std::path::PathBuf;
  use std::time::Instant;

  const EBADF: i64 = -(libc::EBADF as i64);

  /// One backend of each reaping kind: from the mapped ring, and through io_getevents.
  fn both(capacity: usize) -> [AioBackend; 2] {
    [
      AioBackend::new(capacity).unwrap(),
      AioBackend::with_reaping(capacity, false).unwrap(),
    ]
  }

  fn run_until_done(backend: &mut AioBackend, count: usize) -> Vec<Completion> {
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
    out
  }

  fn sorted(mut done: Vec<Completion>) -> Vec<Completion> {
    done.sort_by_key(|c| c.token);
    done
  }

  fn results(done: &[Completion]) -> Vec<i64> {
    done.iter().map(|c| c.result).collect()
  }

  fn op(opcode: Opcode, fd: i32, offset: u64, buf: &mut [u8], token: u64) -> Operation {
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

  fn linked(mut op: Operation) -> Operation {
    op.link = true;
    op
  }

  fn temp_file(contents: &[u8]) -> File {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(contents).unwrap();
    file
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
  fn structs_match_aio_abi() {
    assert_eq!(size_of::<Iocb>(), 64);
    assert_eq!(std::mem::offset_of!(Iocb, aio_key), 8);
    assert_eq!(std::mem::offset_of!(Iocb, aio_rw_flags), 12);
    assert_eq!(std::mem::offset_of!(Iocb, aio_lio_opcode), 16);
    assert_eq!(std::mem::offset_of!(Iocb, aio_reqprio), 18);
    assert_eq!(std::mem::offset_of!(Iocb, aio_fildes), 20);
    assert_eq!(std::mem::offset_of!(Iocb, aio_buf), 24);
    assert_eq!(std::mem::offset_of!(Iocb, aio_nbytes), 32);
    assert_eq!(std::mem::offset_of!(Iocb, aio_offset), 40);
    assert_eq!(std::mem::offset_of!(Iocb, aio_flags), 56);
    assert_eq!(std::mem::offset_of!(Iocb, aio_resfd), 60);
    assert_eq!(size_of::<IoEvent>(), 32);
    assert_eq!(size_of::<RingHeader>(), 32);
  }

  #[test]
  fn completions_are_read_from_the_mapped_ring_here() {
    let backend = AioBackend::new(8).unwrap();
    let ring = backend.ring.expect("the kernel's ring should be readable");
    assert!(ring.nr >= 8);
  }

  #[test]
  fn reads_writes_and_syncs() {
    for mut backend in both(16) {
      let file = temp_file(b"hello world");
      let fd = file.as_raw_fd();
      let mut payload = *b"HELLO";
      let mut head = [0u8; 5];
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
      let done = sorted(run_until_done(&mut backend, 3));
      assert_eq!(results(&done), [5, 0, 0]);
      // SAFETY: as above.
      unsafe { backend.push(op(Opcode::Read, fd, 0, &mut head, 4)).unwrap() };
      backend.submit().unwrap();
      assert_eq!(
        run_until_done(&mut backend, 1),
        [Completion {
          token: 4,
          result: 5
        }]
      );
      assert_eq!(&head, b"HELLO");
    }
  }

  #[test]
  fn priority_is_passed_to_the_kernel() {
    let file = temp_file(b"abc");
    let mut backend = AioBackend::new(4).unwrap();
    let mut buf = [0u8; 3];
    let mut best_effort = op(Opcode::Read, file.as_raw_fd(), 0, &mut buf, 1);
    best_effort.priority = (2 << 13) | 4; // IOPRIO_CLASS_BE, level 4
                                          // SAFETY: `buf` outlives the reap below.
    unsafe { backend.push(best_effort).unwrap() };
    backend.submit().unwrap();
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
    // SAFETY: both buffers outlive the reap below.
    unsafe {
      backend
        .push(op(Opcode::Write, full.as_raw_fd(), 0, &mut data, 1))
        .unwrap();
      backend
        .push(op(Opcode::Read, zero.as_raw_fd(), 0, &mut zeros, 2))
        .unwrap();
    }
    backend.submit().unwrap();
    let done = sorted(run_until_done(&mut backend, 2));
    assert_eq!(results(&done), [-(libc::ENOSPC as i64), 4]);
    assert_eq!(zeros, [0u8; 4]);
  }

  #[test]
  fn short_read_at_end_of_file_and_empty_past_it() {
    for mut backend in both(4) {
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
      backend.submit().unwrap();
      let done = sorted(run_until_done(&mut backend, 2));
      assert_eq!(results(&done), [2, 0]);
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
      }
      backend.submit().unwrap();
      // Refusals are completed here, not by the kernel: the backend signals them itself.
      assert!(backend.notifier().clear());
      let done = sorted(run_until_done(&mut backend, 5));
      assert_eq!(results(&done), [3, EBADF, 3, -(libc::EISDIR as i64), EBADF]);
      assert_eq!((&bufs[0], &bufs[2]), (b"abc", b"def"));
    }
  }

  #[test]
  fn a_batch_of_nothing_but_refusals_signals_the_notifier() {
    let mut backend = AioBackend::new(2).unwrap();
    let mut buf = [0u8; 1];
    // SAFETY: `buf` outlives the reap below.
    unsafe { backend.push(op(Opcode::Read, -1, 0, &mut buf, 7)).unwrap() };
    backend.submit().unwrap();
    assert!(backend.notifier().clear());
    let mut out = Vec::new();
    backend.reap(&mut out);
    assert_eq!(
      out,
      [Completion {
        token: 7,
        result: EBADF
      }]
    );
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
      unsafe {
        backend
          .push(op(Opcode::Write, fd, 4096, out.bytes(), 1))
          .unwrap();
      }
      backend.submit().unwrap();
      assert_eq!(results(&run_until_done(&mut backend, 1)), [8192]);
      // SAFETY: as above.
      unsafe {
        backend
          .push(op(Opcode::Read, fd, 4096, back.bytes(), 2))
          .unwrap();
      }
      backend.submit().unwrap();
      assert_eq!(results(&run_until_done(&mut backend, 1)), [8192]);
      assert!(out.bytes() == back.bytes());

      // An unaligned buffer, an unaligned length, an unaligned offset, all over written
      // blocks: a hole is zero-filled without any alignment check.
      let mut bad = [
        op(Opcode::Read, fd, 4096, &mut back.bytes()[1..4097], 3),
        op(Opcode::Read, fd, 4096, &mut back.bytes()[..100], 4),
        op(Opcode::Read, fd, 4097, &mut back.bytes()[..4096], 5),
      ];
      for op in &mut bad {
        // SAFETY: `back` outlives the reap below.
        unsafe { backend.push(*op).unwrap() };
      }
      backend.submit().unwrap();
      assert!(
        backend.local.is_empty(),
        "misalignment is reported by the completion, not by io_submit"
      );
      let done = sorted(run_until_done(&mut backend, 3));
      assert_eq!(results(&done), [-(libc::EINVAL as i64); 3]);
    }
  }

  #[test]
  fn full_at_capacity_and_room_again_after_a_reap() {
    let file = temp_file(b"x");
    let fd = file.as_raw_fd();
    let mut backend = AioBackend::new(2).unwrap();
    // SAFETY: syncs carry no buffer.
    unsafe {
      backend.push(Operation::sync(Opcode::Fsync, fd, 1)).unwrap();
      backend.push(Operation::sync(Opcode::Fsync, fd, 2)).unwrap();
      assert_eq!(
        backend.push(Operation::sync(Opcode::Fsync, fd, 3)),
        Err(Full)
      );
    }
    backend.submit().unwrap();
    // Still full while the completions are not reaped, even once the kernel is done.
    std::thread::sleep(Duration::from_millis(20));
    // SAFETY: as above.
    unsafe {
      assert_eq!(
        backend.push(Operation::sync(Opcode::Fsync, fd, 3)),
        Err(Full)
      );
    }
    run_until_done(&mut backend, 2);
    // SAFETY: as above.
    unsafe {
      backend.push(Operation::sync(Opcode::Fsync, fd, 3)).unwrap();
      backend.push(Operation::sync(Opcode::Fsync, fd, 4)).unwrap();
    }
    backend.submit().unwrap();
    assert_eq!(results(&run_until_done(&mut backend, 2)), [0, 0]);
  }

  #[test]
  fn a_linked_chain_lands_in_order() {
    for mut backend in both(8) {
      let file = temp_file(b"");
      let fd = file.as_raw_fd();
      // Each write is shorter than the one before, all at offset 0: only writes done in
      // order leave "43210".
      let mut parts: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'0' + i; 5 - i as usize]).collect();
      // SAFETY: `parts` outlives the reap below.
      unsafe {
        for (i, part) in parts.iter_mut().enumerate() {
          let write = op(Opcode::Write, fd, 0, part, i as u64);
          backend
            .push(if i < 4 { linked(write) } else { write })
            .unwrap();
        }
      }
      backend.submit().unwrap();
      let done = run_until_done(&mut backend, 5);
      assert_eq!(
        done.iter().map(|c| c.token).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
      );
      assert_eq!(results(&done), [5, 4, 3, 2, 1]);
      assert_eq!(
        std::fs::read(format!("/proc/self/fd/{fd}")).unwrap(),
        b"43210"
      );
    }
  }

  #[test]
  fn a_failure_cancels_the_rest_of_its_chain() {
    for mut backend in both(8) {
      let file = temp_file(b"abc");
      let fd = file.as_raw_fd();
      let mut byte = [b'x'; 1];
      // Refused by io_submit: bad descriptor.
      // SAFETY: `byte` outlives the reap below.
      unsafe {
        backend
          .push(linked(op(Opcode::Write, -1, 0, &mut byte, 1)))
          .unwrap();
        backend
          .push(Operation::sync(Opcode::Fdatasync, fd, 2))
          .unwrap();
      }
      backend.submit().unwrap();
      let done = sorted(run_until_done(&mut backend, 2));
      assert_eq!(results(&done), [EBADF, ECANCELED]);

      // Failed by the kernel after submission: the buffer address faults.
      let unmapped = 8usize as *mut u8;
      let mut fault = op(Opcode::Read, fd, 0, &mut [], 3);
      fault.buf = unmapped;
      fault.len = 3;
      // SAFETY: the kernel checks the address and fails the read; nothing in this process
      // lives at it.
      unsafe {
        backend.push(linked(fault)).unwrap();
        backend
          .push(linked(Operation::sync(Opcode::Fdatasync, fd, 4)))
          .unwrap();
        backend.push(Operation::sync(Opcode::Fsync, fd, 5)).unwrap();
      }
      backend.submit().unwrap();
      let done = sorted(run_until_done(&mut backend, 3));
      assert_eq!(
        results(&done),
        [-(libc::EFAULT as i64), ECANCELED, ECANCELED]
      );

      // A failure in the middle leaves the ones before it alone.
      // SAFETY: `byte` outlives the reap below.
      unsafe {
        backend
          .push(linked(op(Opcode::Write, fd, 0, &mut byte, 6)))
          .unwrap();
        backend
          .push(linked(Operation::sync(Opcode::Fsync, -1, 7)))
          .unwrap();
        backend.push(Operation::sync(Opcode::Fsync, fd, 8)).unwrap();
      }
      backend.submit().unwrap();
      let done = sorted(run_until_done(&mut backend, 3));
      assert_eq!(results(&done), [1, EBADF, ECANCELED]);
    }
  }

  #[test]
  fn cancel_before_submission() {
    let file = temp_file(b"abc");
    let fd = file.as_raw_fd();
    let mut backend = AioBackend::new(4).unwrap();
    let mut buf = [0u8; 3];

    // A chain member: it is withdrawn, its predecessor still runs.
    // SAFETY: `buf` outlives the reaps below.
    unsafe {
      backend
        .push(linked(Operation::sync(Opcode::Fsync, fd, 1)))
        .unwrap();
      backend.push(op(Opcode::Read, fd, 0, &mut buf, 2)).unwrap();
    }
    backend.cancel(2);
    assert!(backend.notifier().clear(), "a local completion signals");
    backend.submit().unwrap();
    let done = sorted(run_until_done(&mut backend, 2));
    assert_eq!(results(&done), [0, ECANCELED]);
    assert_eq!(buf, [0u8; 3]);

    // The head of a chain: the whole chain is withdrawn.
    // SAFETY: as above.
    unsafe {
      backend
        .push(linked(Operation::sync(Opcode::Fsync, fd, 3)))
        .unwrap();
      backend.push(op(Opcode::Read, fd, 0, &mut buf, 4)).unwrap();
    }
    backend.cancel(3);
    backend.submit().unwrap();
    let done = sorted(run_until_done(&mut backend, 2));
    assert_eq!(results(&done), [ECANCELED, ECANCELED]);
    assert_eq!(buf, [0u8; 3]);

    // A member still waiting for its submitted predecessor.
    // SAFETY: as above.
    unsafe {
      backend
        .push(linked(Operation::sync(Opcode::Fsync, fd, 5)))
        .unwrap();
      backend
        .push(linked(op(Opcode::Read, fd, 0, &mut buf, 6)))
        .unwrap();
      backend.push(Operation::sync(Opcode::Fsync, fd, 7)).unwrap();
    }
    backend.submit().unwrap();
    backend.cancel(6);
    let done = sorted(run_until_done(&mut backend, 3));
    assert_eq!(results(&done), [0, ECANCELED, ECANCELED]);
    assert_eq!(buf, [0u8; 3]);

    // Unknown tokens are ignored.
    backend.cancel(99);
    let mut out = Vec::new();
    backend.reap(&mut out);
    assert!(out.is_empty());
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
    // SAFETY: `buffers` outlives the reap below.
    unsafe {
      for (i, buf) in buffers.iter_mut().enumerate() {
        backend
          .push(op(
            Opcode::Read,
            fd,
            (i as u64) << 19,
            buf.bytes(),
            i as u64,
          ))
          .unwrap();
      }
      for i in 8..16 {
        backend.push(Operation::sync(Opcode::Fsync, fd, i)).unwrap();
      }
    }
    backend.submit().unwrap();
    let in_flight = backend.in_flight;
    for token in 0..16 {
      backend.cancel(token);
    }
    let done = sorted(run_until_done(&mut backend, 16));
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
    // Regular file reads and syncs are not cancellable in Linux: io_cancel finds no
    // cancel function for them.
    let Some((file, _)) = direct_file() else {
      eprintln!("no directory here takes O_DIRECT; skipped");
      return;
    };
    file.set_len(1 << 24).unwrap();
    let mut backend = AioBackend::new(2).unwrap();
    let mut buf = Aligned::new(1 << 24);
    // SAFETY: `buf` outlives the reap below.
    unsafe {
      backend
        .push(op(Opcode::Read, file.as_raw_fd(), 0, buf.bytes(), 1))
        .unwrap();
    }
    backend.submit().unwrap();
    // SAFETY: slot 0's iocb was just submitted in this context.
    let answer = unsafe { io_cancel(backend.ctx, backend.iocb(0)) };
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
          let read = op(
            Opcode::Read,
            file.as_raw_fd(),
            offset as u64,
            &mut buffers[slot][..len],
            slot as u64,
          );
          // SAFETY: `buffers` outlives every reap in this loop, and a buffer is reused
          // only after its completion was reaped.
          unsafe { backend.push(read).unwrap() };
          issued += 1;
        }
        backend.submit().unwrap();
        out.clear();
        backend.reap(&mut out);
        if out.is_empty() {
          backend.wait(Duration::from_millis(50));
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
    // SAFETY: `buffers` outlives the backend, whose drop waits for the kernel.
    unsafe {
      for (i, buf) in buffers.iter_mut().enumerate() {
        backend
          .push(op(
            Opcode::Read,
            fd,
            (i as u64) << 20,
            buf.bytes(),
            i as u64,
          ))
          .unwrap();
      }
      for i in 16..48 {
        backend.push(Operation::sync(Opcode::Fsync, fd, i)).unwrap();
      }
    }
    backend.submit().unwrap();
    // Never submitted: a chain waiting on its head, and a staged operation.
    // SAFETY: as above.
    unsafe {
      backend
        .push(linked(Operation::sync(Opcode::Fsync, fd, 48)))
        .unwrap();
      backend
        .push(op(Opcode::Read, fd, 0, buffers[0].bytes(), 49))
        .unwrap();
    }
    let started = Instant::now();
    drop(backend);
    eprintln!("drop took {:?}", started.elapsed());
    assert!(buffers.iter_mut().all(|b| b.bytes().len() == 1 << 20));
  }

  #[test]
  fn probe_succeeds_here() {
    assert_eq!(probe(512), Ok(()));
    let (used, max) = aio_headroom().unwrap();
    assert!(max > 0 && used <= max);
  }

  #[test]
  fn setup_errors_are_explained() {
    let nosys = setup_error_message(&io::Error::from_raw_os_error(libc::ENOSYS));
    assert!(nosys.starts_with("kernel AIO is not available (io_setup: ENOSYS"));
    let again = setup_error_message(&io::Error::from_raw_os_error(libc::EAGAIN));
    assert!(again.starts_with("fs.aio-max-nr is exhausted: "), "{again}");
    assert!(again.ends_with("lower maxRequests or raise the sysctl"));
    let other = setup_error_message(&io::Error::from_raw_os_error(libc::ENOMEM));
    assert!(other.starts_with("io_setup failed: "));
    // More than fs.aio-max-nr allows in one context.
    let (_, max) = aio_headroom().unwrap();
    let huge = AioBackend::new(max as usize + 1).err().unwrap();
    assert_eq!(huge.raw_os_error(), Some(libc::EAGAIN));
    assert!(probe(max as usize + 1)
      .unwrap_err()
      .starts_with("fs.aio-max-nr is exhausted: "));
  }

  #[test]
  fn kernel_releases_parse() {
    assert_eq!(parse_release("6.18.44-fc-v657"), Some((6, 18)));
    assert_eq!(parse_release("4.18.0-553.el8_10.x86_64"), Some((4, 18)));
    assert_eq!(parse_release("5.4"), Some((5, 4)));
    assert_eq!(parse_release("garbage"), None);
    assert!(kernel_version().unwrap() >= (4, 18));
  }
}
