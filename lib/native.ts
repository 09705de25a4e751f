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
  /**
   * Starts one operation. Unless `fulfil` is `Fulfil.View`, the addon keeps no reference to
   * `view`: the caller must keep it reachable from the returned Promise (which the addon
   * holds until the operation settled) — {@link NativeEngine.start} does.
   */
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

/** A constructor that returns the object it is given, so a subclass can stamp fields on it. */
class Stamp {
  constructor(target: object) {
    return target
  }
}

/**
 * Keeps a started operation's buffer alive from its Promise (see `Binding.start`), in a
 * private field: invisible to `util.inspect` and to property enumeration, and as cheap to
 * add as a property.
 */
class Pinned extends Stamp {
  // @ts-expect-error TS6133: written to keep the buffer reachable, never read
  readonly #view: ArrayBufferView
  constructor(promise: Promise<unknown>, view: ArrayBufferView) {
    super(promise)
    this.#view = view
  }
}

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
    // The buffer rule: the kernel may write into `view` until the operation settles, and
    // the addon holds this Promise until then (see Binding.start).
    if (view !== undefined) new Pinned(promise, view) // stamps the field on `promise` itself
    this.#queueFlush()
    if (signal !== undefined) this.#cancelOnAbort(promise, signal)
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
