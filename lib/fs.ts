/**
 * The `node:fs/promises` calls `caio/fs` offers, over one context's engine: the same
 * signatures, defaults, results and errors, checked side by side against Node's own by
 * `__test__/fs.test.ts`.
 */
import { constants } from 'node:fs'
import type { BigIntStats, Stats } from 'node:fs'
import { rm as nodeRm } from 'node:fs/promises'
import { constants as osConstants } from 'node:os'

import { FileHandle } from './file-handle'
import { checkAborted, readFileSettings, readWhole, writeData, writeFileSettings, writesOf } from './file-io'
import type { Files, WriteFileData } from './file-io'
import { checkInteger, checkPath, decodingWith, fileMode, openFlags, optionsObject } from './fs-args'
import type { CheckedPath, EncodingName, PathLike } from './fs-args'
import { invalidArgType, outOfRange, systemError } from './errors'
import { pathError } from './path-ops'
import type { SystemError } from './errors'
import { validateBoolean } from './validate'

export type { PathLike } from './fs-args'

const { EBADF, EEXIST, ENOTDIR } = osConstants.errno

/** Options of the whole-file reads. */
export interface ReadFileOptions {
  encoding?: BufferEncoding | null
  flag?: string | number
  signal?: AbortSignal
}

/** Options of the whole-file writes. */
export interface WriteFileOptions {
  encoding?: BufferEncoding | null
  mode?: number | string
  flag?: string | number
  flush?: boolean
  signal?: AbortSignal
}

export interface MakeDirectoryOptions {
  recursive?: boolean
  mode?: number | string
}

export interface RmOptions {
  force?: boolean
  recursive?: boolean
  maxRetries?: number
  retryDelay?: number
}

function errnoOf(error: unknown): string | undefined {
  return (error as Partial<SystemError>).code
}

/** Runs `body` on `fd` and closes it whatever happened, failing with `body`'s error first. */
async function thenClose<T>(files: Files, fd: number, body: Promise<T>): Promise<T> {
  let result: T
  try {
    result = await body
  } catch (error) {
    await files.ops.close(fd).catch(() => undefined)
    throw error
  }
  await files.ops.close(fd)
  return result
}

/** The whole-file and path calls of one context. */
export class FileSystem {
  readonly #files: Files

  constructor(files: Files) {
    this.#files = files
  }

  /** `fs.promises.open`: a {@link FileHandle} on `path`. */
  async open(path: PathLike, flags?: string | number, mode?: string | number): Promise<FileHandle> {
    const checked = checkPath(path)
    const bits = openFlags(flags, constants.O_RDONLY)
    const fd = await this.#files.ops.open(checked, bits, fileMode(mode, 'mode', 0o666))
    return new FileHandle(this.#files, fd, bits)
  }

  /** `fs.promises.readFile`: the whole file, as a Buffer or, with an encoding, a string. */
  readFile(path: PathLike | FileHandle, options?: (ReadFileOptions & { encoding?: null }) | null): Promise<Buffer>
  readFile(path: PathLike | FileHandle, options: (ReadFileOptions & { encoding: BufferEncoding }) | BufferEncoding): Promise<string>
  readFile(path: PathLike | FileHandle, options?: ReadFileOptions | BufferEncoding | null): Promise<string | Buffer>
  async readFile(path: PathLike | FileHandle, options?: ReadFileOptions | BufferEncoding | null): Promise<string | Buffer> {
    const { encoding, flag, signal } = readFileSettings(options)
    if (path instanceof FileHandle) {
      if (path.fd !== -1) return path.readFile(options)
      // Node's readFile skips the handle's closed check and hands fd -1 to its fstat.
      checkAborted(signal)
      throw outOfRange('fd', '>= 0 && <= 2147483647', -1)
    }
    return this.#readPath(path, encoding, flag, signal)
  }

  /** A whole file by path, its options checked (the part readFile and readFiles share). */
  async #readPath(path: PathLike, encoding: EncodingName | null, flag: unknown, signal: AbortSignal | undefined): Promise<string | Buffer> {
    checkAborted(signal)
    const checked = checkPath(path)
    const flags = openFlags(flag, constants.O_RDONLY)
    const ops = this.#files.ops
    let fd: number
    if (ops.readSmall !== undefined) {
      const small = await ops.readSmall(checked, flags)
      if (typeof small !== 'number') return encoding === null ? small : small.toString(decodingWith(encoding))
      fd = small
    } else {
      fd = await ops.open(checked, flags, 0o666)
    }
    return thenClose(this.#files, fd, readWhole(this.#files, fd, encoding, signal))
  }

  /** `fs.promises.writeFile`: replaces the file's content (or per `flag`, adds to it). */
  async writeFile(path: PathLike | FileHandle, data: WriteFileData, options?: WriteFileOptions | BufferEncoding | null): Promise<void> {
    await this.#writeFile(path, data, options, 'w')
  }

  /** `fs.promises.appendFile`: `writeFile` with the flag `'a'`. */
  async appendFile(path: PathLike | FileHandle, data: WriteFileData, options?: WriteFileOptions | BufferEncoding | null): Promise<void> {
    await this.#writeFile(path, data, options, 'a')
  }

  async #writeFile(path: PathLike | FileHandle, data: WriteFileData, options: WriteFileOptions | BufferEncoding | null | undefined, defaultFlag: string): Promise<void> {
    if (path instanceof FileHandle) {
      if (path.fd !== -1) return path.writeFile(data, options as WriteFileOptions)
      // Node's writeFile skips the handle's closed check: write(2) on fd -1 fails, for the
      // first bytes there are to write.
      const w = writeFileSettings(data, options, defaultFlag)
      return writeData(() => Promise.reject(systemError(-EBADF, 'write')), w.data, w.encoding, w.signal)
    }
    const w = writeFileSettings(data, options, defaultFlag)
    checkAborted(w.signal)
    const target = checkPath(path)
    const flags = openFlags(w.flag, constants.O_RDONLY)
    const fd = await this.#files.ops.open(target, flags, fileMode(w.mode, 'mode', 0o666))
    const written = writeData(writesOf(this.#files, fd), w.data, w.encoding, w.signal)
    await thenClose(this.#files, fd, w.flush ? written.then(() => this.#fsync(fd)) : written)
  }

  #fsync(fd: number): Promise<void> {
    return new FileHandle(this.#files, fd).sync()
  }

  /**
   * Reads many files at once: one entry per path, in order — its content (a string with
   * `encoding`), or the Error reading it gave. One bad path never rejects the whole.
   * At most `concurrency` files (default 64) are open at a time.
   */
  readFiles(paths: readonly (PathLike | FileHandle)[], options?: (ReadFileOptions & ManyFilesOptions & { encoding?: null }) | null): Promise<Array<Buffer | Error>>
  readFiles(paths: readonly (PathLike | FileHandle)[], options: (ReadFileOptions & ManyFilesOptions & { encoding: BufferEncoding }) | BufferEncoding): Promise<Array<string | Error>>
  readFiles(paths: readonly (PathLike | FileHandle)[], options?: (ReadFileOptions & ManyFilesOptions) | BufferEncoding | null): Promise<Array<string | Buffer | Error>>
  async readFiles(paths: readonly (PathLike | FileHandle)[], options?: (ReadFileOptions & ManyFilesOptions) | BufferEncoding | null): Promise<Array<string | Buffer | Error>> {
    if (!Array.isArray(paths)) throw invalidArgType('paths', 'an instance of Array', paths)
    const o = optionsObject<ReadFileOptions & ManyFilesOptions>(options)
    const concurrency = concurrencyOption(o.concurrency)
    const { encoding, flag, signal } = readFileSettings(typeof options === 'string' ? options : { encoding: o.encoding, flag: o.flag, signal: o.signal })
    return eachAtOnce(paths, concurrency, (path) => (path instanceof FileHandle ? this.readFile(path, { encoding, signal } as ReadFileOptions) : this.#readPath(path, encoding, flag, signal)))
  }

  /**
   * Writes many files at once, each entry `[path, data]` or `{ path, data }`: one entry per
   * file, in order — `undefined` when written, or the Error writing it gave. At most
   * `concurrency` files (default 64) are open at a time.
   */
  async writeFiles(entries: readonly WriteFilesEntry[], options?: (WriteFileOptions & ManyFilesOptions) | BufferEncoding | null): Promise<Array<undefined | Error>> {
    if (!Array.isArray(entries)) throw invalidArgType('entries', 'an instance of Array', entries)
    const o = optionsObject<WriteFileOptions & ManyFilesOptions>(options)
    const concurrency = concurrencyOption(o.concurrency)
    const each: WriteFileOptions = { encoding: o.encoding, mode: o.mode, flag: o.flag, flush: o.flush, signal: o.signal } as WriteFileOptions
    return eachAtOnce<WriteFilesEntry, undefined>(entries, concurrency, async (entry) => {
      const [path, data] = Array.isArray(entry) ? entry : [(entry as { path: PathLike }).path, (entry as { data: WriteFileData }).data]
      await this.writeFile(path as PathLike, data as WriteFileData, each)
      return undefined
    })
  }

  /** `fs.promises.stat`. */
  stat(path: PathLike, options?: { bigint?: false }): Promise<Stats>
  stat(path: PathLike, options: { bigint: true }): Promise<BigIntStats>
  stat(path: PathLike, options?: { bigint?: boolean }): Promise<Stats | BigIntStats>
  async stat(path: PathLike, options?: { bigint?: boolean }): Promise<Stats | BigIntStats> {
    return this.#files.ops.stat(checkPath(path), bigintOption(options), true)
  }

  /** `fs.promises.lstat`: a symbolic link's own Stats. */
  lstat(path: PathLike, options?: { bigint?: false }): Promise<Stats>
  lstat(path: PathLike, options: { bigint: true }): Promise<BigIntStats>
  lstat(path: PathLike, options?: { bigint?: boolean }): Promise<Stats | BigIntStats>
  async lstat(path: PathLike, options?: { bigint?: boolean }): Promise<Stats | BigIntStats> {
    return this.#files.ops.stat(checkPath(path), bigintOption(options), false)
  }

  /** `fs.promises.truncate`: opens `path` `'r+'` and cuts or extends it to `len` bytes. */
  async truncate(path: PathLike, len: number = 0): Promise<void> {
    const fd = await this.#files.ops.open(checkPath(path), constants.O_RDWR, 0o666)
    // The length is checked once the file is open, as Node's ftruncate checks it.
    const cut = async (): Promise<void> => this.#files.ops.ftruncate(fd, Math.max(0, checkInteger(len, 'len')))
    await thenClose(this.#files, fd, cut())
  }

  /** `fs.promises.unlink`. */
  async unlink(path: PathLike): Promise<void> {
    await this.#files.ops.unlink(checkPath(path))
  }

  /** `fs.promises.rename`. */
  async rename(oldPath: PathLike, newPath: PathLike): Promise<void> {
    await this.#files.ops.rename(checkPath(oldPath, 'oldPath'), checkPath(newPath, 'newPath'))
  }

  /**
   * `fs.promises.mkdir`. With `recursive`, creates the missing parents too and resolves the
   * first directory it created (`undefined` when there was none to create).
   */
  async mkdir(path: PathLike, options?: MakeDirectoryOptions | number | string | null): Promise<string | undefined> {
    const o: MakeDirectoryOptions = typeof options === 'number' || typeof options === 'string' ? { mode: options } : (options || {})
    const checked = checkPath(path)
    const recursive = validateBoolean(o.recursive === undefined ? false : o.recursive, 'options.recursive')
    const mode = fileMode(o.mode === undefined ? 0o777 : o.mode, 'mode', 0o777)
    if (!recursive) {
      await this.#files.ops.mkdir(checked, mode)
      return undefined
    }
    return this.#mkdirp(checked, mode)
  }

  /**
   * `mkdir -p` in the steps of Node's own (`MKDirpAsync`): a missing parent is made first,
   * an existing one must be a directory (else `ENOTDIR`), the asked path may already be
   * one; an error names the directory being made when it came.
   */
  async #mkdirp(path: CheckedPath, mode: number): Promise<string | undefined> {
    const ops = this.#files.ops
    const pending: CheckedPath[] = [path]
    let first: string | undefined
    for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
      try {
        await ops.mkdir(next, mode)
        first ??= next.text
        continue
      } catch (error) {
        const code = errnoOf(error)
        const parent = code === 'ENOENT' ? parentOf(next) : undefined
        if (parent !== undefined) {
          pending.push(next, parent)
          continue
        }
        // A missing path with no parent left to make is taken as existing, as Node does.
        if (code !== 'ENOENT' && !(code !== undefined && THERE_ALREADY.has(code))) throw pathError(error, 'mkdir', next)
      }
      let stats: Stats
      try {
        stats = (await ops.stat(next, false, true)) as Stats
      } catch (error) {
        if (pending.length > 0) throw pathError({ errno: -ENOTDIR }, 'mkdir', next)
        throw pathError(error, 'mkdir', next)
      }
      if (!stats.isDirectory()) throw pathError({ errno: pending.length > 0 ? -ENOTDIR : -EEXIST }, 'mkdir', next)
    }
    return first
  }

  /**
   * `fs.promises.rm`. A file (or link) is removed here; a directory is handed to
   * `node:fs/promises` itself, which walks it and says what its options say.
   */
  async rm(path: PathLike, options?: RmOptions): Promise<void> {
    const checked = checkPath(path)
    const force = rmOptions(options).force
    let stats: Stats
    try {
      stats = (await this.#files.ops.stat(checked, false, false)) as Stats
    } catch (error) {
      if (force && errnoOf(error) === 'ENOENT') return
      throw error
    }
    if (stats.isDirectory()) return nodeRm(path, options)
    try {
      await this.#files.ops.unlink(checked)
    } catch (error) {
      // Gone meanwhile: what rm wanted, as Node's rimraf has it.
      if (errnoOf(error) !== 'ENOENT') throw error
    }
  }

  /** `fs.promises.copyFile`; `mode` is a sum of `constants.COPYFILE_*`. */
  async copyFile(src: PathLike, dest: PathLike, mode?: number | null): Promise<void> {
    const from = checkPath(src, 'src')
    const to = checkPath(dest, 'dest')
    await this.#files.ops.copyFile(from, to, mode === undefined || mode === null ? 0 : checkInteger(mode, 'mode', 0, 7))
  }

  /** `fs.promises.access`; `mode` is a sum of `constants.F_OK`, `R_OK`, `W_OK`, `X_OK`. */
  async access(path: PathLike, mode?: number | null): Promise<void> {
    const checked = checkPath(path)
    await this.#files.ops.access(checked, mode === undefined || mode === null ? constants.F_OK : checkInteger(mode, 'mode', 0, 7))
  }
}

/** How many files the many-file calls keep open at once. */
export interface ManyFilesOptions {
  concurrency?: number
}

/** An entry of {@link FileSystem.writeFiles}. */
export type WriteFilesEntry = readonly [PathLike | FileHandle, WriteFileData] | { path: PathLike | FileHandle; data: WriteFileData }

function concurrencyOption(value: unknown): number {
  return value === undefined ? 64 : checkInteger(value, 'options.concurrency', 1, 65536)
}

/** Runs `work` on every item, `concurrency` at a time: each one's result or Error, in order. */
async function eachAtOnce<T, R>(items: readonly T[], concurrency: number, work: (item: T) => Promise<R>): Promise<Array<R | Error>> {
  const results = new Array<R | Error>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++
      try {
        results[index] = await work(items[index]!)
      } catch (error) {
        results[index] = error instanceof Error ? error : new Error(String(error))
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker))
  return results
}

/** What mkdir(2) answers for a path that exists (EPERM and EISDIR on some file systems). */
const THERE_ALREADY = new Set(['EEXIST', 'EPERM', 'EISDIR'])

/**
 * `path` up to its last `/`, as Node's `mkdir -p` climbs; a Buffer path is cut on its bytes,
 * so that one that is no UTF-8 keeps them. `undefined` when it has no `/`.
 */
function parentOf(path: CheckedPath): CheckedPath | undefined {
  const { value } = path
  if (typeof value === 'string') {
    const slash = value.lastIndexOf('/')
    return slash < 0 ? undefined : checkPath(value.slice(0, slash))
  }
  const slash = value.lastIndexOf(0x2f)
  return slash < 0 ? undefined : checkPath(value.subarray(0, slash))
}

/** The options of `rm`, checked as Node's `validateRmOptions` checks them (all, in its order). */
function rmOptions(options: unknown): Required<Pick<RmOptions, 'force' | 'recursive'>> {
  if (options === undefined) return { force: false, recursive: false }
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw invalidArgType('options', 'of type object', options)
  const o = { force: false, recursive: false, retryDelay: 100, maxRetries: 0, ...options } as Record<string, unknown>
  const recursive = validateBoolean(o.recursive, 'options.recursive')
  checkInteger(o.retryDelay, 'options.retryDelay', 0, 2 ** 31 - 1)
  checkInteger(o.maxRetries, 'options.maxRetries', 0, 2 ** 32 - 1)
  return { force: validateBoolean(o.force, 'options.force'), recursive }
}

function bigintOption(options: { bigint?: boolean } | undefined): boolean {
  if (options === undefined || options === null) return false
  if (typeof options !== 'object') throw invalidArgType('options', 'of type object', options)
  return options.bigint === undefined ? false : validateBoolean(options.bigint, 'options.bigint')
}
