//! The path operations (open, close, stat, unlink, rename, mkdir, ftruncate, access,
//! copyfile) done the blocking way, for pool threads: what each [`Opcode`] means, in one
//! place. io_uring does most of them itself; this is what it does not, and everything the
//! other backends do.
//!
//! A path travels NUL-terminated in the operation's buffer (two of them, one after the
//! other, for rename and copyfile); a buffer without its NUL is refused with `EINVAL`
//! rather than read past. The paths are relative to the process's working directory.

use std::ffi::CStr;
use std::os::fd::RawFd;

use crate::sys::{last_error, retry_eintr};
use crate::{Opcode, Operation, STATX_SIZE};

/// `COPYFILE_EXCL` of Node: fail if the destination exists.
const COPYFILE_EXCL: u64 = 1;
/// `COPYFILE_FICLONE`: share the source's extents when the file system can.
const COPYFILE_FICLONE: u64 = 2;
/// `COPYFILE_FICLONE_FORCE`: share the extents, or fail.
const COPYFILE_FICLONE_FORCE: u64 = 4;

/// The bytes of `op`'s buffer from `start` on.
///
/// # Safety
/// `op.buf` is valid for `op.len` bytes (the buffer rule).
unsafe fn buffer_from(op: &Operation, start: usize) -> &[u8] {
  let len = op.len as usize;
  if op.buf.is_null() || start >= len {
    return &[];
  }
  // SAFETY: the caller guarantees `op.len` valid bytes at `op.buf`; `start < len`.
  unsafe { std::slice::from_raw_parts(op.buf.add(start), len - start) }
}

/// The NUL-terminated string at the start of `bytes`, and what follows its NUL.
fn split_path(bytes: &[u8]) -> Option<(&CStr, &[u8])> {
  let nul = bytes.iter().position(|&b| b == 0)?;
  let path = CStr::from_bytes_with_nul(&bytes[..=nul]).ok()?;
  Some((path, &bytes[nul + 1..]))
}

const EINVAL: i64 = -(libc::EINVAL as i64);

/// Whether `op`'s buffer holds what its opcode needs there: the NUL of each path, the
/// stat answer area. A backend that hands the buffer to the kernel as it is checks this
/// first, since the kernel would read a path past the buffer's end looking for its NUL.
///
/// # Safety
/// `op.buf` is valid for `op.len` bytes (the buffer rule).
pub unsafe fn well_formed(op: &Operation) -> bool {
  // SAFETY: the caller's guarantee.
  let whole = unsafe { buffer_from(op, 0) };
  let paths = match op.opcode {
    Opcode::Read | Opcode::Write | Opcode::Fsync | Opcode::Fdatasync => return true,
    Opcode::Close | Opcode::Ftruncate => return true,
    // The iovecs are the pusher's to get right (the buffer rule covers what they describe).
    Opcode::Readv | Opcode::Writev => return true,
    Opcode::RegisterBuffers
    | Opcode::UnregisterBuffers
    | Opcode::RegisterFiles
    | Opcode::UnregisterFiles => return true,
    Opcode::Fallocate | Opcode::SyncRange | Opcode::Fadvise => {
      return whole.len() >= crate::RANGE_ARGS_SIZE
    }
    Opcode::Fstat => return whole.len() >= STATX_SIZE,
    // SAFETY: the caller's guarantee.
    Opcode::Stat => unsafe { buffer_from(op, STATX_SIZE) },
    _ => whole,
  };
  match split_path(paths) {
    Some((_, rest)) if matches!(op.opcode, Opcode::Rename | Opcode::Copyfile) => {
      split_path(rest).is_some()
    }
    Some(_) => true,
    None => false,
  }
}

/// Runs one path operation with its blocking system calls (retrying `EINTR`): its result
/// (a descriptor for `Open`, else 0) or a negative errno.
///
/// # Safety
/// `op.buf` is valid for `op.len` bytes and nobody else touches them meanwhile (the buffer
/// rule).
#[cfg(target_os = "linux")]
pub unsafe fn perform_path_operation(op: &Operation) -> i64 {
  let flags = op.offset;
  match op.opcode {
    Opcode::Read
    | Opcode::Write
    | Opcode::Fsync
    | Opcode::Fdatasync
    | Opcode::Readv
    | Opcode::Writev
    | Opcode::Fallocate
    | Opcode::SyncRange
    | Opcode::Fadvise
    | Opcode::RegisterBuffers
    | Opcode::UnregisterBuffers
    | Opcode::RegisterFiles
    | Opcode::UnregisterFiles => EINVAL,
    Opcode::Close => {
      // Never retried: after an interrupted close the descriptor is gone on Linux.
      // SAFETY: takes no pointer; closing a descriptor the caller named is the request.
      if unsafe { libc::close(op.fd) } == 0 {
        0
      } else {
        last_error()
      }
    }
    Opcode::Ftruncate => {
      let length = flags.min(i64::MAX as u64) as libc::off_t;
      // SAFETY: takes no pointer.
      retry_eintr(|| unsafe { libc::ftruncate(op.fd, length) } as i64)
    }
    Opcode::Fstat => {
      // SAFETY: the buffer rule.
      let area = unsafe { buffer_from(op, 0) };
      if area.len() < STATX_SIZE {
        return EINVAL;
      }
      // SAFETY: `area` spans a whole struct statx of exclusive memory; "" is a valid path.
      retry_eintr(|| unsafe { statx(op.fd, c"", libc::AT_EMPTY_PATH, op.buf) })
    }
    _ => {
      let offset = if op.opcode == Opcode::Stat {
        STATX_SIZE
      } else {
        0
      };
      // SAFETY: the buffer rule.
      let Some((path, rest)) = split_path(unsafe { buffer_from(op, offset) }) else {
        return EINVAL;
      };
      match op.opcode {
        Opcode::Open => {
          let open_flags = (flags & 0xffff_ffff) as libc::c_int;
          let mode = (flags >> 32) as libc::c_uint;
          // SAFETY: a NUL-terminated path that outlives the call.
          retry_eintr(|| unsafe { libc::open(path.as_ptr(), open_flags, mode) } as i64)
        }
        Opcode::Stat => {
          let at_flags = (flags & 0xffff_ffff) as libc::c_int;
          // SAFETY: the buffer's first STATX_SIZE bytes are the answer area (checked by
          // `buffer_from` giving a path after them), the path lies after it.
          retry_eintr(|| unsafe { statx(libc::AT_FDCWD, path, at_flags, op.buf) })
        }
        Opcode::Unlink => {
          let at_flags = (flags & 0xffff_ffff) as libc::c_int;
          // SAFETY: a NUL-terminated path.
          retry_eintr(|| unsafe { libc::unlinkat(libc::AT_FDCWD, path.as_ptr(), at_flags) } as i64)
        }
        Opcode::Mkdir => {
          let mode = (flags & 0o7777) as libc::mode_t;
          // SAFETY: a NUL-terminated path.
          retry_eintr(|| unsafe { libc::mkdir(path.as_ptr(), mode) } as i64)
        }
        Opcode::Access => {
          let mode = (flags & 7) as libc::c_int;
          // SAFETY: a NUL-terminated path.
          retry_eintr(|| unsafe { libc::access(path.as_ptr(), mode) } as i64)
        }
        Opcode::Rename => {
          let Some((to, _)) = split_path(rest) else {
            return EINVAL;
          };
          // SAFETY: two NUL-terminated paths.
          retry_eintr(|| unsafe { libc::rename(path.as_ptr(), to.as_ptr()) } as i64)
        }
        Opcode::Copyfile => {
          let Some((to, _)) = split_path(rest) else {
            return EINVAL;
          };
          copy_file(path, to, flags)
        }
        Opcode::ReadSmall => {
          let room_at = op.len as usize - rest.len();
          // SAFETY: the bytes after the path's NUL are the operation's own (the buffer
          // rule), and `rest` borrowed them only to find where they start.
          let room = unsafe { std::slice::from_raw_parts_mut(op.buf.add(room_at), rest.len()) };
          read_small(path, (flags & 0xffff_ffff) as libc::c_int, room)
        }
        _ => EINVAL,
      }
    }
  }
}

/// Path operations are Linux-only for now: elsewhere they answer `ENOSYS`, and the
/// facade runs them through `node:fs` instead.
///
/// # Safety
/// None needed; the signature matches the Linux one.
#[cfg(not(target_os = "linux"))]
pub unsafe fn perform_path_operation(_op: &Operation) -> i64 {
  -(libc::ENOSYS as i64)
}

/// `statx` for the basic fields and the birth time, into the `STATX_SIZE` bytes at `area`.
///
/// # Safety
/// `area` spans `STATX_SIZE` writable bytes nobody else uses meanwhile.
#[cfg(target_os = "linux")]
unsafe fn statx(dirfd: RawFd, path: &CStr, flags: libc::c_int, area: *mut u8) -> i64 {
  const _: () = assert!(std::mem::size_of::<libc::statx>() <= STATX_SIZE);
  let mask = libc::STATX_BASIC_STATS | libc::STATX_BTIME;
  // SAFETY: the caller's area holds a struct statx; the path is NUL-terminated.
  unsafe { libc::statx(dirfd, path.as_ptr(), flags, mask, area.cast()) as i64 }
}

/// Opens `path` and, when it is a regular file that is not empty and fits `room`, reads
/// it there whole (to the size `fstat` gave, as Node does) and closes it: its length. Anything else leaves the descriptor open at position 0, for the
/// caller to read the ordinary way: `room.len() + 1 + fd`. Positioned reads, so that a read
/// that fails halfway leaves the position where the caller's read starts.
#[cfg(target_os = "linux")]
fn read_small(path: &CStr, flags: libc::c_int, room: &mut [u8]) -> i64 {
  // SAFETY: a NUL-terminated path; the mode is Node's default for a file readFile creates.
  let fd =
    retry_eintr(|| unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, 0o666) } as i64);
  if fd < 0 {
    return fd;
  }
  let fd = fd as RawFd;
  let handed_over = room.len() as i64 + 1 + i64::from(fd);
  let size = match fstat(fd) {
    Ok(stat) if stat.st_mode & libc::S_IFMT == libc::S_IFREG => stat.st_size.max(0) as usize,
    _ => return handed_over,
  };
  // Size 0 may be a file the kernel makes as it is read (procfs): read it to its end.
  if size == 0 || size > room.len() {
    return handed_over;
  }
  let mut filled = 0;
  while filled < size {
    let rest = &mut room[filled..size];
    // SAFETY: `rest` is writable memory of the caller's buffer.
    let count = retry_eintr(|| unsafe {
      libc::pread(
        fd,
        rest.as_mut_ptr().cast(),
        rest.len(),
        filled as libc::off_t,
      )
    } as i64);
    if count < 0 {
      return handed_over;
    }
    if count == 0 {
      break;
    }
    filled += count as usize;
  }
  // SAFETY: the descriptor was opened here and is closed once.
  unsafe { libc::close(fd) };
  filled as i64
}

/// A descriptor closed when dropped.
#[cfg(target_os = "linux")]
struct Owned(RawFd);

#[cfg(target_os = "linux")]
impl Drop for Owned {
  fn drop(&mut self) {
    // SAFETY: the descriptor was opened here and is closed once.
    unsafe { libc::close(self.0) };
  }
}

#[cfg(target_os = "linux")]
fn fstat(fd: RawFd) -> Result<libc::stat, i64> {
  // SAFETY: plain data the call fills.
  let mut stat: libc::stat = unsafe { std::mem::zeroed() };
  // SAFETY: `stat` is ours.
  match retry_eintr(|| unsafe { libc::fstat(fd, &mut stat) } as i64) {
    0 => Ok(stat),
    error => Err(error),
  }
}

/// Copies `from` to `to` as libuv's `uv_fs_copyfile` does, so that `copyFile` answers as
/// Node's: the destination gets the source's mode, is truncated unless it is the source
/// itself, and is removed again when the copy fails after it was opened.
#[cfg(target_os = "linux")]
fn copy_file(from: &CStr, to: &CStr, flags: u64) -> i64 {
  // SAFETY: a NUL-terminated path.
  let source =
    retry_eintr(|| unsafe { libc::open(from.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) } as i64);
  if source < 0 {
    return source;
  }
  let source = Owned(source as RawFd);
  let source_stat = match fstat(source.0) {
    Ok(stat) => stat,
    Err(error) => return error,
  };
  let mut open_flags = libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC;
  if flags & COPYFILE_EXCL != 0 {
    open_flags |= libc::O_EXCL;
  }
  // SAFETY: a NUL-terminated path.
  let target =
    retry_eintr(|| unsafe { libc::open(to.as_ptr(), open_flags, source_stat.st_mode) } as i64);
  if target < 0 {
    return target;
  }
  let target = Owned(target as RawFd);
  let result = copy_into(&source, &source_stat, &target, flags);
  drop(target);
  if result < 0 {
    // SAFETY: a NUL-terminated path.
    unsafe { libc::unlink(to.as_ptr()) };
  }
  result
}

#[cfg(target_os = "linux")]
fn copy_into(source: &Owned, source_stat: &libc::stat, target: &Owned, flags: u64) -> i64 {
  let target_stat = match fstat(target.0) {
    Ok(stat) => stat,
    Err(error) => return error,
  };
  if source_stat.st_dev == target_stat.st_dev && source_stat.st_ino == target_stat.st_ino {
    return 0;
  }
  // SAFETY: takes no pointer. Some file systems (CIFS) refuse to truncate: like libuv, go on.
  let truncated = retry_eintr(|| unsafe { libc::ftruncate(target.0, 0) } as i64);
  if truncated < 0 && truncated != EINVAL {
    return truncated;
  }
  // SAFETY: takes no pointer. A file system without modes (CIFS) answers EPERM: go on.
  let moded = retry_eintr(|| unsafe { libc::fchmod(target.0, source_stat.st_mode) } as i64);
  if moded < 0 && moded != -(libc::EPERM as i64) {
    return moded;
  }
  if flags & (COPYFILE_FICLONE | COPYFILE_FICLONE_FORCE) != 0 {
    // SAFETY: FICLONE takes the source descriptor as its argument.
    if unsafe { libc::ioctl(target.0, libc::FICLONE, source.0) } == 0 {
      return 0;
    }
    if flags & COPYFILE_FICLONE_FORCE != 0 {
      return last_error();
    }
  }
  let mut left = source_stat.st_size.max(0) as u64;
  let mut use_copy_file_range = true;
  let mut scratch = Vec::new();
  while left > 0 {
    let chunk = left.min(1 << 30) as usize;
    let moved = if use_copy_file_range {
      // SAFETY: null offsets: both descriptors' positions advance.
      let rc = retry_eintr(|| unsafe {
        libc::copy_file_range(
          source.0,
          std::ptr::null_mut(),
          target.0,
          std::ptr::null_mut(),
          chunk,
          0,
        ) as i64
      });
      if matches!(
        -rc as i32,
        libc::EXDEV | libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP
      ) {
        use_copy_file_range = false;
        continue;
      }
      rc
    } else {
      copy_through_memory(source.0, target.0, chunk, &mut scratch)
    };
    if moved < 0 {
      return moved;
    }
    if moved == 0 {
      break;
    }
    left -= (moved as u64).min(left);
  }
  0
}

/// One `read` and the `write`s it needs, for file systems `copy_file_range` cannot copy.
#[cfg(target_os = "linux")]
fn copy_through_memory(from: RawFd, to: RawFd, chunk: usize, scratch: &mut Vec<u8>) -> i64 {
  scratch.resize(chunk.min(1 << 16), 0);
  // SAFETY: `scratch` is ours and as long as asked.
  let read =
    retry_eintr(|| unsafe { libc::read(from, scratch.as_mut_ptr().cast(), scratch.len()) } as i64);
  if read <= 0 {
    return read;
  }
  let mut written = 0usize;
  while written < read as usize {
    let rest = &scratch[written..read as usize];
    // SAFETY: `rest` lies inside `scratch`.
    let rc = retry_eintr(|| unsafe { libc::write(to, rest.as_ptr().cast(), rest.len()) } as i64);
    if rc < 0 {
      return rc;
    }
    written += rc as usize;
  }
  read
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
  use super::*;
  use std::ffi::CString;

  fn op(opcode: Opcode, offset: u64, buf: &mut [u8]) -> Operation {
    Operation {
      offset,
      buf: buf.as_mut_ptr(),
      len: buf.len() as u32,
      ..Operation::sync(opcode, 0, 0)
    }
  }

  fn path_bytes(path: &std::path::Path) -> Vec<u8> {
    CString::new(path.as_os_str().as_encoded_bytes())
      .unwrap()
      .into_bytes_with_nul()
  }

  #[test]
  fn a_path_without_its_nul_is_refused() {
    let mut bytes = *b"/tmp";
    let unlink = op(Opcode::Unlink, 0, &mut bytes);
    // SAFETY: `bytes` outlives the call.
    let result = unsafe { perform_path_operation(&unlink) };
    assert_eq!(result, EINVAL);
    // SAFETY: as above.
    assert!(!unsafe { well_formed(&unlink) });
  }

  #[test]
  fn open_stat_rename_copy_unlink_round_trip() {
    let dir = std::env::temp_dir().join(format!("caio-paths-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut dir_path = path_bytes(&dir);
    // SAFETY: every buffer below outlives its call.
    unsafe {
      assert_eq!(
        perform_path_operation(&op(Opcode::Mkdir, 0o755, &mut dir_path)),
        0
      );
      let file = dir.join("a");
      let mut file_path = path_bytes(&file);
      let flags = (libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC) as u64 | (0o640 << 32);
      let fd = perform_path_operation(&op(Opcode::Open, flags, &mut file_path));
      assert!(fd >= 0, "open: {fd}");
      assert_eq!(libc::write(fd as RawFd, b"hello".as_ptr().cast(), 5), 5);
      let mut area = vec![0u8; STATX_SIZE];
      let mut fstat_op = op(Opcode::Fstat, 0, &mut area);
      fstat_op.fd = fd as RawFd;
      assert_eq!(perform_path_operation(&fstat_op), 0);
      let answer = &*(area.as_ptr() as *const libc::statx);
      assert_eq!(answer.stx_size, 5);
      assert_eq!(answer.stx_mode & 0o777, 0o640);
      let mut close_op = Operation::sync(Opcode::Close, fd as RawFd, 0);
      close_op.buf = std::ptr::null_mut();
      assert_eq!(perform_path_operation(&close_op), 0);

      let copy = dir.join("b");
      let mut both = path_bytes(&file);
      both.extend(path_bytes(&copy));
      assert_eq!(
        perform_path_operation(&op(Opcode::Copyfile, 0, &mut both)),
        0
      );
      assert_eq!(std::fs::read(&copy).unwrap(), b"hello");
      assert_eq!(
        perform_path_operation(&op(Opcode::Copyfile, COPYFILE_EXCL, &mut both)),
        -(libc::EEXIST as i64)
      );

      let renamed = dir.join("c");
      let mut rename_paths = path_bytes(&copy);
      rename_paths.extend(path_bytes(&renamed));
      assert_eq!(
        perform_path_operation(&op(Opcode::Rename, 0, &mut rename_paths)),
        0
      );
      let mut stat_buf = vec![0u8; STATX_SIZE];
      stat_buf.extend(path_bytes(&renamed));
      assert_eq!(
        perform_path_operation(&op(Opcode::Stat, 0, &mut stat_buf)),
        0
      );
      let answer = &*(stat_buf.as_ptr() as *const libc::statx);
      assert_eq!(answer.stx_size, 5);

      let mut gone = path_bytes(&copy);
      assert_eq!(
        perform_path_operation(&op(Opcode::Access, 0, &mut gone)),
        -(libc::ENOENT as i64)
      );
      for name in [&renamed, &file] {
        let mut p = path_bytes(name);
        assert_eq!(perform_path_operation(&op(Opcode::Unlink, 0, &mut p)), 0);
      }
      let removedir = libc::AT_REMOVEDIR as u64;
      assert_eq!(
        perform_path_operation(&op(Opcode::Unlink, removedir, &mut dir_path)),
        0
      );
    }
  }
}
