/**
 * The `js` backend: the same semantics as the native ones, in TypeScript over `node:fs`'s
 * callback API (the fastest `fs` offers). It works wherever Node, Bun or Deno run, and it
 * is the floor every native backend must beat.
 *
 * `fs` cannot cancel an operation it started, so an AbortSignal only removes operations
 * still waiting in this backend's own queue; one already handed to `fs` settles with its
 * real result.
 */
import * as fs from 'node:fs'

import { AbortError, closedError, SYSCALLS, systemError } from './errors'
import { Fulfil, Opcode } from './engine'
import type { Engine, EngineOptions } from './engine'
import type { Offset } from './validate'

interface Job {
  opcode: Opcode
  fd: number
  offset: Offset
  view: ArrayBufferView | undefined
  fulfil: Fulfil
  resolve: (value: unknown) => void
  reject: (error: Error) => void
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
  queued: boolean
}

export class JsEngine implements Engine {
  readonly poolSize = undefined
  readonly sqpoll = false
  readonly #maxRequests: number
  #inFlight = 0
  #queue: Job[] = []
  #queueHead = 0
  #closing = false
  #closeWaiters: Array<() => void> = []

  constructor(options: EngineOptions) {
    this.#maxRequests = options.maxRequests
  }

  start(opcode: Opcode, fd: number, offset: Offset, view: ArrayBufferView | undefined, _priority: number, fulfil: Fulfil, signal: AbortSignal | undefined): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (this.#closing) {
        reject(closedError())
        return
      }
      const job: Job = { opcode, fd, offset, view, fulfil, resolve, reject, signal, onAbort: undefined, queued: false }
      if (this.#inFlight < this.#maxRequests && this.#queueHead === this.#queue.length) {
        this.#run(job)
        return
      }
      job.queued = true
      this.#queue.push(job)
      if (signal !== undefined) {
        job.onAbort = () => this.#abortQueued(job)
        signal.addEventListener('abort', job.onAbort, { once: true })
      }
    })
  }

  #abortQueued(job: Job): void {
    if (!job.queued) return
    const index = this.#queue.indexOf(job, this.#queueHead)
    if (index >= 0) this.#queue.splice(index, 1)
    job.queued = false
    job.reject(new AbortError(undefined, { cause: job.signal?.reason }))
  }

  #run(job: Job): void {
    this.#inFlight++
    const done = (error: NodeJS.ErrnoException | null, count?: number): void => {
      this.#inFlight--
      if (error) job.reject(systemError(typeof error.errno === 'number' ? error.errno : -5, SYSCALLS[job.opcode]))
      else job.resolve(fulfilment(job, count ?? 0))
      this.#pump()
    }
    const { fd, view, offset } = job
    try {
      switch (job.opcode) {
        case Opcode.Read: {
          const target = view as NodeJS.ArrayBufferView
          // fs.read answers a zero-length read without asking the OS; a native backend
          // asks, so a bad descriptor fails the same way everywhere.
          if (target.byteLength === 0) fs.fstat(fd, (error) => done(error, 0))
          else fs.read(fd, target, 0, target.byteLength, offset, (error, count) => done(error, count))
          break
        }
        case Opcode.Write: {
          const source = view as NodeJS.ArrayBufferView
          if (typeof offset === 'bigint') {
            // Past 2^53 bytes no file system Node runs on can store data: the kernel says EFBIG.
            process.nextTick(done, Object.assign(new Error('EFBIG'), { errno: -27 }))
          } else if (source.byteLength === 0) fs.fstat(fd, (error) => done(error, 0))
          else fs.write(fd, source, 0, source.byteLength, offset, (error, count) => done(error, count))
          break
        }
        case Opcode.Fsync:
          fs.fsync(fd, (error) => done(error))
          break
        case Opcode.Fdatasync:
          fs.fdatasync(fd, (error) => done(error))
          break
      }
    } catch (error) {
      // fs validates its arguments synchronously; ours were validated already, so this is
      // an fs limit we did not foresee: report it on this operation alone.
      this.#inFlight--
      job.reject(error instanceof Error ? error : new Error(String(error)))
      this.#pump()
    }
  }

  #pump(): void {
    while (this.#inFlight < this.#maxRequests && this.#queueHead < this.#queue.length) {
      const job = this.#queue[this.#queueHead] as Job
      this.#queue[this.#queueHead++] = undefined as unknown as Job
      if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#queueHead)
        this.#queueHead = 0
      }
      job.queued = false
      if (job.onAbort) job.signal?.removeEventListener('abort', job.onAbort)
      this.#run(job)
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
        for (const job of waiting) {
          job.queued = false
          if (job.onAbort) job.signal?.removeEventListener('abort', job.onAbort)
          job.reject(closedError())
        }
      }
      this.#pump()
    })
  }
}

function fulfilment(job: Job, count: number): unknown {
  switch (job.fulfil) {
    case Fulfil.Count:
      return count
    case Fulfil.Nothing:
      return undefined
    case Fulfil.View: {
      const view = job.view as Buffer
      return count === view.byteLength ? view : view.subarray(0, count)
    }
  }
}
