/**
 * The one place caio builds errors, shaped like Node's own: OS errors like `node:fs`'s
 * (`code`, negative `errno`, `syscall`, `'EBADF: bad file descriptor, read'`), argument
 * errors with Node's `ERR_*` codes, and the AbortError of a cancelled operation. Every
 * backend, native or not, goes through here, so an error reads the same on all of them.
 */
import { getSystemErrorMap, inspect } from 'node:util'

import { RESULT_ABORTED, RESULT_CLOSED, RESULT_UNSUPPORTED } from './wire'

/** An OS error from an I/O operation, as `node:fs` reports one. */
export interface SystemError extends Error {
  /** Node's name for the error, such as `'EBADF'`. */
  code: string
  /** The negated OS error number, such as `-9`. */
  errno: number
  /**
   * The system call that failed: `'read'`, `'write'` (also for readv and writev, as in
   * `node:fs`), `'fsync'`, `'fdatasync'`, `'ftruncate'`, `'fallocate'`, `'sync_file_range'`,
   * `'fadvise'`, `'io_uring_register'` (registering buffers or files), or a path operation's.
   */
  syscall: string
}

/** An error with one of Node's `ERR_*` codes, or caio's own `ERR_CAIO_*`. */
export interface CodedError extends Error {
  code: string
}

/** The system calls caio's operations stand for, indexed by opcode. */
export const SYSCALLS = [
  'read',
  'write',
  'fsync',
  'fdatasync',
  'open',
  'close',
  'stat',
  'fstat',
  'unlink',
  'rename',
  'mkdir',
  'ftruncate',
  'access',
  'copyfile',
  'open',
  // readv and writev: node:fs says `read` and `write` for them too.
  'read',
  'write',
  'fallocate',
  'sync_file_range',
  'fadvise',
  // registerBuffers, unregisterBuffers, registerFiles, unregisterFiles
  'io_uring_register',
  'io_uring_register',
  'io_uring_register',
  'io_uring_register',
] as const
export type Syscall = (typeof SYSCALLS)[number]

let errorMap: Map<number, [string, string]> | undefined

const EINVAL = -22

/** Whether `fd` was opened with O_DIRECT; set by the native layer when the addon loads. */
let isDirect: ((fd: number) => boolean) | undefined

export function setDirectIoProbe(probe: (fd: number) => boolean): void {
  isDirect = probe
}

/**
 * An OS error for `errno` (negative, as Node reports it) raised by `syscall` on `fd`. An
 * `EINVAL` from a read or write on an `O_DIRECT` descriptor says what O_DIRECT needs.
 */
export function systemError(errno: number, syscall: string, fd?: number): SystemError {
  errorMap ??= getSystemErrorMap()
  const [code, description] = errorMap.get(errno) ?? ['UNKNOWN', 'unknown error']
  const hint =
    errno === EINVAL && fd !== undefined && (syscall === 'read' || syscall === 'write') && isDirect?.(fd)
      ? ' (O_DIRECT needs aligned buffer, offset and length: use alignedBuffer() and multiples of the block size)'
      : ''
  const error = new Error(`${code}: ${description}, ${syscall}${hint}`) as SystemError
  error.errno = errno
  error.code = code
  error.syscall = syscall
  return error
}

/** What an aborted operation rejects with: Node's AbortError (`code` `'ABORT_ERR'`). */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR'
  override name = 'AbortError'
  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** What operations on a closed context reject with. */
export function closedError(): CodedError {
  const error = new Error('The caio context is closed') as CodedError
  error.code = 'ERR_CAIO_CLOSED'
  return error
}

/** The operations `node:fs` has no call for, by the opcode's syscall name: what the `js` backend cannot do. */
const WITHOUT_NODE_FS: Record<string, string> = { fallocate: 'fallocate', sync_file_range: 'syncRange', fadvise: 'fadvise' }

/**
 * What an operation the backend cannot do rejects with (`code` `'ERR_CAIO_UNSUPPORTED'`):
 * the `js` backend's `fallocate`, `syncRange` and `fadvise`, which `node:fs` has no call for.
 */
export function unsupportedError(syscall: string, backend = 'js'): CodedError & { backend: string; syscall: string } {
  const method = WITHOUT_NODE_FS[syscall] ?? syscall
  const error = new Error(`caio: ${method} is not supported by the ${backend} backend (node:fs has no ${syscall}); the uring, linux and thread backends do it`) as CodedError & {
    backend: string
    syscall: string
  }
  error.code = 'ERR_CAIO_UNSUPPORTED'
  error.backend = backend
  error.syscall = syscall
  return error
}

/**
 * `value` as `util.inspect` shows it. A hostile value (a view of a detached buffer, a
 * throwing getter or proxy) cannot be inspected: an error about it must still be made.
 */
function shown(value: unknown, options?: { depth: number }): string {
  try {
    return inspect(value, options)
  } catch {
    return Object.prototype.toString.call(value)
  }
}

/** What a value is, in the words of Node's argument errors (`determineSpecificType`). */
function describe(value: unknown): string {
  if (value === null) return 'Received null'
  if (value === undefined) return 'Received undefined'
  switch (typeof value) {
    case 'function':
      return `Received function ${value.name}`
    case 'object': {
      const constructor = (value as { constructor?: unknown }).constructor
      if (typeof constructor === 'function' && 'name' in constructor) return `Received an instance of ${constructor.name}`
      return `Received ${shown(value, { depth: -1 })}`
    }
    case 'string': {
      const text = value.length > 28 ? `${value.slice(0, 25)}...` : value
      return `Received type string (${text.includes("'") ? JSON.stringify(text) : `'${text}'`})`
    }
    case 'bigint':
      return `Received type bigint (${value}n)`
    case 'number':
      return `Received type number (${Object.is(value, -0) ? '-0' : String(value)})`
    default:
      return `Received type ${typeof value} (${String(value)})`
  }
}

/** `argument`, or `property` for a dotted name such as `options.signal`, as Node words it. */
function kindOf(name: string): string {
  return name.includes('.') ? 'property' : 'argument'
}

/** Node's `ERR_INVALID_ARG_TYPE`. */
export function invalidArgType(name: string, expected: string, actual: unknown): CodedError {
  const error = new TypeError(`The "${name}" ${kindOf(name)} must be ${expected}. ${describe(actual)}`) as CodedError
  error.code = 'ERR_INVALID_ARG_TYPE'
  return error
}

/** Digits grouped by threes with `_`, as Node shows large numbers in range errors. */
function withSeparators(digits: string): string {
  const start = digits.startsWith('-') ? 1 : 0
  let grouped = ''
  let end = digits.length
  for (; end >= start + 4; end -= 3) grouped = `_${digits.slice(end - 3, end)}${grouped}`
  return `${digits.slice(0, end)}${grouped}`
}

/** Node's `ERR_OUT_OF_RANGE`. */
export function outOfRange(name: string, range: string, actual: unknown): CodedError {
  let received: string
  if (typeof actual === 'number' && Number.isInteger(actual) && Math.abs(actual) > 2 ** 32) received = withSeparators(String(actual))
  else if (typeof actual === 'bigint') received = `${actual > 2n ** 32n || actual < -(2n ** 32n) ? withSeparators(String(actual)) : String(actual)}n`
  else received = shown(actual)
  const error = new RangeError(`The value of "${name}" is out of range. It must be ${range}. Received ${received}`) as CodedError
  error.code = 'ERR_OUT_OF_RANGE'
  return error
}

/** Node's `ERR_INVALID_ARG_VALUE`: `reason` such as `'is invalid'`, the value as `util.inspect` shows it. */
export function invalidArgValue(name: string, reason: string, actual: unknown): CodedError {
  const inspected = shown(actual)
  const received = inspected.length > 128 ? `${inspected.slice(0, 128)}...` : inspected
  const error = new TypeError(`The ${kindOf(name)} '${name}' ${reason}. Received ${received}`) as CodedError
  error.code = 'ERR_INVALID_ARG_VALUE'
  return error
}

/** Node's `ERR_UNKNOWN_ENCODING`, for an encoding `Buffer` and `StringDecoder` do not know. */
export function unknownEncoding(encoding: string): CodedError {
  const error = new TypeError(`Unknown encoding: ${encoding}`) as CodedError
  error.code = 'ERR_UNKNOWN_ENCODING'
  return error
}

/**
 * The error of one operation, on any backend and in a batch: `code` is a negative errno,
 * or {@link RESULT_ABORTED} / {@link RESULT_CLOSED} / {@link RESULT_UNSUPPORTED}; `opcode` indexes {@link SYSCALLS};
 * `fd` is the operation's descriptor; an AbortError's `cause` is `signal`'s reason.
 */
export function errorFromResult(code: number, opcode: number, fd: number, signal?: AbortSignal): Error {
  if (code === RESULT_ABORTED) return new AbortError(undefined, { cause: signal?.reason })
  if (code === RESULT_CLOSED) return closedError()
  if (code === RESULT_UNSUPPORTED) return unsupportedError(SYSCALLS[opcode] ?? 'read')
  return systemError(code, SYSCALLS[opcode] ?? 'read', fd)
}
