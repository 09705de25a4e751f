/**
 * The addon's wire format: the numbers that cross between the facade and
 * `crates/scheduler/src/wire.rs` and mean the same on both sides. This module imports
 * nothing, so that every other one may import it; `__test__/wire.test.ts` holds it
 * against the Rust source.
 */

/**
 * Operation codes (`caio_core::Opcode`). A path operation takes its path NUL-terminated in
 * the view (after a {@link STATX_SIZE}-byte answer area for `Stat`; two paths for `Rename`
 * and `Copyfile`) and its flags, mode or length in the offset.
 */
export const enum Opcode {
  Read = 0,
  Write = 1,
  Fsync = 2,
  Fdatasync = 3,
  /** offset = flags + mode * 2^32; resolves the new descriptor. */
  Open = 4,
  Close = 5,
  /** offset = `AT_*` flags (`AT_SYMLINK_NOFOLLOW` for lstat). */
  Stat = 6,
  /** The view is the answer area. */
  Fstat = 7,
  /** offset = `AT_REMOVEDIR` for rmdir, else 0. */
  Unlink = 8,
  Rename = 9,
  /** offset = mode. */
  Mkdir = 10,
  /** offset = length. */
  Ftruncate = 11,
  /** offset = mode (`F_OK`, `R_OK`, …). */
  Access = 12,
  /** offset = Node's `COPYFILE_*` flags. */
  Copyfile = 13,
  /**
   * offset = open flags; the view holds the path, then room for the file: resolves its
   * length when it was read there whole, or room + 1 + fd of a descriptor left open.
   */
  ReadSmall = 14,
  /** The view is `[iovec area, ...buffers]` ({@link IoVector}); resolves the bytes read. */
  Readv = 15,
  /** As {@link Opcode.Readv}; resolves the bytes written. */
  Writev = 16,
  /** The view is a {@link RANGE_ARGS_SIZE}-byte area: length, then the `FALLOC_FL_*` mode. */
  Fallocate = 17,
  /** The view is the argument area: length (0: to end of file), `SYNC_FILE_RANGE_*` flags. */
  SyncRange = 18,
  /** The view is the argument area: length (0: to end of file), `POSIX_FADV_*` advice. */
  Fadvise = 19,
  /** The view is an {@link IoVector} of the buffers to register (at most {@link MAX_REGISTERED_BUFFERS}). */
  RegisterBuffers = 20,
  /** No view: lets go of the registered buffers once no operation uses them. */
  UnregisterBuffers = 21,
  /** The view is an Int32Array of the descriptors to register. */
  RegisterFiles = 22,
  /** No view: lets go of the registered descriptors once no operation uses them. */
  UnregisterFiles = 23,
}

/** The offset of a read or write at the descriptor's file position (`caio_core::AT_CURSOR`). */
export const AT_CURSOR = -1
/** Bytes of the `struct statx` answer area of `Stat`/`Fstat` (`caio_core::STATX_SIZE`). */
export const STATX_SIZE = 256

/** Doubles per operation in a batch descriptor: `[opcode | link, fd, offset / 2^32, offset % 2^32, priority]`. */
export const BATCH_FIELDS = 5
/**
 * Numbers of the call area at the end of the wire: `start` reads its one operation there,
 * `[opcode, fd, offset / 2^32 (-1 for the file position), offset % 2^32, priority]`, and
 * writes its token at {@link CALL_TOKEN}.
 */
export const CALL_FIELDS = 6
/** Where `start` writes the token (or -1 for a closed context) in the call area. */
export const CALL_TOKEN = 5
const TWO_32 = 2 ** 32

/**
 * Writes `offset` as the two 32-bit halves the addon takes (`wire::offset_halves`) at
 * `numbers[at]` (high) and `numbers[at + 1]` (low): a batch descriptor's fields 2 and 3,
 * the call area's too. The file position, {@link AT_CURSOR}, is (-1, 0).
 */
export function putOffset(numbers: Float64Array, at: number, offset: number | bigint): void {
  if (typeof offset === 'bigint') {
    numbers[at] = Number(offset >> 32n)
    numbers[at + 1] = Number(offset & 0xffff_ffffn)
  } else if (offset < 0) {
    numbers[at] = -1
    numbers[at + 1] = 0
  } else {
    const high = Math.floor(offset / TWO_32)
    numbers[at] = high
    numbers[at + 1] = offset - high * TWO_32
  }
}

/** Or'ed into a descriptor's opcode field: the next operation runs only if this one succeeds. */
export const LINK_FLAG = 0x100
/** A result that is not an errno: cancelled through an AbortSignal. */
export const RESULT_ABORTED = -1048577
/** A result that is not an errno: dropped from the queue because the context closed. */
export const RESULT_CLOSED = -1048578
/** A result that is not an errno: the backend cannot do the operation (made by the `js` engine only). */
export const RESULT_UNSUPPORTED = -1048579
/** Bytes of a vectored operation's iovec area per buffer (`wire::IOVEC_ROOM`). */
export const IOVEC_ROOM = 16
/** The most buffers one vectored operation takes: Linux's `IOV_MAX` (`wire::MAX_IOVECS`). */
export const MAX_IOVECS = 1024
/** The most buffers one `registerBuffers` takes: io_uring's `IORING_MAX_REG_BUFFERS` (`wire::MAX_REGISTERED_BUFFERS`). */
export const MAX_REGISTERED_BUFFERS = 16384
/**
 * Bytes of the argument area of `Fallocate`, `SyncRange` and `Fadvise`
 * (`caio_core::RANGE_ARGS_SIZE`): native-endian 32-bit words, the length's low and high
 * halves, then the flags, then one unused.
 */
export const RANGE_ARGS_SIZE = 16

/**
 * A vectored operation's view as the addon takes it: the iovec area ({@link IOVEC_ROOM}
 * bytes per buffer, filled in by the addon), then the buffers. The facade keeps it whole
 * until the result is delivered, so that every buffer and the iovecs stay alive.
 */
export type IoVector = [Uint8Array, ...ArrayBufferView[]]
/** The slot of the pair that says a closing context has let go of its backend. */
export const CLOSED_SLOT = -1
/** A token's low bits name its slot: `token % SLOT_COUNT`. */
export const SLOT_COUNT = 2 ** 24
