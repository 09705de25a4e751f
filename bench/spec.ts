/**
 * What the bench tells a child process (`node dist/bench/worker.js <spec JSON>`) and what
 * the child prints back: one JSON line on stdout. Both sides check the shape they read.
 */
import type { Workload } from './workloads'

export interface WorkerSpec {
  /** A contender id (see contenders.ts). */
  contender: string
  workload: Workload
  /** The file the operations go to, already written (see `fileRole`): in the page cache unless the workload is O_DIRECT. */
  file: string
  fileSize: number
  /** Measured seconds, after `warmupSec` of the same work that is not counted. */
  durationSec: number
  warmupSec: number
  /** Time one operation in this many, per worker (a power of two). */
  sampleEvery: number
  seed: number
}

export interface WorkerResult {
  contender: string
  workload: string
  /** Operations in flight the contender really ran (1 for a synchronous one). */
  depth: number
  ops: number
  wallSec: number
  opsPerSec: number
  /** Latency percentiles of the sampled operations, microseconds. */
  p50Us: number
  p99Us: number
  p999Us: number
  meanUs: number
  samples: number
  /** CPU of the whole child process (every thread) over the measured window. */
  cpuUserUs: number
  cpuSysUs: number
  cpuUsPerOp: number
  /** CPU seconds per wall second. */
  cores: number
  /** io_uring instances open in the child at the end of the run (Linux; -1 if unknown). */
  uringFds: number
  maxRssMiB: number
  info: Record<string, string | number | boolean>
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function num(o: Record<string, unknown>, key: string): number {
  const v = o[key]
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`bench: field ${key} is not a finite number: ${JSON.stringify(v)}`)
  return v
}

function str(o: Record<string, unknown>, key: string): string {
  const v = o[key]
  if (typeof v !== 'string') throw new Error(`bench: field ${key} is not a string: ${JSON.stringify(v)}`)
  return v
}

const KINDS: readonly Workload['kind'][] = ['cached-read', 'batch', 'direct-read', 'random-write', 'group-commit', 'direct-read-fixed', 'writev', 'seq-write', 'seq-read', 'sweep-concurrency', 'sweep-chunk']

function oneOf<T extends string>(o: Record<string, unknown>, key: string, allowed: readonly T[]): T {
  const v = str(o, key)
  const found = allowed.find((a) => a === v)
  if (found === undefined) throw new Error(`bench: field ${key} is ${JSON.stringify(v)}, not one of ${allowed.join(', ')}`)
  return found
}

export function parseWorkload(value: unknown): Workload {
  if (!isRecord(value)) throw new Error('bench: workload is not an object')
  const workload: Workload = {
    name: str(value, 'name'),
    title: str(value, 'title'),
    kind: oneOf(value, 'kind', KINDS),
    op: oneOf(value, 'op', ['read', 'write'] as const),
    pattern: oneOf(value, 'pattern', ['random', 'sequential', 'append'] as const),
    blockSize: num(value, 'blockSize'),
    depth: num(value, 'depth'),
    batch: num(value, 'batch'),
    fsyncEvery: num(value, 'fsyncEvery'),
    cache: oneOf(value, 'cache', ['cached', 'direct'] as const),
  }
  if (value.x !== undefined) workload.x = num(value, 'x')
  return workload
}

export function parseSpec(text: string): WorkerSpec {
  const value: unknown = JSON.parse(text)
  if (!isRecord(value)) throw new Error('bench: the spec is not an object')
  const spec: WorkerSpec = {
    contender: str(value, 'contender'),
    workload: parseWorkload(value.workload),
    file: str(value, 'file'),
    fileSize: num(value, 'fileSize'),
    durationSec: num(value, 'durationSec'),
    warmupSec: num(value, 'warmupSec'),
    sampleEvery: num(value, 'sampleEvery'),
    seed: num(value, 'seed'),
  }
  if (spec.sampleEvery < 1 || (spec.sampleEvery & (spec.sampleEvery - 1)) !== 0) throw new Error('bench: sampleEvery must be a power of two')
  const w = spec.workload
  if (w.depth < 1 || w.blockSize < 1 || w.batch < 1 || w.depth % w.batch !== 0 || spec.fileSize < w.blockSize) throw new Error('bench: bad workload for this file')
  return spec
}

export function parseResult(text: string): WorkerResult {
  const value: unknown = JSON.parse(text)
  if (!isRecord(value)) throw new Error('bench: the result is not an object')
  const info: WorkerResult['info'] = {}
  if (isRecord(value.info)) {
    for (const [k, v] of Object.entries(value.info)) {
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') info[k] = v
    }
  }
  return {
    contender: str(value, 'contender'),
    workload: str(value, 'workload'),
    depth: num(value, 'depth'),
    ops: num(value, 'ops'),
    wallSec: num(value, 'wallSec'),
    opsPerSec: num(value, 'opsPerSec'),
    p50Us: num(value, 'p50Us'),
    p99Us: num(value, 'p99Us'),
    p999Us: num(value, 'p999Us'),
    meanUs: num(value, 'meanUs'),
    samples: num(value, 'samples'),
    cpuUserUs: num(value, 'cpuUserUs'),
    cpuSysUs: num(value, 'cpuSysUs'),
    cpuUsPerOp: num(value, 'cpuUsPerOp'),
    cores: num(value, 'cores'),
    uringFds: num(value, 'uringFds'),
    maxRssMiB: num(value, 'maxRssMiB'),
    info,
  }
}
