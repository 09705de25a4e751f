/**
 * Argument validation, once, in TypeScript, before anything reaches a backend. Each check
 * throws Node's own error (`ERR_INVALID_ARG_TYPE`, `ERR_OUT_OF_RANGE`); callers that
 * return Promises turn the throw into a rejection.
 */
import { invalidArgType, invalidArgValue, outOfRange } from './errors'

/** The most bytes one operation moves: what one `read(2)` moves on Linux. */
export const MAX_LENGTH = 0x7fffffff
const MAX_FD = 0x7fffffff
const MAX_OFFSET = (1n << 63n) - 1n
/** I/O priorities are 16-bit `ioprio` values: class in the top 3 bits, level below. */
export const MAX_PRIORITY = 0xffff

/** A file offset as the backends take it: a safe integer, or a bigint above that range. */
export type Offset = number | bigint

export function validateFd(fd: unknown, name = 'fd'): number {
  if (typeof fd === 'number' && fd >>> 0 === fd && fd <= MAX_FD) return fd
  if (typeof fd !== 'number') throw invalidArgType(name, 'of type number', fd)
  if (!Number.isInteger(fd)) throw outOfRange(name, 'an integer', fd)
  throw outOfRange(name, `>= 0 && <= ${MAX_FD}`, fd)
}

export function validateOffset(offset: unknown, name = 'offset'): Offset {
  if (typeof offset === 'number') {
    if (offset >= 0 && offset <= Number.MAX_SAFE_INTEGER && Math.floor(offset) === offset) return offset
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
  if (typeof length !== 'number') throw invalidArgType(name, 'of type number', length)
  if (!Number.isInteger(length)) throw outOfRange(name, 'an integer', length)
  throw outOfRange(name, `>= 0 && <= ${MAX_LENGTH}`, length)
}

/** A buffer to read into or write from. A view of a detached ArrayBuffer is refused. */
export function validateView(view: unknown, name = 'buffer'): ArrayBufferView {
  if (!ArrayBuffer.isView(view)) {
    throw invalidArgType(name, 'an instance of Buffer, TypedArray, or DataView', view)
  }
  if (view.byteLength === 0 && isDetached(view.buffer)) {
    throw invalidArgValue(name, 'must not be a view of a detached ArrayBuffer', view)
  }
  if (view.byteLength > MAX_LENGTH) throw outOfRange(`${name}.byteLength`, `<= ${MAX_LENGTH}`, view.byteLength)
  return view
}

function isDetached(buffer: ArrayBufferLike): boolean {
  const detached = (buffer as { detached?: boolean }).detached
  if (typeof detached === 'boolean') return detached
  // Before ArrayBuffer.prototype.detached (V8 < 11.4): a detached buffer cannot be sliced.
  try {
    buffer.slice(0, 0)
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
  if (typeof priority === 'number' && priority >>> 0 === priority && priority <= MAX_PRIORITY && priority >>> 13 <= 3 && (priority & 0x1fff) <= 7) {
    return priority
  }
  if (typeof priority !== 'number') throw invalidArgType(name, 'of type number', priority)
  throw outOfRange(name, 'an ioprio value: (class 0-3) << 13 | (level 0-7)', priority)
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
