/**
 * Reused buffers for the first read of a whole file: a whole-file read does not know its
 * file's size, so it reads into one of these and copies out what came. Allocating 64 KiB
 * per file (and collecting it) would cost more than copying a small file's bytes. A
 * buffer is given back only once the operation that used it has completed.
 */

/** Bytes a first read asks for. */
export const FIRST_READ = 64 * 1024
/** Room before them for a path (Linux's `PATH_MAX`), for reads that name their file. */
export const PATH_ROOM = 4096

const kept: Buffer[] = []
const KEPT = 256

/** A buffer of `PATH_ROOM + FIRST_READ` bytes, of unknown content. */
export function takeScratch(): Buffer {
  return kept.pop() ?? Buffer.allocUnsafeSlow(PATH_ROOM + FIRST_READ)
}

export function giveBack(buffer: Buffer): void {
  if (kept.length < KEPT) kept.push(buffer)
}
