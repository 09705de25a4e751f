/**
 * The files bench: whole files by path, `caio/fs` against `node:fs/promises`, the
 * synchronous loop and Bun — the rows issue 15's targets name. Every contender runs in a
 * fresh child process per round (`bench/files-worker.ts`), contenders alternating, and
 * the figures are medians over the rounds.
 *
 *   node dist/bench/files.js [--rounds 7] [--seconds 0.5] [--contenders a,b] [--workloads small-read,big-read,small-write] [--json out.json]
 *
 * Workloads: 10,000 files of 4 KiB read whole, 64 in flight (page cache); one 256 MiB file
 * read whole, one at a time (page cache); one sparse 3 GiB file read whole (Node's own
 * readFile refuses it: its row says so); 10,000 files of 4 KiB written whole, 64 in flight;
 * a 256 MiB file streamed; the isolation row.
 */
import { spawnSync } from 'node:child_process'
import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

import { backends } from '../index'
import type { FilesResult, FilesSpec } from './files-worker'
import { median, spread } from './stats'

const WORKER = join(__dirname, 'files-worker.js')
const SMALL_FILES = 10_000
const SMALL_SIZE = 4096
const BIG_SIZE = 256 * 1024 * 1024
/** Past 2 GiB, which `fs.promises.readFile` and `readFileSync` refuse (nodejs/node#55864). */
const HUGE_SIZE = 3 * 1024 * 1024 * 1024

type Workload = FilesSpec['workload']

interface Contender {
  id: string
  label: string
  runner: 'node' | 'bun'
  workloads: readonly Workload[]
}

const READS: readonly Workload[] = ['small-read', 'big-read', 'huge-read']
const WHOLE: readonly Workload[] = ['small-read', 'big-read', 'huge-read', 'small-write']
const ALL: readonly Workload[] = [...WHOLE, 'stream-read', 'isolation']

const CONTENDERS: readonly Contender[] = [
  { id: 'fs.promises', label: 'fs.promises / fs.createReadStream', runner: 'node', workloads: ALL },
  { id: 'fs.promisify', label: 'util.promisify(fs.readFile)', runner: 'node', workloads: ['small-read'] },
  { id: 'fs.sync', label: 'fs.readFileSync / writeFileSync loop', runner: 'node', workloads: WHOLE },
  ...(['uring', 'linux', 'thread', 'js'] as const).map((backend): Contender => ({ id: `caio:${backend}`, label: `caio ${backend}`, runner: 'node', workloads: ALL })),
  { id: 'caio:uring/many', label: 'caio uring readFiles (10,000 per call)', runner: 'node', workloads: ['small-read'] },
  { id: 'caio:thread/many', label: 'caio thread readFiles (10,000 per call)', runner: 'node', workloads: ['small-read'] },
  { id: 'bun:fs.promises', label: 'Bun fs.promises / fs.createReadStream', runner: 'bun', workloads: [...WHOLE, 'stream-read'] },
  { id: 'bun:fs.sync', label: 'Bun fs.readFileSync / writeFileSync loop', runner: 'bun', workloads: WHOLE },
  { id: 'bun:file', label: 'Bun.file().bytes()', runner: 'bun', workloads: READS },
]

const TITLES: Record<Workload, string> = {
  'small-read': `readFile of ${SMALL_FILES.toLocaleString('en')} files of 4 KiB, page cache, 64 in flight (files/s)`,
  'big-read': 'readFile of one 256 MiB file, page cache, one at a time (files/s)',
  'huge-read': 'readFile of one sparse 3 GiB file, one at a time (files/s)',
  'small-write': `writeFile of ${SMALL_FILES.toLocaleString('en')} files of 4 KiB, 64 in flight (files/s)`,
  'stream-read': 'one 256 MiB file through a read stream with default options (files/s; p99: event-loop delay, ms)',
  isolation: `readFile of the 4 KiB files, 64 in flight, beside one fs.promises.stat at a time (files/s; p99: the stat's latency, ms)`,
}

/** The ratios issue 15 sets, as (numerator, denominator, target). */
const TARGETS: ReadonlyArray<[Workload, string, string, number]> = [
  ['small-read', 'caio:uring', 'fs.promises', 5],
  ['small-read', 'caio:uring', 'fs.sync', 1],
  ['small-read', 'caio:uring/many', 'fs.sync', 1.5],
  ['small-read', 'caio:uring/many', 'bun:best', 1.2],
  ['small-read', 'caio:thread', 'fs.promises', 2],
  ['small-read', 'caio:linux', 'fs.promises', 2],
  ['big-read', 'caio:uring', 'fs.promises', 3],
  ['big-read', 'caio:uring', 'bun:file', 2],
  ['small-write', 'caio:uring', 'fs.promises', 3],
  ['stream-read', 'caio:uring', 'fs.promises', 2],
]

/** The p99 targets: the stream's event-loop delay below 5 ms; the stat's p99 beside caio at most 0.2× its p99 beside fs.promises. */
const P99_TARGETS: ReadonlyArray<[Workload, string, string]> = [
  ['stream-read', 'caio:uring', 'event-loop delay p99 < 5 ms'],
  ['isolation', 'caio:uring', 'stat p99 ≤ 0.2× beside fs.promises'],
]

interface Row {
  filesPerSec: number
  cpuUsPerFile: number
  spread: number
  /** The workload's p99 figure (stream-read, isolation), ms. */
  p99Ms?: number
}

function bunAvailable(): boolean {
  return spawnSync('bun', ['--version'], { stdio: 'ignore' }).status === 0
}

function runChild(contender: Contender, spec: FilesSpec): FilesResult {
  const command = contender.runner === 'bun' ? 'bun' : process.execPath
  const child = spawnSync(command, [WORKER, JSON.stringify(spec)], { encoding: 'utf8', timeout: 120_000 })
  const line = child.stdout?.trim().split('\n').pop() ?? ''
  if (child.status !== 0 || !line.startsWith('{')) {
    const stderr = (child.stderr ?? '').trim().split('\n')
    const error = stderr.find((l) => /Error\b|\bERR_/.test(l))
    throw new Error(`${contender.id}: ${error ?? (stderr.slice(-3).join(' | ') || `exit ${child.status}`)}`)
  }
  return JSON.parse(line) as FilesResult
}

function makeFixtures(root: string, workloads: readonly Workload[]): void {
  const small = join(root, 'small')
  mkdirSync(small)
  if (workloads.some((w) => w === 'small-read' || w === 'isolation')) {
    for (let i = 0; i < SMALL_FILES; i++) writeFileSync(join(small, String(i)), Buffer.alloc(SMALL_SIZE, i & 0xff))
    for (let i = 0; i < SMALL_FILES; i++) readFileSync(join(small, String(i)))
  }
  if (workloads.some((w) => w === 'big-read' || w === 'stream-read')) {
    const big = Buffer.allocUnsafe(BIG_SIZE)
    for (let i = 0; i < BIG_SIZE; i += 4096) big[i] = i & 0xff
    writeFileSync(join(small, 'big'), big)
    readFileSync(join(small, 'big'))
  }
  if (workloads.includes('huge-read')) {
    // Sparse: a byte every 256 MiB, holes between, so no disk is read and the figure is
    // the memory's (allocating, faulting in and filling 3 GiB).
    const fd = openSync(join(small, 'huge'), 'w')
    ftruncateSync(fd, HUGE_SIZE)
    for (let at = 0; at < HUGE_SIZE; at += BIG_SIZE) writeSync(fd, Buffer.from([at / BIG_SIZE + 1]), 0, 1, at)
    closeSync(fd)
  }
  mkdirSync(join(root, 'out'))
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return '–'
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(1)
}

function main(): void {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '7' },
      seconds: { type: 'string', default: '0.5' },
      contenders: { type: 'string' },
      workloads: { type: 'string' },
      json: { type: 'string' },
    },
  })
  const rounds = Number(values.rounds)
  const seconds = Number(values.seconds)
  const workloads = (values.workloads?.split(',') ?? ALL) as Workload[]
  const wanted = values.contenders?.split(',')
  const available = new Map(backends().map((b) => [b.name, b.available]))
  const haveBun = bunAvailable()
  const contenders = CONTENDERS.filter((c) => {
    if (wanted !== undefined && !wanted.includes(c.id)) return false
    if (c.runner === 'bun' && !haveBun) return false
    const backend = /^caio:(\w+)/.exec(c.id)?.[1]
    return backend === undefined || available.get(backend as 'uring') === true
  })
  const root = mkdtempSync(join(tmpdir(), 'caio-files-bench-'))
  try {
    makeFixtures(root, workloads)
    process.stdout.write(`caio files bench — node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}; ${rounds} rounds of ${seconds} s per contender, fresh child each, medians\n`)
    const summary: Record<string, Record<string, Row>> = {}
    for (const workload of workloads) {
      const rows = contenders.filter((c) => c.workloads.includes(workload))
      const perRound = new Map<string, Array<{ rate: number; cpu: number; p99?: number }>>(rows.map((c) => [c.id, []]))
      const failures = new Map<string, string>()
      for (let round = 0; round < rounds; round++) {
        for (const contender of rows) {
          const dir = workload === 'small-write' ? join(root, 'out') : join(root, 'small')
          const spec: FilesSpec = { contender: contender.id, workload, dir, count: SMALL_FILES, size: SMALL_SIZE, depth: 64, warmupSec: 0.15, durationSec: seconds }
          try {
            const result = runChild(contender, spec)
            perRound.get(contender.id)!.push({ rate: result.files / result.seconds, cpu: (result.cpuSeconds / result.files) * 1e6, p99: result.p99Ms })
          } catch (error) {
            failures.set(contender.id, (error as Error).message)
          }
        }
      }
      const table: Record<string, Row> = {}
      process.stdout.write(`\n${TITLES[workload]}\n  ${'contender'.padEnd(44)} ${'files/s'.padStart(10)} ${'MiB/s'.padStart(8)} ${'CPU µs/file'.padStart(12)} ${'spread'.padStart(7)} ${'p99 ms'.padStart(7)}\n`)
      const bytes = workload === 'huge-read' ? HUGE_SIZE : workload === 'big-read' || workload === 'stream-read' ? BIG_SIZE : SMALL_SIZE
      for (const contender of rows) {
        const figures = perRound.get(contender.id)!
        if (figures.length === 0) {
          // Node's readFile past 2 GiB: a refusal is this row's result.
          const failure = failures.get(contender.id) ?? 'did not run'
          const code = /\b(ERR_[A-Z_]+|E[A-Z]+)\b/.exec(failure)?.[1]
          process.stdout.write(`  ${contender.label.padEnd(44)} ${code !== undefined ? `refused: ${code}` : `failed: ${failure.slice(0, 120)}`}\n`)
          continue
        }
        const rate = median(figures.map((f) => f.rate))
        const cpu = median(figures.map((f) => f.cpu))
        const s = spread(figures.map((f) => f.rate))
        const p99s = figures.flatMap((f) => (f.p99 === undefined ? [] : [f.p99]))
        const p99 = p99s.length === 0 ? undefined : median(p99s)
        table[contender.id] = { filesPerSec: rate, cpuUsPerFile: cpu, spread: s, p99Ms: p99 }
        process.stdout.write(
          `  ${contender.label.padEnd(44)} ${fmt(rate).padStart(10)} ${((rate * bytes) / 2 ** 20).toFixed(0).padStart(8)} ${cpu.toFixed(1).padStart(12)} ${Number.isFinite(s) ? `${(s * 100).toFixed(0)}%`.padStart(7) : '–'.padStart(7)} ${p99 === undefined ? '' : p99.toFixed(2).padStart(7)}\n`,
        )
      }
      summary[workload] = table
    }
    process.stdout.write('\nRatios (targets from issue 15; medians of this run)\n')
    for (const [workload, numerator, denominator, target] of TARGETS) {
      const table = summary[workload]
      if (table === undefined) continue
      const top = table[numerator]?.filesPerSec
      const bunBest = Math.max(...['bun:fs.promises', 'bun:fs.sync', 'bun:file'].map((id) => table[id]?.filesPerSec ?? Number.NaN).filter(Number.isFinite))
      const bottom = denominator === 'bun:best' ? bunBest : table[denominator]?.filesPerSec
      const ratio = top !== undefined && bottom !== undefined && Number.isFinite(bottom) ? top / bottom : Number.NaN
      const verdict = Number.isNaN(ratio) ? 'not measured' : ratio >= target ? 'met' : 'NOT met'
      process.stdout.write(`  ${workload.padEnd(12)} ${numerator.padEnd(18)} / ${denominator.padEnd(12)} ${Number.isNaN(ratio) ? '   –' : `${ratio.toFixed(2)}×`.padStart(6)}  target ≥ ${target}×: ${verdict}\n`)
    }
    for (const [workload, id, target] of P99_TARGETS) {
      const table = summary[workload]
      const own = table?.[id]?.p99Ms
      const base = table?.['fs.promises']?.p99Ms
      if (own === undefined) continue
      const met = workload === 'stream-read' ? own < 5 : base !== undefined && own <= 0.2 * base
      const against = workload === 'isolation' && base !== undefined ? ` (beside fs.promises: ${base.toFixed(2)} ms; ${(own / base).toFixed(2)}×)` : ''
      process.stdout.write(`  ${workload.padEnd(12)} ${id.padEnd(18)} p99 ${own.toFixed(2)} ms${against}  target ${target}: ${met ? 'met' : 'NOT met'}\n`)
    }
    if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(summary, null, 2))
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
}

main()
