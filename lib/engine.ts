/**
 * What a backend looks like to the facade: something that starts one operation and
 * returns its Promise, queues what does not fit in `maxRequests`, and closes. The native
 * backends (uring, linux, thread) and the pure-TypeScript `js` backend each provide one.
 */
import type { Offset } from './validate'

/** The user-visible backend names. */
export type BackendName = 'uring' | 'linux' | 'thread' | 'js'

/** Operation codes shared with the native addon (`caio_core::Opcode`). */
export const enum Opcode {
  Read = 0,
  Write = 1,
  Fsync = 2,
  Fdatasync = 3,
}

/** How a fulfilled operation resolves (`Fulfil` in the addon). */
export const enum Fulfil {
  /** With the number of bytes moved. */
  Count = 0,
  /** With the buffer, or a view of the part that was read when fewer bytes came. */
  View = 1,
  /** With `undefined`. */
  Nothing = 2,
}

/** Doubles per operation in a batch descriptor: `[opcode | link << 8, fd, offset / 2^32, offset % 2^32, priority]`. */
export const BATCH_FIELDS = 5
/** Batch results that are not an errno (the addon's `marker` module). */
export const RESULT_ABORTED = -1048577
export const RESULT_CLOSED = -1048578

/** A validated batch, encoded for one crossing into native code. */
export interface PreparedBatch {
  count: number
  /** {@link BATCH_FIELDS} doubles per operation. */
  descriptor: Float64Array
  /** The buffer of each read or write; `undefined` for syncs. */
  views: Array<ArrayBufferView | undefined>
}

export interface EngineOptions {
  maxRequests: number
  poolSize: number | undefined
  sqpoll: boolean
}

export interface Engine {
  /**
   * Starts one operation. `view` is the buffer for reads and writes, `undefined` for
   * syncs. The caller has validated everything and checked that `signal` is not aborted.
   */
  start(opcode: Opcode, fd: number, offset: Offset, view: ArrayBufferView | undefined, priority: number, fulfil: Fulfil, signal: AbortSignal | undefined): Promise<unknown>
  /**
   * Starts a batch; resolves with one result per operation: bytes moved (0 for a sync), a
   * negative errno, or {@link RESULT_ABORTED} / {@link RESULT_CLOSED}.
   */
  submitBatch(batch: PreparedBatch, signal: AbortSignal | undefined): Promise<Float64Array>
  /** Rejects queued operations, waits for those in flight, releases everything. */
  close(): Promise<void>
  /** Worker threads of the thread backend. */
  readonly poolSize: number | undefined
  /** Whether kernel-side submission polling is on (uring). */
  readonly sqpoll: boolean
}
