//! Tokens: what names an operation between the scheduler, its backend and JavaScript.
//!
//! A slot index takes the low [`INDEX_BITS`] bits of a token and a generation the rest, so
//! that a token kept after its operation settled never matches the slot's next tenant.
//! Tokens handed to JavaScript stay below 2^53, so they survive the trip through a number.
//! Operations inside a batch (whose tokens never reach JavaScript) also carry their
//! position in the batch and the low 8 bits of the batch slot's generation.

/// Bits of a token that hold the slot index.
pub const INDEX_BITS: u32 = 24;
/// The slot index of a token.
pub const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
/// Generations wrap here, so that `generation << INDEX_BITS` stays below 2^53.
pub const GENERATION_LIMIT: u32 = 1 << 29;
const BATCH_BIT: u64 = 1 << 63;
const POSITION_SHIFT: u32 = 32;
const POSITION_MASK: u64 = (1 << 31) - 1;
/// The most operations one batch may hold: positions fit in the bits below the batch bit.
pub const MAX_BATCH: usize = 1 << 31;

/// What a token names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts {
  /// The slot.
  pub index: usize,
  /// The slot's generation (for batch operations, its low 8 bits).
  pub generation: u32,
  /// For an operation inside a batch, its position there.
  pub position: Option<usize>,
}

/// The token of a single operation or a whole batch in slot `index`.
pub fn slot_token(index: u32, generation: u32) -> u64 {
  (u64::from(generation % GENERATION_LIMIT) << INDEX_BITS) | (u64::from(index) & INDEX_MASK)
}

/// The token of the operation at `position` of the batch in slot `index`.
pub fn batch_op_token(index: u32, generation: u32, position: usize) -> u64 {
  BATCH_BIT
    | (((position as u64) & POSITION_MASK) << POSITION_SHIFT)
    | (u64::from(generation & 0xff) << INDEX_BITS)
    | (u64::from(index) & INDEX_MASK)
}

/// Takes a token apart. Any `u64` decodes; whether it names a live operation is for the
/// slot table to say.
pub fn decode(token: u64) -> Parts {
  let index = (token & INDEX_MASK) as usize;
  if token & BATCH_BIT == 0 {
    Parts {
      index,
      generation: (token >> INDEX_BITS) as u32,
      position: None,
    }
  } else {
    Parts {
      index,
      generation: ((token >> INDEX_BITS) & 0xff) as u32,
      position: Some(((token & !BATCH_BIT) >> POSITION_SHIFT) as usize),
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn tokens_round_trip_and_stay_below_two_to_the_53() {
    for (index, generation) in [(0, 0), (5, 7), (INDEX_MASK as u32, GENERATION_LIMIT - 1)] {
      let token = slot_token(index, generation);
      assert!(token < 1 << 53);
      assert_eq!(
        decode(token),
        Parts {
          index: index as usize,
          generation,
          position: None
        }
      );
      let op = batch_op_token(index, generation, 12345);
      assert_eq!(
        decode(op),
        Parts {
          index: index as usize,
          generation: generation & 0xff,
          position: Some(12345)
        }
      );
    }
  }
}
