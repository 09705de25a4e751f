//! [`AioBackend`]: one kernel AIO context, the iocbs it is handed, and the [`Backend`]
//! contract on top of them.

use std::io;
use std::mem::size_of;
use std::ptr::NonNull;

use caio_core::local::LocalCompletions;
use caio_core::sys::perform_blocking;
use caio_core::{Backend, Completion, Full, Notifier, Opcode, Operation, Place, Submitted, Traits};

use crate::abi::{
  AioContext, IoEvent, Iocb, IOCB_CMD_FDSYNC, IOCB_CMD_FSYNC, IOCB_CMD_PREAD, IOCB_CMD_PREADV,
  IOCB_CMD_PWRITE, IOCB_CMD_PWRITEV, IOCB_FLAG_IOPRIO, IOCB_FLAG_RESFD,
};
use crate::ring::Ring;
use crate::syscalls::{io_cancel, io_destroy, io_getevents, io_setup, io_submit};

const ECANCELED: i64 = -(libc::ECANCELED as i64);

/// Where the operation of one slot stands. The slot's index is its [`Place`], and the
/// index of its iocb in the slab.
#[derive(Clone, Copy, Debug)]
enum Slot {
  /// The slot holds nothing.
  Free,
  /// Pushed and waiting for the next `io_submit`, its iocb pointer in `staged`.
  Staged(Operation),
  /// The kernel has it.
  InFlight(Operation),
}

/// One kernel AIO context and the iocbs it may be handed.
///
/// Kernel AIO has no linked operations, so the backend declares `links: false` and
/// ignores [`Operation::link`]: the scheduler pushes a chain one operation at a time. It
/// ignores [`Operation::share`] too, having no second thread to share a batch with.
pub struct AioBackend {
  ctx: AioContext,
  /// The completion ring when it can be read without a system call.
  ring: Option<Ring>,
  notifier: Notifier,
  /// `capacity` iocbs, allocated once and never moved: the kernel keeps pointers to them
  /// while they are in flight (it writes `aio_key` at submission and reads it back for
  /// `io_cancel`). Only ever accessed through this pointer, never through a Box, so that
  /// nothing asserts unique access to memory the kernel shares.
  iocbs: NonNull<Iocb>,
  slots: Box<[Slot]>,
  free: Vec<u32>,
  /// Iocbs for the next `io_submit`, in push order.
  staged: Vec<*mut Iocb>,
  /// Completions made here (refused at submission, cancelled before it) awaiting a reap,
  /// and the quiet a `reap_follows` submit asks for them until
  /// [`Backend::signal_completions`]. The kernel's own completions always signal (through
  /// `IOCB_FLAG_RESFD`), quiet or not.
  local: LocalCompletions,
  /// Room for `io_getevents`.
  events: Box<[IoEvent]>,
  capacity: usize,
  /// Pushed and not yet reaped.
  outstanding: usize,
  /// Submitted and not yet completed.
  in_flight: usize,
}

// SAFETY: the raw pointers refer to memory this backend owns (the iocb slab, and the ring
// the kernel mapped for its context), not to anything tied to the creating thread; a kernel
// AIO context may be used from any thread of the process. Operation buffers travel under
// the buffer rule, which does not depend on the thread.
unsafe impl Send for AioBackend {}

impl AioBackend {
  /// Creates a kernel AIO context for at most `capacity` outstanding operations (at least
  /// one). Fails with the `io_setup` error; [`setup_error_message`](crate::setup_error_message)
  /// explains it.
  pub fn new(capacity: usize) -> io::Result<AioBackend> {
    AioBackend::with_reaping(capacity, true)
  }

  /// Whether kernel AIO does `op`: reads, writes (vectored or not) and syncs at an offset
  /// of their own. The path operations, `fallocate`, `sync_file_range`, `fadvise`,
  /// `ftruncate` and a read or write at the file position have no `IOCB_CMD_*`; they go
  /// to a side pool (`caio_thread::Offload`).
  pub fn performs(&self, op: &Operation) -> bool {
    op.offset != caio_core::AT_CURSOR
      && matches!(
        op.opcode,
        Opcode::Read
          | Opcode::Write
          | Opcode::Fsync
          | Opcode::Fdatasync
          | Opcode::Readv
          | Opcode::Writev
      )
  }

  /// `new`, reading completions from the mapped ring when `from_ring` and the ring is one
  /// this code understands, through `io_getevents` otherwise.
  pub(crate) fn with_reaping(capacity: usize, from_ring: bool) -> io::Result<AioBackend> {
    let capacity = capacity.max(1);
    // Slot indices are Places (u32) and travel in `aio_data`.
    if u32::try_from(capacity).is_err() {
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
      slots: vec![Slot::Free; capacity].into_boxed_slice(),
      free: (0..capacity as u32).rev().collect(),
      staged: Vec::with_capacity(capacity),
      local: LocalCompletions::with_capacity(capacity),
      events: vec![IoEvent::default(); capacity].into_boxed_slice(),
      capacity,
      outstanding: 0,
      in_flight: 0,
    })
  }

  /// The address of slot `index`'s iocb, or `None` past the slab's end.
  fn iocb(&self, index: u32) -> Option<*mut Iocb> {
    let index = index as usize;
    // SAFETY: `index` is within the slab of `capacity` iocbs (checked first).
    (index < self.capacity).then(|| unsafe { self.iocbs.as_ptr().add(index) })
  }

  /// The slot index of an iocb of the slab.
  fn index_of(&self, iocb: *mut Iocb) -> usize {
    (iocb as usize - self.iocbs.as_ptr() as usize) / size_of::<Iocb>()
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
            if let Slot::Staged(op) = self.slots[index] {
              self.slots[index] = Slot::InFlight(op);
            }
          }
          self.staged.drain(..taken);
          self.in_flight += taken;
        }
        Err(libc::EAGAIN) => {
          // The kernel is out of resources: keep the rest for the next submit or reap.
          // With nothing in flight no completion would wake the event loop to retry, so
          // this wake-up is owed whether or not the caller asked for quiet.
          if self.in_flight == 0 {
            self.notifier.signal();
          }
          break;
        }
        Err(errno) => {
          // The error belongs to the first iocb: it never reached the kernel.
          let iocb = self.staged.remove(0);
          let index = self.index_of(iocb);
          if let Slot::Staged(op) = self.slots[index] {
            // SAFETY: the operation was pushed under the buffer rule, and its completion,
            // made just below, has not been reaped yet; the kernel never had the iocb.
            let result = unsafe { refusal(&op, errno) };
            self.complete(index, result, out);
          }
        }
      }
    }
  }

  /// Completes slot `index` with `result` into `out` and frees the slot.
  fn complete(&mut self, index: usize, result: i64, out: &mut Vec<Completion>) {
    let (Slot::Staged(op) | Slot::InFlight(op)) = self.slots[index] else {
      return;
    };
    out.push(Completion {
      token: op.token,
      result,
    });
    self.slots[index] = Slot::Free;
    self.free.push(index as u32);
  }

  /// Settles one event from the kernel. Returns whether it belonged to an operation in
  /// flight: an event naming any other slot is kernel data this backend did not ask for,
  /// and is ignored.
  fn on_event(&mut self, event: IoEvent, out: &mut Vec<Completion>) -> bool {
    let Ok(index) = usize::try_from(event.data) else {
      return false;
    };
    if !matches!(self.slots.get(index), Some(Slot::InFlight(_))) {
      return false;
    }
    self.in_flight -= 1;
    self.complete(index, event.res, out);
    true
  }

  /// Settles every completion the kernel has posted. Returns how many.
  fn harvest(&mut self, out: &mut Vec<Completion>) -> usize {
    match self.ring {
      // Drained even with nothing in flight (a few loads), so that events naming no
      // operation cannot keep `ready` true.
      Some(ring) => {
        let mut count = 0;
        let drained = ring.drain(|event| {
          if self.on_event(event, out) {
            count += 1;
          }
        });
        if drained.is_err() {
          self.ring = None;
          count += self.harvest_syscall(out);
        }
        count
      }
      None => self.harvest_syscall(out),
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
      let Ok(got) = io_getevents(self.ctx, 0, &mut self.events[..want], Some(&NOW)) else {
        break;
      };
      for i in 0..got {
        let event = self.events[i];
        if self.on_event(event, out) {
          count += 1;
        }
      }
      if got < want {
        break;
      }
    }
    count
  }
}

/// The result for an operation `io_submit` refused with `errno`. `EINVAL` there means the
/// file cannot do kernel AIO at all — a directory, `/dev/full`, `/proc/self/mem`, anything
/// without `read_iter`/`write_iter` — not that the request is wrong (a misaligned
/// `O_DIRECT` request fails in its completion instead). Such an operation is done with
/// the plain system call, at once, so that it ends as it would on every other backend:
/// `EISDIR`, `ENOSPC`, `EIO`, or done.
///
/// # Safety
/// `op` obeys the buffer rule and its completion has not been reaped.
unsafe fn refusal(op: &Operation, errno: i32) -> i64 {
  if errno != libc::EINVAL {
    return -i64::from(errno);
  }
  // SAFETY: the caller upholds the buffer rule for `op` until its completion is reaped,
  // which is after this call.
  unsafe { perform_blocking(op) }
}

/// The iocb that asks the kernel for `op`, in slot `index`, signalling `resfd`.
fn iocb_for(op: &Operation, index: u32, resfd: libc::c_int) -> Iocb {
  let offset = op.offset.min(i64::MAX as u64) as i64;
  let iovecs = (op.len as usize / caio_core::IOVEC_SIZE) as u32;
  let (opcode, buf, nbytes, offset) = match op.opcode {
    Opcode::Read => (IOCB_CMD_PREAD, op.buf as usize as u64, op.len, offset),
    Opcode::Write => (IOCB_CMD_PWRITE, op.buf as usize as u64, op.len, offset),
    // For the vectored commands `aio_nbytes` counts iovecs, not bytes.
    Opcode::Readv => (IOCB_CMD_PREADV, op.buf as usize as u64, iovecs, offset),
    Opcode::Writev => (IOCB_CMD_PWRITEV, op.buf as usize as u64, iovecs, offset),
    Opcode::Fsync => (IOCB_CMD_FSYNC, 0, 0, 0),
    Opcode::Fdatasync => (IOCB_CMD_FDSYNC, 0, 0, 0),
    // Never pushed (see `performs`); should one be, the kernel refuses the opcode with
    // EINVAL and `refusal` does it the blocking way.
    _ => (u16::MAX, 0, 0, 0),
  };
  let mut flags = IOCB_FLAG_RESFD;
  if op.priority != 0 {
    flags |= IOCB_FLAG_IOPRIO;
  }
  Iocb {
    aio_data: u64::from(index),
    aio_lio_opcode: opcode,
    aio_reqprio: op.priority as i16,
    aio_fildes: op.fd as u32,
    aio_buf: buf,
    aio_nbytes: u64::from(nbytes),
    aio_offset: offset,
    aio_flags: flags,
    aio_resfd: resfd as u32,
    ..Iocb::default()
  }
}

impl Backend for AioBackend {
  /// No links (see the type docs); a submit is one `io_submit`.
  fn traits(&self) -> Traits {
    Traits {
      capacity: self.capacity,
      links: false,
      cheap_submit: true,
    }
  }

  /// `op.link` and `op.share` are ignored (see the type docs).
  unsafe fn push(&mut self, op: Operation) -> Result<Place, Full> {
    if self.outstanding >= self.capacity {
      return Err(Full);
    }
    // Fewer than `capacity` outstanding means a free slot: slots are held only by
    // operations pushed and not yet completed.
    let index = self.free.pop().ok_or(Full)?;
    let Some(iocb) = self.iocb(index) else {
      // Unreachable: `free` holds indices of the slab only.
      return Err(Full);
    };
    // SAFETY: `iocb` is a free slot of the slab: the kernel holds no submission of it, and
    // nothing else refers to it.
    unsafe { iocb.write(iocb_for(&op, index, self.notifier.fd())) };
    self.slots[index as usize] = Slot::Staged(op);
    self.staged.push(iocb);
    self.outstanding += 1;
    Ok(index)
  }

  /// Kernel AIO signals the notifier by itself for every completion it posts, so only the
  /// completions of refusals depend on `reap_follows`.
  fn submit(&mut self, reap_follows: bool) -> io::Result<Submitted> {
    if reap_follows {
      self.local.begin_quiet();
    }
    if !self.staged.is_empty() {
      let mut local = std::mem::take(&mut self.local);
      let before = local.len();
      self.submit_staged(local.list_mut());
      let refused = local.len() > before;
      self.local = local;
      if refused {
        self.local.announce(&self.notifier);
      }
    }
    Ok(Submitted::default())
  }

  fn reap(&mut self, out: &mut Vec<Completion>) {
    let before = out.len();
    self.local.drain_into(out);
    loop {
      // Operations left staged by an `EAGAIN` go in as soon as harvesting gave the kernel
      // room back, even when their retry would otherwise have nothing to wake it.
      if !self.staged.is_empty() {
        self.submit_staged(out);
      }
      if self.harvest(out) == 0 || self.staged.is_empty() {
        break;
      }
    }
    self.outstanding -= out.len() - before;
  }

  /// The local completions and the mapped ring, without a system call. A backend reaping
  /// through `io_getevents` (a ring this code does not understand) cannot see the kernel's
  /// completions without one, so for those it answers false; the notifier, which the
  /// kernel signals, still tells of them.
  fn ready(&self) -> bool {
    !self.local.is_empty() || self.ring.is_some_and(|ring| ring.has_events())
  }

  fn cancel(&mut self, token: u64, place: Place) {
    let index = place as usize;
    let (Some(&slot), Some(iocb)) = (self.slots.get(index), self.iocb(place)) else {
      return;
    };
    let cancelled = match slot {
      Slot::Staged(op) if op.token == token => {
        if let Some(position) = self.staged.iter().position(|&p| p == iocb) {
          self.staged.remove(position);
        }
        true
      }
      Slot::InFlight(op) if op.token == token => {
        // SAFETY: the iocb is in the slab, submitted to this context.
        let withdrawn = unsafe { io_cancel(self.ctx, iocb) }.is_ok();
        // `Ok` is the old contract: cancelled, and the event is not posted to the ring.
        // Otherwise EINPROGRESS (cancelled; the kernel posts the event) or EINVAL/EAGAIN
        // (not cancellable): either way its one completion comes from the ring.
        if withdrawn {
          self.in_flight -= 1;
        }
        withdrawn
      }
      // Free, or another operation now: the one cancelled was already reaped.
      _ => false,
    };
    if cancelled {
      let mut local = std::mem::take(&mut self.local);
      self.complete(index, ECANCELED, local.list_mut());
      self.local = local;
      self.local.announce(&self.notifier);
    }
  }

  fn signal_completions(&mut self) {
    self.local.end_quiet(&self.notifier);
  }

  fn notifier(&self) -> &Notifier {
    &self.notifier
  }
}

impl Drop for AioBackend {
  fn drop(&mut self) {
    // Staged operations never reached the kernel: their buffers are untouched. Ask the
    // kernel to give up on the rest, then wait until it has let go of every buffer, which
    // is what makes dropping sound (the buffer rule).
    for index in 0..self.capacity {
      let (Slot::InFlight(_), Some(iocb)) = (self.slots[index], self.iocb(index as u32)) else {
        continue;
      };
      // SAFETY: the iocb is in the slab, submitted to this context.
      if unsafe { io_cancel(self.ctx, iocb) }.is_ok() {
        self.slots[index] = Slot::Free;
        self.in_flight -= 1;
      }
    }
    while self.in_flight > 0 {
      let want = self.in_flight.min(self.events.len());
      match io_getevents(self.ctx, 1, &mut self.events[..want], None) {
        Ok(got) => {
          for i in 0..got {
            let slot = self.slots.get_mut(self.events[i].data as usize);
            if let Some(slot) = slot.filter(|slot| matches!(slot, Slot::InFlight(_))) {
              *slot = Slot::Free;
              self.in_flight -= 1;
            }
          }
        }
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

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
