//! The completion ring the kernel maps at a context's address, read without a system call
//! (as seastar does: the ring header says `head` is "written to by userland").

use std::mem::size_of;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use crate::abi::{AioContext, IoEvent, RingHeader, AIO_RING_MAGIC};

/// The completion ring of one context, when it can be read from userland.
///
/// A `Ring` is only a view: it is valid while its context lives, so only the backend that
/// owns the context keeps one, and drops it (with itself) before `io_destroy` unmaps it.
#[derive(Clone, Copy)]
pub(crate) struct Ring {
  header: NonNull<RingHeader>,
  events: NonNull<IoEvent>,
  /// How many events the ring holds.
  pub(crate) nr: u32,
}

/// `head` or `tail` points outside the ring: the layout is not the one this code knows, so
/// the kernel (`io_getevents`) has to read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Unreadable;

impl Ring {
  /// Finds the ring mapped at `ctx`, if it is one this code understands: the right magic,
  /// no incompatible features, the header length it expects, and all of it mapped.
  pub(crate) fn find(ctx: AioContext) -> Option<Ring> {
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
    // SAFETY: the ring stays mapped while its context lives, and a Ring is used only by
    // the backend owning that context, before its Drop calls io_destroy (type docs).
    unsafe { self.header.as_ref() }
  }

  /// Whether completed events wait in the ring: two loads.
  pub(crate) fn has_events(&self) -> bool {
    let header = self.header();
    header.head.load(Ordering::Relaxed) != header.tail.load(Ordering::Acquire)
  }

  /// Hands every event the kernel has posted to `each`, oldest first, and gives their
  /// entries back to the kernel.
  ///
  /// Only the owning backend moves `head` while it reads the ring this way: the kernel
  /// moves it too, but only inside `io_getevents`, which such a backend calls only in its
  /// Drop.
  pub(crate) fn drain(&self, mut each: impl FnMut(IoEvent)) -> Result<(), Unreadable> {
    let header = self.header();
    loop {
      let mut head = header.head.load(Ordering::Relaxed);
      // The kernel writes the event, then publishes `tail` with a release barrier.
      let tail = header.tail.load(Ordering::Acquire);
      if head == tail {
        return Ok(());
      }
      if head >= self.nr || tail >= self.nr {
        return Err(Unreadable);
      }
      while head != tail {
        // SAFETY: head < nr, so the event lies in the mapping (checked in `find`); the
        // acquire load of `tail` orders this read after the kernel's write.
        let event = unsafe { self.events.as_ptr().add(head as usize).read() };
        head = if head + 1 == self.nr { 0 } else { head + 1 };
        each(event);
      }
      // Hands the entries back to the kernel once they are copied out.
      header.head.store(head, Ordering::Release);
    }
  }
}

/// Whether every page of `[addr, addr + len)` is mapped in this process.
pub(crate) fn is_mapped(addr: usize, len: usize) -> bool {
  // SAFETY: sysconf takes no pointers.
  let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
  let Ok(page) = usize::try_from(page) else {
    return false;
  };
  if page == 0 {
    return false;
  }
  let mut residency = vec![0u8; len.div_ceil(page)];
  // SAFETY: mincore only looks at the page tables for the range and writes one byte per
  // page into `residency`, which has room for all of them; it fails with ENOMEM when part
  // of the range is not mapped, which is the question asked.
  unsafe { libc::mincore(addr as *mut libc::c_void, len, residency.as_mut_ptr()) == 0 }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn mapped_and_unmapped_memory_are_told_apart() {
    // SAFETY: sysconf takes no pointers.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let memory = vec![1u8; 4 * page];
    let first_page = (memory.as_ptr() as usize).next_multiple_of(page);
    assert!(is_mapped(first_page, 2 * page));
    assert!(!is_mapped(0, page));
  }
}
