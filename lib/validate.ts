/**
 * Argument validation, once, in TypeScript, before anything reaches a backend. Each check
 * throws Node's own error (`ERR_INVALID_ARG_TYPE`, `ERR_OUT_OF_RANGE`); callers that
 * return Promises turn the throw into a rejection.
 */
import { invalidArgType, invalidArgValue, outOfRange } from './errors'
import type { CodedError } from './errors'
import { IOVEC_ROOM, MAX_IOVECS, MAX_REGISTERED_BUFFERS, RANGE_ARGS_SIZE } from './wire'
import type { IoVector } from './wire'

/** The most bytes one operation moves: what one `read(2)` moves on Linux. */
export const MAX_LENGTH = 0x7fffffff
const MAX_FD = 0x7fffffff
const MAX_OFFSET = (1n << 63n) - 1n
/** I/O priorities are 16-bit `ioprio` values: class in the top 3 bits, level below. */
export const MAX_PRIORITY = 0xffff

/** A file offset as the backends take it: a safe integer, or a bigint above that range. */
export type Offset = number | bigint

// Each validator of an operation's arguments is its accepting test, with the rejections out
// of line: V8 inlines a function into its caller only while the caller's total bytecode stays
// within a budget, and the messages would spend it on every call.

export function validateFd(fd: unknown, name = 'fd'): number {
  if (typeof fd === 'number' && fd >>> 0 === fd && fd <= MAX_FD) return fd
  throw integerError(fd, name, MAX_FD)
}

export function validateOffset(offset: unknown, name = 'offset'): Offset {
  if (typeof offset === 'number' && offset >= 0 && offset <= Number.MAX_SAFE_INTEGER && Math.floor(offset) === offset) return offset
  return validateOtherOffset(offset, name)
}

/** {@link validateOffset} for anything but a safe integer number. */
function validateOtherOffset(offset: unknown, name: string): Offset {
  if (typeof offset === 'number') {
    if (!Number.isInteger(offset)) throw outOfRange(name, 'an integer', offset)
    throw outOfRange(name, `>= 0 && <= ${Number.MAX_SAFE_INTEGER}`, offset)
  }
  if (typeof offset === 'bigint') {
    if (offset < 0n || offset > MAX_OFFSET) throw outOfRange(name, `>= 0n && <= ${MAX_OFFSET}n`, offset)
    // Numbers cross into native code faster than bigints do.
    return offset <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(offset) : offset
  }
  throw invalidArgType(name, 'of type number or bigint', offset)
}

export function validateLength(length: unknown, name = 'nbytes'): number {
  if (typeof length === 'number' && length >>> 0 === length && length <= MAX_LENGTH) return length
  throw integerError(length, name, MAX_LENGTH)
}

/** Why `value` is not an integer from 0 to `max`. */
function integerError(value: unknown, name: string, max: number): CodedError {
  if (typeof value !== 'number') return invalidArgType(name, 'of type number', value)
  if (!Number.isInteger(value)) return outOfRange(name, 'an integer', value)
  return outOfRange(name, `>= 0 && <= ${max}`, value)
}

/** A buffer to read into or write from. A view of a detached ArrayBuffer is refused. */
export function validateView(view: unknown, name = 'buffer'): ArrayBufferView {
  if (ArrayBuffer.isView(view)) {
    const length = trueByteLength(view)
    // An empty view may be one of a detached buffer, which the full check tells apart.
    if (length !== undefined && length > 0 && length <= MAX_LENGTH) return view
  }
  return validateOtherView(view, name)
}

/** {@link validateView} for anything but a view of 1 to `MAX_LENGTH` bytes. */
function validateOtherView(view: unknown, name: string): ArrayBufferView {
  if (!ArrayBuffer.isView(view)) {
    throw invalidArgType(name, 'an instance of Buffer, TypedArray, or DataView', view)
  }
  const length = trueByteLength(view)
  if (length === undefined || (length === 0 && isDetached(view))) {
    throw invalidArgValue(name, 'must not be a view of a detached ArrayBuffer', view)
  }
  if (length > MAX_LENGTH) throw outOfRange(`${name}.byteLength`, `<= ${MAX_LENGTH}`, length)
  return view
}

// The built-in getters, which a subclass cannot override: the length a view reports
// through its own `byteLength` may lie, and `node:fs` trusts it (and aborts the process
// when it is larger than the memory behind the view).
const typedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object
const intrinsic = (prototype: object, key: string): ((this: unknown) => unknown) =>
  Object.getOwnPropertyDescriptor(prototype, key)?.get as (this: unknown) => unknown
const TYPED_ARRAY = {
  byteLength: intrinsic(typedArrayPrototype, 'byteLength'),
  byteOffset: intrinsic(typedArrayPrototype, 'byteOffset'),
  buffer: intrinsic(typedArrayPrototype, 'buffer'),
}
const DATA_VIEW = {
  byteLength: intrinsic(DataView.prototype, 'byteLength'),
  byteOffset: intrinsic(DataView.prototype, 'byteOffset'),
  buffer: intrinsic(DataView.prototype, 'buffer'),
}
const BUFFER_PROTOTYPE: object = Buffer.prototype
const UINT8_ARRAY_PROTOTYPE: object = Uint8Array.prototype

/** Whether a view's own properties can be trusted (a Buffer or a plain Uint8Array). */
export function isPlainView(view: ArrayBufferView): boolean {
  // Two comparisons, not a Set: this runs on every js operation, and Set#has is a hash lookup.
  const prototype: unknown = Object.getPrototypeOf(view)
  return prototype === BUFFER_PROTOTYPE || prototype === UINT8_ARRAY_PROTOTYPE
}

function gettersOf(view: ArrayBufferView): typeof TYPED_ARRAY {
  return view instanceof DataView ? DATA_VIEW : TYPED_ARRAY
}

/** The view's real byte length, or undefined when its buffer is detached (DataView throws). */
function trueByteLength(view: ArrayBufferView): number | undefined {
  try {
    return byteLengthOf(view)
  } catch {
    return undefined
  }
}

/**
 * The real byte length of `view`, from the built-in getter: the extent every backend works
 * on, whatever the view's own `byteLength` says. (The getter is also cheaper to call than
 * the property `view.byteLength` is to read, which V8 does not inline.) Throws for a
 * DataView of a detached buffer.
 */
export function byteLengthOf(view: ArrayBufferView): number {
  return gettersOf(view).byteLength.call(view) as number
}

/**
 * A plain Uint8Array over exactly the memory of `view`, whose real byte length is `length`
 * (from {@link byteLengthOf}): what to hand to code that trusts a view's own `byteLength`
 * (as `node:fs` does).
 */
export function plainBytes(view: ArrayBufferView, length: number): Uint8Array {
  // An own `byteLength` shadows the built-in getter as a subclass's does, and `node:fs`
  // takes a view's extent from it: only a view whose `byteLength` is the built-in one's is
  // handed over as it is. (The native backends ask Node-API for the real extent.)
  if (isPlainView(view) && view.byteLength === length) return view as Uint8Array
  return viewOfMemory(view, length)
}

/** A new Uint8Array over the memory of `view`, `length` bytes long. */
function viewOfMemory(view: ArrayBufferView, length: number): Uint8Array {
  const getters = gettersOf(view)
  return new Uint8Array(getters.buffer.call(view) as ArrayBufferLike, getters.byteOffset.call(view) as number, length)
}

function isDetached(view: ArrayBufferView): boolean {
  const buffer = gettersOf(view).buffer.call(view) as ArrayBufferLike
  // A SharedArrayBuffer can never be detached.
  if (typeof SharedArrayBuffer !== 'undefined' && buffer instanceof SharedArrayBuffer) return false
  const detached = (buffer as { detached?: boolean }).detached
  if (typeof detached === 'boolean') return detached
  // Before ArrayBuffer.prototype.detached (V8 < 11.4): a detached buffer cannot be sliced.
  try {
    ArrayBuffer.prototype.slice.call(buffer, 0, 0)
    return false
  } catch {
    return true
  }
}

/** Data to write: a view as is, a string as UTF-8. */
export function validateData(data: unknown, name = 'data'): ArrayBufferView {
  if (typeof data === 'string') return Buffer.from(data, 'utf8')
  if (!ArrayBuffer.isView(data)) {
    throw invalidArgType(name, 'of type string or an instance of Buffer, TypedArray, or DataView', data)
  }
  return validateView(data, name)
}

/**
 * An I/O priority in the Linux `ioprio` encoding: class (0 none, 1 realtime, 2 best-effort,
 * 3 idle) in bits 13-15, level 0-7 below. Anything else would be refused by the kernel on
 * some backends and ignored on others, so it is refused here for all of them.
 */
export function validatePriority(priority: unknown, name = 'priority'): number {
  if (priority === undefined) return 0
  if (typeof priority === 'number' && priority >>> 0 === priority && priority <= MAX_PRIORITY && isIoprio(priority)) return priority
  if (typeof priority !== 'number') throw invalidArgType(name, 'of type number', priority)
  throw outOfRange(name, 'an ioprio value: 0, or (class 1-3) << 13 | (level 0-7)', priority)
}

/** Class 0 ("none") takes no level; the others take levels 0-7. */
function isIoprio(priority: number): boolean {
  const ioClass = priority >>> 13
  const level = priority & 0x1fff
  return ioClass === 0 ? level === 0 : ioClass <= 3 && level <= 7
}

export function validateSignal(signal: unknown, name = 'signal'): AbortSignal | undefined {
  if (signal === undefined) return undefined
  if (signal instanceof AbortSignal) return signal
  throw invalidArgType(name, 'an instance of AbortSignal', signal)
}

export function validateObject<T extends object>(value: unknown, name: string): Partial<T> {
  if (value === undefined) return {}
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidArgType(name, 'of type object', value)
  }
  return value as Partial<T>
}

export function validateInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value)
  if (!Number.isInteger(value) || value < min || value > max) {
    throw outOfRange(name, `an integer >= ${min} && <= ${max}`, value)
  }
  return value
}

export function validateBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value)
  return value
}

/**
 * The buffers of a `readv` or `writev`, as the addon takes them: `[iovec area, ...buffers]`
 * (`lib/wire.ts: IoVector`), a copy the caller's later changes to the array cannot reach.
 * Each buffer is checked as {@link validateView} checks one (empty ones are fine); at most
 * {@link MAX_IOVECS} of them, as the kernel takes.
 */
export function validateBuffers(buffers: unknown, name = 'buffers'): IoVector {
  if (!Array.isArray(buffers)) throw invalidArgType(name, 'an instance of Array', buffers)
  const count = buffers.length
  if (count > MAX_IOVECS) throw outOfRange(`${name}.length`, `<= ${MAX_IOVECS}`, count)
  const vector: IoVector = [new Uint8Array(count * IOVEC_ROOM)]
  for (let i = 0; i < count; i++) {
    vector.push(validateView(buffers[i], `${name}[${i}]`))
  }
  return vector
}

/** The largest buffer io_uring registers: 1 GiB. */
export const MAX_REGISTERED_BUFFER_LENGTH = 2 ** 30
/** The most descriptors one `registerFiles` takes: io_uring's `IORING_MAX_FIXED_FILES`. */
export const MAX_REGISTERED_FILES = 2 ** 20

/**
 * The buffers of a `registerBuffers`, as the addon takes them (an {@link IoVector}, as for
 * `readv`): 1 to {@link MAX_REGISTERED_BUFFERS} views of 1 byte to 1 GiB each, none of a
 * resizable ArrayBuffer (shrinking one gives memory back that the kernel would keep using).
 */
export function validateRegisteredBuffers(views: unknown, name = 'views'): IoVector {
  if (!Array.isArray(views)) throw invalidArgType(name, 'an instance of Array', views)
  const count = views.length
  if (count < 1 || count > MAX_REGISTERED_BUFFERS) throw outOfRange(`${name}.length`, `>= 1 && <= ${MAX_REGISTERED_BUFFERS}`, count)
  const vector: IoVector = [new Uint8Array(count * IOVEC_ROOM)]
  for (let i = 0; i < count; i++) {
    const view = validateView(views[i], `${name}[${i}]`)
    const length = byteLengthOf(view)
    if (length < 1 || length > MAX_REGISTERED_BUFFER_LENGTH) throw outOfRange(`${name}[${i}].byteLength`, `>= 1 && <= ${MAX_REGISTERED_BUFFER_LENGTH}`, length)
    const buffer = gettersOf(view).buffer.call(view) as ArrayBufferLike
    if ((buffer as { resizable?: boolean }).resizable === true) {
      throw invalidArgValue(`${name}[${i}]`, 'must not be a view of a resizable ArrayBuffer', view)
    }
    vector.push(view)
  }
  return vector
}

/** The descriptors of a `registerFiles`: 1 to {@link MAX_REGISTERED_FILES} of them, as an Int32Array. */
export function validateRegisteredFiles(fds: unknown, name = 'fds'): Int32Array {
  if (!Array.isArray(fds)) throw invalidArgType(name, 'an instance of Array', fds)
  const count = fds.length
  if (count < 1 || count > MAX_REGISTERED_FILES) throw outOfRange(`${name}.length`, `>= 1 && <= ${MAX_REGISTERED_FILES}`, count)
  const numbers = new Int32Array(count)
  for (let i = 0; i < count; i++) numbers[i] = validateFd(fds[i], `${name}[${i}]`)
  return numbers
}

const TWO_32 = 2 ** 32

/** The argument area of a range operation (`lib/wire.ts: RANGE_ARGS_SIZE`): `length` and `flags`. */
export function rangeArgs(length: Offset, flags: number): Uint32Array {
  const area = new Uint32Array(RANGE_ARGS_SIZE / 4)
  if (typeof length === 'number') {
    const high = Math.floor(length / TWO_32)
    area[0] = length - high * TWO_32
    area[1] = high
  } else {
    area[0] = Number(length & 0xffffffffn)
    area[1] = Number(length >> 32n)
  }
  area[2] = flags
  return area
}

/** An optional boolean option: `false` when absent. */
function flag(value: unknown, name: string): boolean {
  return value === undefined ? false : validateBoolean(value, name)
}

/** `fallocate`'s options, as `FALLOC_FL_*` bits. */
export interface FallocateFlags {
  keepSize?: boolean
  punchHole?: boolean
  zeroRange?: boolean
  collapseRange?: boolean
  insertRange?: boolean
}

/**
 * The `FALLOC_FL_*` mode of `fallocate`'s boolean options, found under `prefix` (`options.`,
 * `ops[2].`). Combinations are the kernel's to judge, as it judges them: `punchHole`
 * without `keepSize` is refused there, not here.
 */
export function fallocateMode(o: FallocateFlags, prefix: string): number {
  return (
    (flag(o.keepSize, `${prefix}keepSize`) ? 0x01 : 0) |
    (flag(o.punchHole, `${prefix}punchHole`) ? 0x02 : 0) |
    (flag(o.collapseRange, `${prefix}collapseRange`) ? 0x08 : 0) |
    (flag(o.zeroRange, `${prefix}zeroRange`) ? 0x10 : 0) |
    (flag(o.insertRange, `${prefix}insertRange`) ? 0x20 : 0)
  )
}

/** `syncRange`'s options, as `SYNC_FILE_RANGE_*` bits. */
export interface SyncRangeFlags {
  waitBefore?: boolean
  write?: boolean
  waitAfter?: boolean
}

/** The `SYNC_FILE_RANGE_*` flags of `syncRange`'s options; with none of them given, `write`. */
export function syncRangeFlags(o: SyncRangeFlags, prefix: string): number {
  if (o.waitBefore === undefined && o.write === undefined && o.waitAfter === undefined) return 0x2
  return (
    (flag(o.waitBefore, `${prefix}waitBefore`) ? 0x1 : 0) | (flag(o.write, `${prefix}write`) ? 0x2 : 0) | (flag(o.waitAfter, `${prefix}waitAfter`) ? 0x4 : 0)
  )
}

/** The advice `fadvise` takes, as `posix_fadvise(2)` names it. */
export type Advice = 'normal' | 'sequential' | 'random' | 'noreuse' | 'willneed' | 'dontneed'

/** Linux's `POSIX_FADV_*` numbers. */
const ADVICE: Readonly<Record<Advice, number>> = { normal: 0, random: 1, sequential: 2, willneed: 3, dontneed: 4, noreuse: 5 }

/** The `POSIX_FADV_*` number of `advice`. */
export function validateAdvice(advice: unknown, name = 'advice'): number {
  if (typeof advice === 'string' && Object.hasOwn(ADVICE, advice)) return ADVICE[advice as Advice]
  throw invalidArgValue(name, `must be one of ${Object.keys(ADVICE).map((a) => `'${a}'`).join(', ')}`, advice)
}
