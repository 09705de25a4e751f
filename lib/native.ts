/**
 * The native addon: loading it, asking it which backends work, and the {@link Engine}
 * over one native context. The addon's surface is positional and internal; this file is
 * the only one that touches it.
 */
import { AbortListeners } from './abort'
import { errorFromResult, setDirectIoProbe } from './errors'
import { Fulfil } from './engine'
import type { BackendName, Engine, EngineOptions, Operand, PreparedBatch } from './engine'
import type { Offset } from './validate'
import { CALL_FIELDS, CALL_TOKEN, CLOSED_SLOT, putOffset, RESULT_CLOSED, SLOT_COUNT } from './wire'
import type { Opcode } from './wire'

/** An opaque native context (a tagged external). */
interface NativeContext {
  readonly __caioNativeContext: unique symbol
}

/** The raw functions `crates/node` exports (`crates/node/src/callbacks.rs`). */
interface Binding {
  /**
   * Opens a context. `deliver(count)` is called on the JS thread with the first `count`
   * (slot, result) pairs of `wire` filled in (its last `CALL_FIELDS` numbers are the call
   * area of `start`): a result is a byte count, a negative errno,
   * or `RESULT_ABORTED` / `RESULT_CLOSED`; slot `CLOSED_SLOT` says a close has finished.
   * Until `deliver` returns, those slots are not reused.
   */
  open(backend: string, capacity: number, poolSize: number, sqpoll: boolean, deliver: (count: number) => void, wire: Float64Array, path: CompletionPath): NativeContext
  /**
   * Starts the operation written into the wire's call area (`CALL_FIELDS`) and writes its
   * token there (`CALL_TOKEN`), or -1 when the context is closed; its result comes under
   * slot `token % SLOT_COUNT`, never within this call. The addon keeps no reference to
   * `view`: the caller keeps it until the result is delivered.
   */
  start(ctx: NativeContext, view: Operand): void
  /**
   * Starts a batch and returns its token, or -1 when closed. Each operation's result is
   * written to `results`; then the batch's slot is delivered with 0, never within this
   * call. The caller keeps `views` and `results` until then.
   */
  submit(ctx: NativeContext, descriptor: Float64Array, views: Operand[], results: Float64Array): number
  flush(ctx: NativeContext): void
  cancel(ctx: NativeContext, token: number): void
  /** Starts closing; a `CLOSED_SLOT` pair is delivered once it has, maybe within this call. */
  close(ctx: NativeContext): void
  details(ctx: NativeContext): { poolSize: number; sqpoll: boolean; fixedBufferOps: number; fixedFileOps: number }
  probe(backend: string): string | null
  /** Whether completions can reach the JS thread along `path` here; null if so, else why. Unix only. */
  probePath?(path: CompletionPath): string | null
  address(view: ArrayBufferView): number
  isDirect(fd: number): boolean
  /**
   * `size` bytes of unspecified content for reading a large file whole, in memory reused
   * once collected; `undefined` for a small size or where it cannot be made. Unix only.
   */
  largeBuffer?(size: number): ArrayBuffer | undefined
  errnoNames(): Array<[number, string, string]>
  /** Only with `CAIO_TEST_HOOKS=1`: panics inside the addon with the context borrowed. */
  panicForTest?(ctx: NativeContext): void
}

type Loaded = { binding: Binding; reason?: undefined } | { binding?: undefined; reason: string }

let loaded: Loaded | undefined

/**
 * How a native context's completions reach the JS thread: `libuv` — Node's own event loop
 * polls the context's notifier, with no thread in between; `threadsafe-function` — a
 * completion thread per context waits on it and wakes the JS thread through one Node-API
 * threadsafe function call per wake-up, for runtimes without libuv (Bun, Deno).
 */
export type CompletionPath = 'libuv' | 'threadsafe-function'

/** The JavaScript runtime running this process, with its version. */
export function runtime(): { name: 'Node.js' | 'Bun' | 'Deno'; version: string } {
  const versions = process.versions as NodeJS.ProcessVersions & { bun?: string; deno?: string }
  if (typeof versions.bun === 'string') return { name: 'Bun', version: versions.bun }
  if ('Deno' in globalThis) return { name: 'Deno', version: versions.deno ?? 'unknown' }
  return { name: 'Node.js', version: process.versions.node }
}

let chosenPath: CompletionPath | undefined

/**
 * The completion path of this process's native contexts: `libuv` under Node, where it is
 * real; `threadsafe-function` elsewhere (Bun's libuv functions are stubs that abort, Deno
 * has none), or when `CAIO_COMPLETIONS=threadsafe-function` asks for it under Node.
 */
export function completionPath(binding: Binding): CompletionPath {
  if (chosenPath !== undefined) return chosenPath
  const asked = process.env.CAIO_COMPLETIONS
  if (asked !== undefined && asked !== '' && asked !== 'libuv' && asked !== 'threadsafe-function') {
    process.emitWarning(`caio: CAIO_COMPLETIONS=${JSON.stringify(asked)} names no completion path; valid ones are libuv, threadsafe-function.`, { code: 'CAIO_BACKEND' })
  }
  const libuvWorks = runtime().name === 'Node.js' && binding.probePath?.('libuv') === null
  chosenPath = libuvWorks && asked !== 'threadsafe-function' ? 'libuv' : 'threadsafe-function'
  return chosenPath
}

/** The addon, or why it cannot be used in this process. */
export function loadBinding(): Loaded {
  if (loaded) return loaded
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

/**
 * A Buffer of `size` bytes of unspecified content, as `Buffer.allocUnsafeSlow` gives, to
 * read a large file whole into. With the addon a large one comes from memory that earlier
 * large reads let go of, already faulted in: a read into fresh memory spends most of its
 * time in page faults. `buffer.buffer` is exactly `size` bytes either way.
 */
export function wholeFileBuffer(size: number): Buffer {
  const memory = loadBinding().binding?.largeBuffer?.(size)
  return memory === undefined ? Buffer.allocUnsafeSlow(size) : Buffer.from(memory, 0, size)
}

const RESOLVED = Promise.resolve()
/** V8's own Promise: a replaced global changes nothing. */
const NativePromise = Promise

/** (slot, result) pairs the wire holds; one delivery hands over at most this many. */
const WIRE_PAIRS = 512

type Settle = (value: unknown) => void

const shrink = (view: ArrayBufferView, count: number): ArrayBufferView =>
  view instanceof Uint8Array ? view.subarray(0, count) : new Uint8Array(view.buffer, view.byteOffset, count)

/** What keeps a batch's memory alive until its delivery. */
interface BatchPin {
  views: Operand[]
  results: Float64Array
}

/** One native context behind the {@link Engine} interface. */
export class NativeEngine implements Engine {
  readonly #binding: Binding
  readonly #ctx: NativeContext
  #flushQueued = false
  readonly poolSize: number | undefined
  readonly sqpoll: boolean
  // What each started operation needs until its result is delivered, by slot: its
  // Promise's resolvers, and its memory — which these arrays keep alive for the kernel
  // (the buffer rule), whatever the caller does with it meanwhile.
  readonly #resolve: Array<Settle | undefined> = []
  readonly #reject: Array<Settle | undefined> = []
  readonly #pins: Array<Operand | BatchPin> = []
  /** `fulfil | opcode << 2`, by slot. */
  readonly #kinds: number[] = []
  readonly #fds: number[] = []
  readonly #tokens: number[] = []
  /** The AbortSignal of each operation started with one. */
  readonly #signals: Array<AbortSignal | undefined> = []
  readonly #aborts = new AbortListeners<number>((token) => this.#binding.cancel(this.#ctx, token))
  readonly #wire = new Float64Array(2 * WIRE_PAIRS + CALL_FIELDS)
  readonly #closeWaiters: Array<() => void> = []
  #closing = false

  /** Opens a context on backend `name`; throws an Error with the reason if it cannot. */
  constructor(binding: Binding, name: Exclude<BackendName, 'js'>, options: EngineOptions) {
    this.#binding = binding
    this.#ctx = binding.open(name, options.maxRequests, options.poolSize ?? 0, options.sqpoll, this.#deliver, this.#wire, completionPath(binding))
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
    const wire = this.#wire
    for (let i = 0; i < 2 * count; i += 2) {
      const slot = wire[i]!
      const result = wire[i + 1]!
      if (slot === CLOSED_SLOT) {
        for (const resolve of this.#closeWaiters.splice(0)) resolve()
        continue
      }
      const pin = this.#pins[slot]
      const kind = this.#kinds[slot]!
      const resolve = this.#resolve[slot]!
      const reject = this.#reject[slot]!
      this.#pins[slot] = undefined
      this.#resolve[slot] = undefined
      this.#reject[slot] = undefined
      const signal = this.#signals[slot]
      if (signal !== undefined) {
        this.#signals[slot] = undefined
        this.#aborts.delete(signal, this.#tokens[slot]!)
      }
      if (result < 0) {
        // Every Promise of the delivery must settle, whatever building one error does.
        let error: unknown
        try {
          error = errorFromResult(result, kind >> 2, this.#fds[slot]!, signal)
        } catch (thrown) {
          error = thrown
        }
        reject(error)
      } else if ((kind & 3) === Fulfil.Count) {
        resolve(result)
      } else if ((kind & 3) === Fulfil.View) {
        const view = pin as ArrayBufferView
        resolve(result === view.byteLength ? view : shrink(view, result))
      } else if ((kind & 3) === Fulfil.Batch) {
        resolve((pin as BatchPin).results)
      } else {
        resolve(undefined)
      }
    }
  }

  #queueFlush(): void {
    if (!this.#flushQueued) {
      this.#flushQueued = true
      // A reaction on a settled Promise is V8's own microtask: cheaper than Node's
      // queueMicrotask wrapper (see CHANGELOG).
      void RESOLVED.then(this.#flush)
    }
  }

  /** Registers what slot `token % SLOT_COUNT` needs until its delivery, and its Promise. */
  #track(token: number, kind: number, fd: number, pin: Operand | BatchPin, signal: AbortSignal | undefined): Promise<unknown> {
    const slot = token % SLOT_COUNT
    // The buffer rule: the kernel may use `pin`'s memory until the result is delivered.
    this.#pins[slot] = pin
    this.#kinds[slot] = kind
    this.#fds[slot] = fd
    const promise = new NativePromise((resolve: Settle, reject: Settle) => {
      this.#resolve[slot] = resolve
      this.#reject[slot] = reject
    })
    this.#queueFlush()
    if (signal !== undefined) {
      this.#signals[slot] = signal
      this.#tokens[slot] = token
      this.#aborts.add(signal, token)
    }
    return promise
  }

  start(opcode: Opcode, fd: number, offset: Offset, view: Operand, priority: number, fulfil: Fulfil, signal: AbortSignal | undefined): Promise<unknown> {
    // The call area: typed-array stores, where arguments would cost a Node-API call each.
    const call = this.#wire
    const at = 2 * WIRE_PAIRS
    call[at] = opcode
    call[at + 1] = fd
    putOffset(call, at + 2, offset)
    call[at + 4] = priority
    this.#binding.start(this.#ctx, view)
    const token = call[at + CALL_TOKEN]!
    if (token < 0) return Promise.reject(errorFromResult(RESULT_CLOSED, opcode, fd))
    return this.#track(token, fulfil | (opcode << 2), fd, view, signal)
  }

  submitBatch(batch: PreparedBatch, signal: AbortSignal | undefined): Promise<Float64Array> {
    const results = new Float64Array(batch.count)
    if (this.#closing) return Promise.reject(errorFromResult(RESULT_CLOSED, 0, -1))
    if (batch.count === 0) return Promise.resolve(results)
    const token = this.#binding.submit(this.#ctx, batch.descriptor, batch.views, results)
    if (token < 0) return Promise.reject(errorFromResult(RESULT_CLOSED, 0, -1))
    return this.#track(token, Fulfil.Batch, -1, { views: batch.views, results }, signal) as Promise<Float64Array>
  }

  close(): Promise<void> {
    this.#closing = true
    return new NativePromise((resolve) => {
      this.#closeWaiters.push(resolve)
      this.#binding.close(this.#ctx)
    })
  }

  fixedUse(): { buffers: number; files: number } {
    const details = this.#binding.details(this.#ctx)
    return { buffers: details.fixedBufferOps, files: details.fixedFileOps }
  }

  /** Test hook: see {@link Binding.panicForTest}. */
  panicForTest(): void {
    if (this.#binding.panicForTest === undefined) throw new Error('the addon was loaded without CAIO_TEST_HOOKS=1')
    this.#binding.panicForTest(this.#ctx)
  }
}
