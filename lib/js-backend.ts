/**
 * The `js` backend: the same semantics as the native ones, in TypeScript over `node:fs`'s
 * callback API (the fastest `fs` offers). It works wherever Node, Bun or Deno run, and it
 * is the floor every native backend must beat.
 *
 * Work is queued as tasks — one operation, or one linked chain of a batch run in order —
 * and at most `maxRequests` tasks are in flight. `fs` cannot cancel an operation it
 * started, so an AbortSignal only removes tasks still waiting in the queue; one already
 * handed to `fs` settles with its real result.
 */
// Named imports: `import * as fs` compiles to an object whose every property is a getter,
// one more call per operation.
import { fdatasync, fstat, fsync, ftruncate, read, readv, write, writev } from 'node:fs'
import { constants } from 'node:os'

import { AbortListeners } from './abort'
import { Fulfil } from './engine'
import type { Engine, EngineOptions, Operand, PreparedBatch } from './engine'
import { errorFromResult } from './errors'
import { byteLengthOf, plainBytes } from './validate'
import type { Offset } from './validate'
import { BATCH_FIELDS, LINK_FLAG, Opcode, RESULT_ABORTED, RESULT_CLOSED, RESULT_UNSUPPORTED } from './wire'

const ECANCELED = -125
const EFBIG = -27
const EIO = -5
const EINVAL = -22

/** Why a task settles without running. */
type Dropped = typeof RESULT_ABORTED | typeof RESULT_CLOSED

/** Work the queue holds: one operation, or one linked chain of a batch. */
interface Task {
  /** Starts the work; calls `finish` exactly once when it is over. */
  run(finish: () => void): void
  /** Settles the task without running it, as aborted or closed. */
  drop(why: Dropped): void
  /** Drops the task if it aborts while queued. */
  readonly signal: AbortSignal | undefined
  /** Where it sits in the queue, counted from the first task ever queued; -1 when not queued. */
  position: number
}

const OS_ERRNO = constants.errno

/**
 * The errno an `fs` error carries, or the one its `code` names (Deno's `fs` gives a code
 * and no errno), or `fallback` when it carries neither.
 */
function errnoOf(error: unknown, fallback: number): number {
  const { errno, code } = error as NodeJS.ErrnoException
  if (typeof errno === 'number') return errno
  const named = typeof code === 'string' ? (OS_ERRNO as Record<string, number | undefined>)[code] : undefined
  return named !== undefined ? -named : fallback
}

/** An operand as `fs` takes it: the plain bytes of its view, or of a vectored operation's buffers. */
type Bytes = Uint8Array | Uint8Array[] | undefined

/** The plain bytes of `view` (see `plainBytes`): what `fs`, which trusts `byteLength`, may be handed. */
function plainOperand(view: Operand): Bytes {
  if (view === undefined) return undefined
  if (!Array.isArray(view)) return plainBytes(view, byteLengthOf(view))
  const buffers: Uint8Array[] = []
  // Element 0 is the iovec area, which only the native engines use.
  for (let i = 1; i < view.length; i++) {
    const buffer = view[i] as ArrayBufferView
    buffers.push(plainBytes(buffer, byteLengthOf(buffer)))
  }
  return buffers
}

/**
 * `readv` at an offset past 2^53, which `fs.readv` cannot take (it reads at the file
 * position when the position is not a number): one `fs.read` per buffer, in order, until
 * one comes back short, as `preadv(2)` fills them.
 */
function readEach(fd: number, buffers: Uint8Array[], offset: bigint, done: (result: number) => void): void {
  let total = 0
  let next = 0
  const step = (): void => {
    while (next < buffers.length && (buffers[next] as Uint8Array).byteLength === 0) next++
    if (next === buffers.length) return done(total)
    const target = buffers[next++] as Uint8Array
    read(fd, target, 0, target.byteLength, offset + BigInt(total), (error, count) => {
      if (error !== null) return done(total > 0 ? total : errnoOf(error, EIO))
      total += count
      if (count < target.byteLength) done(total)
      else step()
    })
  }
  step()
}

/**
 * Runs one operation on `bytes`, the plain bytes of its operand (`undefined` for a sync);
 * `done` gets a byte count or a negative errno, or {@link RESULT_UNSUPPORTED} for what
 * `node:fs` has no call for.
 */
function perform(opcode: Opcode, fd: number, offset: Offset, bytes: Bytes, done: (result: number) => void): void {
  const settle = (error: NodeJS.ErrnoException | null, count?: number): void => {
    done(error ? errnoOf(error, EIO) : (count ?? 0))
  }
  try {
    switch (opcode) {
      case Opcode.Read: {
        const target = bytes as Uint8Array
        // fs.read answers a zero-length read without asking the OS, where pread(2) would
        // check the descriptor: read one byte at 0 into scratch space to ask, report 0.
        const length = byteLengthOf(target)
        if (length === 0) read(fd, Buffer.allocUnsafe(1), 0, 1, 0, (error) => settle(error, 0))
        else read(fd, target, 0, length, offset, settle)
        return
      }
      case Opcode.Write: {
        const source = bytes as Uint8Array
        if (typeof offset === 'bigint') {
          // fs.write takes no bigint position. Past 2^53 bytes no disk file system Node runs
          // on can store data and the kernel answers EFBIG — once it has checked the
          // descriptor, which an empty write asks about.
          write(fd, Buffer.alloc(0), 0, 0, 0, (error) => (error ? settle(error) : done(EFBIG)))
        } else write(fd, source, 0, byteLengthOf(source), offset, settle)
        return
      }
      case Opcode.Fsync:
        fsync(fd, (error) => settle(error))
        return
      case Opcode.Fdatasync:
        fdatasync(fd, (error) => settle(error))
        return
      case Opcode.Readv: {
        const buffers = bytes as Uint8Array[]
        // libuv refuses an empty readv (EINVAL) where preadv(2) answers 0 once it has
        // checked the descriptor, which fstat asks about without reading anything.
        if (buffers.length === 0) fstat(fd, (error) => settle(error, 0))
        else if (typeof offset === 'bigint') readEach(fd, buffers, offset, done)
        else readv(fd, buffers, offset, settle)
        return
      }
      case Opcode.Writev: {
        const buffers = bytes as Uint8Array[]
        // As for write: past 2^53 the kernel answers EFBIG once the descriptor checked out;
        // an empty write asks about the descriptor where an empty fs.writev would not.
        if (typeof offset === 'bigint') write(fd, Buffer.alloc(0), 0, 0, 0, (error) => (error ? settle(error) : done(EFBIG)))
        else if (buffers.length === 0) write(fd, Buffer.alloc(0), 0, 0, offset, (error) => settle(error, 0))
        else writev(fd, buffers, offset, settle)
        return
      }
      case Opcode.RegisterFiles: {
        // node:fs has nothing to register with: every descriptor is checked to be open, as
        // io_uring_register checks them, and then used as it is.
        const raw = bytes as Uint8Array
        const fds = new Int32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4)
        const check = (i: number): void => {
          if (i === fds.length) return done(0)
          fstat(fds[i] as number, (error) => (error ? settle(error) : check(i + 1)))
        }
        check(0)
        return
      }
      case Opcode.RegisterBuffers:
      case Opcode.UnregisterBuffers:
      case Opcode.UnregisterFiles:
        // Ordinary I/O on the same memory: there is nothing to register or let go of.
        process.nextTick(done, 0)
        return
      case Opcode.Ftruncate:
        // fs.ftruncate takes no bigint: past 2^53 bytes, EFBIG as for a write there.
        if (typeof offset === 'bigint') fstat(fd, (error) => (error ? settle(error) : done(EFBIG)))
        else ftruncate(fd, offset, (error) => settle(error))
        return
      default:
        // fallocate, sync_file_range, fadvise: node:fs has none of them.
        process.nextTick(done, RESULT_UNSUPPORTED)
        return
    }
  } catch (error) {
    // fs checks some limits synchronously (Node 22: a read whose end passes 2^63) that
    // ours let through because the kernel answers them: report EINVAL as the kernel would,
    // on this operation alone, asynchronously.
    process.nextTick(done, errnoOf(error, EINVAL))
  }
}

/** What a fulfilled single operation resolves with; `bytes` is the true extent of its view. */
function fulfilment(fulfil: Fulfil, bytes: Bytes, count: number): unknown {
  switch (fulfil) {
    case Fulfil.Count:
      return count
    case Fulfil.View: {
      // Only `ctx.read` asks for the view, and its view is a Buffer it made.
      const buffer = bytes as Buffer
      return count === byteLengthOf(buffer) ? buffer : buffer.subarray(0, count)
    }
    default:
      return undefined
  }
}

/** The `js` backend's {@link Engine}. */
export class JsEngine implements Engine {
  readonly poolSize = undefined
  readonly sqpoll = false
  readonly #maxRequests: number
  #inFlight = 0
  /** Queued tasks from `#queueHead` on; a task dropped while queued leaves `undefined`. */
  #queue: Array<Task | undefined> = []
  #queueHead = 0
  /** Slots cut from the front of `#queue` so far: a queued task sits at `position - #queueBase`. */
  #queueBase = 0
  #closing = false
  #closeWaiters: Array<() => void> = []
  readonly #aborts = new AbortListeners<Task>((task) => this.#drop(task, RESULT_ABORTED))
  /** Every task's `finish`: a task calls it exactly once, so one function serves them all. */
  readonly #finish = (): void => {
    this.#inFlight--
    this.#pump()
  }

  constructor(options: EngineOptions) {
    this.#maxRequests = options.maxRequests
  }

  start(opcode: Opcode, fd: number, offset: Offset, view: Operand, _priority: number, fulfil: Fulfil, signal: AbortSignal | undefined): Promise<unknown> {
    if (this.#closing || view === undefined) return this.#enqueue(opcode, fd, offset, undefined, fulfil, signal)
    // fs trusts a view's own byteLength, which a subclass can make lie: hand it plain bytes
    // and their real length.
    if (opcode !== Opcode.Read) return this.#enqueue(opcode, fd, offset, plainOperand(view), fulfil, signal)
    const target = view as ArrayBufferView
    const length = byteLengthOf(target)
    const bytes = plainBytes(target, length)
    if (length > 0 && this.#inFlight < this.#maxRequests && this.#queueHead === this.#queue.length) {
      return this.#readNow(fd, offset, bytes, length, fulfil)
    }
    return this.#enqueue(opcode, fd, offset, bytes, fulfil, signal)
  }

  // The common case, a read with a free slot, without the task machinery: what a bare
  // Promise around fs.read allocates, and nothing more.
  #readNow(fd: number, offset: Offset, bytes: Uint8Array, length: number, fulfil: Fulfil): Promise<unknown> {
    this.#inFlight++
    return new Promise((resolve, reject) => {
      try {
        read(fd, bytes, 0, length, offset, (error, count) => {
          this.#inFlight--
          if (error !== null) reject(errorFromResult(errnoOf(error, EIO), Opcode.Read, fd))
          else resolve(fulfil === Fulfil.Count ? count : fulfilment(fulfil, bytes, count))
          if (this.#queueHead < this.#queue.length || this.#closing) this.#pump()
        })
      } catch (error) {
        this.#readThrew(error, fd, reject)
      }
    })
  }

  /** A read fs refused synchronously: as in `perform`, a limit fs checks is the kernel's EINVAL. */
  #readThrew(error: unknown, fd: number, reject: (reason: unknown) => void): void {
    this.#inFlight--
    reject(errorFromResult(errnoOf(error, EINVAL), Opcode.Read, fd))
  }

  /**
   * Runs one operation as a task: now if a slot is free and nothing waits, else queued.
   * Rejects it at once on a closing context. Out of line, so that `start` stays small
   * enough for V8 to inline into its callers.
   */
  #enqueue(opcode: Opcode, fd: number, offset: Offset, bytes: Bytes, fulfil: Fulfil, signal: AbortSignal | undefined): Promise<unknown> {
    if (this.#closing) return Promise.reject(errorFromResult(RESULT_CLOSED, opcode, fd))
    return new Promise((resolve, reject) => {
      this.#schedule({
        run(finish) {
          perform(opcode, fd, offset, bytes, (result) => {
            if (result < 0) reject(errorFromResult(result, opcode, fd))
            else resolve(fulfilment(fulfil, bytes, result))
            finish()
          })
        },
        drop(why) {
          reject(errorFromResult(why, opcode, fd, signal))
        },
        signal,
        position: -1,
      })
    })
  }

  submitBatch(batch: PreparedBatch, signal: AbortSignal | undefined): Promise<Float64Array> {
    // A closed-context error names no operation, so the opcode and descriptor are placeholders.
    if (this.#closing) return Promise.reject(errorFromResult(RESULT_CLOSED, Opcode.Read, -1))
    return new Promise((resolve) => {
      const { descriptor, views, count } = batch
      const results = new Float64Array(count)
      let remaining = count
      if (count === 0) return resolve(results)
      const record = (position: number, value: number): void => {
        results[position] = value
        if (--remaining === 0) resolve(results)
      }
      let first = 0
      while (first < count) {
        let end = first
        while (end + 1 < count && (descriptor[end * BATCH_FIELDS] as number) & LINK_FLAG) end++
        const [from, to] = [first, end]
        this.#schedule({
          run(finish) {
            const step = (position: number): void => {
              if (position > to) return finish()
              const field = position * BATCH_FIELDS
              const opcode = (descriptor[field] as number) & 0xff
              const [high, low] = [descriptor[field + 2] as number, descriptor[field + 3] as number]
              const offset = high < 2 ** 21 ? high * 2 ** 32 + low : (BigInt(high) << 32n) | BigInt(low)
              const bytes = plainOperand(views[position])
              perform(opcode, descriptor[field + 1] as number, offset, bytes, (result) => {
                record(position, result)
                if (result >= 0) return step(position + 1)
                // A failed link cancels the rest of its chain.
                for (let rest = position + 1; rest <= to; rest++) record(rest, ECANCELED)
                finish()
              })
            }
            step(from)
          },
          drop(why) {
            for (let position = from; position <= to; position++) record(position, why)
          },
          signal,
          position: -1,
        })
        first = end + 1
      }
    })
  }

  /** Runs `task` now if a slot is free and nothing waits before it, else queues it. */
  #schedule(task: Task): void {
    if (this.#inFlight < this.#maxRequests && this.#queueHead === this.#queue.length) {
      this.#inFlight++
      task.run(this.#finish)
      return
    }
    task.position = this.#queueBase + this.#queue.length
    this.#queue.push(task)
    if (task.signal !== undefined) this.#aborts.add(task.signal, task)
  }

  /** Settles a task that is still queued without running it; one that left the queue is not touched. */
  #drop(task: Task, why: Dropped): void {
    if (task.position < 0) return
    this.#queue[task.position - this.#queueBase] = undefined
    this.#dequeued(task)
    task.drop(why)
  }

  /** `task` left the queue: it no longer waits for its signal. */
  #dequeued(task: Task): void {
    task.position = -1
    if (task.signal !== undefined) this.#aborts.delete(task.signal, task)
  }

  #pump(): void {
    while (this.#inFlight < this.#maxRequests && this.#queueHead < this.#queue.length) {
      const task = this.#queue[this.#queueHead]
      this.#queue[this.#queueHead++] = undefined
      if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
        this.#queueBase += this.#queueHead
        this.#queue = this.#queue.slice(this.#queueHead)
        this.#queueHead = 0
      }
      if (task === undefined) continue // dropped while queued
      this.#dequeued(task)
      this.#inFlight++
      task.run(this.#finish)
    }
    if (this.#closing && this.#inFlight === 0) {
      for (const resolve of this.#closeWaiters.splice(0)) resolve()
    }
  }

  fixedUse(): { buffers: number; files: number } {
    return { buffers: 0, files: 0 }
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#closeWaiters.push(resolve)
      if (!this.#closing) {
        this.#closing = true
        const waiting = this.#queue.slice(this.#queueHead)
        this.#queueBase += this.#queue.length
        this.#queue = []
        this.#queueHead = 0
        for (const task of waiting) {
          if (task === undefined) continue
          this.#dequeued(task)
          task.drop(RESULT_CLOSED)
        }
      }
      this.#pump()
    })
  }
}
