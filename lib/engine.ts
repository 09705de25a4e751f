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
  /** Rejects queued operations, waits for those in flight, releases everything. */
  close(): Promise<void>
  /** Worker threads of the thread backend. */
  readonly poolSize: number | undefined
  /** Whether kernel-side submission polling is on (uring). */
  readonly sqpoll: boolean
}
