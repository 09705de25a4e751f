/**
 * The native addon: loading it, asking it which backends work, and the {@link Engine}
 * over one native context. The addon's surface is positional and internal; this file is
 * the only one that touches it.
 */
import { errorFromNative, setDirectIoProbe } from './errors'
import { Fulfil, RESULT_CLOSED } from './engine'
import type { BackendName, Engine, EngineOptions, Opcode, PreparedBatch } from './engine'
import type { Offset } from './validate'

/** An opaque native context (a tagged external). */
interface NativeContext {
  readonly __caioNativeContext: unique symbol
}

/** The raw functions `crates/node` exports. */
interface Binding {
  /**
   * Opens a context. `deliver(count)` is called on the JS thread with the first `count`
   * (slot, result) pairs of `completions` filled in: a result is a byte count, a negative
   * errno, or `RESULT_ABORTED` / `RESULT_CLOSED`. It must only settle Promises.
   */
  open(backend: string, capacity: number, poolSize: number, sqpoll: boolean, makeError: (code: number, opcode: number, fd: number) => Error, deliver: (count: number) => void, completions: Float64Array): NativeContext
  /**
   * Starts one operation and returns its slot, or -1 when the context is closed. The addon
   * keeps no reference to `view`: the caller must keep it until the slot's result is
   * delivered — {@link NativeEngine.start} does. The result is never delivered within this
   * call (completions are only reaped by `flush` and the loop's callback), so the caller
   * can register the slot's resolvers once it returns.
   */
  start(ctx: NativeContext, opcode: Opcode, fd: number, offset: Offset, view: ArrayBufferView | undefined, priority: number): number
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
    loaded = { reason: loadFailure(error) }
  }
  return loaded
}

/**
 * Why the napi-rs loader (`binding.js`) found no addon, in words for `backends()`: this
 * platform has no prebuilt addon, its optional package was not installed, or an addon was
 * found and failed to load. The loader chains one error per place it looked, first innermost.
 */
function loadFailure(error: unknown): string {
  const where = `${process.platform}-${process.arch}`
  const messages: string[] = []
  for (let e: unknown = error; e instanceof Error && messages.length < 32; e = e.cause) messages.unshift(e.message.split('\n')[0] ?? '')
  const lookedFor = messages.map((m) => /^Cannot find module '(caio-(?!wasm32)[\w-]+)'/.exec(m)?.[1]).find((name) => name !== undefined)
  const failed = messages.find((m) => m !== '' && !/^(Cannot find module|Cannot find native binding|Unsupported )/.test(m))
  if (failed !== undefined) return `the native addon for ${where} failed to load: ${failed}`
  // The published package.json lists the platform packages (scripts/release-manifest.mjs);
  // a source checkout's does not, and builds the addon itself.
  let shipped: Record<string, string> | undefined
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    shipped = (require('../../package.json') as { optionalDependencies?: Record<string, string> }).optionalDependencies
  } catch {
    // no package.json beside the build: say what the loader said
  }
  if (lookedFor !== undefined && shipped === undefined) return `the native addon for ${where} is not built (in a source checkout, npm run build makes it)`
  if (lookedFor !== undefined && shipped !== undefined && lookedFor in shipped) {
    return `the native addon for ${where} is not installed: the optional dependency ${lookedFor} is missing (installed with --omit=optional, or node_modules copied from another platform?)`
  }
  if (lookedFor !== undefined || messages.some((m) => m.startsWith('Unsupported '))) return `caio has no prebuilt native addon for ${where}`
  return `the native addon did not load for ${where}: ${messages.find((m) => !m.startsWith('Cannot find native binding')) ?? messages.at(-1) ?? String(error)}`
}

const RESOLVED = Promise.resolve()
/** V8's own Promise, as `napi_create_promise` made before: a replaced global changes nothing. */
const NativePromise = Promise

/** (slot, result) pairs the addon fills before each call of `deliver`. */
const DELIVERY_PAIRS = 512

type Settle = (value: unknown) => void

const shrink = (view: ArrayBufferView, count: number): ArrayBufferView =>
  view instanceof Uint8Array ? view.subarray(0, count) : new Uint8Array(view.buffer, view.byteOffset, count)

/** One native context behind the {@link Engine} interface. */
export class NativeEngine implements Engine {
  readonly #binding: Binding
  readonly #ctx: NativeContext
  #flushQueued = false
  readonly poolSize: number | undefined
  readonly sqpoll: boolean
  // What each started single operation needs until its result is delivered, by slot: its
  // Promise's resolvers, and its buffer — which this array keeps alive for the kernel (the
  // buffer rule), whatever the caller does with it meanwhile. Promises made and settled
  // here rather than through napi_create_promise / napi_resolve_deferred: a cached read at
  // 64 in flight spent 11 % of its CPU in those two and the buffer's stamp.
  readonly #resolve: Array<Settle | undefined> = []
  readonly #reject: Array<Settle | undefined> = []
  readonly #views: Array<ArrayBufferView | undefined> = []
  /** `fulfil | opcode << 2`, by slot. */
  readonly #kinds: number[] = []
  readonly #fds: number[] = []
  /** The AbortSignal of each operation started with one, for its AbortError's `cause`. */
  readonly #signals: Array<AbortSignal | undefined> = []
  readonly #completions = new Float64Array(2 * DELIVERY_PAIRS)

  /** Opens a context on backend `name`; throws an Error with the reason if it cannot. */
  constructor(binding: Binding, name: Exclude<BackendName, 'js'>, options: EngineOptions) {
    this.#binding = binding
    this.#ctx = binding.open(name, options.maxRequests, options.poolSize ?? 0, options.sqpoll, errorFromNative, this.#deliver, this.#completions)
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

  readonly #deliver = (count: number): void => {
    const completions = this.#completions
    for (let i = 0; i < 2 * count; i += 2) {
      const slot = completions[i]!
      const result = completions[i + 1]!
      const view = this.#views[slot]
      const kind = this.#kinds[slot]!
      const resolve = this.#resolve[slot]!
      const reject = this.#reject[slot]!
      this.#views[slot] = undefined
      this.#resolve[slot] = undefined
      this.#reject[slot] = undefined
      const signal = this.#signals[slot]
      if (signal !== undefined) this.#signals[slot] = undefined
      if (result < 0) {
        // Every Promise of the delivery must settle, whatever building one error does.
        let error: unknown
        try {
          error = errorFromNative(result, kind >> 2, this.#fds[slot]!, signal)
        } catch (thrown) {
          error = thrown
        }
        reject(error)
      } else if ((kind & 3) === Fulfil.Count) {
        resolve(result)
      } else if ((kind & 3) === Fulfil.View) {
        resolve(result === view!.byteLength ? view : shrink(view!, result))
      } else {
        resolve(undefined)
      }
    }
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
    const slot = this.#binding.start(this.#ctx, opcode, fd, offset, view, priority)
    if (slot < 0) return Promise.reject(errorFromNative(RESULT_CLOSED, opcode, fd))
    // The buffer rule: the kernel may write into `view` until the result is delivered.
    this.#views[slot] = view
    this.#kinds[slot] = fulfil | (opcode << 2)
    this.#fds[slot] = fd
    const promise = new NativePromise((resolve: Settle, reject: Settle) => {
      this.#resolve[slot] = resolve
      this.#reject[slot] = reject
    })
    this.#queueFlush()
    if (signal !== undefined) {
      this.#signals[slot] = signal
      this.#cancelOnAbort(promise, signal)
    }
    return promise
  }

  // One listener per signal, however many operations share it (a listener each would trip
  // Node's MaxListenersExceededWarning at 11, and cost an add and a remove per operation).
  readonly #watched = new WeakMap<AbortSignal, Set<number>>()

  #cancelOnAbort(promise: Promise<unknown>, signal: AbortSignal): void {
    const token = this.#binding.lastToken(this.#ctx)
    let tokens = this.#watched.get(signal)
    if (tokens === undefined) {
      const waiting = new Set<number>()
      const onAbort = (): void => {
        this.#watched.delete(signal)
        for (const waitingToken of waiting) this.#binding.cancel(this.#ctx, waitingToken)
        waiting.clear()
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.#watched.set(signal, waiting)
      tokens = waiting
      this.#listeners.set(waiting, onAbort)
    }
    tokens.add(token)
    const watching = tokens
    const forget = (): void => {
      watching.delete(token)
      if (watching.size > 0 || this.#watched.get(signal) !== watching) return
      this.#watched.delete(signal)
      const onAbort = this.#listeners.get(watching)
      if (onAbort) signal.removeEventListener('abort', onAbort)
    }
    promise.then(forget, forget)
  }

  readonly #listeners = new WeakMap<Set<number>, () => void>()


  close(): Promise<void> {
    return this.#binding.close(this.#ctx)
  }
}
