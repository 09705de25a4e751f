/**
 * The contenders that are other programs: fio (run directly, its JSON output turned into
 * a {@link WorkerResult}), the Python caio (through `bench/python_caio.py`, which speaks
 * the worker's protocol), and Bun (which runs worker.js itself). Here: finding them on
 * this machine (each probed once, with the reason when missing) and their command lines.
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'

import type { WorkerResult, WorkerSpec } from './spec'

function run(command: string, args: string[], timeoutMs = 20_000): { ok: boolean; stdout: string; stderr: string; missing: boolean } {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] })
  const missing = r.error !== undefined && 'code' in r.error && r.error.code === 'ENOENT'
  return { ok: r.status === 0, stdout: r.stdout ?? '', stderr: r.stderr ?? '', missing }
}

function memo<T>(probe: () => T): () => T {
  let done = false
  let value: T
  return () => {
    if (!done) {
      value = probe()
      done = true
    }
    return value
  }
}

// ---- Bun ----

export const bunVersion = memo((): string | undefined => {
  const r = run('bun', ['--version'])
  return r.ok ? r.stdout.trim() : undefined
})

export function bunUnavailable(): string | undefined {
  return bunVersion() === undefined ? 'bun is not on PATH (npm install -g bun)' : undefined
}

// ---- Deno ----

export const denoVersion = memo((): string | undefined => {
  const r = run('deno', ['--version'])
  return r.ok ? r.stdout.trim().split('\n')[0]?.replace(/^deno /, '') : undefined
})

export function denoUnavailable(): string | undefined {
  return denoVersion() === undefined ? 'deno is not on PATH (npm install -g deno)' : undefined
}

// ---- fio ----

export const fioVersion = memo((): string | undefined => {
  const r = run('fio', ['--version'])
  return r.ok ? r.stdout.trim() : undefined
})

const fioEngines = new Map<string, string | undefined>()

export function fioEngineUnavailable(engine: string): string | undefined {
  if (fioVersion() === undefined) return 'fio is not on PATH (apt-get install fio)'
  if (!fioEngines.has(engine)) {
    const r = run('fio', [`--enghelp=${engine}`])
    fioEngines.set(engine, r.ok ? undefined : `this fio (${fioVersion()}) has no ${engine} engine`)
  }
  return fioEngines.get(engine)
}

/** fio's command line for a spec: the same file, block size, depth, pattern and time as the other contenders. */
export function fioArgs(spec: WorkerSpec, engine: string): string[] {
  const w = spec.workload
  const rw = w.op === 'read' ? (w.pattern === 'random' ? 'randread' : 'read') : w.pattern === 'random' ? 'randwrite' : 'write'
  const ms = (sec: number): string => `${Math.max(1, Math.round(sec * 1000))}ms`
  const args = [
    '--name=caio-bench',
    `--filename=${spec.file}`,
    `--ioengine=${engine}`,
    `--rw=${rw}`,
    `--bs=${w.blockSize}`,
    `--iodepth=${w.depth}`,
    `--size=${Math.floor(spec.fileSize / w.blockSize) * w.blockSize}`,
    `--direct=${w.cache === 'direct' ? 1 : 0}`,
    '--time_based',
    `--runtime=${ms(spec.durationSec)}`,
    '--randrepeat=0',
    '--norandommap',
    '--lat_percentiles=1',
    '--percentile_list=50:99:99.9',
    '--output-format=json',
  ]
  if (spec.warmupSec > 0) args.push(`--ramp_time=${ms(spec.warmupSec)}`)
  // Cached rows: fio must not drop the file's pages before it starts.
  if (w.cache === 'cached') args.push('--invalidate=0')
  if (w.op === 'read') args.push('--readonly')
  if (w.fsyncEvery > 0) args.push(`--fsync=${w.fsyncEvery}`)
  // The registered row: the buffers and the file registered with the ring, as caio's are.
  if (w.kind === 'direct-read-fixed' && engine === 'io_uring') args.push('--fixedbufs', '--registerfiles')
  return args
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function field(o: unknown, ...path: string[]): unknown {
  let v: unknown = o
  for (const key of path) v = isRecord(v) ? v[key] : undefined
  return v
}

function numberAt(o: unknown, ...path: string[]): number {
  const v = field(o, ...path)
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`bench: fio's JSON has no number at ${path.join('.')}`)
  return v
}

/**
 * fio runs under `bash -c '… ; times'`, so the CPU it is charged is that of its whole
 * process tree, io_uring's io-wq workers included (fio's own usr_cpu/sys_cpu misses the
 * work its io_uring jobs hand to them: 0.05 cores for 5 GB/s of buffered writes here).
 * bash's `times` prints the children's user and system time on its second line.
 */
const FIO_UNDER_BASH = 'fio "$@"; status=$?; times >&2; exit $status'

export function fioCommand(args: string[]): { command: string; args: string[] } {
  return { command: 'bash', args: ['-c', FIO_UNDER_BASH, 'fio', ...args] }
}

/** The user and system seconds of the children that `times` printed last on `stderr`. */
export function childTimes(stderr: string): { user: number; sys: number } | undefined {
  const lines = stderr.trim().split('\n')
  const m = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/.exec(lines[lines.length - 1]?.trim() ?? '')
  if (!m) return undefined
  return { user: Number(m[1]) * 60 + Number(m[2]), sys: Number(m[3]) * 60 + Number(m[4]) }
}

const idleCpu = new Map<string, number>()

/**
 * CPU seconds fio spends on a run of this job with (almost) no I/O: starting, laying out,
 * setting up its engine, exiting. Measured once per job shape by a 1 ms run and taken off
 * every run's total, so what is left is the CPU of the I/O.
 */
export function fioIdleCpu(spec: WorkerSpec, engine: string): number {
  const key = `${engine} ${spec.workload.op} ${spec.workload.pattern} ${spec.workload.blockSize} ${spec.workload.depth} ${spec.workload.cache} ${spec.file}`
  let cpu = idleCpu.get(key)
  if (cpu === undefined) {
    const how = fioCommand(fioArgs({ ...spec, durationSec: 0.001, warmupSec: 0 }, engine))
    const r = spawnSync(how.command, how.args, { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'ignore', 'pipe'] })
    const t = childTimes(r.stderr ?? '')
    cpu = t ? t.user + t.sys : 0
    idleCpu.set(key, cpu)
  }
  return cpu
}

/**
 * fio's JSON (its stdout may start with notes) as the worker's result. CPU: the process
 * tree's (see {@link fioCommand}) less the idle run's, over the operations of the warm-up
 * and the measured time (fio counts only the latter; the warm-up's are estimated at the
 * measured rate).
 */
export function parseFio(stdout: string, stderr: string, spec: WorkerSpec, engine: string, idleCpuSec: number): WorkerResult {
  const start = stdout.indexOf('{')
  if (start < 0) throw new Error('bench: fio printed no JSON')
  const report: unknown = JSON.parse(stdout.slice(start))
  const jobs = field(report, 'jobs')
  if (!Array.isArray(jobs) || jobs.length !== 1) throw new Error('bench: fio ran no job')
  const job: unknown = jobs[0]
  const dir = spec.workload.op === 'read' ? 'read' : 'write'
  const ops = numberAt(job, dir, 'total_ios')
  const wallSec = numberAt(job, 'job_runtime') / 1000
  if (ops === 0) throw new Error(`bench: fio did no ${dir}s (error ${String(field(job, 'error'))})`)
  const pct = (p: string): number => numberAt(job, dir, 'lat_ns', 'percentile', p) / 1000
  const times = childTimes(stderr)
  if (!times) throw new Error("bench: no CPU times from bash's times after fio")
  const opsPerSec = ops / wallSec
  const busySec = wallSec + spec.warmupSec
  const cpuSec = Math.max(0, times.user + times.sys - idleCpuSec)
  const userShare = times.user + times.sys > 0 ? times.user / (times.user + times.sys) : 0
  const info: WorkerResult['info'] = {
    engine,
    fio: fioVersion() ?? '',
    fioOwnCpuCores: (numberAt(job, 'usr_cpu') + numberAt(job, 'sys_cpu')) / 100,
    treeCpuSec: times.user + times.sys,
    idleCpuSec,
  }
  const syncs = field(job, 'sync', 'total_ios')
  if (typeof syncs === 'number' && syncs > 0) {
    info.fsyncs = syncs
    info.fsyncMeanUs = numberAt(job, 'sync', 'lat_ns', 'mean') / 1000
  }
  return {
    contender: `fio:${engine}`,
    workload: spec.workload.name,
    depth: spec.workload.depth,
    ops,
    wallSec,
    opsPerSec,
    p50Us: pct('50.000000'),
    p99Us: pct('99.000000'),
    p999Us: pct('99.900000'),
    meanUs: numberAt(job, dir, 'lat_ns', 'mean') / 1000,
    samples: ops,
    cpuUserUs: cpuSec * userShare * 1e6,
    cpuSysUs: cpuSec * (1 - userShare) * 1e6,
    cpuUsPerOp: (cpuSec * 1e6) / (opsPerSec * busySec),
    cores: cpuSec / busySec,
    uringFds: -1,
    maxRssMiB: 0,
    info,
  }
}

// ---- the Python caio ----

/** The Python caio's backends as `CAIO_IMPL` names them, and the asyncio module each selects. */
export const PYTHON_MODULES = {
  uring: 'caio.linux_uring_asyncio',
  linux: 'caio.linux_aio_asyncio',
  thread: 'caio.thread_aio_asyncio',
  python: 'caio.python_aio_asyncio',
} as const

export type PythonImpl = keyof typeof PYTHON_MODULES

/** The driver script: it is not compiled, so it is found beside the sources (dist/bench → bench). */
export const PYTHON_DRIVER = [join(__dirname, '..', '..', 'bench', 'python_caio.py'), join(__dirname, 'python_caio.py')].find((p) => existsSync(p)) ?? join(__dirname, '..', '..', 'bench', 'python_caio.py')

export const PYTHON = process.env.PYTHON ?? 'python3'

interface PythonProbe {
  version?: string
  python?: string
  /** The interpreter itself (`sys.executable`): children start it directly, not through a shim such as pyenv's. */
  executable?: string
  /** Importable backends. */
  impls: string[]
  reason?: string
}

export const pythonCaio = memo((): PythonProbe => {
  const code = [
    'import json, sys, importlib',
    'import caio',
    `mods = ${JSON.stringify(PYTHON_MODULES)}`,
    'ok = []',
    'for k, m in mods.items():',
    '    try:',
    '        importlib.import_module(m); ok.append(k)',
    '    except Exception:',
    '        pass',
    'print(json.dumps({"version": caio.__version__, "python": sys.version.split()[0], "executable": sys.executable, "impls": ok}))',
  ].join('\n')
  const r = run(PYTHON, ['-c', code])
  if (r.missing) return { impls: [], reason: `${PYTHON} is not on PATH` }
  if (!r.ok) return { impls: [], reason: /No module named .?caio/.test(r.stderr) ? `not installed (${PYTHON} -c 'import caio' fails; pip install caio)` : `${PYTHON} -c 'import caio' fails: ${r.stderr.trim().split('\n').pop() ?? ''}` }
  try {
    const parsed: unknown = JSON.parse(r.stdout.trim())
    const impls = field(parsed, 'impls')
    const version = field(parsed, 'version')
    const python = field(parsed, 'python')
    const executable = field(parsed, 'executable')
    return {
      ...(typeof executable === 'string' && executable !== '' ? { executable } : {}),
      impls: Array.isArray(impls) ? impls.filter((x): x is string => typeof x === 'string') : [],
      ...(typeof version === 'string' ? { version } : {}),
      ...(typeof python === 'string' ? { python } : {}),
    }
  } catch {
    return { impls: [], reason: `could not read the probe's answer: ${r.stdout.trim()}` }
  }
})

/** The command that runs the driver script. */
export function pythonCommand(): string {
  return pythonCaio().executable ?? PYTHON
}

export function pythonCaioUnavailable(impl: PythonImpl): string | undefined {
  const probe = pythonCaio()
  if (probe.reason !== undefined) return probe.reason
  if (!existsSync(PYTHON_DRIVER)) return `the driver ${PYTHON_DRIVER} is missing`
  return probe.impls.includes(impl) ? undefined : `caio ${probe.version ?? ''} here has no ${PYTHON_MODULES[impl]}`
}
