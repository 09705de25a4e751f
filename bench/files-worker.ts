/**
 * The child process of the files bench (`bench/files.ts`): runs one contender's way of
 * reading or writing whole files by path for a while and prints one JSON line — files
 * done, seconds, CPU seconds. Runs under Node, and under Bun for Bun's own rows.
 *
 * argv[2] is the JSON of a {@link FilesSpec}.
 */
import { readFile as readFileCallback, readFileSync, writeFileSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'

/** What one child runs. */
export interface FilesSpec {
  contender: string
  /** `small-read`: `count` files `0`…`count-1` in `dir`; `big-read`: the one file `dir/big`; `small-write`: files written into `dir`. */
  workload: 'small-read' | 'big-read' | 'small-write'
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
}

type ReadOne = (path: string) => Promise<unknown>
type WriteOne = (path: string, data: Buffer) => Promise<unknown>

interface Way {
  read?: ReadOne
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
      return { read: (path) => readFile(path), write: (path, data) => writeFile(path, data) }
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
  return { read: (path) => ctx.readFile(path), write: (path, data) => ctx.writeFile(path, data), close }
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

async function measure(spec: FilesSpec, w: Way, seconds: number): Promise<number> {
  const pathOf = (index: number): string => (spec.workload === 'big-read' ? join(spec.dir, 'big') : join(spec.dir, String(index % spec.count)))
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
  return drive(spec.workload === 'big-read' ? 1 : spec.depth, seconds, (i) => w.read!(pathOf(i)))
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as FilesSpec
  const w = await way(spec.contender)
  await measure(spec, w, spec.warmupSec)
  const cpuBefore = cpuSeconds()
  const started = performance.now()
  const files = await measure(spec, w, spec.durationSec)
  const seconds = (performance.now() - started) / 1000
  const result: FilesResult = { files, seconds, cpuSeconds: cpuSeconds() - cpuBefore }
  await w.close?.()
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exit(1)
})
