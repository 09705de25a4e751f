/**
 * The loops that drive a contender until a deadline.
 *
 * Random workloads: `depth` workers, each with its own preallocated buffer and PRNG,
 * issuing one operation at a time at random block-aligned offsets. One loop per calling
 * convention (Promise, callback, synchronous), so no contender pays for an adapter the
 * others do not: callbacks stay callbacks.
 *
 * Batches: `depth / batch` workers, each with `batch` preallocated buffers and one
 * preallocated batch whose offsets it rewrites in place before every submit.
 *
 * Sequential workloads (1 MiB operations, where an adapter's fraction of a microsecond is
 * noise): workers share one cursor that wraps around the file; with `fsyncEvery`, every
 * that many operations the workers drain and one fsync runs, its time inside the
 * measured window.
 *
 * Latency is sampled: every `sampleEvery`-th operation of a worker is timed with
 * `performance.now()` into a preallocated ring, and the deadline is checked only then,
 * which keeps clock reads to two per `sampleEvery` operations. Submits and sequential
 * operations are each timed.
 */
import { performance } from 'node:perf_hooks'

/** One operation on a Promise: resolves when the I/O is done (the value is not looked at). */
export type PromiseIo = (buffer: Buffer, position: number) => Promise<unknown>
/** One operation with a Node-style callback. */
export type CallbackIo = (buffer: Buffer, position: number, callback: (error: Error | null, bytes: number) => void) => void
/** One synchronous operation. */
export type SyncIo = (buffer: Buffer, position: number) => number

/** A batch made once per worker: the driver rewrites `slots[i].offset` in place, then calls `submit`. */
export interface PreparedBatch {
  slots: Array<{ offset: number }>
  /** Resolves with one entry per slot: bytes moved, or that operation's Error. */
  submit(): Promise<ArrayLike<unknown>>
}

/** How a contender does one operation, in the calling convention it is measured in. */
export type Io =
  | { style: 'promise'; io: PromiseIo }
  | { style: 'callback'; io: CallbackIo }
  | { style: 'sync'; io: SyncIo }
  | { style: 'batch'; prepare(buffers: Buffer[]): PreparedBatch }

/** fsync of the contender's file, for workloads that ask for it. */
export type SyncFile = () => Promise<unknown>

/** Latency samples of one process, in milliseconds, in a ring that keeps the newest. */
export class Meter {
  ops = 0
  deadline = 0
  /** Sequential workloads: the next block, kept from the warm-up to the measured run. */
  cursor = 0
  syncs = 0
  syncMs = 0
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
    this.syncs = 0
    this.syncMs = 0
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
  pattern: 'random' | 'sequential' | 'append'
  /** Operations per submit (batch style only). */
  batch: number
  /** Sequential: fsync after this many operations (0: never). */
  fsyncEvery: number
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

/** Runs the workers until `meter.deadline` (a `performance.now()` time). `buffers` holds `depth` buffers. */
export function drive(io: Io, sync: SyncFile | undefined, shape: Shape, buffers: Buffer[], meter: Meter): Promise<void> {
  if (io.style === 'batch') {
    const workers: Array<Promise<void>> = []
    for (let w = 0; w * shape.batch < buffers.length; w++) workers.push(batchWorker(io.prepare(buffers.slice(w * shape.batch, (w + 1) * shape.batch)), shape, w, meter))
    return Promise.all(workers).then(() => undefined)
  }
  if (shape.pattern === 'sequential') return sequential(asPromise(io), sync, shape, buffers, meter)
  if (shape.pattern === 'append') return Promise.all(buffers.map((buffer, w) => appender(asPromise(io), shape, buffer, w, meter))).then(() => undefined)
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

/** One worker of a batch workload: rewrite the offsets in place, submit, check, repeat. */
async function batchWorker(batch: PreparedBatch, shape: Shape, worker: number, meter: Meter): Promise<void> {
  const { blocks, blockSize } = shape
  const { slots } = batch
  const n = slots.length
  let x = workerSeed(shape, worker)
  for (;;) {
    for (let i = 0; i < n; i++) {
      x = xorshift32(x)
      slots[i]!.offset = ((x >>> 0) % blocks) * blockSize
    }
    const t0 = performance.now()
    const results = await batch.submit()
    const t1 = performance.now()
    for (let i = 0; i < n; i++) {
      // A batch resolves even when some of its operations failed: each entry says.
      if (typeof results[i] !== 'number') throw results[i] instanceof Error ? results[i] : new Error(`batch entry ${i}: ${String(results[i])}`)
    }
    meter.ops += n
    meter.record(t1 - t0)
    if (t1 >= meter.deadline) return
  }
}

/**
 * One of the workers of an append workload: takes the next block of the shared cursor
 * (wrapping at the file's end), does the contender's operation there (a write and its
 * fdatasync), and goes on at once: the appenders of a group-commit log.
 */
async function appender(io: PromiseIo, shape: Shape, buffer: Buffer, worker: number, meter: Meter): Promise<void> {
  const { blocks, blockSize } = shape
  const mask = shape.sampleEvery - 1
  for (let k = worker; ; ) {
    const position = (meter.cursor++ % blocks) * blockSize
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

/** Workers sharing one cursor; with `fsyncEvery`, they drain and fsync after every that many operations. */
async function sequential(io: PromiseIo, sync: SyncFile | undefined, shape: Shape, buffers: Buffer[], meter: Meter): Promise<void> {
  const { blocks, blockSize } = shape
  if (shape.fsyncEvery > 0 && sync === undefined) throw new Error('bench: this contender has no fsync for a workload that needs one')
  const segment = shape.fsyncEvery > 0 ? shape.fsyncEvery : 64
  for (;;) {
    let left = segment
    const worker = async (buffer: Buffer): Promise<void> => {
      while (left > 0) {
        left--
        const position = (meter.cursor++ % blocks) * blockSize
        const t0 = performance.now()
        await io(buffer, position)
        meter.record(performance.now() - t0)
        meter.ops++
      }
    }
    await Promise.all(buffers.map(worker))
    if (shape.fsyncEvery > 0 && sync !== undefined) {
      const t0 = performance.now()
      await sync()
      meter.syncMs += performance.now() - t0
      meter.syncs++
    }
    if (performance.now() >= meter.deadline) return
  }
}

const DONE = Promise.resolve()

/** The contender's operation as a Promise (sequential workloads and checks only). */
function asPromise(io: Io): PromiseIo {
  switch (io.style) {
    case 'promise':
      return io.io
    case 'callback': {
      const call = io.io
      return (buffer, position) => new Promise((resolve, reject) => call(buffer, position, (error, bytes) => (error ? reject(error) : resolve(bytes))))
    }
    case 'sync': {
      const call = io.io
      return (buffer, position) => {
        call(buffer, position)
        return DONE
      }
    }
    case 'batch':
      return (buffer, position) => {
        const batch = io.prepare([buffer])
        batch.slots[0]!.offset = position
        return batch.submit().then((results) => {
          if (typeof results[0] !== 'number') throw results[0] instanceof Error ? results[0] : new Error(String(results[0]))
        })
      }
  }
}

/** One operation through any convention, as a Promise: for checking results, not for timing. */
export function once(io: Io, buffer: Buffer, position: number): Promise<void> {
  try {
    return asPromise(io)(buffer, position).then(() => undefined)
  } catch (error) {
    return Promise.reject(error)
  }
}
