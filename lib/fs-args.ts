/**
 * The arguments of the `caio/fs` calls, checked and converted as `node:fs` does it: paths
 * (string, Buffer or `file:` URL, never with a NUL byte), open flags (`'r'`, `'wx'`, … or a
 * number), file modes (a number or an octal string), encodings; with Node's `ERR_*` errors.
 */
import { constants } from 'node:fs'
import { fileURLToPath } from 'node:url'

import type { CodedError } from './errors'
import { invalidArgType, invalidArgValue, outOfRange, unknownEncoding } from './errors'

const { O_APPEND, O_CREAT, O_EXCL, O_RDONLY, O_RDWR, O_SYNC, O_TRUNC, O_WRONLY } = constants

/** What the path calls accept, as `node:fs` does. */
export type PathLike = string | Buffer | URL

/** A path checked and made ready for a call: the text errors name, and the path itself. */
export interface CheckedPath {
  /** As `node:fs` errors show it (a Buffer's bytes as UTF-8). */
  readonly text: string
  /** The path as `node:fs` takes it: a string, or the bytes of a Buffer path. */
  readonly value: string | Buffer
}

function urlToPath(url: URL): string {
  if (url.protocol !== 'file:') {
    const error = new TypeError('The URL must be of scheme file') as CodedError
    error.code = 'ERR_INVALID_URL_SCHEME'
    throw error
  }
  return fileURLToPath(url)
}

/** A path argument, checked as `node:fs` checks `path`, `oldPath`, `src` and so on. */
export function checkPath(path: unknown, name = 'path'): CheckedPath {
  if (path instanceof URL) path = urlToPath(path)
  if (typeof path === 'string') {
    if (path.includes('\u0000')) throw invalidArgValue(name, 'must be a string, Uint8Array, or URL without null bytes', path)
    return { text: path, value: path }
  }
  if (path instanceof Uint8Array) {
    if (path.includes(0)) throw invalidArgValue(name, 'must be a string, Uint8Array, or URL without null bytes', path)
    const bytes = Buffer.from(path.buffer, path.byteOffset, path.byteLength)
    return { text: bytes.toString(), value: bytes }
  }
  throw invalidArgType(name, 'of type string or an instance of Buffer or URL', path)
}

/** Writes `path`'s bytes and its NUL at the start of `area` (which has room for them). */
export function pathInto(area: Buffer, path: CheckedPath): void {
  const { value } = path
  const end = typeof value === 'string' ? area.write(value, 0, 'utf8') : value.copy(area, 0)
  area[end] = 0
}

/** The NUL-terminated bytes of the paths, one after the other, after `prefix` bytes of room. */
export function pathArea(paths: readonly CheckedPath[], prefix = 0): Buffer {
  let size = prefix
  for (const { value } of paths) size += (typeof value === 'string' ? Buffer.byteLength(value) : value.length) + 1
  // From the pool: a path operation is small and frequent. The answer area of a stat is
  // the kernel's to fill.
  const area = Buffer.allocUnsafe(size)
  let at = prefix
  for (const { value } of paths) {
    at += typeof value === 'string' ? area.write(value, at, 'utf8') : value.copy(area, at)
    area[at++] = 0
  }
  return area
}

const FLAGS: Record<string, number> = {
  r: O_RDONLY,
  rs: O_RDONLY | O_SYNC,
  sr: O_RDONLY | O_SYNC,
  'r+': O_RDWR,
  'rs+': O_RDWR | O_SYNC,
  'sr+': O_RDWR | O_SYNC,
  w: O_TRUNC | O_CREAT | O_WRONLY,
  wx: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL,
  xw: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL,
  'w+': O_TRUNC | O_CREAT | O_RDWR,
  'wx+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL,
  'xw+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL,
  a: O_APPEND | O_CREAT | O_WRONLY,
  ax: O_APPEND | O_CREAT | O_WRONLY | O_EXCL,
  xa: O_APPEND | O_CREAT | O_WRONLY | O_EXCL,
  as: O_APPEND | O_CREAT | O_WRONLY | O_SYNC,
  sa: O_APPEND | O_CREAT | O_WRONLY | O_SYNC,
  'a+': O_APPEND | O_CREAT | O_RDWR,
  'ax+': O_APPEND | O_CREAT | O_RDWR | O_EXCL,
  'xa+': O_APPEND | O_CREAT | O_RDWR | O_EXCL,
  'as+': O_APPEND | O_CREAT | O_RDWR | O_SYNC,
  'sa+': O_APPEND | O_CREAT | O_RDWR | O_SYNC,
}

/** Open flags: a flags string as `fs.open` takes it, a number, or `fallback` when absent. */
export function openFlags(flags: unknown, fallback: number, name = 'flags'): number {
  if (flags === undefined || flags === null) return fallback
  if (typeof flags === 'number') {
    if (!Number.isInteger(flags)) throw invalidArgValue(name, 'is invalid', flags)
    return flags
  }
  if (typeof flags === 'string' && Object.hasOwn(FLAGS, flags)) return FLAGS[flags]!
  throw invalidArgValue(name, 'is invalid', flags)
}

/** A file mode: a 32-bit unsigned integer or an octal string, or `fallback` when absent. */
export function fileMode(mode: unknown, name: string, fallback: number): number {
  if (mode === undefined || mode === null) return fallback
  if (typeof mode === 'string') {
    if (!/^[0-7]+$/.test(mode)) throw invalidArgValue(name, 'must be a 32-bit unsigned integer or an octal string', mode)
    mode = Number.parseInt(mode, 8)
  }
  return checkInteger(mode, name, 0, 0xffffffff)
}

/** An integer in `[min, max]`, checked as Node's `validateInteger` (and `validateInt32`, `validateUint32`) check one. */
export function checkInteger(value: unknown, name: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value)
  if (!Number.isInteger(value)) throw outOfRange(name, 'an integer', value)
  if (value < min || value > max) throw outOfRange(name, `>= ${min} && <= ${max}`, value)
  return value
}

/** An encoding name Buffer knows, as `fs` checks `options.encoding`; `null` for bytes. */
export function encodingOption(encoding: unknown): BufferEncoding | null {
  if (encoding === undefined || encoding === null || encoding === 'buffer') return null
  if (typeof encoding === 'string' && Buffer.isEncoding(encoding)) return encoding
  throw invalidArgValue('encoding', 'is invalid encoding', encoding)
}

/** The encoding option of the whole-file calls: a name Buffer knows, or `'buffer'`. */
export type EncodingName = BufferEncoding | 'buffer'

/**
 * `options.encoding` of the whole-file calls, checked as Node's `getOptions` checks it:
 * only a truthy value is checked, so `''` and other falsy values mean none (`null`);
 * `'buffer'` passes, and is kept for the decoding step to refuse (see {@link decodingWith}).
 */
export function wholeFileEncoding(encoding: unknown): EncodingName | null {
  if (!encoding) return null
  if (encoding === 'buffer' || (typeof encoding === 'string' && Buffer.isEncoding(encoding))) return encoding as EncodingName
  throw invalidArgValue('encoding', 'is invalid encoding', encoding)
}

/**
 * The encoding a whole-file read decodes with. `'buffer'` passes the option check but names
 * no text encoding: Node's `readFile` decodes through a `StringDecoder`, which rejects it.
 */
export function decodingWith(encoding: EncodingName): BufferEncoding {
  if (encoding === 'buffer') throw unknownEncoding(encoding)
  return encoding
}

/**
 * An options argument that may be an encoding string, as Node's `getOptions` takes it: a
 * function or nothing means no options.
 */
export function optionsObject<T extends object>(options: unknown): Partial<T> & { encoding?: unknown } {
  if (options === undefined || options === null || typeof options === 'function') return {}
  if (typeof options === 'string') return { encoding: options } as unknown as Partial<T>
  if (typeof options !== 'object') throw invalidArgType('options', 'one of type string or object', options)
  return options as Partial<T>
}
