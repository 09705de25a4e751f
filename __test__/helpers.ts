/**
 * Shared helpers of the ava suite: temp files that never live inside the repository, a
 * context factory bound to the backend under test (`CAIO_IMPL`), assertions for the error
 * shapes the design fixes, and a runner for child processes.
 *
 * The suite runs compiled (`dist/__test__/*.test.js`), once per backend; a test that must
 * see the backend under test gets its context from {@link openContext}, which fails the
 * test if automatic selection silently fell back to another backend.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { spawn } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { constants, tmpdir } from 'node:os'
import { join } from 'node:path'

import type { ExecutionContext } from 'ava'

import { Context } from '../index'
import type { BackendName, ContextOptions } from '../index'

/** Every backend, in the order automatic selection tries them. */
export const BACKEND_NAMES: readonly BackendName[] = ['uring', 'linux', 'thread', 'js']

/** The compiled entry point (`dist/index.js`), for child processes to `require`. */
export const INDEX_JS = join(__dirname, '..', 'index.js')

/** The repository root (where `binding.js` and `scripts/` live). */
export const REPO_ROOT = join(__dirname, '..', '..')

export function isBackendName(value: unknown): value is BackendName {
  return typeof value === 'string' && (BACKEND_NAMES as readonly string[]).includes(value)
}

/** The backend `CAIO_IMPL` asks for, or `undefined` when it names none. */
export function backendUnderTest(): BackendName | undefined {
  const value = process.env.CAIO_IMPL
  return isBackendName(value) ? value : undefined
}

/**
 * A context on the backend under test, closed when the test ends. When `CAIO_IMPL` names
 * a backend, the test fails unless the context really runs on it.
 */
export function openContext(t: ExecutionContext, options?: ContextOptions): Context {
  const ctx = new Context(options)
  t.teardown(() => ctx.close())
  const expected = backendUnderTest()
  if (expected !== undefined) t.is(ctx.backend, expected, `CAIO_IMPL=${expected} but the context runs on ${ctx.backend}`)
  return ctx
}

/** A fresh directory under the OS temp dir, removed with everything in it after the test. */
export function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'caio-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

let fileCount = 0

/** A file under a fresh temp dir, holding `content`; its path and a descriptor on it. */
export interface TestFile {
  path: string
  fd: number
  /** The file's whole content now, read with `node:fs`. */
  content(): Buffer
}

/**
 * Makes a file holding `content` in a fresh temp dir and opens it with `flags` (read and
 * write by default). The descriptor is closed after the test, before the dir is removed.
 */
export function fileWith(t: ExecutionContext, content: Uint8Array | string = '', flags = 'r+'): TestFile {
  const path = join(tempDir(t), `file-${++fileCount}`)
  writeFileSync(path, content)
  const fd = openSync(path, flags)
  t.teardown(() => closeAtTeardown(fd))
  return { path, fd, content: () => readFileSync(path) }
}

/** A directory and a read-only descriptor on it (`EISDIR` for reads). */
export function directoryFd(t: ExecutionContext): number {
  const fd = openSync(tempDir(t), 'r')
  t.teardown(() => closeAtTeardown(fd))
  return fd
}

/**
 * Closes a helper's descriptor at teardown. A test must not close it itself: the test files
 * run in worker threads of one process, so by teardown the number may name another test's
 * file, and closing it again would close that one (an EBADF in a test beside it). A second
 * close that finds the number free throws here, so such a test shows up.
 */
function closeAtTeardown(fd: number): void {
  closeSync(fd)
}

/**
 * A descriptor number that is never open: above any RLIMIT_NOFILE, yet a valid argument
 * (<= 2^31 - 1). A descriptor closed by the test could be reused at once by a test running
 * beside it in this process, so tests that need EBADF use this one.
 */
export const NEVER_OPEN_FD = 0x7fffffff

/** `size` bytes of a deterministic pseudo-random pattern; different seeds differ. */
export function pattern(size: number, seed = 1): Buffer {
  const bytes = Buffer.allocUnsafe(size)
  let state = (seed * 2654435761) >>> 0 || 1
  for (let i = 0; i < size; i++) {
    // xorshift32
    state ^= state << 13
    state >>>= 0
    state ^= state >>> 17
    state ^= state << 5
    state >>>= 0
    bytes[i] = state & 0xff
  }
  return bytes
}

/** The bytes a view covers, as a Buffer sharing its memory. */
export function bytesOf(view: ArrayBufferView): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength)
}

/** The negated errno Node reports for an OS error code such as `'EBADF'`. */
export function errnoOf(code: string): number {
  const value = (constants.errno as Record<string, number | undefined>)[code]
  if (value === undefined) throw new Error(`no errno named ${code}`)
  return -value
}

/** A property of an error object, read without assuming its type. */
export function field(error: unknown, name: string): unknown {
  return typeof error === 'object' && error !== null ? (error as Record<string, unknown>)[name] : undefined
}

/**
 * Awaits `promise`, which must reject with an OS error shaped like `node:fs`'s: an
 * `instanceof Error` with `code`, negative `errno` matching it, `syscall`, and a message
 * starting with `'<code>:'`.
 */
export async function rejectsWithSystemError(t: ExecutionContext, promise: Promise<unknown>, code: string, syscall: string): Promise<void> {
  const error = await t.throwsAsync(promise, { code }, `expected ${code} from ${syscall}`)
  if (error === undefined) return
  t.true(error instanceof Error, 'an OS error is an instance of Error')
  t.is(field(error, 'errno'), errnoOf(code), `errno of ${code}`)
  t.is(field(error, 'syscall'), syscall)
  t.true(error.message.startsWith(`${code}:`), `message '${error.message}' starts with '${code}:'`)
}

type ErrorClass = typeof TypeError | typeof RangeError

/**
 * Calls `call`, which must not throw but return a Promise that rejects with `code` and an
 * instance of `kind` (an argument error: `ERR_INVALID_ARG_TYPE` / `ERR_OUT_OF_RANGE`).
 */
export async function rejectsWithArgumentError(t: ExecutionContext, call: () => unknown, code: string, kind: ErrorClass, what: string): Promise<void> {
  let result: unknown
  try {
    result = call()
  } catch (error) {
    t.fail(`${what}: threw synchronously instead of rejecting: ${String(error)}`)
    return
  }
  if (!(result instanceof Promise)) {
    t.fail(`${what}: returned ${String(result)}, not a Promise`)
    return
  }
  await t.throwsAsync(result, { code, instanceOf: kind }, what)
}

/** Awaits `promise`, which must reject with Node's AbortError. */
export async function rejectsWithAbortError(t: ExecutionContext, promise: Promise<unknown>, what: string): Promise<void> {
  const error = await t.throwsAsync(promise, { name: 'AbortError', code: 'ABORT_ERR' }, what)
  t.true(error instanceof Error, `${what}: an AbortError is an instance of Error`)
}

/** What a child process did. */
export interface ChildResult {
  /** Exit code, or null when killed by a signal (or by the timeout). */
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** The child was still running after the timeout and was killed. */
  timedOut: boolean
}

/**
 * The environment for a child: this process's, without anything that would hide warnings,
 * with `overrides` applied (an `undefined` value removes the variable).
 */
export function childEnv(overrides: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.NODE_NO_WARNINGS
  delete env.NODE_OPTIONS
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[name]
    else env[name] = value
  }
  return env
}

/** Runs `command args` and collects its output; kills it after `timeoutMs`. */
export function runChild(command: string, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 20_000): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let timedOut = false
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, timedOut })
    })
  })
}

/** Runs a CommonJS `script` with this Node (`node -e`), in `env`. */
export function runNode(script: string, env: NodeJS.ProcessEnv = childEnv(), timeoutMs?: number): Promise<ChildResult> {
  return runChild(process.execPath, ['-e', script], env, timeoutMs)
}

/** A readable account of a child's run, for assertion messages. */
export function describeChild(result: ChildResult): string {
  return `exit ${result.code}${result.signal ? ` (${result.signal})` : ''}${result.timedOut ? ' after the timeout' : ''}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`
}

/** One row of `backends()` as a child reports it. */
export interface ReportedBackend {
  name: BackendName
  available: boolean
  reason?: string
}

/** Narrows one row of a `backends()` list received as JSON. */
export function isReportedBackend(value: unknown): value is ReportedBackend {
  return (
    isBackendName(field(value, 'name')) &&
    typeof field(value, 'available') === 'boolean' &&
    (field(value, 'reason') === undefined || typeof field(value, 'reason') === 'string')
  )
}

/**
 * The last stdout line of a child that printed one JSON object there, or `undefined` when
 * it printed none.
 */
export function lastJsonLine(stdout: string): Record<string, unknown> | undefined {
  const lines = stdout.trim().split('\n')
  const last = lines[lines.length - 1]
  if (last === undefined || last === '') return undefined
  try {
    const parsed: unknown = JSON.parse(last)
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

let collector: (() => void) | undefined

/**
 * Runs a full garbage collection. ava runs tests in worker threads, where `--expose-gc`
 * cannot be passed, so the flag is set at run time and `gc` taken from a fresh context.
 */
export function collectGarbage(): void {
  if (collector === undefined) {
    setFlagsFromString('--expose-gc')
    collector = runInNewContext('gc') as () => void
  }
  collector()
}

// ---- Helpers of the reliability suites (integrity, gc, hostile, workers, enospc, abort-inflight, shutdown)
import { execFileSync } from 'node:child_process'
import { constants as constants_fs } from 'node:fs'


/** A seeded pseudo-random source (xorshift32): the same seed gives the same run. */
export class Random {
  #state: number

  constructor(seed: number) {
    this.#state = (seed * 2654435761) >>> 0 || 1
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    let x = this.#state
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    this.#state = x
    return x
  }

  /** An integer in [0, bound). */
  below(bound: number): number {
    return bound <= 0x100000000 ? Math.floor((this.next() / 0x100000000) * bound) : Math.floor(((this.next() * 0x100000000 + this.next()) / 2 ** 64) * bound)
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() / 0x100000000 < p
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)] as T
  }

  /** `size` random bytes. */
  bytes(size: number): Buffer {
    const out = Buffer.allocUnsafe(size)
    for (let i = 0; i < size; i++) out[i] = this.next() & 0xff
    return out
  }
}

/** How a Promise settled. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown }

/** Waits for `promise` and reports how it settled, without throwing. */
export function outcome<T>(promise: Promise<T>): Promise<Outcome<T>> {
  return promise.then(
    (value): Outcome<T> => ({ ok: true, value }),
    (error: unknown): Outcome<T> => ({ ok: false, error }),
  )
}

/**
 * `promise`, or a rejection naming `what` if it has not settled after `ms`: a guard that
 * turns a hang into a failure, never a timing assertion.
 */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms)
  })
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer))
}

/** The next turn of the event loop (after I/O callbacks already due). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/**
 * A named pipe (FIFO) in a fresh temp dir, opened read-write (so opening never blocks and
 * it never reports end of file); its descriptor is closed after the test. A read on it
 * blocks in the kernel until someone writes.
 */
export function fifo(t: ExecutionContext): { path: string; fd: number } {
  const path = join(tempDir(t), 'fifo')
  execFileSync('mkfifo', [path])
  const fd = openSync(path, constants_fs.O_RDWR)
  t.teardown(() => closeAtTeardown(fd))
  return { path, fd }
}

const directIoDirs = new Map<string, boolean>()

/**
 * A directory on a file system that takes `O_DIRECT` (tmpfs refuses it): the OS temp dir,
 * else /var/tmp, else the repository. `undefined` when none does.
 */
export function directIoDirectory(): string | undefined {
  for (const dir of [tmpdir(), '/var/tmp', REPO_ROOT]) {
    let works = directIoDirs.get(dir)
    if (works === undefined) {
      works = false
      let probe: string | undefined
      try {
        probe = mkdtempSync(join(dir, 'caio-odirect-'))
        const fd = openSync(join(probe, 'probe'), constants_fs.O_RDWR | constants_fs.O_CREAT | constants_fs.O_DIRECT)
        closeSync(fd)
        works = true
      } catch {
        // this file system refuses O_DIRECT (or the directory is not writable)
      } finally {
        if (probe !== undefined) rmSync(probe, { recursive: true, force: true })
      }
      directIoDirs.set(dir, works)
    }
    if (works) return dir
  }
  return undefined
}

/**
 * A file of `content` opened with `O_DIRECT | O_RDWR` on a file system that takes it; the
 * test fails (returns `undefined`) when there is none.
 */
export function directFileWith(t: ExecutionContext, content: Uint8Array): TestFile | undefined {
  const base = directIoDirectory()
  if (base === undefined) {
    t.fail(`no directory here takes O_DIRECT (tried ${tmpdir()}, /var/tmp, ${REPO_ROOT})`)
    return undefined
  }
  const dir = mkdtempSync(join(base, 'caio-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, `direct-${++fileCount}`)
  writeFileSync(path, content)
  const fd = openSync(path, constants_fs.O_RDWR | constants_fs.O_DIRECT)
  t.teardown(() => closeAtTeardown(fd))
  return { path, fd, content: () => readFileSync(path) }
}

/**
 * JavaScript for child scripts: `usage()` returns `[open descriptors, threads]` of the
 * process (`[0, 0]` without /proc), and `settleUsage(before, ms)` polls until both are back
 * to `before` (io_uring's kernel workers and ended threads leave asynchronously) or the
 * time is up, and returns the last reading.
 */
export const CHILD_USAGE_JS = `
  const usage = () => {
    const fsu = require('node:fs')
    if (!fsu.existsSync('/proc/self/fd')) return [0, 0]
    return [fsu.readdirSync('/proc/self/fd').length, Number(/Threads:\\s+(\\d+)/.exec(fsu.readFileSync('/proc/self/status', 'utf8'))[1])]
  }
  const settleUsage = async (before, ms) => {
    const end = Date.now() + ms
    let now = usage()
    while ((now[0] !== before[0] || now[1] > before[1]) && Date.now() < end) {
      if (typeof gc === 'function') gc()
      await new Promise((resolve) => setTimeout(resolve, 20))
      now = usage()
    }
    return now
  }
`

/** Detaches `buffer` (transfers it away with structuredClone). */
export function detach(buffer: ArrayBuffer): void {
  structuredClone(buffer, { transfer: [buffer] })
}
export function detachedView(): Uint8Array {
  const buffer = new ArrayBuffer(8)
  const view = new Uint8Array(buffer)
  detach(buffer)
  return view
}
export function detachedDataView(): DataView {
  const buffer = new ArrayBuffer(16)
  const view = new DataView(buffer, 4, 8)
  detach(buffer)
  return view
}

/** Whether `buffer` is detached (a view of it cannot be made). */
export function isDetached(buffer: ArrayBufferLike): boolean {
  if (buffer instanceof SharedArrayBuffer) return false
  try {
    new Uint8Array(buffer)
    return false
  } catch {
    return true
  }
}
