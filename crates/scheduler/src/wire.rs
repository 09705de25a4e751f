//! What crosses between the facade and the addon, as numbers: opcodes, the batch
//! descriptor, the results that are not an errno, and the delivery pairs. `lib/wire.ts`
//! holds the same numbers for TypeScript; a test there holds them against these.
//!
//! Decoding is here, Node-free, so that it can be tested and fuzzed without Node: nothing
//! a caller passes may make it panic, and a bad field is refused whole.

use caio_core::{Opcode, Operation};

/// Numbers per operation in a batch descriptor: `[opcode | link << 8, fd, offset / 2^32,
/// offset % 2^32, priority]`.
pub const BATCH_FIELDS: usize = 5;
/// The link flag in a descriptor's first field.
pub const LINK_FLAG: u32 = 0x100;
/// Numbers of the call area, the end of the wire, through which `start` takes its one
/// operation and gives back its token (one typed-array write per field, where passing
/// them as arguments cost a Node-API call each): `[opcode, fd, offset / 2^32 (-1 for the
/// file position), offset % 2^32, priority, token]`.
pub const CALL_FIELDS: usize = 6;
/// Where the token goes in the call area.
pub const CALL_TOKEN: usize = 5;

/// Results that are not an errno: in a batch's results and in the delivery pairs.
pub mod result {
  /// Cancelled through an AbortSignal.
  pub const ABORTED: f64 = -1_048_577.0;
  /// Dropped from the queue because the context closed.
  pub const CLOSED: f64 = -1_048_578.0;
  /// An operation the backend cannot do at all (the `js` backend's `fallocate`): made by
  /// the facade only, never by the addon, and kept here so that no result takes its number.
  pub const UNSUPPORTED: f64 = -1_048_579.0;
}

/// Bytes the facade allots per buffer in a vectored operation's `iovec` area: a 64-bit
/// `struct iovec`. The addon packs the `iovec`s at the area's start,
/// [`caio_core::IOVEC_SIZE`] bytes each, and gives the operation that many bytes.
pub const IOVEC_ROOM: usize = 16;
/// The most buffers one vectored operation takes: Linux's `IOV_MAX`.
pub const MAX_IOVECS: usize = 1024;
/// The most buffers one `RegisterBuffers` takes: io_uring's `IORING_MAX_REG_BUFFERS`.
pub const MAX_REGISTERED_BUFFERS: usize = 1 << 14;

/// The most `iovec`s the buffer of an operation with `opcode` holds.
pub fn max_iovecs(opcode: Opcode) -> usize {
  if opcode == Opcode::RegisterBuffers {
    MAX_REGISTERED_BUFFERS
  } else {
    MAX_IOVECS
  }
}

/// The slot number of the delivery pair that says the context finished closing.
pub const CLOSED_SLOT: f64 = -1.0;

/// One operation moves at most this many bytes, as one `read(2)` does on Linux.
pub const MAX_LENGTH: usize = i32::MAX as usize;

/// Why an operation's fields were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
  /// Not one of the opcodes.
  Opcode,
  /// Not a descriptor number (an integer in `0..=i32::MAX`).
  Fd,
  /// Not an offset in `0..2^63`.
  Offset,
  /// The descriptor's length is not a whole number of operations.
  Shape,
}

impl Refusal {
  /// Words for the error the facade never lets happen, should it.
  pub fn message(self) -> &'static str {
    match self {
      Refusal::Opcode => "bad opcode",
      Refusal::Fd => "fd must be an integer in 0..2^31",
      Refusal::Offset => "offset must be a non-negative integer below 2^63",
      Refusal::Shape => "the batch descriptor must hold 5 numbers per operation, the call area 6",
    }
  }
}

/// Whether `value` is a whole number in `0..=max` (`max` below 2^63). Casts, not
/// `f64::fract`, which is a call into libm's `trunc` on baseline x86-64: four of them cost
/// a decoded operation about 80 instructions.
#[inline]
fn whole_up_to(value: f64, max: f64) -> bool {
  (0.0..=max).contains(&value) && value as u64 as f64 == value
}

/// An opcode from its number.
pub fn opcode(value: f64) -> Result<Opcode, Refusal> {
  if !whole_up_to(value, 255.0) {
    return Err(Refusal::Opcode);
  }
  Opcode::from_u32(value as u32).ok_or(Refusal::Opcode)
}

/// A descriptor number.
pub fn fd(value: f64) -> Result<i32, Refusal> {
  if whole_up_to(value, f64::from(i32::MAX)) {
    Ok(value as i32)
  } else {
    Err(Refusal::Fd)
  }
}

/// The operation in a call area's first five fields, with no buffer and token 0.
pub fn decode_call(fields: &[f64]) -> Result<Operation, Refusal> {
  let [code, fd_field, high, low, priority_field, ..] = *fields else {
    return Err(Refusal::Shape);
  };
  let mut op = Operation::sync(opcode(code)?, fd(fd_field)?, 0);
  op.offset = if high == -1.0 && low == 0.0 {
    caio_core::AT_CURSOR
  } else {
    offset_halves(high, low)?
  };
  op.priority = priority(priority_field);
  Ok(op)
}

/// An offset given as two 32-bit halves.
pub fn offset_halves(high: f64, low: f64) -> Result<u64, Refusal> {
  if whole_up_to(high, 2_147_483_647.0) && whole_up_to(low, 4_294_967_295.0) {
    Ok(((high as u64) << 32) | low as u64)
  } else {
    Err(Refusal::Offset)
  }
}

/// An I/O priority: anything outside `0..=u16::MAX` is clamped, since the facade validated
/// it and the kernel refuses what is not a real class.
pub fn priority(value: f64) -> u16 {
  if value.is_nan() {
    0
  } else {
    value.clamp(0.0, f64::from(u16::MAX)) as u16
  }
}

/// The byte count one operation moves through a buffer of `len` bytes.
pub fn length(len: usize) -> u32 {
  len.min(MAX_LENGTH) as u32
}

/// Decodes a batch descriptor into operations, asking `buffer(position, opcode)` for the
/// memory of each operation that has a buffer (its data, `iovec`s or arguments, see
/// [`Opcode`]). The offset field of `Ftruncate` is its length; syncs have none. Their
/// tokens are left 0 (the scheduler gives them theirs); the last operation never links on,
/// since nothing of the batch follows it.
pub fn decode_batch<E>(
  fields: &[f64],
  mut buffer: impl FnMut(usize, Opcode) -> Result<(*mut u8, usize), E>,
) -> Result<Vec<Operation>, BatchError<E>> {
  if fields.len() % BATCH_FIELDS != 0 {
    return Err(BatchError::Refused(Refusal::Shape));
  }
  let mut ops = Vec::with_capacity(fields.len() / BATCH_FIELDS);
  for (position, field) in fields.chunks_exact(BATCH_FIELDS).enumerate() {
    let code = field[0];
    if !whole_up_to(code, f64::from(u16::MAX)) {
      return Err(BatchError::Refused(Refusal::Opcode));
    }
    let code = code as u32;
    let opcode = opcode(f64::from(code & 0xff)).map_err(BatchError::Refused)?;
    // A batch works on the data of descriptors it was given: the path operations, whose
    // buffers hold paths, and open/close/stat are single operations only.
    if !opcode.is_data() {
      return Err(BatchError::Refused(Refusal::Opcode));
    }
    let mut op = Operation::sync(opcode, fd(field[1]).map_err(BatchError::Refused)?, 0);
    op.link = code & LINK_FLAG != 0;
    op.priority = priority(field[4]);
    if !matches!(opcode, Opcode::Fsync | Opcode::Fdatasync) {
      op.offset = offset_halves(field[2], field[3]).map_err(BatchError::Refused)?;
    }
    if opcode.has_buffer() {
      let (data, len) = buffer(position, opcode).map_err(BatchError::Buffer)?;
      op.buf = data;
      op.len = length(len);
    }
    ops.push(op);
  }
  if let Some(last) = ops.last_mut() {
    last.link = false;
  }
  Ok(ops)
}

/// Why a batch descriptor was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchError<E> {
  /// A field is out of range.
  Refused(Refusal),
  /// The buffer of a read or write could not be had.
  Buffer(E),
}

#[cfg(test)]
mod tests {
  use super::*;

  fn none(_: usize, _: Opcode) -> Result<(*mut u8, usize), ()> {
    Err(())
  }

  #[test]
  fn decodes_a_batch_and_unlinks_its_last_operation() {
    let mut a = [0u8; 8];
    let fields = [
      0.0 + f64::from(LINK_FLAG),
      3.0,
      1.0,
      5.0,
      0.0, // read, linked, offset 2^32 + 5
      3.0 + f64::from(LINK_FLAG),
      4.0,
      0.0,
      0.0,
      7.0, // fdatasync, linked (last: unlinked)
    ];
    let ptr = a.as_mut_ptr();
    let ops = decode_batch(&fields, |_, _| Ok::<_, ()>((ptr, 8))).unwrap();
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[0].opcode, Opcode::Read);
    assert!(ops[0].link);
    assert_eq!(ops[0].offset, (1 << 32) + 5);
    assert_eq!(ops[0].len, 8);
    assert_eq!(ops[1].opcode, Opcode::Fdatasync);
    assert!(!ops[1].link);
    assert_eq!(ops[1].priority, 7);
  }

  #[test]
  fn decodes_the_storage_engine_operations_and_asks_for_their_buffers() {
    let mut area = [0u8; 16];
    let ptr = area.as_mut_ptr();
    let mut asked = Vec::new();
    let fields = [
      [15.0, 3.0, 0.0, 4096.0, 0.0], // readv at 4096
      [11.0, 3.0, 1.0, 0.0, 0.0],    // ftruncate to 2^32: no buffer
      [17.0 + f64::from(LINK_FLAG), 3.0, 0.0, 7.0, 0.0],
      [18.0, 3.0, 0.0, 0.0, 0.0],
      [19.0, 3.0, 0.0, 0.0, 0.0],
      [16.0, 3.0, 0.0, 0.0, 0.0],
    ]
    .concat();
    let ops = decode_batch(&fields, |position, opcode| {
      asked.push((position, opcode));
      Ok::<_, ()>((ptr, 16))
    })
    .unwrap();
    let opcodes: Vec<Opcode> = ops.iter().map(|op| op.opcode).collect();
    use Opcode::*;
    assert_eq!(
      opcodes,
      [Readv, Ftruncate, Fallocate, SyncRange, Fadvise, Writev]
    );
    assert_eq!(ops[0].offset, 4096);
    assert_eq!(ops[1].offset, 1 << 32);
    assert!(ops[1].buf.is_null());
    assert!(ops[2].link);
    assert_eq!(ops[2].offset, 7);
    assert_eq!(
      asked,
      [
        (0, Readv),
        (2, Fallocate),
        (3, SyncRange),
        (4, Fadvise),
        (5, Writev)
      ]
    );
    for path_op in [4.0, 5.0, 6.0, 14.0] {
      assert_eq!(
        decode_batch(&[path_op, 3.0, 0.0, 0.0, 0.0], none).err(),
        Some(BatchError::Refused(Refusal::Opcode)),
        "opcode {path_op} is a single operation only"
      );
    }
  }

  #[test]
  fn refuses_every_bad_field() {
    let bad = [
      [9.0, 1.0, 0.0, 0.0, 0.0],
      [24.0, 1.0, 0.0, 0.0, 0.0],
      [20.0, 1.0, 0.0, 0.0, 0.0],
      [0.5, 1.0, 0.0, 0.0, 0.0],
      [f64::NAN, 1.0, 0.0, 0.0, 0.0],
      [2.0, -1.0, 0.0, 0.0, 0.0],
      [2.0, 1.5, 0.0, 0.0, 0.0],
      [2.0, f64::INFINITY, 0.0, 0.0, 0.0],
    ];
    for fields in bad {
      assert!(matches!(
        decode_batch(&fields, none),
        Err(BatchError::Refused(_))
      ));
    }
    assert_eq!(
      decode_batch(&[0.0, 1.0, 2_147_483_648.0, 0.0, 0.0], none).err(),
      Some(BatchError::Refused(Refusal::Offset))
    );
    assert_eq!(
      decode_batch(&[0.0, 1.0, 0.0, 0.0, 0.0], none).err(),
      Some(BatchError::Buffer(()))
    );
    assert_eq!(
      decode_batch(&[0.0; 4], none).err(),
      Some(BatchError::Refused(Refusal::Shape))
    );
    assert_eq!(priority(f64::NAN), 0);
    assert_eq!(priority(1e9), u16::MAX);
  }

  #[test]
  fn a_call_area_decodes_to_one_operation_or_is_refused() {
    let op = decode_call(&[1.0, 7.0, 2.0, 5.0, 3.0, 0.0]).unwrap();
    assert_eq!(
      (op.opcode, op.fd, op.offset, op.priority),
      (Opcode::Write, 7, (2 << 32) | 5, 3)
    );
    assert_eq!(
      decode_call(&[0.0, 7.0, -1.0, 0.0, 0.0, 0.0])
        .unwrap()
        .offset,
      caio_core::AT_CURSOR
    );
    assert_eq!(
      decode_call(&[0.0, 7.0, -1.0, 1.0, 0.0, 0.0]).err(),
      Some(Refusal::Offset)
    );
    assert_eq!(
      decode_call(&[99.0, 7.0, 0.0, 0.0, 0.0, 0.0]).err(),
      Some(Refusal::Opcode)
    );
    assert_eq!(
      decode_call(&[0.0, -3.0, 0.0, 0.0, 0.0, 0.0]).err(),
      Some(Refusal::Fd)
    );
    assert_eq!(decode_call(&[0.0, 7.0, 0.0]).err(), Some(Refusal::Shape));
  }
}
