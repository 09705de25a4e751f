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
import * as fs from 'node:fs'

import { AbortError, closedError, SYSCALLS, systemError } from './errors'
import { Fulfil, Opcode, BATCH_FIELDS, RESULT_ABORTED, RESULT_CLOSED } from './engine'
import type { Engine, EngineOptions, PreparedBatch } from './engine'
import { plainBytes } from './validate'
import type { Offset } from './validate'

const ECANCELED = -125
const EFBIG = -27

interface Task {
  /** Starts the work; calls `finish` exactly once when it is over. */
  run(finish: () => void): void
  /** Settles the task without running it, as aborted or closed. */
  drop(why: typeof RESULT_ABORTED | typeof RESULT_CLOSED): void
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
  queued: boolean
}

/** Runs one operation; `done` gets a byte count or a negative errno. */
function perform(opcode: Opcode, fd: number, offset: Offset, buffer: ArrayBufferView | undefined, done: (result: number) => void): void {
  // fs trusts a view's own byteLength, which a subclass can make lie: hand it plain bytes.
  const view = buffer === undefined ? undefined : plainBytes(buffer)
  const settle = (error: NodeJS.ErrnoException | null, count?: number): void => {
    done(error ? (typeof error.errno === 'number' ? error.errno : -5) : (count ?? 0))
  }
  try {
    switch (opcode) {
      case Opcode.Read: {
        const target = view as NodeJS.ArrayBufferView
        // fs.read answers a zero-length read without asking the OS, where pread(2) would
        // check the descriptor: read one byte at 0 into scratch space to ask, report 0.
        if (target.byteLength === 0) fs.read(fd, Buffer.allocUnsafe(1), 0, 1, 0, (error) => settle(error, 0))
        else fs.read(fd, target, 0, target.byteLength, offset, settle)
        return
      }
      case Opcode.Write: {
        const source = view as NodeJS.ArrayBufferView
        if (typeof offset === 'bigint') {
          // fs.write takes no bigint position. Past 2^53 bytes no disk file system Node runs
          // on can store data and the kernel answers EFBIG — once it has checked the
          // descriptor, which an empty write asks about.
          fs.write(fd, Buffer.alloc(0), 0, 0, 0, (error) => (error ? settle(error) : done(EFBIG)))
        } else fs.write(fd, source, 0, source.byteLength, offset, settle)
        return
      }
      case Opcode.Fsync:
        fs.fsync(fd, (error) => settle(error))
        return
      case Opcode.Fdatasync:
        fs.fdatasync(fd, (error) => settle(error))
        return
    }
  } catch (error) {
    // fs validates synchronously; ours validated already, so this is an fs limit we did not
    // foresee: report it on this operation alone, asynchronously as the OS would.
    const errno = (error as NodeJS.ErrnoException).errno
    process.nextTick(done, typeof errno === 'number' ? errno : -22)
  }
}

export class JsEngine implements Engine {
  readonly poolSize = undefined
  readonly sqpoll = false
  readonly #maxRequests: number
  #inFlight = 0
  #queue: Array<Task | undefined> = []
  #queueHead = 0
  #closing = false
  #closeWaiters: Array<() => void> = []

  constructor(options: EngineOptions) {
    this.#maxRequests = options.maxRequests
  }

  start(opcode: Opcode, fd: number, offset: Offset, view: ArrayBufferView | undefined, _priority: number, fulfil: Fulfil, signal: AbortSignal | undefined): Promise<unknown> {
    if (opcode === Opcode.Read && this.#inFlight < this.#maxRequests && this.#queueHead === this.#queue.length && !this.#closing && plainBytes(view as ArrayBufferView).byteLength > 0) {
      return this.#readNow(fd, offset, view as ArrayBufferView, fulfil)
    }
    return new Promise((resolve, reject) => {
      if (this.#closing) return reject(closedError())
      this.#schedule({
        run(finish) {
          perform(opcode, fd, offset, view, (result) => {
            if (result < 0) reject(systemError(result, SYSCALLS[opcode], fd))
            else resolve(fulfilment(fulfil, view, result))
            finish()
          })
        },
        drop(why) {
          reject(why === RESULT_ABORTED ? new AbortError(undefined, { cause: signal?.reason }) : closedError())
        },
        signal,
        onAbort: undefined,
        queued: false,
      })
    })
  }

  // The common case, a read with a free slot, without the task machinery: one closure and
  // one Promise per read, as close to bare fs.read callbacks as a Promise API gets.
  #readNow(fd: number, offset: Offset, view: ArrayBufferView, fulfil: Fulfil): Promise<unknown> {
    this.#inFlight++
    const bytes = plainBytes(view)
    return new Promise((resolve, reject) => {
      try {
        fs.read(fd, bytes, 0, bytes.byteLength, offset, (error, count) => {
          this.#inFlight--
          if (error) reject(systemError(typeof error.errno === 'number' ? error.errno : -5, 'read', fd))
          else resolve(fulfil === Fulfil.Count ? count : fulfilment(fulfil, view, count))
          if (this.#queueHead < this.#queue.length || this.#closing) this.#pump()
        })
      } catch (error) {
        // fs checks some limits synchronously (Node 22: an offset whose end passes 2^63);
        // the kernel answers those with EINVAL, and so does every other backend.
        this.#inFlight--
        const errno = (error as NodeJS.ErrnoException).errno
        reject(systemError(typeof errno === 'number' ? errno : -22, 'read', fd))
      }
    })
  }

  submitBatch(batch: PreparedBatch, signal: AbortSignal | undefined): Promise<Float64Array> {
    return new Promise((resolve, reject) => {
      if (this.#closing) return reject(closedError())
      const { descriptor, views, count } = batch
      const results = new Float64Array(count)
      let remaining = count
      if (count === 0) return resolve(results)
      // One listener for the whole batch drops whichever of its chains are still queued.
      const tasks: Task[] = []
      const onAbort = (): void => {
        for (const task of tasks) this.#drop(task, RESULT_ABORTED)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      const record = (position: number, value: number): void => {
        results[position] = value
        if (--remaining > 0) return
        signal?.removeEventListener('abort', onAbort)
        resolve(results)
      }
      let first = 0
      while (first < count) {
        let end = first
        while (end + 1 < count && (descriptor[end * BATCH_FIELDS] as number) & 0x100) end++
        const [from, to] = [first, end]
        const task: Task = {
          run(finish) {
            const step = (position: number): void => {
              if (position > to) return finish()
              const field = position * BATCH_FIELDS
              const opcode = (descriptor[field] as number) & 0xff
              const [high, low] = [descriptor[field + 2] as number, descriptor[field + 3] as number]
              const offset = high < 2 ** 21 ? high * 2 ** 32 + low : (BigInt(high) << 32n) | BigInt(low)
              perform(opcode, descriptor[field + 1] as number, offset, views[position], (result) => {
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
          signal: undefined,
          onAbort: undefined,
          queued: false,
        }
        tasks.push(task)
        this.#schedule(task)
        first = end + 1
      }
    })
  }

  #schedule(task: Task): void {
    if (this.#inFlight < this.#maxRequests && this.#queueHead === this.#queue.length) {
      this.#run(task)
      return
    }
    task.queued = true
    this.#queue.push(task)
    const signal = task.signal
    if (signal !== undefined) {
      // One listener per signal, however many queued tasks share it.
      let tasks = this.#queuedBySignal.get(signal)
      if (tasks === undefined) {
        const waiting = new Set<Task>()
        tasks = waiting
        this.#queuedBySignal.set(signal, waiting)
        task.onAbort = (): void => {
          this.#queuedBySignal.delete(signal)
          for (const queued of [...waiting]) this.#drop(queued, RESULT_ABORTED)
        }
        signal.addEventListener('abort', task.onAbort, { once: true })
      } else {
        task.onAbort = this.#abortListeners.get(tasks)
      }
      this.#abortListeners.set(tasks, task.onAbort as () => void)
      tasks.add(task)
    }
  }

  #drop(task: Task, why: typeof RESULT_ABORTED | typeof RESULT_CLOSED): void {
    if (!task.queued) return
    const index = this.#queue.indexOf(task, this.#queueHead)
    if (index >= 0) this.#queue[index] = undefined
    this.#dequeued(task)
    task.drop(why)
  }

  #dequeued(task: Task): void {
    task.queued = false
    const signal = task.signal
    if (signal === undefined) return
    const tasks = this.#queuedBySignal.get(signal)
    if (tasks === undefined || !tasks.delete(task) || tasks.size > 0) return
    this.#queuedBySignal.delete(signal)
    if (task.onAbort) signal.removeEventListener('abort', task.onAbort)
  }

  readonly #queuedBySignal = new WeakMap<AbortSignal, Set<Task>>()
  readonly #abortListeners = new WeakMap<Set<Task>, () => void>()

  #run(task: Task): void {
    this.#inFlight++
    let finished = false
    task.run(() => {
      if (finished) return
      finished = true
      this.#inFlight--
      this.#pump()
    })
  }

  #pump(): void {
    while (this.#inFlight < this.#maxRequests && this.#queueHead < this.#queue.length) {
      const task = this.#queue[this.#queueHead]
      this.#queue[this.#queueHead++] = undefined
      if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#queueHead)
        this.#queueHead = 0
      }
      if (task === undefined) continue // dropped while queued
      this.#dequeued(task)
      this.#run(task)
    }
    if (this.#closing && this.#inFlight === 0) {
      for (const resolve of this.#closeWaiters.splice(0)) resolve()
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#closeWaiters.push(resolve)
      if (!this.#closing) {
        this.#closing = true
        const waiting = this.#queue.slice(this.#queueHead)
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

function fulfilment(fulfil: Fulfil, view: ArrayBufferView | undefined, count: number): unknown {
  switch (fulfil) {
    case Fulfil.Count:
      return count
    case Fulfil.Nothing:
      return undefined
    case Fulfil.View: {
      const buffer = view as Buffer
      return count === buffer.byteLength ? buffer : buffer.subarray(0, count)
    }
  }
}
