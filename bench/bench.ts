/**
 * `npm run bench`: caio's backends beside Node's own ways of doing the same I/O, fio, the
 * Python caio and Bun, on this machine, in one run.
 *
 * Makes its files on a disk file system (a data file read into the page cache, an
 * O_DIRECT copy of it, a scratch file for writes), then, for a number of rounds, runs
 * every (workload, contender) pair in turn — A B C A B C … — each in a fresh child
 * process (`node`/`bun dist/bench/worker.js <spec>`, `python3 bench/python_caio.py
 * <spec>`, or `fio …`) so every contender starts from the same conditions and
 * environment-dependent ones (libuv's `UV_USE_IO_URING`, `CAIO_IMPL`) get their own.
 * Children never overlap. Prints progress on stderr, then the tables of the medians over
 * the rounds and the target ratios on stdout; `--json` writes every figure of every round,
 * `--chart` draws them.
 *
 * Run `node dist/bench/bench.js --help` for the flags.
 */
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { cpus, loadavg, release, totalmem } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'

import { alignedBuffer, backends } from '../index'
import { renderChart, writeChart } from './chart'
import { ALIASES, allContenders, CAIO_BACKENDS, effective } from './contenders'
import type { Contender } from './contenders'
import { chooseParent, createDataFile, createDirectFile, createScratchFile, flushFile, makeDir, removeDir } from './datafile'
import type { DataFile } from './datafile'
import { bunVersion, denoVersion, fioArgs, fioCommand, fioIdleCpu, fioVersion, parseFio, PYTHON_DRIVER, pythonCaio, pythonCommand } from './external'
import { formatOps, formatUs, renderGroups, renderSweeps, summarize } from './report'
import type { Cell, Group, Missing, Sweep } from './report'
import { parseResult } from './spec'
import type { WorkerResult, WorkerSpec } from './spec'
import { evaluate, renderRatios } from './targets'
import { fileRole, isSweep, SWEEPS, WORKLOAD_GROUPS, workloadKey, WORKLOADS } from './workloads'
import type { Workload } from './workloads'

const HELP = `Usage: npm run bench -- [flags]      (or: node dist/bench/bench.js [flags])

caio's backends beside Node's fs (promises, callbacks on the thread pool and with
UV_USE_IO_URING=1, readSync), fio, the Python caio and Bun, on: 4 KiB random cached reads
at 1, 8 and 64 in flight and in batches of 64, 4 KiB O_DIRECT reads at 64 (also with
registered buffers and files), 64 KiB random writes at 16, 4 KiB appends + fdatasync by 32
appenders (group commit), writev of 16 × 4 KiB at 16, 1 MiB sequential writes + fsync,
1 MiB sequential reads. Every contender
runs in its own child process per round; rounds alternate the contenders; the table
shows medians over the rounds, then the ratios the design's targets name.

  --cached-size <MiB>     size of the file the page-cache reads read (default 64, the
                          size the design's and the io_uring issue's targets name; --quick: 16)
  --size <MiB>            size of the O_DIRECT and the scratch (write) files (default 256;
                          --quick: 16)
  --dir <path>            where to make the files' temporary directory (a disk file
                          system; default: os.tmpdir(), or /var/tmp or . if that is tmpfs)
  --duration <s>          measured seconds per contender per round (default 0.5; --quick: 0.05)
  --warmup <s>            uncounted seconds before each measurement (default 0.15; --quick: 0.02)
  --rounds <n>            rounds, each contender once per round (default 3; --quick: 1)
  --quick                 a smoke run of every contender, under 30 s
  --files                 also run the files bench afterwards (whole files by path:
                          readFile, readFiles, writeFile; bench/files.ts, about 2 minutes)
  --sweeps                also run the Python caio's sweeps (16 KiB reads at 1…4096 in
                          flight; 4 KiB…4 MiB at 64): about 1½ more minutes
  --sweep-duration <s>    measured seconds per sweep point (default 0.3; --quick: 0.03)
  --sweep-rounds <n>      rounds of the sweeps (default 1)
  --workloads <a,b>       workloads by name, or groups: default, cached, batch, direct,
                          write, read, storage, sweeps (default: default, plus sweeps
                          with --sweeps)
  --backends <a,b>        caio backends to run (default: every available one)
  --contenders <a,b>      only these contenders: ids, or prefixes such as caio: fs. fio: py: bun:
                          (see --list; fs.promises+uring runs only when named)
  --exclude <a,b>         leave these contenders out (same forms)
  --json <file>           also write every figure of every round as JSON
  --chart <file>          draw the run: .svg, or .png (needs rsvg-convert)
  --sample-every <n>      time one operation in n per worker (power of two, default 8)
  --seed <n>              PRNG seed (default 1)
  --verbose               a line per run even on a terminal
  --list                  list workloads and contenders (and why any cannot run here), then exit
  --help                  this text
`

interface Timing {
  durationSec: number
  warmupSec: number
  rounds: number
}

interface Settings {
  /** The O_DIRECT and scratch files. */
  sizeMiB: number
  /** The data file the page-cache reads read. */
  cachedSizeMiB: number
  dir: string | undefined
  main: Timing
  sweep: Timing
  sampleEvery: number
  seed: number
  json: string | undefined
  chart: string | undefined
  verbose: boolean
  quick: boolean
  workloads: Workload[]
  contenders: Contender[]
  /** Contenders left out because they cannot run here, with the reason. */
  skipped: Missing[]
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`)
  process.exit(2)
}

function warn(message: string): void {
  clearProgress()
  process.stderr.write(`bench: warning: ${message}\n`)
}

function positive(value: string | undefined, flag: string, fallback: number, integer = false): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) fail(`${flag} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(value)}`)
  return n
}

function list(value: string | undefined): string[] | undefined {
  return value === undefined
    ? undefined
    : value
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '')
}

function parseFlags(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      size: { type: 'string' },
      'cached-size': { type: 'string' },
      dir: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      quick: { type: 'boolean', default: false },
      sweeps: { type: 'boolean', default: false },
      files: { type: 'boolean', default: false },
      'sweep-duration': { type: 'string' },
      'sweep-rounds': { type: 'string' },
      backends: { type: 'string' },
      contenders: { type: 'string' },
      exclude: { type: 'string' },
      workloads: { type: 'string' },
      json: { type: 'string' },
      chart: { type: 'string' },
      'sample-every': { type: 'string' },
      seed: { type: 'string' },
      verbose: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  })
}

/** Whether a `--contenders`/`--exclude` entry names this contender: its id, an alias, or a prefix (`py:`, `caio:uring`, `fs.`). */
function matches(pattern: string, c: Contender): boolean {
  const p = ALIASES[pattern] ?? pattern
  if (p === c.id) return true
  const prefix = p.endsWith('*') ? p.slice(0, -1) : p
  return (prefix.endsWith(':') || prefix.endsWith('.') || p.endsWith('*') || /^caio:[a-z]+$/.test(prefix)) && c.id.startsWith(prefix)
}

function caioBackendOf(c: Contender): string | undefined {
  return c.family === 'caio' ? c.id.slice('caio:'.length).split(/[+/]/)[0] : undefined
}

function selectWorkloads(names: string[] | undefined, sweeps: boolean): Workload[] {
  const all = [...WORKLOADS, ...SWEEPS]
  if (names === undefined) return all.filter((w) => !isSweep(w) || sweeps)
  const chosen = new Set<Workload>()
  for (const name of names) {
    const group = WORKLOAD_GROUPS[name]
    if (group) {
      for (const w of all) if (group(w)) chosen.add(w)
      continue
    }
    const w = all.find((x) => x.name === name) ?? fail(`unknown workload ${name}; known: ${Object.keys(WORKLOAD_GROUPS).join(', ')}, ${all.map((x) => x.name).join(', ')}`)
    chosen.add(w)
  }
  // In table order, whatever the order of the flag.
  return all.filter((w) => chosen.has(w))
}

function printList(all: Contender[]): never {
  process.stdout.write('workloads (row groups):\n')
  for (const w of WORKLOADS) process.stdout.write(`  ${w.name.padEnd(26)} ${w.title}\n`)
  process.stdout.write(`sweep points (--sweeps): ${SWEEPS.map((w) => w.name).join(', ')}\n`)
  process.stdout.write(`workload groups: ${Object.keys(WORKLOAD_GROUPS).join(', ')}\n`)
  process.stdout.write('contenders:\n')
  for (const c of all) {
    const reason = c.unavailable()
    const joined = [...WORKLOADS, ...SWEEPS].filter((w) => c.joins(w) === true).map((w) => w.name)
    const where = joined.length === WORKLOADS.length + SWEEPS.length ? 'every workload' : joined.filter((n) => !n.startsWith('sweep-')).join(' ') + (joined.some((n) => n.startsWith('sweep-')) ? ' +sweeps' : '')
    const state = reason !== undefined ? `  (not available here: ${reason})` : c.byDefault ? '' : '  (only when named)'
    const sample = [...WORKLOADS, ...SWEEPS].find((w) => c.joins(w) === true) ?? WORKLOADS[0]!
    process.stdout.write(`  ${c.id.padEnd(26)} ${c.label(sample)}${state}\n${''.padEnd(29)}in: ${where}\n`)
  }
  process.exit(0)
}

function parseSettings(argv: string[]): Settings {
  let parsed: ReturnType<typeof parseFlags>
  try {
    parsed = parseFlags(argv)
  } catch (error) {
    fail(`${error instanceof Error ? error.message : String(error)}\n\n${HELP}`)
  }
  const v = parsed.values
  const all = allContenders()
  if (v.help) {
    process.stdout.write(HELP)
    process.exit(0)
  }
  if (v.list) printList(all)

  const quick = v.quick === true
  const durationSec = positive(v.duration, '--duration', quick ? 0.05 : 0.5)
  const warmupSec = v.warmup === '0' ? 0 : positive(v.warmup, '--warmup', quick ? 0.02 : Math.min(0.15, durationSec / 2))
  const sweepDuration = positive(v['sweep-duration'], '--sweep-duration', quick ? 0.03 : 0.3)
  const sampleEvery = positive(v['sample-every'], '--sample-every', 8, true)
  if ((sampleEvery & (sampleEvery - 1)) !== 0) fail('--sample-every must be a power of two')
  const seed = v.seed === undefined ? 1 : Number(v.seed)
  if (!Number.isInteger(seed)) fail('--seed must be an integer')

  const workloads = selectWorkloads(list(v.workloads), v.sweeps === true)
  if (workloads.length === 0) fail('--workloads names no workload')

  const backendNames = list(v.backends)
  for (const name of backendNames ?? []) {
    if (!(CAIO_BACKENDS as readonly string[]).includes(name)) fail(`unknown caio backend ${name}; known: ${CAIO_BACKENDS.join(', ')}`)
  }
  const include = list(v.contenders)
  const exclude = list(v.exclude) ?? []
  for (const p of [...(include ?? []), ...exclude]) {
    if (!all.some((c) => matches(p, c))) fail(`${p} names no contender; known: ${all.map((c) => c.id).join(', ')}`)
  }
  const skipped: Missing[] = []
  const contenders = all.filter((c) => {
    const named = include?.some((p) => p === c.id || ALIASES[p] === c.id) ?? false
    if (include !== undefined ? !include.some((p) => matches(p, c)) : !c.byDefault) return false
    if (!c.byDefault && include !== undefined && !named) return false
    if (exclude.some((p) => matches(p, c))) return false
    const backend = caioBackendOf(c)
    if (backend !== undefined && backendNames !== undefined && !backendNames.includes(backend)) return false
    if (!workloads.some((w) => c.joins(w) !== false)) return false
    const reason = c.unavailable()
    if (reason !== undefined) {
      skipped.push({ id: c.id, reason })
      if (named || (backend !== undefined && backendNames?.includes(backend))) warn(`${c.id} is not available here, skipped: ${reason}`)
      return false
    }
    return true
  })
  if (contenders.length === 0) fail('no contender left to run')

  return {
    sizeMiB: positive(v.size, '--size', quick ? 16 : 256),
    cachedSizeMiB: positive(v['cached-size'], '--cached-size', quick ? 16 : 64),
    dir: v.dir,
    main: { durationSec, warmupSec, rounds: positive(v.rounds, '--rounds', quick ? 1 : 3, true) },
    sweep: { durationSec: sweepDuration, warmupSec: Math.min(warmupSec, sweepDuration / 3), rounds: positive(v['sweep-rounds'], '--sweep-rounds', 1, true) },
    sampleEvery,
    seed,
    json: v.json,
    chart: v.chart,
    verbose: v.verbose === true,
    quick,
    workloads,
    contenders,
    skipped,
  }
}

/** One child run: a (workload, contender) pair, deduplicated by what really runs. */
interface Job {
  key: string
  contender: Contender
  workload: Workload
  timing: Timing
  cell: Cell
}

/** The jobs, in the order of a round, and each group's rows. Main groups plan first, so a run they share with a sweep point keeps their timing. */
function plan(settings: Settings): { jobs: Job[]; groups: Group[] } {
  const jobs = new Map<string, Job>()
  const groups: Group[] = []
  for (const workload of settings.workloads) {
    const group: Group = { workload, rows: [], missing: [] }
    for (const s of settings.skipped) {
      const c = allContenders().find((x) => x.id === s.id)
      if (c && c.joins(workload) !== false) group.missing.push(s)
    }
    for (const contender of settings.contenders) {
      const joins = contender.joins(workload)
      if (joins === false) continue
      if (typeof joins === 'string') {
        group.missing.push({ id: contender.id, reason: joins })
        continue
      }
      const real = effective(contender, workload)
      const key = `${contender.id}@${workloadKey(real)}`
      let job = jobs.get(key)
      if (!job) {
        job = { key, contender, workload: real, timing: isSweep(workload) ? settings.sweep : settings.main, cell: { contender, workload: real, rounds: [], errors: [] } }
        jobs.set(key, job)
      }
      group.rows.push({ contender, cell: job.cell })
    }
    groups.push(group)
  }
  return { jobs: [...jobs.values()], groups }
}

// Process-wide state the signal handlers clean up.
let dataDir: string | undefined
let child: ChildProcess | undefined
let progressShown = false

function clearProgress(): void {
  if (progressShown) {
    process.stderr.write('\r\x1b[K')
    progressShown = false
  }
}

function cleanup(): void {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  if (dataDir !== undefined) {
    const dir = dataDir
    dataDir = undefined
    try {
      removeDir(dir)
    } catch (error) {
      process.stderr.write(`bench: could not remove ${dir}: ${error instanceof Error ? error.message : String(error)}\n`)
    }
  }
}

function installCleanup(): void {
  const exitCodes = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      clearProgress()
      process.stderr.write(`\nbench: ${signal}: stopping${dataDir !== undefined ? `, removing ${dataDir}` : ''}\n`)
      cleanup()
      process.exit(exitCodes[signal])
    })
  }
  process.on('exit', cleanup)
}

const WORKER = join(__dirname, 'worker.js')

interface Launch {
  command: string
  args: string[]
  env: Readonly<Record<string, string>>
  parse(stdout: string, stderr: string): WorkerResult
}

function launch(spec: WorkerSpec, contender: Contender, quick: boolean): Launch {
  const specJson = JSON.stringify(spec)
  const lastLine = (stdout: string): WorkerResult => {
    const line = stdout.trim().split('\n').pop() ?? ''
    if (!line.startsWith('{')) throw new Error('printed no result')
    return parseResult(line)
  }
  switch (contender.runner) {
    case 'node':
      return { command: process.execPath, args: [WORKER, specJson], env: contender.env, parse: lastLine }
    case 'bun':
      return { command: 'bun', args: [WORKER, specJson], env: contender.env, parse: lastLine }
    case 'deno':
      return { command: 'deno', args: ['run', '-A', WORKER, specJson], env: contender.env, parse: lastLine }
    case 'python':
      return { command: pythonCommand(), args: [PYTHON_DRIVER, specJson], env: contender.env, parse: lastLine }
    case 'fio': {
      const engine = contender.id.slice('fio:'.length)
      // A smoke run skips measuring fio's start-up CPU (a second fio per job): its CPU figures mean nothing at 0.05 s anyway.
      const idle = quick ? 0 : fioIdleCpu(spec, engine)
      return { ...fioCommand(fioArgs(spec, engine)), env: contender.env, parse: (stdout, stderr) => parseFio(stdout, stderr, spec, engine, idle) }
    }
  }
}

/** Runs one child to completion; resolves with its result or rejects with why it failed. */
function runChild(spec: WorkerSpec, contender: Contender, quick: boolean): Promise<WorkerResult> {
  const timeoutMs = (spec.warmupSec + spec.durationSec) * 1000 + 60_000
  const how = launch(spec, contender, quick)
  return new Promise((resolve, reject) => {
    const proc = spawn(how.command, how.args, { env: { ...process.env, ...how.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    let stdout = ''
    let stderr = ''
    proc.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    proc.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      stderr += `\nkilled after ${timeoutMs / 1000} s without finishing`
    }, timeoutMs)
    proc.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    proc.on('close', (code, signal) => {
      clearTimeout(timer)
      child = undefined
      if (code === 0) {
        try {
          const result = how.parse(stdout, stderr)
          // Warnings a successful child printed are worth seeing once (fio's notes are not).
          if (stderr.trim() !== '' && contender.runner !== 'fio') warn(stderr.trim().replace(/^/gm, `  [${contender.id}] `))
          resolve(result)
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)))
        }
        return
      }
      const why = (stderr + '\n' + (contender.runner === 'fio' ? stdout : '')).split('\n').filter((l) => l.trim() !== '')
      const firstError = why.find((l) => /Error|error|SystemExit|fio:/.test(l)) ?? why[why.length - 1] ?? ''
      reject(new Error(`${signal !== null ? `killed by ${signal}` : `exit code ${code}`}${firstError ? `: ${firstError.trim()}` : ''}`))
    })
  })
}

function describeMachine(): string {
  const list = cpus()
  const model = list[0]?.model.trim() ?? 'unknown CPU'
  return `node ${process.version}, linux ${release()} ${process.arch}, ${list.length} × ${model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM`
}

function describeTools(): string {
  const py = pythonCaio()
  return [
    `fio: ${fioVersion() ?? 'not on PATH'}`,
    `Python caio: ${py.version !== undefined ? `${py.version} (Python ${py.python ?? '?'})` : (py.reason ?? 'not installed')}`,
    `bun: ${bunVersion() ?? 'not on PATH'}`,
    `deno: ${denoVersion() ?? 'not on PATH'}`,
  ].join('; ')
}

function formatDuration(sec: number): string {
  return sec >= 60 ? `${Math.floor(sec / 60)} min ${Math.round(sec % 60)} s` : `${sec.toFixed(1)} s`
}

/** The bench's files, made only as the chosen workloads need them. */
interface Files {
  data?: DataFile
  direct?: string
  directError?: string
  scratch?: string
}

/** Whole 4 KiB pages of `mib` MiB: an O_DIRECT file must be exactly as long. */
function pages(mib: number): number {
  return Math.floor((mib * 2 ** 20) / 4096) * 4096
}

/** The bytes each of the bench's files holds: the data file `cached`, the others `size`. */
interface Sizes {
  cached: number
  size: number
}

function makeFiles(settings: Settings, sizes: Sizes): Files {
  const roles = new Set(settings.workloads.map(fileRole))
  const parent = chooseParent(settings.dir, warn)
  const dir = makeDir(parent, (d) => (dataDir = d))
  const files: Files = {}
  process.stderr.write(`bench: writing random data under ${dir} …\n`)
  if (roles.has('data')) {
    files.data = createDataFile(dir, sizes.cached)
    process.stderr.write(`bench: ${files.data.path} (${files.data.fs}, ${settings.cachedSizeMiB} MiB) read once into the page cache at ${(files.data.warmRate / 2 ** 30).toFixed(2)} GiB/s\n`)
  }
  if (roles.has('direct')) {
    try {
      files.direct = createDirectFile(dir, sizes.size, (n) => alignedBuffer(n))
    } catch (error) {
      files.directError = error instanceof Error ? error.message : String(error)
      warn(`no O_DIRECT rows: ${files.directError}`)
    }
  }
  if (roles.has('scratch')) files.scratch = createScratchFile(dir, sizes.size)
  return files
}

function fileFor(files: Files, workload: Workload): string | undefined {
  const role = fileRole(workload)
  return role === 'data' ? files.data?.path : role === 'direct' ? files.direct : files.scratch
}

async function main(): Promise<void> {
  const settings = parseSettings(process.argv.slice(2))
  installCleanup()
  const { jobs, groups } = plan(settings)
  const started = new Date()
  const t0 = performance.now()
  const load0 = loadavg()

  const sizes: Sizes = { cached: pages(settings.cachedSizeMiB), size: pages(settings.sizeMiB) }
  for (const [flag, role, bytes] of [['--cached-size', 'data', sizes.cached], ['--size', 'direct', sizes.size], ['--size', 'scratch', sizes.size]] as const) {
    const biggest = Math.max(0, ...settings.workloads.filter((w) => fileRole(w) === role).map((w) => w.blockSize))
    if (bytes < biggest) fail(`${flag} is smaller than one block of the chosen workloads (${biggest} bytes)`)
  }
  if (sizes.cached + sizes.size > totalmem() * 0.3) warn(`${settings.cachedSizeMiB} MiB of cached data and a ${settings.sizeMiB} MiB scratch file may not stay in the page cache of ${(totalmem() / 2 ** 20).toFixed(0)} MiB of RAM`)
  const files = makeFiles(settings, sizes)

  const rounds = Math.max(...jobs.map((j) => j.timing.rounds))
  const total = jobs.reduce((n, j) => n + j.timing.rounds, 0)
  const eta = jobs.reduce((s, j) => s + j.timing.rounds * (j.timing.warmupSec + j.timing.durationSec + (j.contender.runner === 'fio' ? 0.35 : 0.15)), 0)
  process.stderr.write(
    `bench: ${jobs.length} runs × up to ${rounds} round${rounds === 1 ? '' : 's'} = ${total} child processes, about ${formatDuration(eta)}; load average ${load0[0]!.toFixed(2)}\n`,
  )
  if (load0[0]! > cpus().length / 2) warn(`the load average (${load0[0]!.toFixed(2)} on ${cpus().length} CPUs) says other work is running: expect noisy figures`)

  const runs: Array<{ round: number; contender: string; workload: string; depth: number; batch: number; loadavg: number; result?: WorkerResult; error?: string }> = []
  const tty = process.stderr.isTTY === true && !settings.verbose
  let n = 0
  const runStart = performance.now()
  for (let round = 1; round <= rounds; round++) {
    for (const job of jobs) {
      if (round > job.timing.rounds) continue
      n++
      const tag = `[${String(n).padStart(String(total).length)}/${total}] round ${round}/${job.timing.rounds}  ${job.workload.name.padEnd(24)} ${job.contender.id.padEnd(24)}`
      const load = loadavg()[0]!
      const record = (result: WorkerResult | undefined, error: string | undefined): void => {
        runs.push({ round, contender: job.contender.id, workload: job.workload.name, depth: job.workload.depth, batch: job.workload.batch, loadavg: load, ...(result ? { result } : {}), ...(error !== undefined ? { error } : {}) })
      }
      const file = fileFor(files, job.workload)
      if (file === undefined) {
        const message = files.directError ?? 'its file could not be made'
        job.cell.errors.push(message)
        record(undefined, message)
        continue
      }
      if (tty) {
        const elapsed = (performance.now() - runStart) / 1000
        const left = n > 1 ? (elapsed / (n - 1)) * (total - n + 1) : eta
        process.stderr.write(`\r\x1b[K${tag.trimEnd()}  (${formatDuration(elapsed)} in, ~${formatDuration(left)} left, load ${load.toFixed(2)})`)
        progressShown = true
      }
      const spec: WorkerSpec = {
        contender: job.contender.id,
        workload: job.workload,
        file,
        fileSize: fileRole(job.workload) === 'data' ? sizes.cached : sizes.size,
        durationSec: job.timing.durationSec,
        warmupSec: job.timing.warmupSec,
        sampleEvery: settings.sampleEvery,
        seed: (settings.seed + round * 7919) | 0,
      }
      try {
        const result = await runChild(spec, job.contender, settings.quick)
        job.cell.rounds.push(result)
        record(result, undefined)
        if (!tty) {
          process.stderr.write(
            `${tag} ${formatOps(result.opsPerSec).padStart(8)} ops/s  p50 ${formatUs(result.p50Us).padStart(6)} µs  p99 ${formatUs(result.p99Us).padStart(6)} µs  CPU ${formatUs(result.cpuUsPerOp).padStart(5)} µs/op\n`,
          )
        }
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error)
        job.cell.errors.push(message)
        record(undefined, message)
        clearProgress()
        process.stderr.write(`${tag} FAILED: ${message}\n`)
      }
      // A write run leaves dirty pages: flush them now, outside every measurement, so their writeback lands in no other run.
      if (job.workload.op === 'write') flushFile(file)
    }
  }
  clearProgress()
  const runSec = (performance.now() - runStart) / 1000
  const load1 = loadavg()

  const mainGroups = groups.filter((g) => !isSweep(g.workload))
  const sweeps: Sweep[] = [
    { kind: 'sweep-concurrency', title: 'Concurrency sweep: 16 KiB random reads, page cache', xLabel: 'in flight', points: groups.filter((g) => g.workload.kind === 'sweep-concurrency') },
    { kind: 'sweep-chunk', title: 'Chunk sweep: random reads, page cache, 64 in flight', xLabel: 'chunk', points: groups.filter((g) => g.workload.kind === 'sweep-chunk') },
  ]
  const ratios = evaluate(mainGroups)
  const totalSec = (performance.now() - t0) / 1000
  const m = settings.main
  const header = [
    `caio bench — ${describeMachine()}`,
    `${describeTools()}`,
    `started ${started.toISOString()}, took ${formatDuration(totalSec)}; load average ${load0.map((x) => x.toFixed(2)).join(' ')} at start, ${load1.map((x) => x.toFixed(2)).join(' ')} at end`,
    `files on ${files.data?.fs ?? 'disk'}: data, ${settings.cachedSizeMiB} MiB (the page-cache reads); direct, ${settings.sizeMiB} MiB (O_DIRECT, never cached); scratch, ${settings.sizeMiB} MiB (writes; flushed after each write run, outside the measurement)`,
    `${m.rounds} round${m.rounds === 1 ? '' : 's'} of ${m.durationSec} s per contender (after ${m.warmupSec} s warm-up), each run in a fresh child process, contenders alternating A B C … A B C; the figures are medians over the rounds`,
    `latency from 1 in ${settings.sampleEvery} operations (every one for sequential rows and submits); CPU = user+sys of the whole child process per operation (fio: of its process tree, less an idle fio run's); ×promises: ops/s over fs.promises'; spread: (max−min)/median of ops/s`,
    ...settings.skipped.map((s) => `not run at all: ${s.id}: ${s.reason}`),
    '',
  ]
  const hasSweeps = sweeps.some((s) => s.points.length > 0)
  const sweepNote = hasSweeps ? `Sweeps: ${settings.sweep.rounds} round${settings.sweep.rounds === 1 ? '' : 's'} of ${settings.sweep.durationSec} s per point\n` : ''
  process.stdout.write(header.join('\n') + '\n' + renderGroups(mainGroups) + (hasSweeps ? sweepNote + renderSweeps(sweeps) : '') + renderRatios(ratios))
  process.stdout.write(`\nbench: ${total} runs in ${formatDuration(runSec)}, ${formatDuration(totalSec)} in all\n`)

  if (settings.chart !== undefined) {
    try {
      const svg = renderChart({
        title: `caio bench — ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC`,
        subtitle: [header[0]!, header[1]!, ...(mainGroups.length > 0 ? [header[4]!] : []), ...(hasSweeps ? [sweepNote.trim()] : []), `load average ${load0[0]!.toFixed(2)} at start, ${load1[0]!.toFixed(2)} at end; the whole run took ${formatDuration(totalSec)}`],
        groups: mainGroups,
        sweeps,
      })
      writeChart(settings.chart, svg)
      process.stderr.write(`bench: wrote ${settings.chart}\n`)
    } catch (error) {
      process.stderr.write(`bench: no chart: ${error instanceof Error ? error.message : String(error)}\n`)
      process.exitCode = 1
    }
  }

  if (settings.json !== undefined) {
    const summary = groups.flatMap((group) =>
      group.rows.map(({ contender, cell }) => ({
        workload: group.workload.name,
        contender: contender.id,
        label: contender.label(group.workload),
        ranWith: { depth: cell.workload.depth, batch: cell.workload.batch },
        ...(summarize(cell) ?? {}),
        ratioToPromises: (() => {
          const s = summarize(cell)
          const base = group.rows.find((r) => r.contender.id === 'fs.promises')
          const b = base ? summarize(base.cell) : undefined
          return s && b ? s.opsPerSec / b.opsPerSec : null
        })(),
        errors: cell.errors,
      })),
    )
    const report = {
      tool: 'caio bench',
      version: 2,
      started: started.toISOString(),
      finished: new Date().toISOString(),
      totalSec,
      machine: { node: process.version, kernel: release(), arch: process.arch, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '', memBytes: totalmem(), loadavgAtStart: load0, loadavgAtEnd: load1 },
      tools: { fio: fioVersion() ?? null, pythonCaio: pythonCaio(), bun: bunVersion() ?? null, deno: denoVersion() ?? null },
      settings: { sizeMiB: settings.sizeMiB, cachedSizeMiB: settings.cachedSizeMiB, main: settings.main, sweep: settings.sweep, sampleEvery: settings.sampleEvery, seed: settings.seed, quick: settings.quick },
      files: { dir: files.data?.dir ?? null, fs: files.data?.fs ?? null, size: sizes.size, cachedSize: sizes.cached, warmRateBytesPerSec: files.data?.warmRate ?? null, directError: files.directError ?? null },
      backends: backends(),
      workloads: settings.workloads,
      contenders: settings.contenders.map((c) => ({ id: c.id, family: c.family, runner: c.runner, env: c.env, sync: c.sync })),
      skipped: settings.skipped,
      missing: groups.map((g) => ({ workload: g.workload.name, missing: g.missing })),
      summary,
      ratios,
      runs,
    }
    writeFileSync(settings.json, JSON.stringify(report, null, 2) + '\n')
    process.stderr.write(`bench: wrote ${settings.json}\n`)
  }

  cleanup()
  if (runs.some((r) => r.error !== undefined)) process.exitCode = 1
  if (parseFlags(process.argv.slice(2)).values.files === true) {
    const rounds = settings.quick ? ['--rounds', '1', '--seconds', '0.05'] : ['--rounds', String(Math.max(settings.main.rounds, 5))]
    const files = spawnSync(process.execPath, [join(__dirname, 'files.js'), ...rounds], { stdio: 'inherit' })
    if (files.status !== 0) process.exitCode = 1
  }
}

main().catch((error: unknown) => {
  clearProgress()
  // A system error (a bad --dir, a full disk) says all in its message; anything else is a bug: show where.
  const systemError = error instanceof Error && 'code' in error && 'syscall' in error
  process.stderr.write(`bench: ${error instanceof Error ? (systemError ? error.message : (error.stack ?? error.message)) : String(error)}\n`)
  cleanup()
  process.exitCode = 1
})
