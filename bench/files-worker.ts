/**
 * The child process of the files bench (`bench/files.ts`): runs one contender's way of
 * reading or writing whole files by path for a while and prints one JSON line — files
 * done, seconds, CPU seconds. Runs under Node, and under Bun for Bun's own rows.
 *
 * argv[2] is the JSON of a {@link FilesSpec}.
 */
import { createReadStream, readFile as readFileCallback, readFileSync, writeFileSync } from 'node:fs'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { promisify } from 'node:util'

import { percentile } from './stats'

/** What one child runs. */
export interface FilesSpec {
  contender: string
  /**
   * `small-read`: `count` files `0`…`count-1` in `dir`; `big-read`: the one file `dir/big`;
   * `huge-read`: the one sparse 3 GiB file `dir/huge`, which Node's own readFile refuses;
   * `small-write`: files written into `dir`; `stream-read`: `dir/big` through a read stream
   * with default options; `isolation`: the small reads, with one `fs.promises.stat` loop
   * beside them whose latency is the figure.
   */
  workload: 'small-read' | 'big-read' | 'huge-read' | 'small-write' | 'stream-read' | 'isolation'
  dir: string
  count: number
  /** Bytes each small write writes. */
  size: number
  depth: number
  warmupSec: number
  durationSec: number
}

export interface FilesResult {
  files: number
  seconds: number
  cpuSeconds: number
  /** `stream-read`: the event loop's delay, p99, in ms; `isolation`: the stat's latency, p99, in ms. */
  p99Ms?: number
}

type ReadOne = (path: string) => Promise<unknown>
type WriteOne = (path: string, data: Buffer) => Promise<unknown>

interface Way {
  read?: ReadOne
  /** Consumes `path` through a read stream made with default options. */
  stream?: (path: string) => Promise<unknown>
  readSync?: (path: string) => unknown
  /** Reads a list of files in one call. */
  readMany?: (paths: string[]) => Promise<unknown>
  write?: WriteOne
  writeSync?: (path: string, data: Buffer) => void
  close?: () => Promise<void>
}

declare const Bun: { file(path: string): { bytes(): Promise<Uint8Array> } } | undefined

async function way(contender: string): Promise<Way> {
  const promisified = promisify(readFileCallback)
  // Bun's rows run Node's ways under Bun: its own implementations of the same calls.
  const id = contender === 'bun:file' ? contender : contender.replace(/^bun:/, '')
  switch (id) {
    case 'fs.promises':
      return { read: (path) => readFile(path), write: (path, data) => writeFile(path, data), stream: (path) => drain(createReadStream(path)) }
    case 'fs.promisify':
      return { read: (path) => promisified(path) }
    case 'fs.sync':
      return { readSync: (path) => readFileSync(path), writeSync: (path, data) => writeFileSync(path, data) }
    case 'bun:file':
      if (typeof Bun === 'undefined') throw new Error('Bun.file needs Bun')
      return { read: (path) => Bun!.file(path).bytes() }
  }
  const caio = /^caio:(uring|linux|thread|js)(\/many)?$/.exec(id)
  if (caio === null) throw new Error(`files bench: no contender ${id}`)
  // The compiled package, as a user's require() finds it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Context } = require('../index') as typeof import('../index')
  const ctx = new Context({ backend: caio[1] as 'uring' })
  const close = (): Promise<void> => ctx.close()
  if (caio[2] !== undefined) return { readMany: (paths) => ctx.readFiles(paths), close }
  const stream = async (path: string): Promise<unknown> => drain((await ctx.open(path)).createReadStream())
  return { read: (path) => ctx.readFile(path), write: (path, data) => ctx.writeFile(path, data), stream, close }
}

/** Reads `stream` to its end. */
async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const chunk of stream) void chunk
}

function cpuSeconds(): number {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1e6
}

/** Runs `step(i)` for files i = 0, 1, … with `depth` in flight until `seconds` passed; files done. */
async function drive(depth: number, seconds: number, step: (index: number) => Promise<unknown>): Promise<number> {
  const deadline = performance.now() + seconds * 1000
  let next = 0
  let done = 0
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      await step(next++)
      done++
    }
  }
  await Promise.all(Array.from({ length: depth }, worker))
  return done
}

function driveSync(seconds: number, step: (index: number) => void): number {
  const deadline = performance.now() + seconds * 1000
  let done = 0
  while (performance.now() < deadline) {
    for (let i = 0; i < 16; i++) step(done++)
  }
  return done
}

/** Latencies of one `fs.promises.stat` at a time for `seconds`, in ms. */
async function statLatencies(path: string, seconds: number): Promise<number[]> {
  const deadline = performance.now() + seconds * 1000
  const latencies: number[] = []
  while (performance.now() < deadline) {
    const started = performance.now()
    await stat(path)
    latencies.push(performance.now() - started)
  }
  return latencies
}

/** Files done, and the run's p99 figure where the workload has one. */
async function measureWithP99(spec: FilesSpec, w: Way, seconds: number): Promise<{ files: number; p99Ms?: number }> {
  if (spec.workload === 'isolation') {
    const [files, latencies] = await Promise.all([measure({ ...spec, workload: 'small-read' }, w, seconds), statLatencies(join(spec.dir, '0'), seconds)])
    return { files, p99Ms: percentile(latencies.sort((x, y) => x - y), 99) }
  }
  if (spec.workload === 'stream-read') {
    if (!w.stream) throw new Error(`${spec.contender} has no stream`)
    const lag = monitorEventLoopDelay({ resolution: 1 })
    lag.enable()
    const deadline = performance.now() + seconds * 1000
    let files = 0
    do {
      await w.stream(join(spec.dir, 'big'))
      files++
    } while (performance.now() < deadline)
    lag.disable()
    return { files, p99Ms: lag.percentile(99) / 1e6 }
  }
  return { files: await measure(spec, w, seconds) }
}

async function measure(spec: FilesSpec, w: Way, seconds: number): Promise<number> {
  const whole = spec.workload === 'big-read' ? 'big' : spec.workload === 'huge-read' ? 'huge' : undefined
  const pathOf = (index: number): string => join(spec.dir, whole ?? String(index % spec.count))
  const data = Buffer.alloc(spec.size, 0x61)
  if (spec.workload === 'small-write') {
    if (w.writeSync) return driveSync(seconds, (i) => w.writeSync!(pathOf(i), data))
    if (!w.write) throw new Error(`${spec.contender} does not write`)
    return drive(spec.depth, seconds, (i) => w.write!(pathOf(i), data))
  }
  if (w.readSync) return driveSync(seconds, (i) => w.readSync!(pathOf(i)))
  if (w.readMany) {
    // One call per `count` files: the bundler's pattern.
    const paths = Array.from({ length: spec.count }, (_, i) => pathOf(i))
    let done = 0
    const deadline = performance.now() + seconds * 1000
    while (performance.now() < deadline) {
      await w.readMany(paths)
      done += paths.length
    }
    return done
  }
  if (!w.read) throw new Error(`${spec.contender} does not read`)
  return drive(whole !== undefined ? 1 : spec.depth, seconds, (i) => w.read!(pathOf(i)))
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as FilesSpec
  const w = await way(spec.contender)
  await measureWithP99(spec, w, spec.warmupSec)
  const cpuBefore = cpuSeconds()
  const started = performance.now()
  const { files, p99Ms } = await measureWithP99(spec, w, spec.durationSec)
  const seconds = (performance.now() - started) / 1000
  const result: FilesResult = { files, seconds, cpuSeconds: cpuSeconds() - cpuBefore, p99Ms }
  await w.close?.()
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exit(1)
})
