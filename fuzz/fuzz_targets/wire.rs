//! Arbitrary numbers into the wire decoders: nothing panics, every decoded operation is in
//! its documented range, and each decoder agrees with an independent reference.

#![no_main]

use caio_core::{Opcode, Share};
use caio_scheduler::wire::{self, BatchError, Refusal, BATCH_FIELDS, LINK_FLAG, MAX_LENGTH};
use libfuzzer_sys::fuzz_target;

#[path = "input.rs"]
mod input;
use input::Input;

const TWO_32: f64 = 4_294_967_296.0;
const SPECIAL: &[f64] = &[
  0.0,
  -0.0,
  1.0,
  2.0,
  3.0,
  4.0,
  255.0,
  256.0,
  257.0,
  259.0,
  260.0,
  512.0,
  65_535.0,
  65_536.0,
  2_147_483_647.0,
  2_147_483_648.0,
  4_294_967_295.0,
  TWO_32,
  9_007_199_254_740_991.0,
  9_007_199_254_740_992.0,
  9_223_372_036_854_775_807.0,
  1e300,
  -1.0,
  -0.5,
  0.5,
  1.5,
  f64::MIN_POSITIVE,
  5e-324,
  f64::MAX,
  f64::MIN,
  f64::EPSILON,
  f64::NAN,
  f64::INFINITY,
  f64::NEG_INFINITY,
];

impl Input<'_> {
  /// A number: raw bits, a small integer, a special value or a 32-bit integer.
  fn number(&mut self) -> f64 {
    match self.byte() % 5 {
      0 => f64::from_le_bytes(self.bytes()),
      1 => f64::from(self.byte()),
      2 => SPECIAL[self.byte() as usize % SPECIAL.len()],
      3 => f64::from(u32::from_le_bytes(self.bytes())),
      // A batched opcode, maybe linked (or another flag bit set).
      _ => {
        f64::from(BATCHED[self.byte() as usize % BATCHED.len()] | (u32::from(self.byte() % 4) << 8))
      }
    }
  }
}

fn whole_in(v: f64, max: f64) -> bool {
  v >= 0.0 && v <= max && v.trunc() == v
}

fn ref_priority(v: f64) -> u16 {
  if v.is_nan() || v <= 0.0 {
    0
  } else if v >= 65_535.0 {
    u16::MAX
  } else {
    v.trunc() as u16
  }
}

fn check_single(v: f64, w: f64, len: usize) {
  // Every opcode is a single operation's; a batch takes the data operations only (`reference`).
  let last_opcode = (Opcode::ALL.len() - 1) as f64;
  match wire::opcode(v) {
    Ok(op) => {
      assert!(whole_in(v, last_opcode), "opcode({v}) accepted");
      assert_eq!(op as u8 as f64, v);
    }
    Err(e) => {
      assert_eq!(e, Refusal::Opcode);
      assert!(!whole_in(v, last_opcode), "opcode({v}) refused");
    }
  }
  // A call area: each field as its own decoder says, the file position as (-1, 0).
  let call = [v, w, v, w, v, 0.0];
  let expected = wire::opcode(v).and_then(|opcode| {
    let fd = wire::fd(w)?;
    let offset = if v == -1.0 && w == 0.0 { caio_core::AT_CURSOR } else { wire::offset_halves(v, w)? };
    Ok((opcode, fd, offset, wire::priority(v)))
  });
  match (wire::decode_call(&call), expected) {
    (Ok(op), Ok(fields)) => {
      assert_eq!((op.opcode, op.fd, op.offset, op.priority), fields, "decode_call({call:?})");
      assert!(op.buf.is_null() && op.len == 0 && !op.link, "decode_call({call:?}) gave a buffer or a link");
    }
    (Err(e), Err(f)) => assert_eq!(e, f, "decode_call({call:?}) refused"),
    (got, want) => panic!("decode_call({call:?}) = {got:?}, expected {want:?}"),
  }
  assert_eq!(wire::decode_call(&call[..4]).err(), Some(Refusal::Shape));
  match wire::fd(v) {
    Ok(fd) => {
      assert!(whole_in(v, 2_147_483_647.0), "fd({v}) accepted");
      assert!(fd >= 0);
      assert_eq!(f64::from(fd), v);
    }
    Err(e) => {
      assert_eq!(e, Refusal::Fd);
      assert!(!whole_in(v, 2_147_483_647.0), "fd({v}) refused");
    }
  }
  let halves_ok = whole_in(v, 2_147_483_647.0) && whole_in(w, 4_294_967_295.0);
  match wire::offset_halves(v, w) {
    Ok(offset) => {
      assert!(halves_ok, "offset_halves({v}, {w}) accepted");
      assert!(offset <= i64::MAX as u64);
      assert_eq!(offset, ((v as u64) << 32) | w as u64);
    }
    Err(e) => {
      assert_eq!(e, Refusal::Offset);
      assert!(!halves_ok, "offset_halves({v}, {w}) refused");
    }
  }
  assert_eq!(wire::priority(v), ref_priority(v), "priority({v})");
  let length = wire::length(len);
  assert!(length as usize <= MAX_LENGTH);
  assert_eq!(length as usize, len.min(MAX_LENGTH));
}

/// The opcodes a batch takes: the data operations (read, write, the syncs, ftruncate,
/// readv, writev, fallocate, syncRange, fadvise), not those by path.
const BATCHED: [u32; 10] = [0, 1, 2, 3, 11, 15, 16, 17, 18, 19];

/// Whether a batched opcode has an offset field (all but the syncs; ftruncate's is its length).
fn has_offset(code: u32) -> bool {
  !matches!(code, 2 | 3)
}

/// Whether a batched opcode has a buffer (data, iovecs or arguments): not the syncs, not ftruncate.
fn has_buffer(code: u32) -> bool {
  !matches!(code, 2 | 3 | 11)
}

/// What `decode_batch` must answer, worked out independently.
fn reference(fields: &[f64], buffers: &[Option<usize>]) -> Result<(), BatchError<usize>> {
  if !fields.len().is_multiple_of(BATCH_FIELDS) {
    return Err(BatchError::Refused(Refusal::Shape));
  }
  for (position, f) in fields.chunks(BATCH_FIELDS).enumerate() {
    if !whole_in(f[0], 65_535.0) || !BATCHED.contains(&(f[0] as u32 & 0xff)) {
      return Err(BatchError::Refused(Refusal::Opcode));
    }
    if !whole_in(f[1], 2_147_483_647.0) {
      return Err(BatchError::Refused(Refusal::Fd));
    }
    let code = f[0] as u32 & 0xff;
    if has_offset(code) && !(whole_in(f[2], 2_147_483_647.0) && whole_in(f[3], 4_294_967_295.0)) {
      return Err(BatchError::Refused(Refusal::Offset));
    }
    if has_buffer(code) && buffers[position].is_none() {
      return Err(BatchError::Buffer(position));
    }
  }
  Ok(())
}

fuzz_target!(|data: &[u8]| {
  let mut input = Input(data);
  let count = input.byte() as usize % 64;
  let fields: Vec<f64> = (0..count).map(|_| input.number()).collect();
  let buffers: Vec<Option<usize>> = (0..count / BATCH_FIELDS + 1)
    .map(|_| match input.byte() % 4 {
      0 => None,
      1 => Some(usize::from_le_bytes(input.bytes())),
      _ => Some(usize::from(u16::from_le_bytes(input.bytes()))),
    })
    .collect();
  let mut memory = [0u8; 1];
  let ptr = memory.as_mut_ptr();

  for pair in fields.chunks(2) {
    check_single(
      pair[0],
      *pair.get(1).unwrap_or(&0.0),
      buffers[0].unwrap_or(0),
    );
  }

  let mut asked = Vec::new();
  let decoded = wire::decode_batch(&fields, |position, opcode| {
    assert!(has_buffer(opcode as u32), "a buffer asked for {opcode:?}");
    asked.push(position);
    buffers[position].map(|len| (ptr, len)).ok_or(position)
  });
  let expected = reference(&fields, &buffers);
  match decoded {
    Ok(ops) => {
      assert_eq!(expected, Ok(()), "{fields:?} decoded");
      assert_eq!(ops.len(), fields.len() / BATCH_FIELDS);
      for (position, (op, f)) in ops.iter().zip(fields.chunks(BATCH_FIELDS)).enumerate() {
        let code = f[0] as u32;
        assert_eq!(op.opcode as u32, code & 0xff);
        assert_eq!(op.link, code & LINK_FLAG != 0 && position + 1 < ops.len());
        assert_eq!(op.fd as f64, f[1]);
        assert!(op.fd >= 0);
        assert_eq!(op.priority, ref_priority(f[4]));
        assert_eq!(op.token, 0);
        assert_eq!(op.share, Share::Alone);
        if has_offset(code & 0xff) {
          assert!(op.offset <= i64::MAX as u64);
          assert_eq!(op.offset as f64, f[2] * TWO_32 + f[3]);
          assert_eq!(op.offset, ((f[2] as u64) << 32) | f[3] as u64);
        } else {
          assert_eq!(op.offset, 0);
        }
        if has_buffer(code & 0xff) {
          assert_eq!(op.buf, ptr);
          assert_eq!(op.len as usize, buffers[position].unwrap().min(MAX_LENGTH));
        } else {
          assert!(op.buf.is_null());
          assert_eq!(op.len, 0);
        }
      }
      assert!(
        !ops.last().is_some_and(|op| op.link),
        "the last never links"
      );
    }
    Err(error) => {
      assert_eq!(Err(error), expected, "{fields:?}");
    }
  }
  // Buffers are asked for in order, only for operations that have one, at most once each.
  assert!(asked.windows(2).all(|w| w[0] < w[1]));
});
