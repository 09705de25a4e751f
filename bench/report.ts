/**
 * Turning rounds into figures: the median of each figure over the rounds, the ratios
 * against the baselines, and the text table.
 */
import { BASELINES } from './contenders'
import type { Contender } from './contenders'
import type { WorkerResult } from './spec'
import { median, spread } from './stats'
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
  p50Us: number
  p99Us: number
  p999Us: number
  cpuUsPerOp: number
  cores: number
  /** (max − min) / median of ops/s; NaN for one round. */
  spread: number
  /** Fewest io_uring instances seen open in a round. */
  uringFds: number
}

export function summarize(cell: Cell): Summary | undefined {
  const r = cell.rounds
  if (r.length === 0) return undefined
  const ops = r.map((x) => x.opsPerSec)
  return {
    rounds: r.length,
    depth: r[0]!.depth,
    opsPerSec: median(ops),
    p50Us: median(r.map((x) => x.p50Us)),
    p99Us: median(r.map((x) => x.p99Us)),
    p999Us: median(r.map((x) => x.p999Us)),
    cpuUsPerOp: median(r.map((x) => x.cpuUsPerOp)),
    cores: median(r.map((x) => x.cores)),
    spread: spread(ops),
    uringFds: Math.min(...r.map((x) => x.uringFds)),
  }
}

/** One row group: a workload and its contenders' cells, in table order. */
export interface Group {
  workload: Workload
  rows: Array<{ contender: Contender; cell: Cell | undefined }>
}

export interface RatioSet {
  [baseline: string]: number
}

/** ops/s of a row over each baseline's ops/s in the same group (NaN where a baseline is missing). */
export function ratios(group: Group, summary: Summary | undefined): RatioSet {
  const out: RatioSet = {}
  for (const b of BASELINES) {
    const base = group.rows.find((row) => row.contender.id === b.id)
    const baseSummary = base?.cell ? summarize(base.cell) : undefined
    out[b.id] = summary && baseSummary ? summary.opsPerSec / baseSummary.opsPerSec : Number.NaN
  }
  return out
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

function formatRatio(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(2)}×` : '–'
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

/** The text table of every group, with notes under each group. */
export function renderGroups(groups: Group[]): string {
  const columns: Column[] = [
    { title: 'contender', align: 'left' },
    { title: 'ops/s', align: 'right' },
    { title: 'p50 µs', align: 'right' },
    { title: 'p99 µs', align: 'right' },
    { title: 'CPU µs/op', align: 'right' },
    { title: 'cores', align: 'right' },
    ...BASELINES.map((b): Column => ({ title: b.column, align: 'right' })),
    { title: 'spread', align: 'right' },
  ]
  const out: string[] = []
  for (const group of groups) {
    const notes: string[] = []
    const rows: string[][] = []
    for (const { contender, cell } of group.rows) {
      const summary = cell ? summarize(cell) : undefined
      if (!summary) {
        rows.push([contender.label, cell && cell.errors.length > 0 ? 'failed' : 'not run'])
        if (cell) for (const e of new Set(cell.errors)) notes.push(`${contender.id} failed: ${e}`)
        continue
      }
      const r = ratios(group, summary)
      rows.push([
        contender.label,
        formatOps(summary.opsPerSec),
        formatUs(summary.p50Us),
        formatUs(summary.p99Us),
        formatUs(summary.cpuUsPerOp),
        summary.cores.toFixed(2),
        ...BASELINES.map((b) => formatRatio(r[b.id] ?? Number.NaN)),
        formatSpread(summary.spread),
      ])
      if (cell && cell.errors.length > 0) notes.push(`${contender.id}: ${cell.errors.length} of ${cell.errors.length + cell.rounds.length} rounds failed (${cell.errors[0]})`)
      if (contender.sync && summary.depth !== group.workload.depth) notes.push(`${contender.id} is synchronous: the same depth-1 run in every group`)
      if (contender.expectsUring && summary.uringFds === 0) notes.push(`${contender.id}: no io_uring was open in its process, so it did not run on io_uring (libuv falls back to its thread pool)`)
    }
    out.push(group.workload.title)
    out.push(...renderTable(columns, rows).map((l) => `  ${l}`))
    for (const n of notes) out.push(`  note: ${n}`)
    out.push('')
  }
  return out.join('\n')
}
