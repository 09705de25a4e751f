/**
 * The loops that drive a contender: `depth` workers, each with its own preallocated buffer
 * and PRNG, issuing one operation at a time at random block-aligned offsets until a
 * deadline. One loop per calling convention (Promise, callback, synchronous), so no
 * contender pays for an adapter the others do not: callbacks stay callbacks.
 *
 * Latency is sampled: every `sampleEvery`-th operation of a worker is timed with
 * `performance.now()` into a preallocated ring, and the deadline is checked only then,
 * which keeps clock reads to two per `sampleEvery` operations.
 */
import { performance } from 'node:perf_hooks'

/** One operation on a Promise: resolves when the I/O is done (the value is not looked at). */
export type PromiseIo = (buffer: Buffer, position: number) => Promise<unknown>
/** One operation with a Node-style callback. */
export type CallbackIo = (buffer: Buffer, position: number, callback: (error: Error | null, bytes: number) => void) => void
/** One synchronous operation. */
export type SyncIo = (buffer: Buffer, position: number) => number

/** How a contender does one operation, in the calling convention it is measured in. */
export type Io = { style: 'promise'; io: PromiseIo } | { style: 'callback'; io: CallbackIo } | { style: 'sync'; io: SyncIo }

/** Latency samples of one process, in milliseconds, in a ring that keeps the newest. */
export class Meter {
  ops = 0
  deadline = 0
  #count = 0
  readonly #ring: Float64Array
  readonly #mask: number

  /** `capacity` must be a power of two. */
  constructor(capacity: number) {
    this.#ring = new Float64Array(capacity)
    this.#mask = capacity - 1
  }

  record(ms: number): void {
    this.#ring[this.#count++ & this.#mask] = ms
  }

  reset(deadline: number): void {
    this.ops = 0
    this.#count = 0
    this.deadline = deadline
  }

  /** The samples kept, sorted ascending. */
  sorted(): Float64Array {
    return this.#ring.slice(0, Math.min(this.#count, this.#ring.length)).sort()
  }

  get samples(): number {
    return this.#count
  }
}

/** What the drivers share: where operations go and how often to sample. */
export interface Shape {
  depth: number
  blockSize: number
  /** Blocks in the file: offsets are `blockSize * [0, blocks)`. */
  blocks: number
  /** A power of two. */
  sampleEvery: number
  /** Mixed into every worker's PRNG seed. */
  seed: number
}

/** xorshift32: a full-period 32-bit PRNG; `x` must not be 0. */
function xorshift32(x: number): number {
  x ^= x << 13
  x ^= x >>> 17
  x ^= x << 5
  return x
}

function workerSeed(shape: Shape, worker: number): number {
  // splitmix-style scrambling, so neighbouring workers do not start on neighbouring states.
  let z = (shape.seed + Math.imul(worker + 1, 0x9e3779b9)) | 0
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  z ^= z >>> 16
  return z === 0 ? 0x6d2b79f5 : z
}

/** One buffer per worker, allocated once, outside the measured loop. */
export function workerBuffers(shape: Shape): Buffer[] {
  return Array.from({ length: shape.depth }, () => Buffer.alloc(shape.blockSize))
}

/** Runs the workers until `meter.deadline` (a `performance.now()` time). */
export function drive(io: Io, shape: Shape, buffers: Buffer[], meter: Meter): Promise<void> {
  switch (io.style) {
    case 'promise':
      return Promise.all(buffers.map((buffer, w) => promiseWorker(io.io, shape, buffer, w, meter))).then(() => undefined)
    case 'callback':
      return Promise.all(buffers.map((buffer, w) => callbackWorker(io.io, shape, buffer, w, meter))).then(() => undefined)
    case 'sync':
      return syncLoop(io.io, shape, buffers[0]!, meter)
  }
}

async function promiseWorker(io: PromiseIo, shape: Shape, buffer: Buffer, worker: number, meter: Meter): Promise<void> {
  const { blocks, blockSize } = shape
  const mask = shape.sampleEvery - 1
  let x = workerSeed(shape, worker)
  let k = worker
  for (;;) {
    x = xorshift32(x)
    const position = ((x >>> 0) % blocks) * blockSize
    if ((++k & mask) === 0) {
      const t0 = performance.now()
      await io(buffer, position)
      const t1 = performance.now()
      meter.ops++
      meter.record(t1 - t0)
      if (t1 >= meter.deadline) return
    } else {
      await io(buffer, position)
      meter.ops++
    }
  }
}

function callbackWorker(io: CallbackIo, shape: Shape, buffer: Buffer, worker: number, meter: Meter): Promise<void> {
  const { blocks, blockSize } = shape
  const mask = shape.sampleEvery - 1
  return new Promise<void>((resolve, reject) => {
    let x = workerSeed(shape, worker)
    let k = worker
    let sampled = false
    let t0 = 0
    const done = (error: Error | null): void => {
      if (error) {
        reject(error)
        return
      }
      meter.ops++
      if (sampled) {
        const t1 = performance.now()
        meter.record(t1 - t0)
        if (t1 >= meter.deadline) {
          resolve()
          return
        }
      }
      issue()
    }
    const issue = (): void => {
      x = xorshift32(x)
      const position = ((x >>> 0) % blocks) * blockSize
      sampled = (++k & mask) === 0
      if (sampled) t0 = performance.now()
      io(buffer, position, done)
    }
    issue()
  })
}

async function syncLoop(io: SyncIo, shape: Shape, buffer: Buffer, meter: Meter): Promise<void> {
  const { blocks, blockSize } = shape
  const mask = shape.sampleEvery - 1
  let x = workerSeed(shape, 0)
  for (let k = 1; ; k++) {
    x = xorshift32(x)
    const position = ((x >>> 0) % blocks) * blockSize
    if ((k & mask) === 0) {
      const t0 = performance.now()
      io(buffer, position)
      const t1 = performance.now()
      meter.ops++
      meter.record(t1 - t0)
      if (t1 >= meter.deadline) return
    } else {
      io(buffer, position)
      meter.ops++
    }
  }
}

/** One operation through any convention, as a Promise: for checking results, not for timing. */
export function once(io: Io, buffer: Buffer, position: number): Promise<void> {
  switch (io.style) {
    case 'promise':
      return io.io(buffer, position).then(() => undefined)
    case 'callback':
      return new Promise((resolve, reject) => io.io(buffer, position, (error) => (error ? reject(error) : resolve())))
    case 'sync':
      try {
        io.io(buffer, position)
        return Promise.resolve()
      } catch (error) {
        return Promise.reject(error)
      }
  }
}
