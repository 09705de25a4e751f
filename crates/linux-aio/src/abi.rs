//! The kernel AIO ABI this crate speaks: `linux/aio_abi.h` and the ring header of
//! `fs/aio.c`, written out because libc does not carry them.

use std::sync::atomic::AtomicU32;

pub(crate) const IOCB_CMD_PREAD: u16 = 0;
pub(crate) const IOCB_CMD_PWRITE: u16 = 1;
pub(crate) const IOCB_CMD_FSYNC: u16 = 2;
pub(crate) const IOCB_CMD_FDSYNC: u16 = 3;
/// `aio_buf` points at `aio_nbytes` iovecs.
pub(crate) const IOCB_CMD_PREADV: u16 = 7;
pub(crate) const IOCB_CMD_PWRITEV: u16 = 8;

/// `aio_resfd` is valid: signal that eventfd on completion.
pub(crate) const IOCB_FLAG_RESFD: u32 = 1 << 0;
/// `aio_reqprio` is valid: an `ioprio` value for the request.
pub(crate) const IOCB_FLAG_IOPRIO: u32 = 1 << 1;

/// `AIO_RING_MAGIC` from fs/aio.c.
pub(crate) const AIO_RING_MAGIC: u32 = 0xa10a_10a1;

/// `aio_context_t`: the address of the context's completion ring in this process.
pub(crate) type AioContext = libc::c_ulong;

/// `struct iocb` from `linux/aio_abi.h`. `aio_key` and `aio_rw_flags` share a 64-bit word
/// whose order depends on the byte order (the header's `PADDED` macro).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Iocb {
  pub(crate) aio_data: u64,
  #[cfg(target_endian = "little")]
  pub(crate) aio_key: u32,
  pub(crate) aio_rw_flags: i32,
  #[cfg(target_endian = "big")]
  pub(crate) aio_key: u32,
  pub(crate) aio_lio_opcode: u16,
  pub(crate) aio_reqprio: i16,
  pub(crate) aio_fildes: u32,
  pub(crate) aio_buf: u64,
  pub(crate) aio_nbytes: u64,
  pub(crate) aio_offset: i64,
  pub(crate) aio_reserved2: u64,
  pub(crate) aio_flags: u32,
  pub(crate) aio_resfd: u32,
}

/// `struct io_event` from `linux/aio_abi.h`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct IoEvent {
  /// The `aio_data` of the iocb: here, its slot index.
  pub(crate) data: u64,
  /// The address of the iocb.
  pub(crate) obj: u64,
  /// Bytes moved or a negative errno.
  pub(crate) res: i64,
  pub(crate) res2: i64,
}

/// The header of the completion ring the kernel maps at the context's address (`struct
/// aio_ring` in fs/aio.c). `io_event`s follow it, `header_length` bytes from its start.
#[repr(C)]
pub(crate) struct RingHeader {
  pub(crate) id: u32,
  pub(crate) nr: u32,
  /// Next event to consume: written by whoever reaps, userland included.
  pub(crate) head: AtomicU32,
  /// Next event the kernel fills: published after the event is written.
  pub(crate) tail: AtomicU32,
  pub(crate) magic: u32,
  pub(crate) compat_features: u32,
  pub(crate) incompat_features: u32,
  pub(crate) header_length: u32,
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::mem::{offset_of, size_of};

  #[test]
  fn structs_match_aio_abi() {
    assert_eq!(size_of::<Iocb>(), 64);
    assert_eq!(offset_of!(Iocb, aio_key), 8);
    assert_eq!(offset_of!(Iocb, aio_rw_flags), 12);
    assert_eq!(offset_of!(Iocb, aio_lio_opcode), 16);
    assert_eq!(offset_of!(Iocb, aio_reqprio), 18);
    assert_eq!(offset_of!(Iocb, aio_fildes), 20);
    assert_eq!(offset_of!(Iocb, aio_buf), 24);
    assert_eq!(offset_of!(Iocb, aio_nbytes), 32);
    assert_eq!(offset_of!(Iocb, aio_offset), 40);
    assert_eq!(offset_of!(Iocb, aio_flags), 56);
    assert_eq!(offset_of!(Iocb, aio_resfd), 60);
    assert_eq!(size_of::<IoEvent>(), 32);
    assert_eq!(size_of::<RingHeader>(), 32);
    assert_eq!(offset_of!(RingHeader, head), 8);
    assert_eq!(offset_of!(RingHeader, tail), 12);
    assert_eq!(offset_of!(RingHeader, magic), 16);
    assert_eq!(offset_of!(RingHeader, header_length), 28);
  }
}
