/**
 * What a backend looks like to the facade: something that starts one operation and
 * returns its Promise, queues what does not fit in `maxRequests`, and closes. The native
 * backends (uring, linux, thread) and the pure-TypeScript `js` backend each provide one.
 */
import type { Offset } from './validate'
import type { IoVector, Opcode } from './wire'

/**
 * What an operation carries besides its numbers: the buffer of a read or write, a path
 * operation's path, a range operation's argument area, a vectored one's {@link IoVector};
 * `undefined` for syncs and `ftruncate`.
 */
export type Operand = ArrayBufferView | IoVector | undefined

/** The user-visible backend names. */
export type BackendName = 'uring' | 'linux' | 'thread' | 'js'

/** How a fulfilled operation resolves. */
export const enum Fulfil {
  /** With the number of bytes moved. */
  Count = 0,
  /** With the buffer, or a view of the part that was read when fewer bytes came. */
  View = 1,
  /** With `undefined`. */
  Nothing = 2,
  /** With the batch's results (native engines only). */
  Batch = 3,
}

/** A validated batch, encoded for one crossing into native code. */
export interface PreparedBatch {
  count: number
  /** `BATCH_FIELDS` doubles per operation (`lib/wire.ts`). */
  descriptor: Float64Array
  /** The operand of each operation (`undefined` for syncs and `ftruncate`). */
  views: Operand[]
}

export interface EngineOptions {
  maxRequests: number
  poolSize: number | undefined
  sqpoll: boolean
}

export interface Engine {
  /**
   * Starts one operation on its {@link Operand}. The caller has validated everything and
   * checked that `signal` is not aborted.
   */
  start(opcode: Opcode, fd: number, offset: Offset, view: Operand, priority: number, fulfil: Fulfil, signal: AbortSignal | undefined): Promise<unknown>
  /**
   * Starts a batch; resolves with one result per operation: bytes moved (0 for a sync), a
   * negative errno, or `RESULT_ABORTED` / `RESULT_CLOSED` (`lib/wire.ts`).
   */
  submitBatch(batch: PreparedBatch, signal: AbortSignal | undefined): Promise<Float64Array>
  /** Rejects queued operations, waits for those in flight, releases everything. */
  close(): Promise<void>
  /** Operations started on registered buffers and files so far (`uring`; zeros elsewhere). */
  fixedUse(): { buffers: number; files: number }
  /** Worker threads of the thread backend. */
  readonly poolSize: number | undefined
  /** Whether kernel-side submission polling is on (uring). */
  readonly sqpoll: boolean
}
