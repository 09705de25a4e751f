/**
 * `npm run bench`: caio's backends beside Node's own ways of doing the same I/O.
 *
 * Makes a data file on a disk file system and reads it into the page cache, then, for a
 * number of rounds, runs every (workload, contender) pair in turn — A B C A B C … — each
 * in a fresh child process (`node dist/bench/worker.js <spec>`) so every contender starts
 * from the same conditions and environment-dependent ones (libuv's `UV_USE_IO_URING`)
 * get their own. Children never overlap. Prints progress on stderr, then a table of the
 * medians over the rounds on stdout; `--json` writes every figure of every round.
 *
 * Run `node dist/bench/bench.js --help` for the flags.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { cpus, loadavg, release, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

import { backends } from '../index'
import { allContenders } from './contenders'
import type { Contender } from './contenders'
import { chooseParent, createDataFile, removeDir } from './datafile'
import type { DataFile } from './datafile'
import { formatOps, formatUs, ratios, renderGroups, summarize } from './report'
import type { Cell, Group } from './report'
import { parseResult } from './spec'
import type { WorkerResult, WorkerSpec } from './spec'
import { withDepth, workloadKey, WORKLOADS } from './workloads'
import type { Workload } from './workloads'

const HELP = `Usage: npm run bench -- [flags]      (or: node dist/bench/bench.js [flags])

4 KiB random reads from the page cache at 1 and 64 in flight, through every available
caio backend and Node's own fs ways; each contender runs in its own child process per
round, rounds alternate the contenders, the table shows medians over the rounds.

  --size <MiB>          data file size (default 256; --quick: 32)
  --dir <path>          where to make the data file's temporary directory
                        (default: os.tmpdir(), or /var/tmp or . if that is tmpfs)
  --duration <s>        measured seconds per contender per round (default 2; --quick: 0.5)
  --warmup <s>          uncounted seconds before each measurement (default: duration/4, at most 0.5)
  --rounds <n>          rounds (default 3; --quick: 1)
  --quick               a fast smoke run (~30 s or less)
  --backends <a,b>      caio backends to run (default: every available one)
  --contenders <a,b>    contenders to run, by id (default: every one marked default);
                        caio backends as caio:<name>; see --list
  --workloads <a,b>     workloads to run, by name (default: all); see --list
  --json <file>         also write every figure of every round as JSON
  --sample-every <n>    time one operation in n per worker (power of two, default 8)
  --seed <n>            PRNG seed (default 1)
  --list                list workloads and contenders, then exit
  --help                this text
`

interface Settings {
  sizeMiB: number
  dir: string | undefined
  durationSec: number
  warmupSec: number
  rounds: number
  sampleEvery: number
  seed: number
  json: string | undefined
  workloads: Workload[]
  contenders: Contender[]
  /** Contenders left out because they cannot run here, with the reason. */
  skipped: Array<{ id: string; reason: string }>
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`)
  process.exit(2)
}

function warn(message: string): void {
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
      dir: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      quick: { type: 'boolean', default: false },
      backends: { type: 'string' },
      contenders: { type: 'string' },
      workloads: { type: 'string' },
      json: { type: 'string' },
      'sample-every': { type: 'string' },
      seed: { type: 'string' },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  })
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
  if (v.list) {
    process.stdout.write('workloads:\n')
    for (const w of WORKLOADS) process.stdout.write(`  ${w.name.padEnd(22)} ${w.title}\n`)
    process.stdout.write('contenders:\n')
    for (const c of all) {
      const reason = c.unavailable()
      const state = reason !== undefined ? `  (not available: ${reason})` : c.byDefault ? '' : '  (only when named)'
      process.stdout.write(`  ${c.id.padEnd(22)} ${c.label}${state}\n`)
    }
    process.exit(0)
  }

  const quick = v.quick === true
  const durationSec = positive(v.duration, '--duration', quick ? 0.5 : 2)
  const warmupSec = v.warmup === '0' ? 0 : positive(v.warmup, '--warmup', Math.min(0.5, durationSec / 4))
  const sampleEvery = positive(v['sample-every'], '--sample-every', 8, true)
  if ((sampleEvery & (sampleEvery - 1)) !== 0) fail('--sample-every must be a power of two')
  const seed = v.seed === undefined ? 1 : Number(v.seed)
  if (!Number.isInteger(seed)) fail('--seed must be an integer')

  const workloadNames = list(v.workloads)
  const workloads = workloadNames === undefined ? [...WORKLOADS] : workloadNames.map((name) => WORKLOADS.find((w) => w.name === name) ?? fail(`unknown workload ${name}; known: ${WORKLOADS.map((w) => w.name).join(', ')}`))
  if (workloads.length === 0) fail('--workloads names no workload')

  const backendNames = list(v.backends)
  const statuses = backends()
  for (const name of backendNames ?? []) {
    if (!statuses.some((s) => s.name === name)) fail(`unknown caio backend ${name}; known: ${statuses.map((s) => s.name).join(', ')}`)
  }
  const contenderIds = list(v.contenders)
  for (const id of contenderIds ?? []) {
    if (!all.some((c) => c.id === id)) fail(`unknown contender ${id}; known: ${all.map((c) => c.id).join(', ')}`)
  }
  for (const id of contenderIds ?? []) {
    if (backendNames !== undefined && id.startsWith('caio:') && !backendNames.includes(id.slice('caio:'.length))) warn(`${id} is left out by --backends ${backendNames.join(',')}`)
  }
  const skipped: Settings['skipped'] = []
  const contenders = all.filter((c) => {
    if (contenderIds !== undefined ? !contenderIds.includes(c.id) : !c.byDefault) return false
    if (c.group === 'caio' && backendNames !== undefined && !backendNames.includes(c.id.slice('caio:'.length))) return false
    const reason = c.unavailable()
    if (reason !== undefined) {
      skipped.push({ id: c.id, reason })
      const named = contenderIds?.includes(c.id) || (c.group === 'caio' && backendNames?.includes(c.id.slice('caio:'.length)))
      if (named) warn(`${c.id} is not available here, skipped: ${reason}`)
      return false
    }
    return true
  })
  if (contenders.length === 0) fail('no contender left to run')

  return {
    sizeMiB: positive(v.size, '--size', quick ? 32 : 256),
    dir: v.dir,
    durationSec,
    warmupSec,
    rounds: positive(v.rounds, '--rounds', quick ? 1 : 3, true),
    sampleEvery,
    seed,
    json: v.json,
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
  cell: Cell
}

/** The jobs of one round, in order, and each group's cells. */
function plan(settings: Settings): { jobs: Job[]; groups: Group[] } {
  const jobs = new Map<string, Job>()
  const groups: Group[] = []
  for (const workload of settings.workloads) {
    const group: Group = { workload, rows: [] }
    for (const contender of settings.contenders) {
      const effective = contender.sync ? withDepth(workload, 1) : workload
      const key = `${contender.id}@${workloadKey(effective)}`
      let job = jobs.get(key)
      if (!job) {
        job = { key, contender, workload: effective, cell: { contender, workload: effective, rounds: [], errors: [] } }
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
      process.stderr.write(`\nbench: ${signal}: stopping${dataDir !== undefined ? `, removing ${dataDir}` : ''}\n`)
      cleanup()
      process.exit(exitCodes[signal])
    })
  }
  process.on('exit', cleanup)
}

const WORKER = join(__dirname, 'worker.js')

/** Runs one child to completion; resolves with its result or rejects with why it failed. */
function runChild(spec: WorkerSpec, contender: Contender): Promise<WorkerResult> {
  const timeoutMs = (spec.warmupSec + spec.durationSec) * 1000 + 60_000
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [WORKER, JSON.stringify(spec)], {
      env: { ...process.env, ...contender.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
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
      const lastLine = stdout.trim().split('\n').pop() ?? ''
      if (code === 0 && lastLine.startsWith('{')) {
        try {
          // Warnings a successful child printed are worth seeing once.
          if (stderr.trim() !== '') process.stderr.write(stderr.replace(/^/gm, `  [${contender.id}] `) + '\n')
          resolve(parseResult(lastLine))
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)))
        }
        return
      }
      const why = stderr.trim().split('\n').filter((l) => l.trim() !== '')
      const firstError = why.find((l) => /Error|error:/.test(l)) ?? why[why.length - 1] ?? ''
      reject(new Error(`${signal !== null ? `killed by ${signal}` : `exit code ${code}`}${firstError ? `: ${firstError.trim()}` : ''}`))
    })
  })
}

function describeMachine(): string {
  const list = cpus()
  const model = list[0]?.model.trim() ?? 'unknown CPU'
  return `node ${process.version}, linux ${release()} ${process.arch}, ${list.length} × ${model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM`
}

async function main(): Promise<void> {
  const settings = parseSettings(process.argv.slice(2))
  installCleanup()
  const { jobs, groups } = plan(settings)
  const started = new Date()
  const load0 = loadavg()

  const size = Math.floor(settings.sizeMiB * 2 ** 20)
  const minBlocks = Math.max(...settings.workloads.map((w) => w.blockSize))
  if (size < minBlocks) fail(`--size is smaller than one block (${minBlocks} bytes)`)
  if (size > totalmem() * 0.7) warn(`a ${settings.sizeMiB} MiB file may not stay in the page cache of ${(totalmem() / 2 ** 20).toFixed(0)} MiB of RAM`)
  const parent = chooseParent(settings.dir, warn)
  process.stderr.write(`bench: writing ${settings.sizeMiB} MiB of random data under ${parent} …\n`)
  const file: DataFile = createDataFile(parent, size, (dir) => (dataDir = dir))
  process.stderr.write(`bench: ${file.path} (${file.fs}) read once into the page cache at ${(file.warmRate / 2 ** 30).toFixed(2)} GiB/s\n`)

  const perRun = settings.warmupSec + settings.durationSec + 0.2
  const eta = jobs.length * settings.rounds * perRun
  process.stderr.write(
    `bench: ${jobs.length} runs × ${settings.rounds} round${settings.rounds === 1 ? '' : 's'} × (${settings.warmupSec} s warm-up + ${settings.durationSec} s), about ${Math.ceil(eta)} s; load average ${load0[0]!.toFixed(2)}\n`,
  )
  if (load0[0]! > cpus().length / 2) warn(`the load average (${load0[0]!.toFixed(2)} on ${cpus().length} CPUs) says other work is running: expect noisy figures`)

  const runs: Array<{ round: number; contender: string; workload: string; depth: number; loadavg: number; result?: WorkerResult; error?: string }> = []
  const total = jobs.length * settings.rounds
  let n = 0
  for (let round = 1; round <= settings.rounds; round++) {
    for (const job of jobs) {
      n++
      const spec: WorkerSpec = {
        contender: job.contender.id,
        workload: job.workload,
        file: file.path,
        fileSize: file.size,
        durationSec: settings.durationSec,
        warmupSec: settings.warmupSec,
        sampleEvery: settings.sampleEvery,
        seed: (settings.seed + round * 7919) | 0,
      }
      const tag = `[${String(n).padStart(String(total).length)}/${total}] round ${round}/${settings.rounds}  ${job.workload.name.padEnd(18)} ${job.contender.id.padEnd(18)}`
      const load = loadavg()[0]!
      try {
        const result = await runChild(spec, job.contender)
        job.cell.rounds.push(result)
        runs.push({ round, contender: job.contender.id, workload: job.workload.name, depth: job.workload.depth, loadavg: load, result })
        process.stderr.write(
          `${tag} ${formatOps(result.opsPerSec).padStart(8)} ops/s  p50 ${formatUs(result.p50Us).padStart(6)} µs  p99 ${formatUs(result.p99Us).padStart(6)} µs  CPU ${formatUs(result.cpuUsPerOp).padStart(5)} µs/op\n`,
        )
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error)
        job.cell.errors.push(message)
        runs.push({ round, contender: job.contender.id, workload: job.workload.name, depth: job.workload.depth, loadavg: load, error: message })
        process.stderr.write(`${tag} FAILED: ${message}\n`)
      }
    }
  }

  const header = [
    `caio bench — ${describeMachine()}`,
    `data: ${settings.sizeMiB} MiB file on ${file.fs}, in the page cache; ${settings.rounds} round${settings.rounds === 1 ? '' : 's'} of ${settings.durationSec} s per contender (after ${settings.warmupSec} s warm-up), each run in a fresh child process, contenders alternating`,
    `figures: median over the rounds; latency from 1 in ${settings.sampleEvery} operations; CPU = user+sys of the whole process per operation; ×: ops/s over that baseline's; spread: (max−min)/median of ops/s`,
    ...settings.skipped.map((s) => `not run: ${s.id}: ${s.reason}`),
    '',
  ]
  process.stdout.write(header.join('\n') + '\n' + renderGroups(groups))

  if (settings.json !== undefined) {
    const summary = groups.flatMap((group) =>
      group.rows.map(({ contender, cell }) => {
        const s = cell ? summarize(cell) : undefined
        return { workload: group.workload.name, contender: contender.id, label: contender.label, ...(s ?? {}), ratios: ratios(group, s), errors: cell?.errors ?? [] }
      }),
    )
    const report = {
      tool: 'caio bench',
      version: 1,
      started: started.toISOString(),
      finished: new Date().toISOString(),
      machine: { node: process.version, kernel: release(), arch: process.arch, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '', memBytes: totalmem(), loadavgAtStart: load0 },
      settings: { sizeMiB: settings.sizeMiB, durationSec: settings.durationSec, warmupSec: settings.warmupSec, rounds: settings.rounds, sampleEvery: settings.sampleEvery, seed: settings.seed },
      dataFile: { dir: file.dir, fs: file.fs, size: file.size, warmRateBytesPerSec: file.warmRate },
      backends: backends(),
      workloads: settings.workloads,
      contenders: settings.contenders.map((c) => ({ id: c.id, label: c.label, group: c.group, env: c.env, sync: c.sync })),
      skipped: settings.skipped,
      summary,
      runs,
    }
    writeFileSync(settings.json, JSON.stringify(report, null, 2) + '\n')
    process.stderr.write(`bench: wrote ${settings.json}\n`)
  }

  cleanup()
  if (runs.some((r) => r.error !== undefined)) process.exitCode = 1
}

main().catch((error: unknown) => {
  // A system error (a bad --dir, a full disk) says all in its message; anything else is a bug: show where.
  const systemError = error instanceof Error && 'code' in error && 'syscall' in error
  process.stderr.write(`bench: ${error instanceof Error ? (systemError ? error.message : (error.stack ?? error.message)) : String(error)}\n`)
  cleanup()
  process.exitCode = 1
})
