//! The kernel AIO system calls, raw (there is no libc wrapper and no libaio here). Each
//! retries `EINTR` itself, so that callers see only answers.

use std::io;

use caio_core::sys::retry_eintr;

use crate::abi::{AioContext, IoEvent, Iocb};

/// A non-negative count, or the errno of a failure as a positive number.
fn answer(rc: i64) -> Result<usize, i32> {
  if rc < 0 {
    Err(i32::try_from(-rc).unwrap_or(libc::EIO))
  } else {
    Ok(rc as usize)
  }
}

/// Creates a context for `nr_events` requests in flight at once.
pub(crate) fn io_setup(nr_events: usize) -> io::Result<AioContext> {
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
pub(crate) fn io_destroy(ctx: AioContext) {
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
pub(crate) unsafe fn io_submit(ctx: AioContext, iocbs: &mut [*mut Iocb]) -> Result<usize, i32> {
  answer(retry_eintr(|| {
    // SAFETY: the caller vouches for the iocbs; the pointer array itself is a live slice.
    // An interrupted io_submit took none of them, so calling again submits nothing twice.
    unsafe {
      libc::syscall(
        libc::SYS_io_submit,
        ctx,
        iocbs.len() as libc::c_long,
        iocbs.as_mut_ptr(),
      ) as i64
    }
  }))
}

/// Reads between `min_nr` and `events.len()` completions into `events`; `None` waits
/// without a time limit.
pub(crate) fn io_getevents(
  ctx: AioContext,
  min_nr: usize,
  events: &mut [IoEvent],
  timeout: Option<&libc::timespec>,
) -> Result<usize, i32> {
  let timeout = timeout.map_or(std::ptr::null(), |t| t as *const libc::timespec);
  answer(retry_eintr(|| {
    // SAFETY: the kernel writes at most `events.len()` io_events into the live slice and
    // only reads the timespec, a live reference or null.
    unsafe {
      libc::syscall(
        libc::SYS_io_getevents,
        ctx,
        min_nr as libc::c_long,
        events.len() as libc::c_long,
        events.as_mut_ptr(),
        timeout,
      ) as i64
    }
  }))
}

/// Asks the kernel to cancel a submitted iocb. `Ok` means the old contract (the event is
/// returned here and never posted to the ring); modern kernels answer `EINPROGRESS` when
/// they cancelled and post the event themselves, and `EINVAL` when the request cannot be
/// cancelled, which is every read, write and sync of a regular file.
///
/// # Safety
/// `iocb` points at a readable iocb (the kernel reads its `aio_key`).
pub(crate) unsafe fn io_cancel(ctx: AioContext, iocb: *mut Iocb) -> Result<(), i32> {
  let mut result = IoEvent::default();
  answer(retry_eintr(|| {
    // SAFETY: the caller vouches for `iocb`; the kernel may write one io_event into the
    // live local `result`.
    unsafe { libc::syscall(libc::SYS_io_cancel, ctx, iocb, &mut result as *mut IoEvent) as i64 }
  }))
  .map(drop)
}
