/**
 * The native addon: loading it, asking it which backends work, and the {@link Engine}
 * over one native context. The addon's surface is positional and internal; this file is
 * the only one that touches it.
 */
import { errorFromNative, setDirectIoProbe } from './errors'
import type { BackendName, Engine, EngineOptions, Fulfil, Opcode, PreparedBatch } from './engine'
import type { Offset } from './validate'

/** An opaque native context (a tagged external). */
interface NativeContext {
  readonly __caioNativeContext: unique symbol
}

/** The raw functions `crates/node` exports. */
interface Binding {
  open(backend: string, capacity: number, poolSize: number, sqpoll: boolean, makeError: (code: number, opcode: number, fd: number) => Error, shrink: (view: ArrayBufferView, count: number) => ArrayBufferView): NativeContext
  start(ctx: NativeContext, opcode: Opcode, fd: number, offset: Offset, view: ArrayBufferView | undefined, priority: number, fulfil: Fulfil): Promise<unknown>
  submit(ctx: NativeContext, descriptor: Float64Array, views: Array<ArrayBufferView | undefined>, results: Float64Array): Promise<void>
  flush(ctx: NativeContext): void
  lastToken(ctx: NativeContext): number
  cancel(ctx: NativeContext, token: number): void
  close(ctx: NativeContext): Promise<void>
  details(ctx: NativeContext): { poolSize: number; sqpoll: boolean }
  probe(backend: string): string | null
  address(view: ArrayBufferView): number
  isDirect(fd: number): boolean
  errnoNames(): Array<[number, string, string]>
}

type Loaded = { binding: Binding; reason?: undefined } | { binding?: undefined; reason: string }

let loaded: Loaded | undefined

function runtimeWithoutLibuv(): string | undefined {
  if (typeof process.versions.bun === 'string') return 'Bun'
  if ('Deno' in globalThis) return 'Deno'
  return undefined
}

/** The addon, or why it cannot be used in this process. */
export function loadBinding(): Loaded {
  if (loaded) return loaded
  const runtime = runtimeWithoutLibuv()
  if (runtime) {
    loaded = { reason: `needs Node's libuv event loop; not available under ${runtime} yet` }
    return loaded
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const binding = require('../../binding.js') as Binding
    setDirectIoProbe(binding.isDirect)
    loaded = { binding }
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error)
    loaded = { reason: `the native addon did not load for ${process.platform}-${process.arch}: ${message}` }
  }
  return loaded
}

const RESOLVED = Promise.resolve()

const shrink = (view: ArrayBufferView, count: number): ArrayBufferView =>
  view instanceof Uint8Array ? view.subarray(0, count) : new Uint8Array(view.buffer, view.byteOffset, count)

/** One native context behind the {@link Engine} interface. */
export class NativeEngine implements Engine {
  readonly #binding: Binding
  readonly #ctx: NativeContext
  #flushQueued = false
  readonly poolSize: number | undefined
  readonly sqpoll: boolean

  /** Opens a context on backend `name`; throws an Error with the reason if it cannot. */
  constructor(binding: Binding, name: Exclude<BackendName, 'js'>, options: EngineOptions) {
    this.#binding = binding
    this.#ctx = binding.open(name, options.maxRequests, options.poolSize ?? 0, options.sqpoll, errorFromNative, shrink)
    const details = binding.details(this.#ctx)
    this.poolSize = name === 'thread' ? details.poolSize : undefined
    this.sqpoll = details.sqpoll
  }

  // Everything started in one tick goes to the kernel together: the first start of a tick
  // queues one flush behind the microtasks already queued.
  readonly #flush = (): void => {
    this.#flushQueued = false
    this.#binding.flush(this.#ctx)
  }

  submitBatch(batch: PreparedBatch, signal: AbortSignal | undefined): Promise<Float64Array> {
    const results = new Float64Array(batch.count)
    const promise = this.#binding.submit(this.#ctx, batch.descriptor, batch.views, results)
    this.#queueFlush()
    if (signal !== undefined) this.#cancelOnAbort(promise, signal)
    return promise.then(() => results)
  }

  #queueFlush(): void {
    if (!this.#flushQueued) {
      this.#flushQueued = true
      // A reaction on a settled Promise is V8's own microtask: cheaper than Node's
      // queueMicrotask wrapper (3 % of a read at 1 in flight).
      void RESOLVED.then(this.#flush)
    }
  }

  start(opcode: Opcode, fd: number, offset: Offset, view: ArrayBufferView | undefined, priority: number, fulfil: Fulfil, signal: AbortSignal | undefined): Promise<unknown> {
    const promise = this.#binding.start(this.#ctx, opcode, fd, offset, view, priority, fulfil)
    this.#queueFlush()
    if (signal !== undefined) this.#cancelOnAbort(promise, signal)
    return promise
  }

  #cancelOnAbort(promise: Promise<unknown>, signal: AbortSignal): void {
    const token = this.#binding.lastToken(this.#ctx)
    const onAbort = (): void => this.#binding.cancel(this.#ctx, token)
    signal.addEventListener('abort', onAbort, { once: true })
    const forget = (): void => signal.removeEventListener('abort', onAbort)
    promise.then(forget, forget)
  }

  close(): Promise<void> {
    return this.#binding.close(this.#ctx)
  }
}
