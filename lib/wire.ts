/**
 * The addon's wire format: the numbers that cross between the facade and
 * `crates/scheduler/src/wire.rs` and mean the same on both sides. This module imports
 * nothing, so that every other one may import it; `__test__/wire.test.ts` holds it
 * against the Rust source.
 */

/** Operation codes (`caio_core::Opcode`). */
export const enum Opcode {
  Read = 0,
  Write = 1,
  Fsync = 2,
  Fdatasync = 3,
}

/** Doubles per operation in a batch descriptor: `[opcode | link, fd, offset / 2^32, offset % 2^32, priority]`. */
export const BATCH_FIELDS = 5
/** Or'ed into a descriptor's opcode field: the next operation runs only if this one succeeds. */
export const LINK_FLAG = 0x100
/** A result that is not an errno: cancelled through an AbortSignal. */
export const RESULT_ABORTED = -1048577
/** A result that is not an errno: dropped from the queue because the context closed. */
export const RESULT_CLOSED = -1048578
/** The slot of the pair that says a closing context has let go of its backend. */
export const CLOSED_SLOT = -1
/** A token's low bits name its slot: `token % SLOT_COUNT`. */
export const SLOT_COUNT = 2 ** 24
