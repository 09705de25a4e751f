/**
 * Reading and writing whole files through a descriptor, as `node:fs/promises` does it —
 * at the file position, to end of file, in the same steps — on any engine: what
 * `readFile`, `writeFile` and their FileHandle methods share.
 */
import { constants as bufferConstants } from 'node:buffer'
import type { Stats } from 'node:fs'

import { Fulfil } from './engine'
import type { Engine } from './engine'
import { AbortError, invalidArgType } from './errors'
import type { CodedError } from './errors'
import { decodingWith, optionsObject, wholeFileEncoding } from './fs-args'
import type { EncodingName } from './fs-args'
import type { PathOps } from './path-ops'
import { wholeFileBuffer } from './native'
import { FIRST_READ, giveBack, takeScratch } from './scratch'
import { validateBoolean, validateSignal } from './validate'
import type { Offset } from './validate'
import { AT_CURSOR, IOVEC_ROOM, MAX_IOVECS, Opcode } from './wire'
import type { IoVector } from './wire'

/** The most one read moves (as one `read(2)` does on Linux). */
const MAX_READ = 0x7fffffff
/** The largest write of a whole-file write, as Node splits it. */
const WRITE_CHUNK = 512 * 1024

/** What data I/O on descriptors needs: an engine and its path operations. */
export interface Files {
  readonly engine: Engine
  readonly ops: PathOps
}

/** Reads into `view` from `fd` at `position` (or at the file position): the count read. */
export function readAt(files: Files, fd: number, view: ArrayBufferView, position: Offset | null, signal?: AbortSignal): Promise<number> {
  return files.engine.start(Opcode.Read, fd, position ?? AT_CURSOR, view, 0, Fulfil.Count, signal) as Promise<number>
}

/** Writes `view` to `fd` at `position` (or at the file position): the count written. */
export function writeAt(files: Files, fd: number, view: ArrayBufferView, position: Offset | null, signal?: AbortSignal): Promise<number> {
  return files.engine.start(Opcode.Write, fd, position ?? AT_CURSOR, view, 0, Fulfil.Count, signal) as Promise<number>
}

/**
 * Reads into `buffers` (`Opcode.Readv`) or writes them (`Opcode.Writev`) from `position`
 * (or the file position) on, as Node's `FileHandle.readv`/`writev` do: one vectored
 * operation of at most `MAX_IOVECS` buffers for a read (libuv reads into the first
 * `IOV_MAX` and no more), and for a write one per `MAX_IOVECS`, each after the one before
 * wrote all it asked. Resolves the bytes moved in all.
 */
export async function vectoredAt(files: Files, opcode: Opcode.Readv | Opcode.Writev, fd: number, buffers: readonly ArrayBufferView[], position: Offset | null): Promise<number> {
  let at = position
  let moved = 0
  const end = opcode === Opcode.Readv ? Math.min(buffers.length, MAX_IOVECS) : buffers.length
  for (let first = 0; first < end; first += MAX_IOVECS) {
    const views = buffers.slice(first, first + MAX_IOVECS)
    const vector: IoVector = [new Uint8Array(views.length * IOVEC_ROOM), ...views]
    const count = (await files.engine.start(opcode, fd, at ?? AT_CURSOR, vector, 0, Fulfil.Count, undefined)) as number
    moved += count
    if (count < views.reduce((sum, view) => sum + view.byteLength, 0)) break
    if (at !== null) at = typeof at === 'bigint' ? at + BigInt(count) : at + count
  }
  return moved
}

/** Throws Node's AbortError when `signal` has fired. */
export function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason })
}

function tooLarge(size: number): CodedError {
  const error = new RangeError(`File size (${size}) is greater than the largest Buffer (${bufferConstants.MAX_LENGTH} bytes)`) as CodedError
  error.code = 'ERR_FS_FILE_TOO_LARGE'
  return error
}

/**
 * Everything from `fd`'s file position to end of file. A file that fits the first read
 * costs that read and one that finds end of file; a larger one is sized by `fstat` and read
 * into one Buffer of its size, with no limit below the largest Buffer.
 */
export async function readToEnd(files: Files, fd: number, signal: AbortSignal | undefined): Promise<Buffer> {
  checkAborted(signal)
  const scratch = takeScratch()
  const first = scratch.subarray(0, FIRST_READ)
  // Once a read into `first` has completed (or failed) nobody else holds it.
  let filled: number
  try {
    filled = await readAt(files, fd, first, null)
  } catch (error) {
    giveBack(scratch)
    throw error
  }
  try {
    return filled < FIRST_READ ? await readAfterShort(files, fd, first, filled, signal) : await readLarge(files, fd, first, filled, signal)
  } finally {
    giveBack(scratch)
  }
}

/**
 * Fills `buffer` from `filled` on, at the file position: to `size` for a regular file, as
 * Node does; to end of file, growing the buffer, for one whose size fstat does not know
 * (`size` 0).
 */
async function readRest(files: Files, fd: number, buffer: Buffer, filled: number, size: number, signal: AbortSignal | undefined): Promise<Buffer> {
  for (;;) {
    checkAborted(signal)
    if (filled === buffer.length) {
      if (size > 0) break
      if (buffer.length >= bufferConstants.MAX_LENGTH) throw tooLarge(buffer.length + 1)
      buffer = grow(buffer, filled, Math.min(buffer.length * 2, bufferConstants.MAX_LENGTH))
    }
    const room = buffer.subarray(filled, filled + Math.min(buffer.length - filled, MAX_READ))
    const count = await readAt(files, fd, room, null)
    if (count === 0) break
    filled += count
  }
  return filled === buffer.length ? buffer : buffer.subarray(0, filled)
}

/** The rest of a file whose first read came back short: most likely at end of file already. */
async function readAfterShort(files: Files, fd: number, first: Buffer, filled: number, signal: AbortSignal | undefined): Promise<Buffer> {
  // A pipe or a device may give more after a short read; a regular file gives 0.
  let buffer = first
  while (filled > 0) {
    checkAborted(signal)
    if (filled === buffer.length) buffer = grow(buffer, filled, buffer.length * 2)
    const count = await readAt(files, fd, buffer.subarray(filled), null)
    if (count === 0) break
    filled += count
  }
  if (buffer !== first) return filled === buffer.length ? buffer : buffer.subarray(0, filled)
  const bytes = Buffer.allocUnsafe(filled)
  first.copy(bytes, 0, 0, filled)
  return bytes
}

/** The rest of a file that filled its first read: sized by fstat, read into one Buffer. */
async function readLarge(files: Files, fd: number, first: Buffer, filled: number, signal: AbortSignal | undefined): Promise<Buffer> {
  checkAborted(signal)
  const stats = (await files.ops.fstat(fd, false)) as Stats
  const size = stats.isFile() ? stats.size : 0
  if (size > bufferConstants.MAX_LENGTH) throw tooLarge(size)
  return readRest(files, fd, grow(first, filled, Math.max(size, 2 * FIRST_READ)), filled, size, signal)
}

/** A Buffer of `size` bytes beginning with the first `filled` of `buffer`. */
function grow(buffer: Buffer, filled: number, size: number): Buffer {
  const bigger = wholeFileBuffer(size)
  buffer.copy(bigger, 0, 0, filled)
  return bigger
}

/** What the whole-file writes take, as `fs.promises.writeFile` does. */
export type WriteFileData = string | ArrayBufferView | Iterable<string | ArrayBufferView> | AsyncIterable<string | ArrayBufferView>

/** Whether `data` is iterable (sync or async), as Node's `isIterable` has it. */
function isIterable(data: unknown): data is Iterable<unknown> | AsyncIterable<unknown> {
  if (data === null || data === undefined) return false
  const holder = data as { [Symbol.iterator]?: unknown; [Symbol.asyncIterator]?: unknown }
  return typeof holder[Symbol.iterator] === 'function' || typeof holder[Symbol.asyncIterator] === 'function'
}

/**
 * `data` checked as `writeFile` checks it: bytes and iterables (of anything `Buffer.from`
 * takes) as they are, a string turned into bytes in `encoding`.
 */
export function checkWriteData(data: unknown, encoding: EncodingName): ArrayBufferView | Iterable<unknown> | AsyncIterable<unknown> {
  if (ArrayBuffer.isView(data) || (typeof data !== 'string' && isIterable(data))) return data
  if (typeof data !== 'string') throw invalidArgType('data', 'of type string or an instance of Buffer, TypedArray, or DataView', data)
  return bytesOfText(data, encoding)
}

/**
 * `Buffer.from(value, encoding)`, as Node's writeFile makes bytes of what is no view. It
 * throws Node's own errors: for `'buffer'` (no text encoding) and for what it cannot take.
 */
function bytesOfText(value: unknown, encoding: EncodingName): Buffer {
  return Buffer.from(value as string, encoding as BufferEncoding)
}

/** Writes all of `view` at the file position, in Node's chunks, going on after short writes. */
/** Writes some of the bytes it is given at the file position; resolves how many. */
export type WriteSome = (bytes: Uint8Array) => Promise<number>

/** Writes all of `view` in Node's chunks, going on after short writes. */
async function writeAllOf(write: WriteSome, view: ArrayBufferView, signal: AbortSignal | undefined): Promise<void> {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength)
  let done = 0
  while (done < bytes.length) {
    checkAborted(signal)
    done += await write(bytes.subarray(done, done + Math.min(WRITE_CHUNK, bytes.length - done)))
  }
}

/** The writes of `fd` at its file position. */
export function writesOf(files: Files, fd: number): WriteSome {
  return (bytes) => writeAt(files, fd, bytes, null)
}

/**
 * Writes `data` (checked by {@link checkWriteData}) through `write`. A chunk of an
 * iterable that is no view goes through `Buffer.from`, as in Node: a string in `encoding`,
 * an array of bytes as bytes, anything else rejected with `Buffer.from`'s own error.
 */
export async function writeData(
  write: WriteSome,
  data: ArrayBufferView | Iterable<unknown> | AsyncIterable<unknown>,
  encoding: EncodingName,
  signal: AbortSignal | undefined,
): Promise<void> {
  checkAborted(signal)
  if (ArrayBuffer.isView(data)) {
    await writeAllOf(write, data, signal)
    return
  }
  for await (const chunk of data as AsyncIterable<unknown>) {
    checkAborted(signal)
    await writeAllOf(write, ArrayBuffer.isView(chunk) ? chunk : bytesOfText(chunk, encoding), signal)
  }
}

/** The options of a whole-file read, checked as `fs.promises.readFile` checks them. */
export interface ReadFileSettings {
  encoding: EncodingName | null
  /** The open flags (a flags string or a number), checked when the file is opened. */
  flag: unknown
  signal: AbortSignal | undefined
}

/** Checks `readFile`'s options (an encoding string, an object, or nothing); throws Node's argument errors. */
export function readFileSettings(options: unknown): ReadFileSettings {
  const o = optionsObject<{ flag: unknown; signal: unknown }>(options)
  const encoding = wholeFileEncoding(o.encoding)
  const signal = validateSignal(o.signal, 'options.signal')
  // As Node has it: any falsy flag means 'r'.
  return { encoding, flag: o.flag || 'r', signal }
}

/** Everything from `fd`'s file position on, decoded when `encoding` says so. */
export async function readWhole(files: Files, fd: number, encoding: EncodingName | null, signal: AbortSignal | undefined): Promise<string | Buffer> {
  const decoding = encoding === null ? null : decodingWith(encoding)
  const bytes = await readToEnd(files, fd, signal)
  return decoding === null ? bytes : bytes.toString(decoding)
}

/** The data and options of a whole-file write, checked as `fs.promises.writeFile` checks them, in its order. */
export interface WriteFileSettings {
  data: ArrayBufferView | Iterable<unknown> | AsyncIterable<unknown>
  encoding: EncodingName
  /** The open flags (a flags string or a number), checked when the file is opened. */
  flag: unknown
  /** The mode of a file it creates, checked when the file is opened. */
  mode: unknown
  flush: boolean
  signal: AbortSignal | undefined
}

/** Checks `writeFile`'s data and options (`defaultFlag` when none is given); throws Node's argument errors. */
export function writeFileSettings(data: unknown, options: unknown, defaultFlag: string): WriteFileSettings {
  const o = optionsObject<{ mode: unknown; flag: unknown; flush: unknown; signal: unknown }>(options)
  const encoding = wholeFileEncoding(o.encoding) ?? 'utf8'
  const signal = validateSignal(o.signal, 'options.signal')
  const flush = validateBoolean(o.flush ?? false, 'options.flush')
  return { data: checkWriteData(data, encoding), encoding, flag: o.flag || defaultFlag, mode: o.mode, flush, signal }
}
