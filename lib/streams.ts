/**
 * Streams over a FileHandle: Node `Readable`s and `Writable`s with the options of
 * `filehandle.createReadStream()` / `createWriteStream()`, which keep several reads ahead
 * of the consumer (or writes behind the producer) in flight at once — Node's own fs streams
 * keep one — within the stream's backpressure.
 *
 * A stream with a `start` works at positions of its own, so its operations may run in any
 * order; one without works at the file position, where order is everything, so it keeps
 * exactly one in flight — as does a write stream on a handle that appends, where the
 * kernel ignores positions.
 */
import { Readable, Writable } from 'node:stream'

import { invalidArgType, outOfRange } from './errors'
import { checkAborted } from './file-io'
import { encodingOption } from './fs-args'
import { validateBoolean, validateSignal } from './validate'

/** Reads (or writes) one positioned stream keeps in flight. */
const DEPTH = 4

/** What a stream needs of its FileHandle. */
export interface StreamSource {
  /**
   * The descriptor appends (`O_APPEND`): each write lands at the end of the file in the
   * order the writes run, so a write stream keeps one in flight even with a `start`.
   */
  readonly appending: boolean
  readAt(view: Uint8Array, position: number | null): Promise<number>
  writeAt(view: Uint8Array, position: number | null): Promise<number>
  sync(): Promise<void>
  close(): Promise<void>
}

export interface ReadStreamOptions {
  encoding?: BufferEncoding | null
  autoClose?: boolean
  emitClose?: boolean
  start?: number
  end?: number
  highWaterMark?: number
  signal?: AbortSignal
}

export interface WriteStreamOptions {
  encoding?: BufferEncoding | null
  autoClose?: boolean
  emitClose?: boolean
  start?: number
  highWaterMark?: number
  flush?: boolean
  signal?: AbortSignal
}

function checkOptional(value: unknown, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value)
  if (!Number.isInteger(value) && value !== Infinity) throw outOfRange(name, 'an integer', value)
  if (value < min || value > max) throw outOfRange(name, `>= ${min} && <= ${max}`, value)
  return value
}

/** A read in flight: where it reads, how much, and its outcome. */
interface Pending {
  bytes: Buffer
  /** Where the read starts, or `null` for the file position. */
  position: number | null
  done: Promise<number>
}

/** `filehandle.createReadStream()`: the file from `start` (or the file position) to `end`, inclusive. */
export class FileReadStream extends Readable {
  readonly #source: StreamSource
  readonly #autoClose: boolean
  readonly #chunk: number
  /** Where the next read starts, or `null` for the file position. */
  #next: number | null
  /** Bytes still to read before `end`. */
  #left: number
  readonly #pending: Pending[] = []
  #ended = false
  #pumping = false
  /** Bytes handed to the consumer so far. */
  bytesRead = 0

  constructor(source: StreamSource, options: ReadStreamOptions = {}) {
    if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'of type object', options)
    const start = checkOptional(options.start, 'start', 0)
    const end = checkOptional(options.end, 'end', start ?? 0, Infinity) ?? Infinity
    const highWaterMark = checkOptional(options.highWaterMark, 'highWaterMark', 1) ?? 64 * 1024
    const encoding = encodingOption(options.encoding)
    const signal = validateSignal(options.signal, 'options.signal')
    const autoClose = options.autoClose === undefined ? true : validateBoolean(options.autoClose, 'options.autoClose')
    // As Node's fs streams: one that leaves the descriptor open is not destroyed at its end,
    // so it emits 'close' (the descriptor was closed) only when destroyed.
    super({ highWaterMark, encoding: encoding ?? undefined, emitClose: options.emitClose ?? true, autoDestroy: autoClose, signal })
    this.#source = source
    this.#autoClose = autoClose
    this.#chunk = highWaterMark
    this.#next = start ?? null
    this.#left = end === Infinity ? Infinity : end - (start ?? 0) + 1
  }

  /** Starts reads up to the depth allowed, then hands over what came back, in order. */
  override _read(): void {
    const depth = this.#next === null ? 1 : DEPTH
    while (!this.#ended && this.#left > 0 && this.#pending.length < depth) {
      const size = Math.min(this.#chunk, this.#left)
      this.#pending.push(this.#startRead(Buffer.allocUnsafe(size), this.#next))
      if (this.#next !== null) this.#next += size
      this.#left -= size
    }
    void this.#pump()
  }

  /**
   * Starts a read into `bytes`. Its rejection is marked handled at once: a read ahead may
   * fail before the one at the head is awaited, and one past end of file is never awaited.
   */
  #startRead(bytes: Buffer, position: number | null): Pending {
    const done = this.#source.readAt(bytes, position)
    done.catch(() => undefined)
    return { bytes, position, done }
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return
    this.#pumping = true
    try {
      while (this.#pending.length > 0) {
        const head = this.#pending[0]!
        const count = await head.done
        if (this.destroyed) return
        if (count === 0) {
          this.#end()
          break
        }
        if (count < head.bytes.length) {
          // Short, yet not the end: a pipe gives what it has, and io_uring may stop short
          // inside a file. The rest of this read's range is read again, before any read
          // after it is handed over; only a read of 0 bytes is the end.
          const position = head.position === null ? null : head.position + count
          this.#pending[0] = this.#startRead(head.bytes.subarray(count), position)
        } else {
          this.#pending.shift()
        }
        this.bytesRead += count
        if (!this.push(count === head.bytes.length ? head.bytes : head.bytes.subarray(0, count))) return
      }
      if (this.#left <= 0 && !this.#ended) this.#end()
    } catch (error) {
      this.destroy(error as Error)
    } finally {
      this.#pumping = false
    }
    // Room again (push said yes) and more to read: Readable calls _read when it wants more.
  }

  /** End of file (or of the range): what is still in flight lies past it. */
  #end(): void {
    if (this.#ended) return
    this.#ended = true
    this.#left = 0
    this.#pending.length = 0
    this.push(null)
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const inFlight = this.#pending.splice(0).map((pending) => pending.done.catch(() => 0))
    void Promise.all(inFlight).then(async () => {
      if (this.#autoClose) await this.#source.close().catch((closing: Error) => (error ??= closing))
      callback(error)
    })
  }
}

/** `filehandle.createWriteStream()`: writes from `start` (or the file position) on. */
export class FileWriteStream extends Writable {
  readonly #source: StreamSource
  readonly #autoClose: boolean
  readonly #flush: boolean
  readonly #signal: AbortSignal | undefined
  #next: number | null
  readonly #inFlight = new Set<Promise<void>>()
  #failed: Error | undefined
  /** Bytes the file has taken so far. */
  bytesWritten = 0

  constructor(source: StreamSource, options: WriteStreamOptions = {}) {
    if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'of type object', options)
    const start = checkOptional(options.start, 'start', 0)
    const highWaterMark = checkOptional(options.highWaterMark, 'highWaterMark', 1) ?? 16 * 1024
    const encoding = encodingOption(options.encoding) ?? 'utf8'
    const signal = validateSignal(options.signal, 'options.signal')
    const autoClose = options.autoClose === undefined ? true : validateBoolean(options.autoClose, 'options.autoClose')
    // Not destroyed at its end unless it closes the descriptor, as Node's (see FileReadStream).
    super({ highWaterMark, defaultEncoding: encoding, emitClose: options.emitClose ?? true, decodeStrings: true, autoDestroy: autoClose, signal })
    this.#source = source
    this.#autoClose = autoClose
    this.#flush = options.flush === undefined ? false : validateBoolean(options.flush, 'options.flush')
    this.#signal = signal
    this.#next = start ?? null
  }

  /** Writes all of `bytes` at `position` (or the file position), going on after short writes. */
  async #writeAll(bytes: Uint8Array, position: number | null): Promise<void> {
    let done = 0
    while (done < bytes.length) {
      const count = await this.#source.writeAt(bytes.subarray(done), position === null ? null : position + done)
      done += count
      this.bytesWritten += count
    }
  }

  #start(bytes: Uint8Array, callback: (error?: Error | null) => void): void {
    if (this.#failed !== undefined) {
      callback(this.#failed)
      return
    }
    try {
      checkAborted(this.#signal)
    } catch (error) {
      callback(error as Error)
      return
    }
    const position = this.#next
    if (this.#next !== null) this.#next += bytes.length
    const write = this.#writeAll(bytes, position).then(
      () => undefined,
      (error: Error) => {
        this.#failed ??= error
      },
    )
    this.#inFlight.add(write)
    void write.then(() => this.#inFlight.delete(write))
    const depth = position === null || this.#source.appending ? 1 : DEPTH
    if (this.#inFlight.size < depth) {
      callback()
    } else {
      // Full: the producer waits for the oldest to finish (write-behind, bounded).
      void Promise.race(this.#inFlight).then(() => callback(this.#failed))
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#start(chunk, callback)
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.#start(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk)), callback)
  }

  async #drained(): Promise<Error | undefined> {
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight)
    return this.#failed
  }

  override _final(callback: (error?: Error | null) => void): void {
    void this.#drained().then(async (failed) => {
      if (failed === undefined && this.#flush) {
        try {
          await this.#source.sync()
        } catch (error) {
          callback(error as Error)
          return
        }
      }
      callback(failed)
    })
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    void this.#drained().then(async () => {
      if (this.#autoClose) await this.#source.close().catch((closing: Error) => (error ??= closing))
      callback(error)
    })
  }
}
