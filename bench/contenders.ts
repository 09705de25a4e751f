/**
 * The contenders: every way of doing a workload's operations that the bench compares.
 *
 * - Node's own ways (`fs.promises`, `fs.callbacks` on the thread pool and with
 *   `UV_USE_IO_URING=1`, `fs.readSync`), run by `node worker.js`.
 * - caio: one entry per backend (`caio:<backend>`, `ctx.readInto`/`ctx.write`/`ctx.fsync`),
 *   `caio:uring+sqpoll`, and the batch entries (`caio:<backend>/batch`, `ctx.submit`).
 * - Bun's and Deno's own `fs` ways (`bun:…`, `deno:…`), and caio under each of them
 *   (`bun:caio:<backend>`, `deno:caio:<backend>`): the same worker script run by `bun` or
 *   `deno run -A`.
 * - fio with the engine that matches a caio backend (`fio:io_uring`, `fio:libaio`), and
 *   the Python caio (`py:<backend>` through `bench/python_caio.py`): see external.ts.
 *
 * Each entry says which row groups it has a row in (`joins`), what it really runs there
 * (`effective`: a synchronous one runs at depth 1; a per-operation one in the batch group
 * is the same run as in the 64-in-flight group), and why it cannot run on this machine.
 */
import { closeSync, constants, fdatasync as fsFdatasync, fsync as fsFsync, openSync, read as fsRead, readSync, write as fsWrite, writev as fsWritev } from 'node:fs'
import { open as fsOpen } from 'node:fs/promises'

import { backends, Context, DEFAULT_MAX_REQUESTS } from '../index'
import type { BackendName, BatchOp } from '../index'
import type { Io, SyncFile } from './drivers'
import { fioEngineUnavailable, pythonCaioUnavailable, bunUnavailable, denoUnavailable, PYTHON_MODULES } from './external'
import type { PythonImpl } from './external'
import { isStorageEngine, isSweep, reshape, WRITEV_PIECE } from './workloads'
import type { Workload } from './workloads'

/** A contender opened in the child for one workload. */
export interface Opened {
  io: Io
  /** fsync of the file (workloads with `fsyncEvery`). */
  sync?: SyncFile
  /** What the contender reports about itself (backend, pool size…), kept in the JSON. */
  info: Record<string, string | number | boolean>
  /** Called once with the workers' buffers before the run (registering them, for the registered rows). */
  prepare?(buffers: Buffer[]): Promise<void>
  close(): Promise<void>
}

export type Family = 'node' | 'caio' | 'bun' | 'deno' | 'fio' | 'python'

/** What runs a contender's child: `node`/`bun`/`deno` run worker.js, `python` the driver script, `fio` is fio itself. */
export type Runner = 'node' | 'bun' | 'deno' | 'python' | 'fio'

/** The other JavaScript runtimes the bench runs worker.js under. */
export type OtherRuntime = 'bun' | 'deno'

const RUNTIME_LABEL: Readonly<Record<OtherRuntime, string>> = { bun: 'Bun', deno: 'Deno' }
const RUNTIME_UNAVAILABLE: Readonly<Record<OtherRuntime, () => string | undefined>> = { bun: bunUnavailable, deno: denoUnavailable }

export interface Contender {
  /** Name for `--contenders` and in the JSON. */
  id: string
  family: Family
  runner: Runner
  /** Name in the table, for a workload. */
  label(workload: Workload): string
  /** Environment of its child process, over the bench's own. */
  env: Readonly<Record<string, string>>
  /** Synchronous: depth means nothing, it runs at depth 1 (one run shared by every group of the same operation). */
  sync: boolean
  /** Runs unless `--contenders` leaves it out (off ones run only when named). */
  byDefault: boolean
  /** It should hold an io_uring open while it runs; the child checks, the table warns if not. */
  expectsUring: boolean
  /** Whether it has a row in this workload's group: true, false (no row), or why it cannot do this workload (a note). */
  joins(workload: Workload): boolean | string
  /** Why it cannot run on this machine at all, or undefined. Probes once. */
  unavailable(): string | undefined
  /** Opens `file` for `workload` (node/bun runners, in the child). */
  open?(file: string, workload: Workload): Promise<Opened>
}

/** What a contender really runs for a workload. */
export function effective(contender: Contender, workload: Workload): Workload {
  if (contender.sync) return reshape(workload, 1, 1)
  if (!contender.id.endsWith('/batch')) return reshape(workload, workload.depth, 1)
  return workload
}

/** libuv reads `UV_USE_IO_URING` once at startup; the thread-pool rows say 0 so a user's environment cannot move them. */
const THREAD_POOL = { UV_USE_IO_URING: '0' } as const
const LIBUV_URING = { UV_USE_IO_URING: '1' } as const

function always(): undefined {
  return undefined
}

function fileFlags(workload: Workload): number {
  const mode = workload.op === 'read' ? constants.O_RDONLY : constants.O_RDWR
  return workload.cache === 'direct' ? mode | constants.O_DIRECT : mode
}

function verb(workload: Workload): string {
  return workload.op === 'read' ? 'read' : 'write'
}

/** What a callback contender calls for one operation of `workload`. */
function callbackVerb(workload: Workload): string {
  return workload.kind === 'writev' ? 'writev' : workload.kind === 'group-commit' ? 'write + fs.fdatasync' : verb(workload)
}

/** The 4 KiB pieces of a writev row's buffer, made once per buffer. */
function piecesOf(): (buffer: Buffer) => Buffer[] {
  const pieces = new Map<Buffer, Buffer[]>()
  return (buffer) => {
    let made = pieces.get(buffer)
    if (made === undefined) {
      made = Array.from({ length: buffer.length / WRITEV_PIECE }, (_, i) => buffer.subarray(i * WRITEV_PIECE, (i + 1) * WRITEV_PIECE))
      pieces.set(buffer, made)
    }
    return made
  }
}

async function openPromises(file: string, workload: Workload): Promise<Opened> {
  const handle = await fsOpen(file, fileFlags(workload))
  const length = workload.blockSize
  const pieces = piecesOf()
  const io =
    workload.kind === 'group-commit'
      ? async (buffer: Buffer, position: number) => {
          await handle.write(buffer, 0, length, position)
          await handle.datasync()
        }
      : workload.kind === 'writev'
        ? (buffer: Buffer, position: number) => handle.writev(pieces(buffer), position)
        : workload.op === 'read'
          ? (buffer: Buffer, position: number) => handle.read(buffer, 0, length, position)
          : (buffer: Buffer, position: number) => handle.write(buffer, 0, length, position)
  return {
    io: { style: 'promise', io },
    sync: () => handle.sync(),
    info: { threadpool: process.env.UV_THREADPOOL_SIZE ?? '4 (default)' },
    close: () => handle.close(),
  }
}

async function openCallbacks(file: string, workload: Workload): Promise<Opened> {
  const fd = openSync(file, fileFlags(workload))
  const length = workload.blockSize
  const pieces = piecesOf()
  type Done = (error: Error | null, bytes: number) => void
  const io =
    workload.kind === 'group-commit'
      ? (buffer: Buffer, position: number, callback: Done) =>
          fsWrite(fd, buffer, 0, length, position, (error, bytes) => (error ? callback(error, 0) : fsFdatasync(fd, (synced) => callback(synced, bytes))))
      : workload.kind === 'writev'
        ? (buffer: Buffer, position: number, callback: Done) => fsWritev(fd, pieces(buffer), position, callback)
        : workload.op === 'read'
          ? (buffer: Buffer, position: number, callback: Done) => fsRead(fd, buffer, 0, length, position, callback)
          : (buffer: Buffer, position: number, callback: Done) => fsWrite(fd, buffer, 0, length, position, callback)
  return {
    io: { style: 'callback', io },
    sync: () => new Promise<void>((resolve, reject) => fsFsync(fd, (error) => (error ? reject(error) : resolve()))),
    info: { threadpool: process.env.UV_THREADPOOL_SIZE ?? '4 (default)' },
    close: async () => closeSync(fd),
  }
}

/** fs.read callbacks each wrapped in a new Promise: the least any Promise API over fs.read costs. */
async function openBarePromise(file: string, workload: Workload): Promise<Opened> {
  const opened = await openCallbacks(file, workload)
  if (opened.io.style !== 'callback') throw new Error('bench: expected a callback contender')
  const callback = opened.io.io
  const io = (buffer: Buffer, position: number): Promise<number> => new Promise((resolve, reject) => callback(buffer, position, (error, bytes) => (error ? reject(error) : resolve(bytes))))
  return { ...opened, io: { style: 'promise', io } }
}

async function openReadSync(file: string, workload: Workload): Promise<Opened> {
  if (workload.op !== 'read') throw new Error('bench: fs.readSync only reads')
  const fd = openSync(file, fileFlags(workload))
  const length = workload.blockSize
  return {
    io: { style: 'sync', io: (buffer, position) => readSync(fd, buffer, 0, length, position) },
    info: {},
    close: async () => closeSync(fd),
  }
}

const CACHED_READS = (w: Workload): boolean => w.kind === 'cached-read'
/** Node's callbacks and promises: every group but the batch one; O_DIRECT only for fs.promises ("for contrast"). */
const ASYNC_NODE = (w: Workload): boolean => w.kind !== 'batch' && w.kind !== 'direct-read' && w.kind !== 'direct-read-fixed'

interface NodeWay {
  id: string
  label: (w: Workload) => string
  env: Readonly<Record<string, string>>
  open: NonNullable<Contender['open']>
  joins: (w: Workload) => boolean
  sync?: boolean
  byDefault?: boolean
}

const NODE_WAYS: readonly NodeWay[] = [
  {
    id: 'fs.promises',
    label: (w) => `fs.promises FileHandle.${w.kind === 'writev' ? 'writev' : verb(w)}${w.fsyncEvery > 0 ? ' + sync' : w.kind === 'group-commit' ? ' + datasync' : ''}`,
    env: THREAD_POOL,
    open: openPromises,
    joins: () => true,
  },
  {
    id: 'fs.promises+uring',
    label: (w) => `fs.promises FileHandle.${w.kind === 'writev' ? 'writev' : verb(w)}${w.kind === 'group-commit' ? ' + datasync' : ''}, UV_USE_IO_URING=1`,
    env: LIBUV_URING,
    open: openPromises,
    joins: ASYNC_NODE,
    byDefault: false,
  },
  {
    id: 'fs.callbacks',
    label: (w) => `fs.${callbackVerb(w)} callbacks (thread pool)`,
    env: THREAD_POOL,
    open: openCallbacks,
    joins: ASYNC_NODE,
  },
  {
    // What the js backend is held against: a Promise per operation and nothing else.
    id: 'fs.callbacks/promise',
    label: (w) => `fs.${verb(w)} callbacks in a bare Promise`,
    env: THREAD_POOL,
    open: openBarePromise,
    joins: (w) => w.kind === 'cached-read' && !isSweep(w),
  },
  {
    id: 'fs.callbacks+uring',
    label: (w) => `fs.${callbackVerb(w)} callbacks, UV_USE_IO_URING=1`,
    env: LIBUV_URING,
    open: openCallbacks,
    joins: ASYNC_NODE,
  },
  {
    id: 'fs.readSync',
    label: () => 'fs.readSync (sync, 1 thread)',
    env: THREAD_POOL,
    open: openReadSync,
    // The synchronous ceiling for reads from the page cache.
    joins: (w) => w.cache === 'cached' && w.op === 'read' && !isSweep(w),
    sync: true,
  },
]

function nodeContender(way: NodeWay): Contender {
  return {
    id: way.id,
    family: 'node',
    runner: 'node',
    label: way.label,
    env: way.env,
    sync: way.sync ?? false,
    byDefault: way.byDefault ?? true,
    expectsUring: way.env.UV_USE_IO_URING === '1',
    joins: way.joins,
    unavailable: always,
    open: way.open,
  }
}

/** Bun's or Deno's own `fs` ways, in the cached-read groups: the bars a user weighs switching runtime against. */
function runtimeContender(runtime: OtherRuntime, way: NodeWay): Contender {
  return {
    id: `${runtime}:${way.id}`,
    family: runtime,
    runner: runtime,
    label: (w) => `${RUNTIME_LABEL[runtime]} ${way.label(w).replace(/, UV_USE_IO_URING=1| \(thread pool\)/, '')}`,
    env: {},
    sync: way.sync ?? false,
    byDefault: true,
    expectsUring: false,
    joins: CACHED_READS,
    unavailable: RUNTIME_UNAVAILABLE[runtime],
    open: way.open,
  }
}

/** caio on one backend under Bun or Deno (its threadsafe-function completion path), in the cached-read groups. */
function runtimeCaioContender(runtime: OtherRuntime, backend: BackendName, sqpoll = false): Contender {
  const plain = caioContender({ backend, sqpoll, batch: false })
  return {
    ...plain,
    id: `${runtime}:caio:${backend}${sqpoll ? '+sqpoll' : ''}`,
    family: runtime,
    runner: runtime,
    label: (w) => `${plain.label(w)} under ${RUNTIME_LABEL[runtime]}`,
    env: {},
    byDefault: backend === 'uring' || backend === 'thread',
    joins: CACHED_READS,
    unavailable: () => RUNTIME_UNAVAILABLE[runtime]() ?? (sqpoll ? sqpollUnavailable() : backendUnavailable(backend)),
  }
}

/** Every caio backend name, in the order `backends()` reports them. */
export const CAIO_BACKENDS = ['uring', 'linux', 'thread', 'js'] as const satisfies readonly BackendName[]

function backendUnavailable(backend: BackendName): string | undefined {
  const status = backends().find((s) => s.name === backend)
  return status === undefined ? 'unknown backend' : status.available ? undefined : (status.reason ?? 'not available')
}

let sqpollProbe: string | undefined | null = null

/** Whether the kernel lets this process have an SQPOLL ring (it needs CAP_SYS_NICE before Linux 5.11). */
function sqpollUnavailable(): string | undefined {
  if (sqpollProbe !== null) return sqpollProbe
  sqpollProbe = backendUnavailable('uring')
  if (sqpollProbe === undefined) {
    try {
      const ctx = new Context({ backend: 'uring', sqpoll: true, maxRequests: 8 })
      if (!ctx.sqpoll) sqpollProbe = 'the kernel refused IORING_SETUP_SQPOLL here'
      void ctx.close()
    } catch (error) {
      sqpollProbe = error instanceof Error ? error.message : String(error)
    }
  }
  return sqpollProbe
}

interface CaioVariant {
  backend: BackendName
  sqpoll: boolean
  batch: boolean
}

function caioOpen(variant: CaioVariant): NonNullable<Contender['open']> {
  return async (file, workload) => {
    const fd = openSync(file, fileFlags(workload))
    const ctx = new Context({ backend: variant.backend, sqpoll: variant.sqpoll, maxRequests: Math.max(DEFAULT_MAX_REQUESTS, workload.depth) })
    if (variant.sqpoll && !ctx.sqpoll) throw new Error('bench: asked for sqpoll, the context has none')
    const info: Opened['info'] = { backend: ctx.backend, maxRequests: ctx.maxRequests }
    if (ctx.poolSize !== undefined) info.poolSize = ctx.poolSize
    if (ctx.backend === 'uring') info.sqpoll = ctx.sqpoll
    const close = async (): Promise<void> => {
      await ctx.close()
      closeSync(fd)
    }
    const sync = (): Promise<void> => ctx.fsync(fd)
    if (workload.kind === 'group-commit') {
      // One linked write → fdsync batch per append: one kernel trip on uring.
      const length = workload.blockSize
      const append = (buffer: Buffer, position: number): Promise<void> =>
        ctx.submit([
          { op: 'write', fd, offset: position, data: buffer, link: true },
          { op: 'fdsync', fd },
        ]).then((results) => {
          if (results[0] !== length || results[1] !== 0) throw results.find((r) => r instanceof Error) ?? new Error(`bench: an append settled with ${results.join(', ')}`)
        })
      return { io: { style: 'promise', io: append }, sync, info, close }
    }
    if (workload.kind === 'writev') {
      const pieces = piecesOf()
      return { io: { style: 'promise', io: (buffer: Buffer, position: number) => ctx.writev(pieces(buffer), fd, position) }, sync, info, close }
    }
    if (workload.kind === 'direct-read-fixed') {
      const io = (buffer: Buffer, position: number) => ctx.readInto(buffer, fd, position)
      const prepare = async (buffers: Buffer[]): Promise<void> => {
        await ctx.registerBuffers(buffers)
        await ctx.registerFiles([fd])
        info.registeredBuffers = buffers.length
      }
      // Read when the result is made: how many reads really were fixed ones (uring).
      Object.defineProperty(info, 'fixedBufferOps', { enumerable: true, get: () => ctx.registered().fixedBufferOps })
      Object.defineProperty(info, 'fixedFileOps', { enumerable: true, get: () => ctx.registered().fixedFileOps })
      return { io: { style: 'promise', io }, sync, info, prepare, close }
    }
    if (variant.batch) {
      if (workload.op !== 'read') throw new Error('bench: the batch contenders only read')
      info.perSubmit = workload.batch
      return {
        io: {
          style: 'batch',
          prepare: (buffers) => {
            // Made once per worker; the driver rewrites the offsets in place between submits.
            const ops: Array<BatchOp & { offset: number }> = buffers.map((buffer) => ({ op: 'read', fd, offset: 0, buffer }))
            return { slots: ops, submit: () => ctx.submit(ops) }
          },
        },
        sync,
        info,
        close,
      }
    }
    const io = workload.op === 'read' ? (buffer: Buffer, position: number) => ctx.readInto(buffer, fd, position) : (buffer: Buffer, position: number) => ctx.write(buffer, fd, position)
    return { io: { style: 'promise', io }, sync, info, close }
  }
}

function caioVerb(w: Workload): string {
  switch (w.kind) {
    case 'group-commit':
      return 'submit [write → fdsync]'
    case 'writev':
      return 'writev ×16'
    case 'direct-read-fixed':
      return 'readInto, registered'
    default:
      return w.op === 'read' ? 'readInto' : w.fsyncEvery > 0 ? 'write + fsync' : 'write'
  }
}

function caioContender(variant: CaioVariant): Contender {
  const name = `${variant.backend}${variant.sqpoll ? ' (sqpoll)' : ''}`
  return {
    id: `caio:${variant.backend}${variant.sqpoll ? '+sqpoll' : ''}${variant.batch ? '/batch' : ''}`,
    family: 'caio',
    runner: 'node',
    label: (w) => (variant.batch ? `caio ${name} submit ×${w.batch}` : `caio ${name} ${caioVerb(w)}`),
    env: THREAD_POOL,
    sync: false,
    byDefault: true,
    expectsUring: variant.backend === 'uring',
    joins: variant.batch ? (w) => w.kind === 'batch' : variant.sqpoll ? (w) => w.kind === 'cached-read' || w.kind === 'batch' : () => true,
    unavailable: variant.sqpoll ? sqpollUnavailable : () => backendUnavailable(variant.backend),
    open: caioOpen(variant),
  }
}

/** fio with the engine that matches a caio backend: the device's ceiling with O_DIRECT, a C reference everywhere else. */
function fioContender(engine: 'io_uring' | 'libaio'): Contender {
  return {
    id: `fio:${engine}`,
    family: 'fio',
    runner: 'fio',
    label: (w) => `fio --ioengine=${engine}${w.kind === 'direct-read-fixed' ? ' --fixedbufs --registerfiles' : ''}`,
    env: {},
    sync: false,
    byDefault: true,
    expectsUring: false,
    // The registered row is io_uring's alone; the append and writev rows have no fio job of the same shape.
    joins: (w) => w.kind !== 'batch' && !isSweep(w) && (w.kind === 'direct-read-fixed' ? engine === 'io_uring' : !isStorageEngine(w)),
    unavailable: () => fioEngineUnavailable(engine),
  }
}

/** The Python caio (the seed) with `CAIO_IMPL` set to one of its backends. */
function pythonContender(impl: PythonImpl): Contender {
  return {
    id: `py:${impl}`,
    family: 'python',
    runner: 'python',
    label: () => `Python caio ${impl} (${PYTHON_MODULES[impl].replace('caio.', '').replace('_asyncio', '')})`,
    env: { CAIO_IMPL: impl },
    sync: false,
    byDefault: true,
    expectsUring: impl === 'uring',
    joins: (w) => (w.kind === 'direct-read' ? 'its read() allocates its own unaligned buffer, which O_DIRECT refuses (EINVAL)' : w.kind !== 'batch' && !isStorageEngine(w)),
    unavailable: () => pythonCaioUnavailable(impl),
  }
}

/** Every contender this build knows, in table order. */
export function allContenders(): Contender[] {
  const caio: Contender[] = []
  for (const backend of CAIO_BACKENDS) {
    caio.push(caioContender({ backend, sqpoll: false, batch: false }))
    if (backend === 'uring') caio.push(caioContender({ backend, sqpoll: true, batch: false }))
  }
  for (const backend of CAIO_BACKENDS) {
    caio.push(caioContender({ backend, sqpoll: false, batch: true }))
    if (backend === 'uring') caio.push(caioContender({ backend, sqpoll: true, batch: true }))
  }
  return [
    ...NODE_WAYS.map(nodeContender),
    ...caio,
    fioContender('io_uring'),
    fioContender('libaio'),
    ...(['uring', 'linux', 'thread', 'python'] as const).map(pythonContender),
    ...(['bun', 'deno'] as const).flatMap((runtime) => [
      ...NODE_WAYS.filter((w) => w.id === 'fs.promises' || w.id === 'fs.callbacks' || w.id === 'fs.readSync').map((way) => runtimeContender(runtime, way)),
      ...(['uring', 'linux', 'thread'] as const).map((backend) => runtimeCaioContender(runtime, backend)),
      runtimeCaioContender(runtime, 'uring', true),
    ]),
  ]
}

/** Ids the first version of the bench used. */
export const ALIASES: Readonly<Record<string, string>> = {
  'fs.read': 'fs.callbacks',
  'fs.read+uring': 'fs.callbacks+uring',
}

/** The contender named `id` (or one of its {@link ALIASES}), without probing anything. */
export function contenderById(id: string): Contender | undefined {
  const wanted = ALIASES[id] ?? id
  return allContenders().find((c) => c.id === wanted)
}
