//! Buffers and files for the O_DIRECT tests.

use std::alloc::Layout;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::ptr::NonNull;

use caio_core::testing::temp_file;

/// A zeroed heap buffer aligned for O_DIRECT (4 KiB).
pub(super) struct Aligned {
  ptr: NonNull<u8>,
  layout: Layout,
}

impl Aligned {
  /// `len` zeroed bytes; `len` must not be 0.
  pub(super) fn new(len: usize) -> Aligned {
    let layout = Layout::from_size_align(len, 4096).unwrap();
    // SAFETY: the layout has a non-zero size.
    let ptr = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) }).unwrap();
    Aligned { ptr, layout }
  }

  /// All of the buffer.
  pub(super) fn bytes(&mut self) -> &mut [u8] {
    // SAFETY: the allocation holds layout.size() initialised (zeroed) bytes, borrowed
    // mutably through `self` for as long as the slice lives.
    unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
  }
}

impl Drop for Aligned {
  fn drop(&mut self) {
    // SAFETY: allocated in `new` with this layout, and freed only here.
    unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
  }
}

/// A temporary file with O_DIRECT set, in the first directory whose file system takes it
/// (tmpfs before Linux 6.6 does not), and that directory; None where none does.
pub(super) fn direct_file() -> Option<(File, PathBuf)> {
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

/// A temporary file `len` bytes long (a hole): O_DIRECT where a directory here takes it, so
/// that reads of it stay in flight for a while; an ordinary one otherwise.
pub(super) fn direct_file_or_ordinary(len: u64) -> File {
  let file = match direct_file() {
    Some((file, _)) => file,
    None => temp_file(b""),
  };
  file.set_len(len).unwrap();
  file
}
