/**
 * The contenders: every way of doing a workload's operations that the bench compares.
 * Node's own ways are fixed entries; caio gets one entry per backend (`caio:<backend>`),
 * made from the backend list, so `uring` and `linux` join the table as soon as
 * `backends()` reports them available. A new contender (Bun, the Python caio, fio) is a
 * new entry whose `open` returns its {@link Io}; a child process may need another
 * command than `node worker.js`, which `command` is there for.
 */
import { closeSync, openSync, read as fsRead, readSync } from 'node:fs'
import { open as fsOpen } from 'node:fs/promises'

import { backends, Context, DEFAULT_MAX_REQUESTS } from '../index'
import type { BackendName } from '../index'
import type { Io } from './drivers'
import type { Workload } from './workloads'

/** A contender opened in the child for one workload. */
export interface Opened {
  io: Io
  /** What the contender reports about itself (backend, pool size…), kept in the JSON. */
  info: Record<string, string | number | boolean>
  close(): Promise<void>
}

export interface Contender {
  /** Name for `--contenders` and in the JSON. */
  id: string
  /** Name in the table. */
  label: string
  group: 'node' | 'caio'
  /** Environment of its child process, over the bench's own. */
  env: Readonly<Record<string, string>>
  /** Synchronous: depth means nothing, it runs once, at depth 1, and shows in every group. */
  sync: boolean
  /** Runs unless `--contenders` leaves it out (off ones run only when named). */
  byDefault: boolean
  /** It should hold an io_uring open while it runs; the child checks, the table warns if not. */
  expectsUring: boolean
  /** Why it cannot run here, or undefined. */
  unavailable(): string | undefined
  /** Opens `file` for `workload` (in the child process). */
  open(file: string, workload: Workload): Promise<Opened>
}

/** libuv reads `UV_USE_IO_URING` once at startup; the thread-pool rows say 0 so a user's environment cannot move them. */
const THREAD_POOL = { UV_USE_IO_URING: '0' } as const
const LIBUV_URING = { UV_USE_IO_URING: '1' } as const

function always(): undefined {
  return undefined
}

function node(id: string, label: string, env: Readonly<Record<string, string>>, open: Contender['open'], extra?: Partial<Contender>): Contender {
  return { id, label, group: 'node', env, sync: false, byDefault: true, expectsUring: env.UV_USE_IO_URING === '1', unavailable: always, open, ...extra }
}

async function openPromises(file: string, workload: Workload): Promise<Opened> {
  const handle = await fsOpen(file, 'r')
  const length = workload.blockSize
  return {
    io: { style: 'promise', io: (buffer, position) => handle.read(buffer, 0, length, position) },
    info: { threadpool: process.env.UV_THREADPOOL_SIZE ?? '4 (default)' },
    close: () => handle.close(),
  }
}

async function openCallbacks(file: string, workload: Workload): Promise<Opened> {
  const fd = openSync(file, 'r')
  const length = workload.blockSize
  return {
    io: { style: 'callback', io: (buffer, position, callback) => fsRead(fd, buffer, 0, length, position, callback) },
    info: { threadpool: process.env.UV_THREADPOOL_SIZE ?? '4 (default)' },
    close: async () => closeSync(fd),
  }
}

async function openSync_(file: string, workload: Workload): Promise<Opened> {
  const fd = openSync(file, 'r')
  const length = workload.blockSize
  return {
    io: { style: 'sync', io: (buffer, position) => readSync(fd, buffer, 0, length, position) },
    info: {},
    close: async () => closeSync(fd),
  }
}

/** Node's own ways, in table order. */
export const NODE_CONTENDERS: readonly Contender[] = [
  node('fs.promises', 'fs.promises FileHandle.read', THREAD_POOL, openPromises),
  node('fs.promises+uring', 'fs.promises, UV_USE_IO_URING=1', LIBUV_URING, openPromises, { byDefault: false }),
  node('fs.read', 'fs.read callbacks (thread pool)', THREAD_POOL, openCallbacks),
  node('fs.read+uring', 'fs.read callbacks, UV_USE_IO_URING=1', LIBUV_URING, openCallbacks),
  node('fs.readSync', 'fs.readSync (sync, depth 1)', THREAD_POOL, openSync_, { sync: true }),
]

/** The figures every row is held against (the ratio columns). */
export const BASELINES = [
  { id: 'fs.promises', column: '×promises' },
  { id: 'fs.read', column: '×fs.read' },
] as const

/** Every caio backend name, in the order `backends()` reports them. */
const CAIO_BACKENDS = ['uring', 'linux', 'thread', 'js'] as const satisfies readonly BackendName[]

function isCaioBackend(name: string): name is (typeof CAIO_BACKENDS)[number] {
  return (CAIO_BACKENDS as readonly string[]).includes(name)
}

/** The contender for one caio backend: `ctx.readInto` into the worker's buffer. */
export function caioContender(backend: BackendName): Contender {
  return {
    id: `caio:${backend}`,
    label: `caio ${backend} readInto`,
    group: 'caio',
    env: THREAD_POOL,
    sync: false,
    byDefault: true,
    expectsUring: backend === 'uring',
    unavailable: () => {
      const status = backends().find((s) => s.name === backend)
      return status === undefined ? 'unknown backend' : status.available ? undefined : (status.reason ?? 'not available')
    },
    open: async (file, workload) => {
      const fd = openSync(file, 'r')
      const ctx = new Context({ backend, maxRequests: Math.max(DEFAULT_MAX_REQUESTS, workload.depth) })
      const info: Opened['info'] = { backend: ctx.backend, maxRequests: ctx.maxRequests }
      if (ctx.poolSize !== undefined) info.poolSize = ctx.poolSize
      if (ctx.backend === 'uring') info.sqpoll = ctx.sqpoll
      return {
        io: { style: 'promise', io: (buffer, position) => ctx.readInto(buffer, fd, position) },
        info,
        close: async () => {
          await ctx.close()
          closeSync(fd)
        },
      }
    },
  }
}

/** Every contender this build knows, in table order: Node's, then caio's backends. */
export function allContenders(): Contender[] {
  return [...NODE_CONTENDERS, ...CAIO_BACKENDS.map(caioContender)]
}

/** The contender named `id`, without probing anything it does not need. */
export function contenderById(id: string): Contender | undefined {
  const known = NODE_CONTENDERS.find((c) => c.id === id)
  if (known) return known
  const backend = id.startsWith('caio:') ? id.slice('caio:'.length) : ''
  return isCaioBackend(backend) ? caioContender(backend) : undefined
}
