/**
 * Turning rounds into figures: the median of each figure over the rounds, the ratio to
 * `fs.promises`, and the text tables (row groups, sweeps).
 */
import type { Contender } from './contenders'
import type { WorkerResult } from './spec'
import { median, spread } from './stats'
import { sizeName } from './workloads'
import type { Workload } from './workloads'

/** One contender on one workload, over all rounds. */
export interface Cell {
  contender: Contender
  /** The workload it really ran (depth 1 for a synchronous contender). */
  workload: Workload
  rounds: WorkerResult[]
  errors: string[]
}

/** Median over the rounds of each figure (each figure on its own). */
export interface Summary {
  rounds: number
  depth: number
  opsPerSec: number
  mibPerSec: number
  p50Us: number
  p99Us: number
  p999Us: number
  cpuUsPerOp: number
  cores: number
  /** (max − min) / median of ops/s; NaN for one round. */
  spread: number
  /** Fewest io_uring instances seen open in a round (-1: not known). */
  uringFds: number
  /** Sequential writes: mean fsync time, µs (median over the rounds). */
  fsyncMeanUs?: number
}

export function summarize(cell: Cell): Summary | undefined {
  const r = cell.rounds
  if (r.length === 0) return undefined
  const ops = r.map((x) => x.opsPerSec)
  const opsPerSec = median(ops)
  const summary: Summary = {
    rounds: r.length,
    depth: r[0]!.depth,
    opsPerSec,
    mibPerSec: (opsPerSec * cell.workload.blockSize) / 2 ** 20,
    p50Us: median(r.map((x) => x.p50Us)),
    p99Us: median(r.map((x) => x.p99Us)),
    p999Us: median(r.map((x) => x.p999Us)),
    cpuUsPerOp: median(r.map((x) => x.cpuUsPerOp)),
    cores: median(r.map((x) => x.cores)),
    spread: spread(ops),
    uringFds: Math.min(...r.map((x) => x.uringFds)),
  }
  const fsync = r.map((x) => x.info.fsyncMeanUs).filter((x): x is number => typeof x === 'number')
  if (fsync.length > 0) summary.fsyncMeanUs = median(fsync)
  return summary
}

export interface Row {
  contender: Contender
  cell: Cell
}

/** A contender that would have a row in a group but cannot run it, and why. */
export interface Missing {
  id: string
  reason: string
}

/** One row group: a workload, its contenders' cells in table order, and who is missing. */
export interface Group {
  workload: Workload
  rows: Row[]
  missing: Missing[]
}

export const BASELINE = 'fs.promises'

/** ops/s of a row over `fs.promises`' ops/s in the same group (NaN where it is missing). */
export function ratioToPromises(group: Group, summary: Summary | undefined): number {
  const base = group.rows.find((row) => row.contender.id === BASELINE)
  const baseSummary = base ? summarize(base.cell) : undefined
  return summary && baseSummary ? summary.opsPerSec / baseSummary.opsPerSec : Number.NaN
}

export function formatOps(x: number): string {
  if (!Number.isFinite(x)) return '–'
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M`
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)} k`
  return x.toFixed(0)
}

export function formatUs(x: number): string {
  if (!Number.isFinite(x)) return '–'
  if (x < 10) return x.toFixed(2)
  if (x < 100) return x.toFixed(1)
  return x.toFixed(0)
}

export function formatMiB(x: number): string {
  if (!Number.isFinite(x)) return '–'
  return x >= 100 ? x.toFixed(0) : x.toFixed(1)
}

export function formatRatio(x: number): string {
  return Number.isFinite(x) ? `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}×` : '–'
}

function formatSpread(x: number): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(0)}%` : '–'
}

interface Column {
  title: string
  align: 'left' | 'right'
}

function renderTable(columns: Column[], rows: string[][]): string[] {
  const widths = columns.map((c, i) => Math.max(c.title.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string =>
    cells
      .map((text, i) => (columns[i]!.align === 'left' ? text.padEnd(widths[i]!) : text.padStart(widths[i]!)))
      .join('  ')
      .trimEnd()
  return [line(columns.map((c) => c.title)), ...rows.map(line)]
}

/** Contenders missing from a group, one note per reason. */
function missingNotes(missing: Missing[]): string[] {
  const byReason = new Map<string, string[]>()
  for (const m of missing) byReason.set(m.reason, [...(byReason.get(m.reason) ?? []), m.id])
  return [...byReason].map(([reason, ids]) => `not run: ${ids.join(', ')}: ${reason}`)
}

/** The text table of every group, with notes under each group. */
export function renderGroups(groups: Group[]): string {
  const columns: Column[] = [
    { title: 'contender', align: 'left' },
    { title: 'ops/s', align: 'right' },
    { title: 'MiB/s', align: 'right' },
    { title: 'p50 µs', align: 'right' },
    { title: 'p99 µs', align: 'right' },
    { title: 'p99.9 µs', align: 'right' },
    { title: 'CPU µs/op', align: 'right' },
    { title: 'cores', align: 'right' },
    { title: '×promises', align: 'right' },
    { title: 'spread', align: 'right' },
  ]
  const out: string[] = []
  for (const group of groups) {
    const notes: string[] = []
    const rows: string[][] = []
    const syncs: string[] = []
    for (const { contender, cell } of group.rows) {
      const label = contender.label(group.workload)
      const summary = summarize(cell)
      if (!summary) {
        rows.push([label, 'failed'])
        for (const e of new Set(cell.errors)) notes.push(`${contender.id} failed: ${e}`)
        continue
      }
      rows.push([
        label,
        formatOps(summary.opsPerSec),
        formatMiB(summary.mibPerSec),
        formatUs(summary.p50Us),
        formatUs(summary.p99Us),
        formatUs(summary.p999Us),
        formatUs(summary.cpuUsPerOp),
        summary.cores.toFixed(2),
        formatRatio(ratioToPromises(group, summary)),
        formatSpread(summary.spread),
      ])
      if (cell.errors.length > 0) notes.push(`${contender.id}: ${cell.errors.length} of ${cell.errors.length + cell.rounds.length} rounds failed (${cell.errors[0]})`)
      if (contender.sync && summary.depth !== group.workload.depth) notes.push(`${contender.id} is synchronous: it runs at 1 in flight`)
      if (contender.expectsUring && summary.uringFds === 0) notes.push(`${contender.id}: no io_uring was open in its process, so it did not run on io_uring`)
      if (summary.fsyncMeanUs !== undefined) syncs.push(`${contender.id} ${(summary.fsyncMeanUs / 1000).toFixed(1)}`)
    }
    if (syncs.length > 0) notes.push(`mean fsync ms: ${syncs.join(', ')}`)
    notes.push(...missingNotes(group.missing))
    out.push(group.workload.title)
    out.push(...renderTable(columns, rows).map((l) => `  ${l}`))
    for (const n of notes) out.push(`  note: ${n}`)
    out.push('')
  }
  return out.join('\n')
}

/** A sweep: its points (groups of one kind, in x order). */
export interface Sweep {
  kind: 'sweep-concurrency' | 'sweep-chunk'
  title: string
  xLabel: string
  points: Group[]
}

export function sweepX(workload: Workload): number {
  return workload.x ?? (workload.kind === 'sweep-chunk' ? workload.blockSize : workload.depth)
}

export function formatX(sweep: Sweep, x: number): string {
  return sweep.kind === 'sweep-chunk' ? sizeName(x).replace(' ', '') : String(x)
}

/** The contenders of a sweep, in the order they first appear. */
export function sweepContenders(sweep: Sweep): Contender[] {
  const seen = new Map<string, Contender>()
  for (const p of sweep.points) for (const r of p.rows) if (!seen.has(r.contender.id)) seen.set(r.contender.id, r.contender)
  return [...seen.values()]
}

/** Each sweep as two tables: throughput, and p50/p99 latency, contenders down, points across. */
export function renderSweeps(sweeps: Sweep[]): string {
  const out: string[] = []
  for (const sweep of sweeps) {
    if (sweep.points.length === 0) continue
    const contenders = sweepContenders(sweep)
    const head: Column[] = [{ title: sweep.xLabel, align: 'left' }, ...sweep.points.map((p): Column => ({ title: formatX(sweep, sweepX(p.workload)), align: 'right' }))]
    const figure = (id: string, point: Group, pick: (s: Summary) => string): string => {
      const row = point.rows.find((r) => r.contender.id === id)
      const s = row ? summarize(row.cell) : undefined
      return s ? pick(s) : row && row.cell.errors.length > 0 ? 'failed' : ''
    }
    const throughput = sweep.kind === 'sweep-chunk' ? (s: Summary) => formatMiB(s.mibPerSec) : (s: Summary) => formatOps(s.opsPerSec)
    out.push(`${sweep.title} — ${sweep.kind === 'sweep-chunk' ? 'MiB/s' : 'ops/s'}`)
    out.push(...renderTable(head, contenders.map((c) => [c.id, ...sweep.points.map((p) => figure(c.id, p, throughput))])).map((l) => `  ${l}`))
    out.push(`${sweep.title} — p50 / p99 latency, µs`)
    out.push(...renderTable(head, contenders.map((c) => [c.id, ...sweep.points.map((p) => figure(c.id, p, (s) => `${formatUs(s.p50Us)}/${formatUs(s.p99Us)}`))])).map((l) => `  ${l}`))
    const missing = sweep.points.flatMap((p) => p.missing).filter((m, i, all) => all.findIndex((o) => o.id === m.id) === i)
    for (const n of missingNotes(missing)) out.push(`  note: ${n}`)
    out.push('')
  }
  return out.join('\n')
}
