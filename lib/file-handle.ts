/**
 * `FileHandle`: an open file, as `node:fs/promises` has it — the same methods, arguments,
 * results (null-prototype `{ bytesRead, buffer }` objects) and errors — doing its I/O
 * through a caio context.
 */
import { EventEmitter } from 'node:events'
import { createInterface } from 'node:readline'
import type { Interface } from 'node:readline'
import { ReadableStream } from 'node:stream/web'
import { constants } from 'node:fs'
import type { BigIntStats, Stats } from 'node:fs'
import { constants as osConstants } from 'node:os'

import { Fulfil } from './engine'
import { invalidArgType, invalidArgValue, outOfRange, systemError } from './errors'
import type { CodedError } from './errors'
import { readAt, readFileSettings, readWhole, vectoredAt, writeAt, writeData, writeFileSettings, writesOf } from './file-io'
import type { Files, WriteFileData } from './file-io'
import { checkInteger } from './fs-args'
import { FileReadStream, FileWriteStream } from './streams'
import type { ReadStreamOptions, StreamSource, WriteStreamOptions } from './streams'
import { validateBoolean } from './validate'
import type { Offset } from './validate'
import { Opcode } from './wire'

/** Where a read or write of a FileHandle happens: a position, or `null` for the file position. */
export type Position = number | bigint | null

export interface ReadResult<T extends ArrayBufferView> {
  bytesRead: number
  buffer: T
}

export interface WriteResult<T> {
  bytesWritten: number
  buffer: T
}

export interface ReadOptions<T extends ArrayBufferView = Buffer> {
  buffer?: T
  offset?: number | null
  length?: number | null
  position?: Position
}

const DEFAULT_READ_SIZE = 16384
const { EINVAL } = osConstants.errno

function closedFileError(syscall: string): CodedError & { syscall: string } {
  const error = new Error('file closed') as CodedError & { syscall: string }
  error.code = 'EBADF'
  error.syscall = syscall
  return error
}

/** A position argument as Node checks it: `null` for the file position. */
function checkPosition(position: unknown): Offset | null {
  if (position === null || position === undefined) return null
  if (typeof position === 'bigint') {
    if (position < -1n || position > 2n ** 63n - 1n) throw outOfRange('position', `>= -1n && <= ${2n ** 63n - 1n}n`, position)
    return position === -1n ? null : position
  }
  const checked = checkInteger(position, 'position', -1)
  return checked === -1 ? null : checked
}

function checkView(buffer: unknown): ArrayBufferView {
  if (!ArrayBuffer.isView(buffer)) throw invalidArgType('buffer', 'an instance of Buffer, TypedArray, or DataView', buffer)
  return buffer
}

/** The buffers of `readv`/`writev`, as Node's `validateBufferArray` checks them. */
function checkViews(buffers: unknown): readonly ArrayBufferView[] {
  if (!Array.isArray(buffers) || !buffers.every((view) => ArrayBuffer.isView(view))) throw invalidArgType('buffers', 'an ArrayBufferView[]', buffers)
  return buffers as ArrayBufferView[]
}

/** `offset` and `length` of a read into `byteLength` bytes, as Node's `validateOffsetLengthRead` checks them. */
function checkReadSpan(offset: number, length: unknown, byteLength: number): number {
  if (typeof length === 'number' && length < 0) throw outOfRange('length', '>= 0', length)
  if (typeof length === 'number' && offset + length > byteLength) throw outOfRange('length', `<= ${byteLength - offset}`, length)
  // Node passes any other length on to its binding, which asserts; a clear error is kinder.
  return checkInteger(length, 'length', 0)
}

/** `offset` and `length` of a write from `byteLength` bytes, as Node's `validateOffsetLengthWrite` checks them. */
function checkWriteSpan(offset: number, length: number, byteLength: number): number {
  if (offset > byteLength) throw outOfRange('offset', `<= ${byteLength}`, offset)
  if (length > byteLength - offset) throw outOfRange('length', `<= ${byteLength - offset}`, length)
  if (length < 0) throw outOfRange('length', '>= 0', length)
  return checkInteger(length, 'length', 0, 2 ** 31 - 1)
}

/**
 * The encoding of `FileHandle.write(string, position, encoding)`: Node rejects hex text of
 * odd length and writes any name it does not know as UTF-8.
 */
function stringEncoding(text: string, encoding: unknown): BufferEncoding {
  if (typeof encoding !== 'string' || !Buffer.isEncoding(encoding)) return 'utf8'
  if (encoding.toLowerCase() === 'hex' && text.length % 2 !== 0) throw invalidArgValue('encoding', `is invalid for data of length ${text.length}`, encoding)
  return encoding
}

function bytesOf(view: ArrayBufferView, offset: number, length: number): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset + offset, length)
}

type Span = { offset?: unknown; length?: unknown; position?: unknown }

/** An open file. Close it (or `await using` it) when done. */
export class FileHandle extends EventEmitter implements AsyncDisposable {
  readonly #files: Files
  #fd: number
  /** Opened with `O_APPEND`: the kernel puts every write at the end, whatever its position. */
  readonly #appending: boolean
  /** Calls in progress; the descriptor is closed when the last one ends after `close()`. */
  #busy = 0
  #closing: Promise<void> | undefined
  #closeNow: (() => void) | undefined

  /** @internal Made by `open`, with the flags it opened `fd` with; not for users to construct. */
  constructor(files: Files, fd: number, flags = 0) {
    super()
    this.#files = files
    this.#fd = fd
    this.#appending = (flags & constants.O_APPEND) !== 0
  }

  /** The descriptor, or -1 once closed. */
  get fd(): number {
    return this.#fd
  }

  /** Runs `body` with the descriptor, keeping a close from taking it away meanwhile. */
  async #use<T>(syscall: string, body: (fd: number) => Promise<T>): Promise<T> {
    if (this.#fd === -1) throw closedFileError(syscall)
    this.#busy++
    try {
      return await body(this.#fd)
    } finally {
      if (--this.#busy === 0 && this.#closeNow !== undefined) this.#closeNow()
    }
  }

  read<T extends ArrayBufferView = Buffer>(buffer: T, offset?: number | null, length?: number | null, position?: Position): Promise<ReadResult<T>>
  read<T extends ArrayBufferView = Buffer>(buffer: T, options?: Omit<ReadOptions<T>, 'buffer'>): Promise<ReadResult<T>>
  read<T extends ArrayBufferView = Buffer>(options?: ReadOptions<T>): Promise<ReadResult<T>>
  read(bufferOrOptions?: unknown, offsetOrOptions?: unknown, length?: unknown, position?: unknown): Promise<ReadResult<ArrayBufferView>> {
    return this.#use('read', async (fd) => {
      // The three call forms, with defaults only for `undefined` (as destructuring has them).
      let view: ArrayBufferView
      let offset = offsetOrOptions
      if (ArrayBuffer.isView(bufferOrOptions)) view = bufferOrOptions
      else {
        if (bufferOrOptions !== undefined && (typeof bufferOrOptions !== 'object' || Array.isArray(bufferOrOptions))) throw invalidArgType('options', 'of type object', bufferOrOptions)
        const o = (bufferOrOptions ?? {}) as Span & { buffer?: unknown }
        view = checkView(o.buffer === undefined ? Buffer.alloc(DEFAULT_READ_SIZE) : o.buffer)
        offset = o.offset === undefined ? 0 : o.offset
        length = o.length === undefined ? view.byteLength - (offset as number) : o.length
        position = o.position === undefined ? null : o.position
      }
      if (offset !== null && typeof offset === 'object') {
        const o = offset as Span
        offset = o.offset === undefined ? 0 : o.offset
        length = o.length === undefined ? view.byteLength - (offset as number) : o.length
        position = o.position === undefined ? null : o.position
      }
      const start = offset === null || offset === undefined ? 0 : checkInteger(offset, 'offset', 0)
      length ??= view.byteLength - start
      if (length === 0) return { __proto__: null, bytesRead: 0, buffer: view } as ReadResult<ArrayBufferView>
      if (view.byteLength === 0) throw invalidArgValue('buffer', 'is empty and cannot be written', view)
      const count = checkReadSpan(start, length, view.byteLength)
      const bytesRead = await readAt(this.#files, fd, bytesOf(view, start, count), checkPosition(position))
      return { __proto__: null, bytesRead, buffer: view } as ReadResult<ArrayBufferView>
    })
  }

  write<T extends ArrayBufferView>(buffer: T, offset?: number | null, length?: number | null, position?: Position): Promise<WriteResult<T>>
  write<T extends ArrayBufferView>(buffer: T, options?: { offset?: number; length?: number; position?: Position }): Promise<WriteResult<T>>
  write(data: string, position?: Position, encoding?: BufferEncoding | null): Promise<WriteResult<string>>
  write(data: unknown, offsetOrOptions?: unknown, length?: unknown, position?: unknown): Promise<WriteResult<unknown>> {
    return this.#use('write', async (fd) => {
      if ((data as ArrayBufferView | undefined)?.byteLength === 0) return { __proto__: null, bytesWritten: 0, buffer: data } as WriteResult<unknown>
      if (ArrayBuffer.isView(data)) {
        let offset = offsetOrOptions
        if (typeof offset === 'object') {
          const o = (offset ?? {}) as Span
          offset = o.offset === undefined ? 0 : o.offset
          length = o.length === undefined ? data.byteLength - (offset as number) : o.length
          position = o.position === undefined ? null : o.position
        }
        const start = offset === null || offset === undefined ? 0 : checkInteger(offset, 'offset', 0)
        const count = checkWriteSpan(start, typeof length === 'number' ? length : data.byteLength - start, data.byteLength)
        const at = typeof position === 'number' || typeof position === 'bigint' ? checkPosition(position) : null
        const bytesWritten = await writeAt(this.#files, fd, bytesOf(data, start, count), at)
        return { __proto__: null, bytesWritten, buffer: data } as WriteResult<unknown>
      }
      if (typeof data !== 'string') throw invalidArgType('buffer', 'of type string or an instance of Buffer, TypedArray, or DataView', data)
      const bytes = Buffer.from(data, stringEncoding(data, length))
      const at = typeof offsetOrOptions === 'number' || typeof offsetOrOptions === 'bigint' ? checkPosition(offsetOrOptions) : null
      const bytesWritten = await writeAt(this.#files, fd, bytes, at)
      return { __proto__: null, bytesWritten, buffer: data } as WriteResult<unknown>
    })
  }

  /** `preadv`/`readv`: reads into each buffer in turn, from `position` (or the file position) on. */
  readv<T extends readonly ArrayBufferView[]>(buffers: T, position?: Position): Promise<{ bytesRead: number; buffers: T }> {
    return this.#use('readv', async (fd) => {
      checkViews(buffers)
      // libuv refuses a read into no buffers at all.
      if (buffers.length === 0) throw systemError(-EINVAL, 'read')
      const bytesRead = await vectoredAt(this.#files, Opcode.Readv, fd, buffers, checkPosition(position))
      return { __proto__: null, bytesRead, buffers } as { bytesRead: number; buffers: T }
    })
  }

  /** `pwritev`/`writev`: writes each buffer in turn, at `position` (or the file position) on. */
  writev<T extends readonly ArrayBufferView[]>(buffers: T, position?: Position): Promise<{ bytesWritten: number; buffers: T }> {
    return this.#use('writev', async (fd) => {
      checkViews(buffers)
      // Node answers an empty writev without asking the file.
      const bytesWritten = buffers.length === 0 ? 0 : await vectoredAt(this.#files, Opcode.Writev, fd, buffers, checkPosition(position))
      return { __proto__: null, bytesWritten, buffers } as { bytesWritten: number; buffers: T }
    })
  }

  /** The rest of the file from the file position: a Buffer, or a string with `encoding`. */
  readFile(options?: { encoding?: null; signal?: AbortSignal } | null): Promise<Buffer>
  readFile(options: { encoding: BufferEncoding; signal?: AbortSignal } | BufferEncoding): Promise<string>
  readFile(options?: { encoding?: BufferEncoding | null; signal?: AbortSignal } | BufferEncoding | null): Promise<string | Buffer>
  readFile(options?: unknown): Promise<string | Buffer> {
    return this.#use('readFile', (fd) => {
      const { encoding, signal } = readFileSettings(options)
      return readWhole(this.#files, fd, encoding, signal)
    })
  }

  /** Writes `data` from the file position on. */
  writeFile(data: WriteFileData, options?: { encoding?: BufferEncoding | null; signal?: AbortSignal } | BufferEncoding | null): Promise<void> {
    return this.#use('writeFile', async (fd) => {
      const settings = writeFileSettings(data, options, 'w')
      await writeData(writesOf(this.#files, fd), settings.data, settings.encoding, settings.signal)
    })
  }

  /** The same as {@link writeFile}: a FileHandle writes at its file position either way. */
  appendFile(data: WriteFileData, options?: { encoding?: BufferEncoding | null; signal?: AbortSignal } | BufferEncoding | null): Promise<void> {
    return this.writeFile(data, options)
  }

  stat(options?: { bigint?: false }): Promise<Stats>
  stat(options: { bigint: true }): Promise<BigIntStats>
  stat(options?: { bigint?: boolean }): Promise<Stats | BigIntStats> {
    return this.#use('fstat', (fd) => {
      const bigint = options?.bigint === undefined ? false : validateBoolean(options.bigint, 'options.bigint')
      return this.#files.ops.fstat(fd, bigint)
    })
  }

  /** `ftruncate`: cuts or extends the file to `len` bytes (negative counts as 0). */
  truncate(len = 0): Promise<void> {
    return this.#use('ftruncate', (fd) => this.#files.ops.ftruncate(fd, Math.max(0, checkInteger(len, 'len'))))
  }

  sync(): Promise<void> {
    return this.#use('fsync', (fd) => this.#files.engine.start(Opcode.Fsync, fd, 0, undefined, 0, Fulfil.Nothing, undefined) as Promise<void>)
  }

  datasync(): Promise<void> {
    return this.#use('fdatasync', (fd) => this.#files.engine.start(Opcode.Fdatasync, fd, 0, undefined, 0, Fulfil.Nothing, undefined) as Promise<void>)
  }

  /**
   * A Readable of the file from `start` (or the file position) to `end` inclusive, with
   * several reads in flight ahead of the consumer; closes this handle at its end unless
   * `autoClose: false`.
   */
  createReadStream(options?: ReadStreamOptions): FileReadStream {
    return new FileReadStream(this.#streamSource(), options)
  }

  /** A Writable into the file from `start` (or the file position), writing behind the producer. */
  createWriteStream(options?: WriteStreamOptions): FileWriteStream {
    return new FileWriteStream(this.#streamSource(), options)
  }

  /** The rest of the file from the file position, as a web `ReadableStream` of bytes. */
  readableWebStream(): ReadableStream<Uint8Array> {
    const source = this.#streamSource()
    return new ReadableStream({
      type: 'bytes',
      pull: async (controller): Promise<void> => {
        const bytes = Buffer.allocUnsafe(64 * 1024)
        const count = await source.readAt(bytes, null)
        if (count === 0) {
          controller.close()
          // A byte stream's pending read request must be answered even at its end.
          controller.byobRequest?.respond(0)
        } else {
          controller.enqueue(new Uint8Array(bytes.buffer, bytes.byteOffset, count))
        }
      },
    })
  }

  /** The file's lines, from `start` (or the file position), as `readline` gives them. */
  readLines(options?: ReadStreamOptions): Interface {
    return createInterface({ input: this.createReadStream(options), crlfDelay: Infinity })
  }

  #streamSource(): StreamSource {
    return {
      appending: this.#appending,
      readAt: (view, position) => this.#use('read', (fd) => readAt(this.#files, fd, view, position)),
      writeAt: (view, position) => this.#use('write', (fd) => writeAt(this.#files, fd, view, position)),
      sync: () => this.sync(),
      close: () => this.close(),
    }
  }

  /** Closes the descriptor once calls in progress have ended. Closing again resolves. */
  close(): Promise<void> {
    if (this.#fd === -1) return Promise.resolve()
    if (this.#closing !== undefined) return this.#closing
    const fd = this.#fd
    const finish = (): Promise<void> => {
      this.#fd = -1
      return this.#files.ops.close(fd)
    }
    this.#closing =
      this.#busy === 0
        ? finish()
        : new Promise<void>((resolve, reject) => {
            this.#closeNow = () => {
              this.#closeNow = undefined
              finish().then(resolve, reject)
            }
          })
    this.#closing = this.#closing.finally(() => {
      this.#closing = undefined
    })
    this.emit('close')
    return this.#closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}
