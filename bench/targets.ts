/**
 * The ratios the design's "Performance targets" and the issues ask for, computed from one
 * run's medians: each one names two rows (workload, contender, figure) and, for a target,
 * the least ratio that meets it. Where a side lists several contenders, the best of those
 * that ran counts ("uring, default ring or sqpoll"; "the best async Node way").
 */
import { summarize } from './report'
import type { Group, Summary } from './report'

type Metric = 'ops' | 'opsPerCpu'

interface Side {
  workload: string
  /** The best of these that ran. */
  contenders: readonly string[]
  metric: Metric
}

interface Ratio {
  section: string
  what: string
  num: Side
  den: Side
  /** The target: met when the ratio is at least this. Undefined: reported, no target. */
  min?: number
}

export interface RatioResult {
  section: string
  what: string
  ratio: number
  min?: number
  /** undefined when a side did not run. */
  met?: boolean
  /** Which contenders and figures made the ratio. */
  detail: string
}

const QD1 = 'randread-4k-qd1'
const QD64 = 'randread-4k-qd64'
const DIRECT = 'randread-4k-direct-qd64'
const BATCH = 'randread-4k-batch64'
const SEQW = 'seqwrite-1m-fsync'
const GROUP = 'append-4k-fdatasync-x32'
const FIXED = 'randread-4k-direct-fixed-qd64'
const WRITEV = 'writev-16x4k-qd16'
const RANDWRITE = 'randwrite-64k-qd16'
const ASYNC_NODE = ['fs.promises', 'fs.callbacks', 'fs.callbacks+uring', 'fs.promises+uring']

const ops = (workload: string, ...contenders: string[]): Side => ({ workload, contenders, metric: 'ops' })
const perCpu = (workload: string, ...contenders: string[]): Side => ({ workload, contenders, metric: 'opsPerCpu' })

export const RATIOS: readonly Ratio[] = [
  // Cached reads, 64 in flight (DESIGN "Performance targets" row 1 and the io_uring issue).
  { section: '4 KiB cached, 64 in flight', what: 'uring (default or sqpoll) / fs.read UV_USE_IO_URING=1, ops/s', num: ops(QD64, 'caio:uring', 'caio:uring+sqpoll'), den: ops(QD64, 'fs.callbacks+uring'), min: 1.2 },
  { section: '4 KiB cached, 64 in flight', what: 'uring (default ring) / fs.read UV_USE_IO_URING=1, ops per CPU-second', num: perCpu(QD64, 'caio:uring'), den: perCpu(QD64, 'fs.callbacks+uring'), min: 1.5 },
  { section: '4 KiB cached, 64 in flight', what: 'uring sqpoll / fs.read UV_USE_IO_URING=1, ops/s', num: ops(QD64, 'caio:uring+sqpoll'), den: ops(QD64, 'fs.callbacks+uring') },
  { section: '4 KiB cached, 64 in flight', what: 'uring / fs.read callbacks (thread pool), ops/s', num: ops(QD64, 'caio:uring'), den: ops(QD64, 'fs.callbacks'), min: 2.5 },
  { section: '4 KiB cached, 64 in flight', what: 'uring / fs.promises, ops/s', num: ops(QD64, 'caio:uring'), den: ops(QD64, 'fs.promises'), min: 6 },
  // The foundation issue: the thread pool must not lose to libuv's, js must stay near it.
  { section: '4 KiB cached, 64 in flight', what: 'thread / fs.read callbacks (thread pool), ops/s', num: ops(QD64, 'caio:thread'), den: ops(QD64, 'fs.callbacks'), min: 1 },
  { section: '4 KiB cached, 64 in flight', what: 'js / fs.read callbacks (thread pool), ops/s', num: ops(QD64, 'caio:js'), den: ops(QD64, 'fs.callbacks'), min: 0.9 },
  { section: '4 KiB cached, 64 in flight', what: 'a bare Promise around fs.read / fs.read callbacks, ops/s', num: ops(QD64, 'fs.callbacks/promise'), den: ops(QD64, 'fs.callbacks') },
  { section: '4 KiB cached, 64 in flight', what: 'js / a bare Promise around fs.read, ops/s', num: ops(QD64, 'caio:js'), den: ops(QD64, 'fs.callbacks/promise') },
  // 1 in flight.
  { section: '4 KiB cached, 1 in flight', what: 'uring / fs.readSync, ops/s', num: ops(QD1, 'caio:uring'), den: ops(QD1, 'fs.readSync'), min: 0.45 },
  { section: '4 KiB cached, 1 in flight', what: 'uring / the best async Node way, ops/s', num: ops(QD1, 'caio:uring'), den: ops(QD1, ...ASYNC_NODE), min: 3 },
  { section: '4 KiB cached, 1 in flight', what: 'uring / fs.read UV_USE_IO_URING=1, ops/s', num: ops(QD1, 'caio:uring'), den: ops(QD1, 'fs.callbacks+uring'), min: 1 },
  { section: '4 KiB cached, 1 in flight', what: 'uring / fs.read callbacks (thread pool), ops/s', num: ops(QD1, 'caio:uring'), den: ops(QD1, 'fs.callbacks'), min: 8 },
  // O_DIRECT.
  { section: 'O_DIRECT, 64 in flight', what: 'uring / fio io_uring, ops/s', num: ops(DIRECT, 'caio:uring'), den: ops(DIRECT, 'fio:io_uring'), min: 0.9 },
  { section: 'O_DIRECT, 64 in flight', what: 'linux / fio libaio, ops/s', num: ops(DIRECT, 'caio:linux'), den: ops(DIRECT, 'fio:libaio'), min: 0.9 },
  { section: 'O_DIRECT, 64 in flight', what: 'uring / fs.promises, ops/s', num: ops(DIRECT, 'caio:uring'), den: ops(DIRECT, 'fs.promises') },
  // Issue 16: buffered random writes, group commit, registered O_DIRECT reads, writev.
  { section: '64 KiB random writes, 16 in flight', what: 'uring / fio io_uring, ops/s', num: ops(RANDWRITE, 'caio:uring'), den: ops(RANDWRITE, 'fio:io_uring'), min: 1 },
  { section: '64 KiB random writes, 16 in flight', what: 'uring / fs.promises, ops/s', num: ops(RANDWRITE, 'caio:uring'), den: ops(RANDWRITE, 'fs.promises'), min: 1.2 },
  { section: '64 KiB random writes, 16 in flight', what: 'linux / fio libaio, ops/s', num: ops(RANDWRITE, 'caio:linux'), den: ops(RANDWRITE, 'fio:libaio') },
  { section: 'group commit: 4 KiB append + fdatasync, 32 appenders', what: 'uring (linked write → fdsync) / fs.promises write + datasync', num: ops(GROUP, 'caio:uring'), den: ops(GROUP, 'fs.promises'), min: 2 },
  { section: 'group commit: 4 KiB append + fdatasync, 32 appenders', what: 'linux / fs.promises write + datasync', num: ops(GROUP, 'caio:linux'), den: ops(GROUP, 'fs.promises'), min: 2 },
  { section: 'group commit: 4 KiB append + fdatasync, 32 appenders', what: 'thread / fs.promises write + datasync', num: ops(GROUP, 'caio:thread'), den: ops(GROUP, 'fs.promises') },
  { section: 'group commit: 4 KiB append + fdatasync, 32 appenders', what: 'uring / fs.write + fs.fdatasync callbacks', num: ops(GROUP, 'caio:uring'), den: ops(GROUP, 'fs.callbacks') },
  { section: 'O_DIRECT, registered buffers and files, 64 in flight', what: 'uring / fio io_uring --fixedbufs --registerfiles, ops/s', num: ops(FIXED, 'caio:uring'), den: ops(FIXED, 'fio:io_uring'), min: 0.95 },
  { section: 'O_DIRECT, registered buffers and files, 64 in flight', what: 'uring registered / uring unregistered (the plain O_DIRECT row), ops/s', num: ops(FIXED, 'caio:uring'), den: ops(DIRECT, 'caio:uring') },
  { section: 'writev 16 × 4 KiB, 16 in flight', what: 'uring writev / fs.promises FileHandle.writev', num: ops(WRITEV, 'caio:uring'), den: ops(WRITEV, 'fs.promises'), min: 2 },
  { section: 'writev 16 × 4 KiB, 16 in flight', what: 'linux writev / fs.promises FileHandle.writev', num: ops(WRITEV, 'caio:linux'), den: ops(WRITEV, 'fs.promises') },
  { section: 'writev 16 × 4 KiB, 16 in flight', what: 'thread writev / fs.promises FileHandle.writev', num: ops(WRITEV, 'caio:thread'), den: ops(WRITEV, 'fs.promises') },
  // Sequential writes + fsync.
  { section: '1 MiB sequential writes + fsync', what: 'uring / fs.promises, MiB/s', num: ops(SEQW, 'caio:uring'), den: ops(SEQW, 'fs.promises'), min: 1 },
  { section: '1 MiB sequential writes + fsync', what: 'linux / fs.promises, MiB/s', num: ops(SEQW, 'caio:linux'), den: ops(SEQW, 'fs.promises'), min: 1 },
  { section: '1 MiB sequential writes + fsync', what: 'thread / fs.promises, MiB/s', num: ops(SEQW, 'caio:thread'), den: ops(SEQW, 'fs.promises'), min: 1 },
  // Against the seed, the Python caio.
  { section: 'against the Python caio', what: 'uring / Python caio uring, 64 in flight', num: ops(QD64, 'caio:uring'), den: ops(QD64, 'py:uring'), min: 5 },
  { section: 'against the Python caio', what: 'uring / Python caio uring, 1 in flight', num: ops(QD1, 'caio:uring'), den: ops(QD1, 'py:uring'), min: 20 },
  { section: 'against the Python caio', what: 'linux / Python caio linux, 64 in flight', num: ops(QD64, 'caio:linux'), den: ops(QD64, 'py:linux'), min: 5 },
  { section: 'against the Python caio', what: 'thread / Python caio thread, 64 in flight', num: ops(QD64, 'caio:thread'), den: ops(QD64, 'py:thread'), min: 10 },
  // Against switching runtime.
  { section: 'against Bun', what: 'uring on Node / Bun fs.promises, 64 in flight', num: ops(QD64, 'caio:uring'), den: ops(QD64, 'bun:fs.promises'), min: 1.5 },
  { section: 'against Bun', what: 'uring on Node / Bun fs.promises, 1 in flight', num: ops(QD1, 'caio:uring'), den: ops(QD1, 'bun:fs.promises'), min: 5 },
  { section: 'against Bun', what: 'uring on Node / Bun fs.readSync, 1 in flight', num: ops(QD1, 'caio:uring'), den: ops(QD1, 'bun:fs.readSync') },
  // caio under the other runtimes, against each one's own fs.
  { section: 'under Bun', what: 'uring under Bun / Bun fs.promises, 64 in flight', num: ops(QD64, 'bun:caio:uring'), den: ops(QD64, 'bun:fs.promises'), min: 1.5 },
  { section: 'under Bun', what: 'uring under Bun / Bun fs.promises, 1 in flight', num: ops(QD1, 'bun:caio:uring'), den: ops(QD1, 'bun:fs.promises'), min: 5 },
  { section: 'under Bun', what: 'uring under Bun / uring on Node, 64 in flight', num: ops(QD64, 'bun:caio:uring'), den: ops(QD64, 'caio:uring') },
  { section: 'under Bun', what: 'uring sqpoll under Bun / Bun fs.promises, 64 in flight', num: ops(QD64, 'bun:caio:uring+sqpoll'), den: ops(QD64, 'bun:fs.promises') },
  { section: 'under Deno', what: 'uring under Deno / Deno fs.promises, 64 in flight', num: ops(QD64, 'deno:caio:uring'), den: ops(QD64, 'deno:fs.promises'), min: 10 },
  { section: 'under Deno', what: 'uring under Deno / Deno fs.promises, 1 in flight', num: ops(QD1, 'deno:caio:uring'), den: ops(QD1, 'deno:fs.promises'), min: 5 },
  { section: 'under Deno', what: 'uring under Deno / uring on Node, 64 in flight', num: ops(QD64, 'deno:caio:uring'), den: ops(QD64, 'caio:uring') },
  { section: 'under Deno', what: 'uring sqpoll under Deno / Deno fs.promises, 64 in flight', num: ops(QD64, 'deno:caio:uring+sqpoll'), den: ops(QD64, 'deno:fs.promises') },
  // Batches.
  { section: 'batches of 64', what: 'uring batch (default or sqpoll) / fs.readSync', num: ops(BATCH, 'caio:uring/batch', 'caio:uring+sqpoll/batch'), den: ops(BATCH, 'fs.readSync'), min: 1.5 },
  { section: 'batches of 64', what: 'uring batch, default ring / fs.readSync', num: ops(BATCH, 'caio:uring/batch'), den: ops(BATCH, 'fs.readSync') },
  { section: 'batches of 64', what: 'uring batch, sqpoll / fs.readSync', num: ops(BATCH, 'caio:uring+sqpoll/batch'), den: ops(BATCH, 'fs.readSync') },
  { section: 'batches of 64', what: 'uring batch / its own per-op readInto (64 in flight)', num: ops(BATCH, 'caio:uring/batch'), den: ops(BATCH, 'caio:uring'), min: 2 },
  { section: 'batches of 64', what: 'uring sqpoll batch / its own per-op readInto', num: ops(BATCH, 'caio:uring+sqpoll/batch'), den: ops(BATCH, 'caio:uring+sqpoll') },
  { section: 'batches of 64', what: 'thread batch / fs.readSync', num: ops(BATCH, 'caio:thread/batch'), den: ops(BATCH, 'fs.readSync'), min: 1 },
  { section: 'batches of 64', what: 'linux batch / fs.readSync', num: ops(BATCH, 'caio:linux/batch'), den: ops(BATCH, 'fs.readSync') },
]

function figure(summary: Summary, metric: Metric): number {
  return metric === 'ops' ? summary.opsPerSec : 1e6 / summary.cpuUsPerOp
}

function best(groups: ReadonlyMap<string, Group>, side: Side): { id: string; value: number } | undefined {
  const group = groups.get(side.workload)
  if (!group) return undefined
  let found: { id: string; value: number } | undefined
  for (const id of side.contenders) {
    const row = group.rows.find((r) => r.contender.id === id)
    const s = row ? summarize(row.cell) : undefined
    if (!s) continue
    const value = figure(s, side.metric)
    if (!found || value > found.value) found = { id, value }
  }
  return found
}

function formatFigure(value: number, metric: Metric): string {
  const scaled = value >= 1e6 ? `${(value / 1e6).toFixed(2)} M` : value >= 1e3 ? `${(value / 1e3).toFixed(1)} k` : value.toFixed(0)
  return metric === 'ops' ? `${scaled}/s` : `${scaled} per CPU-s`
}

/** Why a side has no figure: the reason its group gives for the first contender it names, if any. */
function notMeasured(groups: ReadonlyMap<string, Group>, side: Side): string {
  const why = groups.get(side.workload)?.missing.find((m) => side.contenders.includes(m.id))
  return `not measured: ${side.contenders.join(' or ')} did not run${why ? ` (${why.reason})` : ''}`
}

/** Every ratio whose two sides' workloads were in the run. */
export function evaluate(groups: readonly Group[]): RatioResult[] {
  const byName = new Map(groups.map((g) => [g.workload.name, g]))
  const out: RatioResult[] = []
  for (const r of RATIOS) {
    if (!byName.has(r.num.workload) || !byName.has(r.den.workload)) continue
    const num = best(byName, r.num)
    const den = best(byName, r.den)
    const ratio = num && den ? num.value / den.value : Number.NaN
    const result: RatioResult = {
      section: r.section,
      what: r.what,
      ratio,
      detail: num && den ? `${num.id} ${formatFigure(num.value, r.num.metric)} / ${den.id} ${formatFigure(den.value, r.den.metric)}` : notMeasured(byName, !num ? r.num : r.den),
    }
    if (r.min !== undefined) {
      result.min = r.min
      if (Number.isFinite(ratio)) result.met = ratio >= r.min
    }
    out.push(result)
  }
  return out
}

export function renderRatios(results: readonly RatioResult[]): string {
  if (results.length === 0) return ''
  const out: string[] = ['Ratios (targets from DESIGN.md "Performance targets"; medians of this run)']
  let section = ''
  const width = Math.max(...results.map((r) => r.what.length))
  for (const r of results) {
    if (r.section !== section) {
      section = r.section
      out.push(`  ${section}`)
    }
    const ratio = Number.isFinite(r.ratio) ? `${r.ratio.toFixed(2)}×` : '–'
    const verdict = r.min === undefined ? '' : r.met === undefined ? `target ≥ ${r.min}×: not measured` : `target ≥ ${r.min}×: ${r.met ? 'met' : 'NOT met'}`
    out.push(`    ${r.what.padEnd(width)}  ${ratio.padStart(7)}  ${verdict.padEnd(30)}  ${r.detail}`)
  }
  return out.join('\n') + '\n'
}
