/**
 * caio — asynchronous positional file I/O for Node.js through io_uring, kernel AIO, a
 * Rust thread pool, or plain `node:fs`.
 *
 * ```ts
 * import { Context } from 'caio'
 * await using ctx = new Context()
 * await ctx.write('Hello world', fd, 0)
 * const bytes = await ctx.read(32, fd, 0)
 * ```
 */
import { AbortError } from './lib/errors'
import { Fulfil } from './lib/engine'
import { Opcode } from './lib/wire'
import type { IoVector } from './lib/wire'
import type { BackendName, Engine, Operand } from './lib/engine'
import { JsEngine } from './lib/js-backend'
import { loadBinding, NativeEngine } from './lib/native'
import { candidates, isBackendName, unavailableReason, warnFallback, BACKEND_NAMES } from './lib/selection'
import {
  fallocateMode,
  rangeArgs,
  syncRangeFlags,
  validateAdvice,
  validateBoolean,
  validateBuffers,
  validateData,
  validateFd,
  validateInteger,
  validateLength,
  validateObject,
  validateOffset,
  validatePriority,
  validateRegisteredBuffers,
  validateRegisteredFiles,
  validateSignal,
  validateView,
} from './lib/validate'
import { invalidArgValue } from './lib/errors'
import { batchEntries, prepareBatch } from './lib/batch'
import type { Advice } from './lib/validate'
import type { BatchOp } from './lib/batch'
import { FileSystem } from './lib/fs'
import { NativePathOps, NodePathOps } from './lib/path-ops'

export type { BackendName } from './lib/engine'
export type { BackendStatus } from './lib/selection'
export type { CompletionPath } from './lib/native'
export type { SystemError, CodedError } from './lib/errors'
export { backends } from './lib/selection'
export { AbortError } from './lib/errors'
export type { BatchOp } from './lib/batch'
export type { Advice } from './lib/validate'
export { FileHandle } from './lib/file-handle'
export type { Position, ReadOptions, ReadResult, WriteResult } from './lib/file-handle'
export type { WriteFileData } from './lib/file-io'
export type { ManyFilesOptions, MakeDirectoryOptions, PathLike, ReadFileOptions, RmOptions, WriteFileOptions, WriteFilesEntry } from './lib/fs'
export type { ReadStreamOptions, WriteStreamOptions, FileReadStream, FileWriteStream } from './lib/streams'

/** Options of a {@link Context}. */
export interface ContextOptions {
  /** The backend to use; by default the best one available (see {@link backends}). */
  backend?: BackendName
  /** Operations in flight at once (default 512); more wait in a FIFO queue. */
  maxRequests?: number
  /** Worker threads of the `thread` backend (default 8). */
  poolSize?: number
  /** `uring` only: kernel-side submission polling (`IORING_SETUP_SQPOLL`); see `ctx.sqpoll`. */
  sqpoll?: boolean
}

/** Options of one operation. */
export interface OpOptions {
  /** Cancels the operation: a queued one is dropped, one in the kernel is asked to stop. */
  signal?: AbortSignal
  /**
   * I/O priority in the Linux `ioprio` encoding (class << 13 | level), 0..65535. Passed to
   * the kernel by `uring` and `linux`; accepted and ignored by `thread` and `js`.
   */
  priority?: number
}

/** Options of {@link Context.fallocate}: which `fallocate(2)` mode (`FALLOC_FL_*`), all off by default. */
export interface FallocateOptions extends OpOptions {
  /** `FALLOC_FL_KEEP_SIZE`: allocate (or punch) without changing the file's size. */
  keepSize?: boolean
  /** `FALLOC_FL_PUNCH_HOLE`: free the range, which then reads as zeros; the kernel wants `keepSize` with it. */
  punchHole?: boolean
  /** `FALLOC_FL_ZERO_RANGE`: make the range read as zeros, allocated. */
  zeroRange?: boolean
  /** `FALLOC_FL_COLLAPSE_RANGE`: remove the range, moving what follows down (block-aligned). */
  collapseRange?: boolean
  /** `FALLOC_FL_INSERT_RANGE`: insert a hole of the range's length at `offset`, moving what follows up (block-aligned). */
  insertRange?: boolean
}

/**
 * Options of {@link Context.syncRange}: the `SYNC_FILE_RANGE_*` flags. With none of the
 * three given, `write` alone: start write-out of the range's dirty pages and return.
 */
export interface SyncRangeOptions extends OpOptions {
  /** `SYNC_FILE_RANGE_WAIT_BEFORE`: first wait for write-out already under way. */
  waitBefore?: boolean
  /** `SYNC_FILE_RANGE_WRITE`: start write-out of the dirty pages. */
  write?: boolean
  /** `SYNC_FILE_RANGE_WAIT_AFTER`: wait for the write-out to finish. */
  waitAfter?: boolean
}

/** What {@link Context.registered} reports. */
export interface Registered {
  /** Buffers registered now (0 when none). */
  buffers: number
  /** Descriptors registered now. */
  files: number
  /**
   * Reads and writes this context started on a registered buffer (`READ_FIXED`/`WRITE_FIXED`):
   * `uring` only, 0 on the other backends, which do ordinary I/O on the same memory.
   */
  fixedBufferOps: number
  /** Operations this context started on a registered descriptor (`IOSQE_FIXED_FILE`): `uring` only. */
  fixedFileOps: number
}

const NOTHING = (): void => undefined

/** In flight at once when the options do not say (the Python caio's asyncio default). */
export const DEFAULT_MAX_REQUESTS = 512
const MAX_MAX_REQUESTS = 32768

const SYNC_VIEW = undefined

/** The methods a {@link Context} shares with `caio/fs`: files by path, on this context. */
const FILE_METHODS = ['open', 'readFile', 'writeFile', 'appendFile', 'readFiles', 'writeFiles', 'stat', 'lstat', 'truncate', 'unlink', 'rename', 'mkdir', 'rm', 'copyFile', 'access'] as const

/** Where a context keeps its {@link FileSystem}; not part of the API. */
const FILE_SYSTEM = Symbol('caio.fileSystem')

export interface Context extends Pick<FileSystem, (typeof FILE_METHODS)[number]> {}

/**
 * A context does positional I/O on file descriptors through one backend. Operations are
 * independent and may complete in any order. Close it (or `await using` it) when done; an
 * idle context never keeps the process alive.
 */
export class Context implements AsyncDisposable {
  /** The backend this context runs on. */
  readonly backend: BackendName
  /** Operations in flight at once; more wait in a FIFO queue. */
  readonly maxRequests: number
  /** Worker threads, for the `thread` backend; `undefined` for the others. */
  readonly poolSize: number | undefined
  /** Whether kernel-side submission polling is on (`uring` with `sqpoll: true`, if the kernel allowed it). */
  readonly sqpoll: boolean
  readonly #engine: Engine
  #fileSystem: FileSystem | undefined
  /**
   * The registered buffers' views (with the iovec area): referenced from the moment they are
   * handed to the backend until their unregistering or the context's close has finished, so
   * the memory the kernel keeps registered is never collected.
   */
  #registeredBuffers: IoVector | undefined
  #registeredFiles: Int32Array | undefined
  /** The last registration step of each kind: each waits for the one before it. */
  #bufferSteps: Promise<void> = Promise.resolve()
  #fileSteps: Promise<void> = Promise.resolve()

  /**
   * Opens a context. Throws `ERR_INVALID_ARG_TYPE`/`ERR_OUT_OF_RANGE` for bad options, and
   * an Error saying why (and how to fix it) when the requested backend is not available.
   */
  constructor(options?: ContextOptions) {
    const o = validateObject<ContextOptions>(options, 'options')
    if (o.backend !== undefined && !isBackendName(o.backend)) {
      throw invalidArgValue('options.backend', `must be one of ${BACKEND_NAMES.map((n) => `'${n}'`).join(', ')}`, o.backend)
    }
    const engineOptions = {
      maxRequests: o.maxRequests === undefined ? DEFAULT_MAX_REQUESTS : validateInteger(o.maxRequests, 'options.maxRequests', 1, MAX_MAX_REQUESTS),
      poolSize: o.poolSize === undefined ? undefined : validateInteger(o.poolSize, 'options.poolSize', 1, 1024),
      sqpoll: o.sqpoll === undefined ? false : validateBoolean(o.sqpoll, 'options.sqpoll'),
    }
    const [backend, engine] = o.backend !== undefined ? [o.backend, openEngine(o.backend, engineOptions)] : openBest(engineOptions)
    this.backend = backend
    this.#engine = engine
    this.maxRequests = engineOptions.maxRequests
    this.poolSize = engine.poolSize
    this.sqpoll = engine.sqpoll
  }

  /**
   * Reads up to `nbytes` from `fd` at `offset`. Resolves with a Buffer as long as the bytes
   * read: shorter at end of file, empty past it.
   */
  read(nbytes: number, fd: number, offset: number | bigint, options?: OpOptions): Promise<Buffer> {
    try {
      const length = validateLength(nbytes)
      const file = validateFd(fd)
      const position = validateOffset(offset)
      if (options !== undefined) return this.#startWith(options, Opcode.Read, file, position, Buffer.allocUnsafe(length), Fulfil.View) as Promise<Buffer>
      return this.#engine.start(Opcode.Read, file, position, Buffer.allocUnsafe(length), 0, Fulfil.View, undefined) as Promise<Buffer>
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** Reads into `target` from its start; resolves with the number of bytes read. */
  readInto(target: ArrayBufferView, fd: number, offset: number | bigint, options?: OpOptions): Promise<number> {
    try {
      const view = validateView(target, 'target')
      const file = validateFd(fd)
      const position = validateOffset(offset)
      if (options !== undefined) return this.#startWith(options, Opcode.Read, file, position, view, Fulfil.Count) as Promise<number>
      return this.#engine.start(Opcode.Read, file, position, view, 0, Fulfil.Count, undefined) as Promise<number>
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * Writes `data` (a string as UTF-8) to `fd` at `offset`; resolves with the bytes this one
   * write moved, which a full disk or a signal can make fewer than `data` holds.
   */
  write(data: ArrayBufferView | string, fd: number, offset: number | bigint, options?: OpOptions): Promise<number> {
    try {
      const view = validateData(data)
      const file = validateFd(fd)
      const position = validateOffset(offset)
      if (options !== undefined) return this.#startWith(options, Opcode.Write, file, position, view, Fulfil.Count) as Promise<number>
      return this.#engine.start(Opcode.Write, file, position, view, 0, Fulfil.Count, undefined) as Promise<number>
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * Validates the options of a read or a write whose other arguments passed, and starts it.
   * Out of line, so that the calls without options stay small enough for V8 to inline
   * into their callers.
   */
  #startWith(options: OpOptions, opcode: Opcode, fd: number, offset: number | bigint, view: ArrayBufferView, fulfil: Fulfil): Promise<unknown> {
    const signal = opSignal(options)
    const priority = validatePriority(options.priority, 'options.priority')
    if (signal?.aborted) return rejectAborted(signal)
    return this.#engine.start(opcode, fd, offset, view, priority, fulfil, signal)
  }

  /** `fsync(2)`: flushes the data and metadata of writes that completed before this call. */
  fsync(fd: number, options?: OpOptions): Promise<void> {
    return this.#sync(Opcode.Fsync, fd, options)
  }

  /** `fdatasync(2)`: like {@link fsync}, without metadata that reading the data back does not need. */
  fdsync(fd: number, options?: OpOptions): Promise<void> {
    return this.#sync(Opcode.Fdatasync, fd, options)
  }

  #sync(opcode: Opcode, fd: number, options: OpOptions | undefined): Promise<void> {
    try {
      const file = validateFd(fd)
      const signal = options === undefined ? undefined : opSignal(options)
      const priority = options === undefined ? 0 : validatePriority(options.priority, 'options.priority')
      if (signal?.aborted) return rejectAborted(signal)
      return this.#engine.start(opcode, file, 0, SYNC_VIEW, priority, Fulfil.Nothing, signal) as Promise<void>
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * `preadv(2)`: reads from `fd` at `offset` into `buffers`, filling each in order before
   * the next (at most 1024 of them); resolves with the bytes read, fewer at end of file.
   */
  readv(buffers: readonly ArrayBufferView[], fd: number, offset: number | bigint, options?: OpOptions): Promise<number> {
    return this.#vectored(Opcode.Readv, buffers, fd, offset, options)
  }

  /**
   * `pwritev(2)`: writes `buffers`, one after the other (at most 1024 of them), to `fd` at
   * `offset`; resolves with the bytes this one call wrote.
   */
  writev(buffers: readonly ArrayBufferView[], fd: number, offset: number | bigint, options?: OpOptions): Promise<number> {
    return this.#vectored(Opcode.Writev, buffers, fd, offset, options)
  }

  #vectored(opcode: Opcode, buffers: readonly ArrayBufferView[], fd: number, offset: number | bigint, options: OpOptions | undefined): Promise<number> {
    try {
      const vector = validateBuffers(buffers)
      const file = validateFd(fd)
      const position = validateOffset(offset)
      return this.#startOther(opcode, file, position, vector, Fulfil.Count, options) as Promise<number>
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * `fallocate(2)`: allocates `length` bytes of `fd` from `offset` on, growing the file
   * unless `keepSize`; or, with the options, punches a hole, zeroes, collapses or inserts
   * that range. Combinations the kernel refuses reject with its error (`punchHole` without
   * `keepSize`: `ENOTSUP`; a length of 0: `EINVAL`), `syscall` `'fallocate'`. The `js`
   * backend rejects with `ERR_CAIO_UNSUPPORTED`.
   */
  fallocate(fd: number, offset: number | bigint, length: number | bigint, options?: FallocateOptions): Promise<void> {
    try {
      const file = validateFd(fd)
      const position = validateOffset(offset)
      const size = validateOffset(length, 'length')
      const mode = fallocateMode(validateObject<FallocateOptions>(options, 'options'), 'options.')
      return this.#startOther(Opcode.Fallocate, file, position, rangeArgs(size, mode), Fulfil.Nothing, options) as Promise<void>
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** `ftruncate(2)`: makes `fd`'s file `length` bytes long, cutting it or extending it with zeros. */
  ftruncate(fd: number, length: number | bigint, options?: OpOptions): Promise<void> {
    try {
      const file = validateFd(fd)
      const size = validateOffset(length, 'length')
      return this.#startOther(Opcode.Ftruncate, file, size, undefined, Fulfil.Nothing, options) as Promise<void>
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * `sync_file_range(2)`: starts write-out of the dirty pages of `length` bytes of `fd` from
   * `offset` on (0: to the end of the file), and with the options waits for it. It makes
   * nothing durable by itself (no metadata, no disk cache flush): it makes the `fdsync`
   * that follows short. The `js` backend rejects with `ERR_CAIO_UNSUPPORTED`.
   */
  syncRange(fd: number, offset: number | bigint, length: number | bigint, options?: SyncRangeOptions): Promise<void> {
    try {
      const file = validateFd(fd)
      const position = validateOffset(offset)
      const size = validateOffset(length, 'length')
      const flags = syncRangeFlags(validateObject<SyncRangeOptions>(options, 'options'), 'options.')
      return this.#startOther(Opcode.SyncRange, file, position, rangeArgs(size, flags), Fulfil.Nothing, options) as Promise<void>
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * `posix_fadvise(2)`: tells the kernel how `length` bytes of `fd` from `offset` on (0: to
   * the end of the file) will be used (`'willneed'` reads them ahead, `'dontneed'` drops
   * them from the page cache, …). The `js` backend rejects with `ERR_CAIO_UNSUPPORTED`.
   */
  fadvise(fd: number, offset: number | bigint, length: number | bigint, advice: Advice, options?: OpOptions): Promise<void> {
    try {
      const file = validateFd(fd)
      const position = validateOffset(offset)
      const size = validateOffset(length, 'length')
      const code = validateAdvice(advice)
      return this.#startOther(Opcode.Fadvise, file, position, rangeArgs(size, code), Fulfil.Nothing, options) as Promise<void>
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** Validates the options of an operation whose other arguments passed, and starts it. */
  #startOther(opcode: Opcode, fd: number, offset: number | bigint, operand: Operand, fulfil: Fulfil, options: OpOptions | undefined): Promise<unknown> {
    const signal = options === undefined ? undefined : opSignal(options)
    const priority = options === undefined ? 0 : validatePriority(options.priority, 'options.priority')
    if (signal?.aborted) return rejectAborted(signal)
    return this.#engine.start(opcode, fd, offset, operand, priority, fulfil, signal)
  }

  /**
   * Registers `views` (1 to 16,384 buffers of up to 1 GiB each) with the backend. On `uring`
   * every read or write started afterwards whose buffer lies wholly inside one of them is a
   * `READ_FIXED`/`WRITE_FIXED` on it — the kernel pinned the memory once, so it does not map
   * it per operation; the other backends do ordinary I/O on the same memory. The context
   * keeps the views referenced until {@link unregisterBuffers} or {@link close} has
   * finished: do not transfer, detach or resize their ArrayBuffers meanwhile.
   *
   * Registering again replaces the set: the old one is unregistered first (waiting for the
   * operations using it, as {@link unregisterBuffers} does). Kernel refusals reject with
   * `syscall` `'io_uring_register'` (`ENOMEM` past `RLIMIT_MEMLOCK`, `EOPNOTSUPP` for
   * file-backed memory); bad arguments with `ERR_INVALID_ARG_TYPE`, `ERR_OUT_OF_RANGE` or
   * `ERR_INVALID_ARG_VALUE` (a resizable ArrayBuffer).
   */
  registerBuffers(views: readonly ArrayBufferView[]): Promise<void> {
    let vector: IoVector
    try {
      vector = validateRegisteredBuffers(views)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.#bufferStep(async () => {
      if (this.#registeredBuffers !== undefined) await this.#unregister(Opcode.UnregisterBuffers)
      this.#registeredBuffers = vector
      try {
        await this.#engine.start(Opcode.RegisterBuffers, 0, 0, vector, 0, Fulfil.Nothing, undefined)
      } catch (error) {
        if (this.#registeredBuffers === vector) this.#registeredBuffers = undefined
        throw error
      }
    })
  }

  /**
   * Unregisters the buffers {@link registerBuffers} registered, once every operation using
   * them has completed (operations started meanwhile do ordinary I/O), and lets go of
   * their views. Resolves at once when none are registered.
   */
  unregisterBuffers(): Promise<void> {
    return this.#bufferStep(() => this.#unregister(Opcode.UnregisterBuffers))
  }

  /**
   * Registers the descriptors `fds` (each must be open: `EBADF` otherwise, on every
   * backend). On `uring` every read, write, sync and storage-engine operation started
   * afterwards on one of them uses the registered file, which spares the kernel a
   * descriptor lookup per operation. The kernel holds the files open until
   * {@link unregisterFiles} or {@link close}: a descriptor closed through this context
   * stops being used as registered at once; close one any other way only after
   * unregistering, or its number, once reused, would still name the old file on `uring`.
   * Registering again replaces the set, as for buffers.
   */
  registerFiles(fds: readonly number[]): Promise<void> {
    let numbers: Int32Array
    try {
      numbers = validateRegisteredFiles(fds)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.#fileStep(async () => {
      if (this.#registeredFiles !== undefined) await this.#unregister(Opcode.UnregisterFiles)
      await this.#engine.start(Opcode.RegisterFiles, 0, 0, numbers, 0, Fulfil.Nothing, undefined)
      this.#registeredFiles = numbers
    })
  }

  /** Unregisters the descriptors once every operation using them has completed. */
  unregisterFiles(): Promise<void> {
    return this.#fileStep(() => this.#unregister(Opcode.UnregisterFiles))
  }

  /** What is registered now, and how many operations used registered resources so far. */
  registered(): Registered {
    const used = this.#engine.fixedUse()
    return {
      buffers: this.#registeredBuffers === undefined ? 0 : this.#registeredBuffers.length - 1,
      files: this.#registeredFiles?.length ?? 0,
      fixedBufferOps: used.buffers,
      fixedFileOps: used.files,
    }
  }

  async #unregister(opcode: Opcode.UnregisterBuffers | Opcode.UnregisterFiles): Promise<void> {
    await this.#engine.start(opcode, 0, 0, undefined, 0, Fulfil.Nothing, undefined)
    if (opcode === Opcode.UnregisterBuffers) this.#registeredBuffers = undefined
    else this.#registeredFiles = undefined
  }

  /** Runs `step` after the registration steps of buffers started before it. */
  #bufferStep(step: () => Promise<void>): Promise<void> {
    const run = this.#bufferSteps.then(step)
    this.#bufferSteps = run.then(NOTHING, NOTHING)
    return run
  }

  #fileStep(step: () => Promise<void>): Promise<void> {
    const run = this.#fileSteps.then(step)
    this.#fileSteps = run.then(NOTHING, NOTHING)
    return run
  }

  /**
   * Submits many operations in one call and resolves, once all have settled, with one
   * entry per operation, in order: the bytes it moved (reads fill their `buffer`), `0` for
   * a sync, or that operation's Error. An entry with `link: true` makes the next one start
   * only after it succeeded; if it fails, the rest of its chain gets `ECANCELED`.
   *
   * Rejects only for bad arguments (naming the entry), a closed context, or an abort that
   * stopped every operation; an abort that came too late for some operations leaves
   * AbortError entries for the ones it stopped.
   */
  submit(ops: readonly BatchOp[], options?: { signal?: AbortSignal }): Promise<Array<number | Error>> {
    try {
      const batch = prepareBatch(ops, this.maxRequests)
      const o = validateObject<{ signal?: AbortSignal }>(options, 'options')
      const signal = validateSignal(o.signal, 'options.signal')
      if (signal?.aborted) return rejectAborted(signal)
      return this.#engine.submitBatch(batch, signal).then((results) => batchEntries(batch, results, signal))
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * Rejects queued operations with `ERR_CAIO_CLOSED`, lets those in flight finish, then
   * releases the backend's resources. Idempotent; later operations reject with `ERR_CAIO_CLOSED`.
   */
  close(): Promise<void> {
    return this.#engine.close().then(() => {
      // The backend is gone, and with it what the kernel had registered.
      this.#registeredBuffers = undefined
      this.#registeredFiles = undefined
    })
  }

  /** Same as {@link close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  /** @internal The whole-file and path calls, over this context's engine. */
  [FILE_SYSTEM](): FileSystem {
    if (this.#fileSystem === undefined) {
      // Path operations are native on Linux; elsewhere, and on the js engine, node:fs does them.
      const ops = this.backend === 'js' || process.platform !== 'linux' ? new NodePathOps() : new NativePathOps(this.#engine)
      this.#fileSystem = new FileSystem({ engine: this.#engine, ops })
    }
    return this.#fileSystem
  }
}

for (const name of FILE_METHODS) {
  Object.defineProperty(Context.prototype, name, {
    value: function (this: Context, ...args: unknown[]): unknown {
      const fileSystem = this[FILE_SYSTEM]()
      return (fileSystem[name] as (...args: unknown[]) => unknown).apply(fileSystem, args)
    },
    writable: true,
    configurable: true,
  })
}

/**
 * A zero-filled Buffer of `size` bytes whose memory starts at a multiple of `alignment`
 * (a power of two, default 4096), as `O_DIRECT` reads and writes need. The memory is never
 * moved by the garbage collector, so the alignment holds for the Buffer's life.
 * Throws where the native addon is not available (it is what can see addresses).
 */
export function alignedBuffer(size: number, alignment = 4096): Buffer {
  validateLength(size, 'size')
  validateInteger(alignment, 'alignment', 1, 1 << 21)
  if ((alignment & (alignment - 1)) !== 0) throw invalidArgValue('alignment', 'must be a power of two', alignment)
  const loaded = loadBinding()
  if (!loaded.binding) throw new Error(`caio: alignedBuffer needs the native addon: ${loaded.reason}`)
  const raw = Buffer.alloc(size + alignment)
  const skip = (alignment - (loaded.binding.address(raw) % alignment)) % alignment
  return raw.subarray(skip, skip + size)
}

/** Validates an operation's options object and returns its signal. */
function opSignal(options: OpOptions): AbortSignal | undefined {
  return validateSignal(validateObject<OpOptions>(options, 'options').signal, 'options.signal')
}

function rejectAborted(signal: AbortSignal): Promise<never> {
  return Promise.reject(new AbortError(undefined, { cause: signal.reason }))
}

type EngineOptions = ConstructorParameters<typeof JsEngine>[0]

function openEngine(name: BackendName, options: EngineOptions): Engine {
  if (name === 'js') return new JsEngine(options)
  const reason = unavailableReason(name)
  const binding = loadBinding().binding
  if (reason !== undefined || binding === undefined) {
    throw new Error(`caio: the ${name} backend is not available here: ${reason ?? 'the native addon did not load'}${fixFor(name, reason)}`)
  }
  return new NativeEngine(binding, name, options)
}

function fixFor(name: BackendName, reason: string | undefined): string {
  if (name === 'uring' && reason?.includes('seccomp')) {
    return ". To allow io_uring in a container: docker run --security-opt seccomp=unconfined …, or in Kubernetes securityContext.seccompProfile.type: Unconfined. Or use { backend: 'thread' }."
  }
  return ". Leave options.backend unset to choose automatically."
}

function openBest(options: EngineOptions): [BackendName, Engine] {
  for (const name of candidates()) {
    try {
      return [name, openEngine(name, options)]
    } catch (error) {
      warnFallback(name, error)
    }
  }
  return ['js', new JsEngine(options)]
}
