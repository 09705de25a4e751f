//! Memory for reading large files whole: mappings of their own, handed to JavaScript as
//! ArrayBuffers and, once collected, kept for the next large read instead of unmapped.
//!
//! A fresh buffer's page faults, not the copy, are most of what reading a large cached file
//! costs (a 256 MiB read: about 115 ms into fresh memory, 50 ms into memory already
//! faulted in). Allocators that keep freed memory (Bun's mimalloc) get the second figure
//! on every read after the first; this module does that for caio's whole-file reads, within
//! a bound, per thread (a finalizer runs on the thread of the ArrayBuffer's environment).

use std::cell::RefCell;

/// Buffers smaller than this come from the ordinary allocator.
pub const LARGE: usize = 4 * 1024 * 1024;
/// The most memory kept for reuse, in all, per thread.
const KEPT_BYTES: usize = 512 * 1024 * 1024;
/// The most mappings kept for reuse, per thread.
const KEPT_MAPPINGS: usize = 4;

/// One anonymous mapping of `capacity` bytes.
pub struct Mapping {
  pub at: *mut u8,
  pub capacity: usize,
}

impl Drop for Mapping {
  fn drop(&mut self) {
    // SAFETY: a mapping is owned by exactly one `Mapping`, and dropped when nobody uses it.
    unsafe { caio_core::sys::unmap(self.at, self.capacity) };
  }
}

thread_local! {
  static KEPT: RefCell<Vec<Mapping>> = const { RefCell::new(Vec::new()) };
}

/// A mapping of at least `len` bytes: a kept one no more than twice as large, else a new
/// one. Its content is unspecified, as `Buffer.allocUnsafe`'s is.
pub fn take(len: usize) -> Option<Mapping> {
  let kept = KEPT.with(|kept| {
    let mut kept = kept.borrow_mut();
    let fits = kept
      .iter()
      .position(|m| m.capacity >= len && m.capacity / 2 <= len)?;
    Some(kept.swap_remove(fits))
  });
  if kept.is_some() {
    return kept;
  }
  let at = caio_core::sys::map_anonymous(len).ok()?;
  Some(Mapping {
    at,
    capacity: len.max(1),
  })
}

/// Keeps `mapping` for a later [`take`] if the bounds allow, else unmaps it. Never panics:
/// it runs in a finalizer, where an unwind would abort Node. While the thread's keep is
/// busy or already gone (the thread is exiting), the mapping is simply unmapped.
pub fn give_back(mapping: Mapping) {
  let _ = KEPT.try_with(|kept| {
    let Ok(mut kept) = kept.try_borrow_mut() else {
      return;
    };
    let bytes: usize = kept.iter().map(|m| m.capacity).sum();
    if kept.len() < KEPT_MAPPINGS && bytes + mapping.capacity <= KEPT_BYTES {
      kept.push(mapping);
    }
  });
  // A mapping not kept was dropped above, or drops here: either way it is unmapped.
}
