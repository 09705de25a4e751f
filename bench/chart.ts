/**
 * `--chart out.svg` (or `.png`): one picture of the run, drawn as plain SVG (no
 * dependencies; a `.png` goes through `rsvg-convert`).
 *
 * - One panel per row group: ops/s per contender as bars (linear, the group's own scale),
 *   and beside them each contender's latency on a log scale: a dot at p50, a bar to p99,
 *   a tick at p99.9.
 * - With `--sweeps`: the Python caio's two sweeps as line charts with a log x axis:
 *   throughput, and p50 (solid) / p99 (dashed) latency, per contender.
 */
import { spawnSync } from 'node:child_process'
import { unlinkSync, writeFileSync } from 'node:fs'

import { formatMiB, formatOps, formatUs, formatX, summarize, sweepContenders, sweepX } from './report'
import type { Group, Summary, Sweep } from './report'

export interface ChartInput {
  title: string
  subtitle: string[]
  groups: Group[]
  sweeps: Sweep[]
}

const FONT = 'DejaVu Sans, Verdana, Arial, sans-serif'
const WIDTH = 1500
const PANEL_W = 730
const GAP = 20
const ROW_H = 16

const COLORS: Readonly<Record<string, string>> = {
  'caio:uring': '#1f5fbf',
  'caio:uring+sqpoll': '#5b9bf0',
  'caio:linux': '#1e9e3a',
  'caio:thread': '#0fa3a3',
  'caio:js': '#8fc9c9',
  'caio:uring/batch': '#0b3a80',
  'caio:uring+sqpoll/batch': '#3c78d0',
  'caio:linux/batch': '#0d6b24',
  'caio:thread/batch': '#0a7272',
  'caio:js/batch': '#6aa8a8',
  'fs.promises': '#f28e2b',
  'fs.promises+uring': '#ffbe7d',
  'fs.callbacks': '#d62728',
  'fs.callbacks+uring': '#e377c2',
  'fs.readSync': '#7f7f7f',
  'fio:io_uring': '#222222',
  'fio:libaio': '#5a5a5a',
  'py:uring': '#8e44ad',
  'py:linux': '#a569bd',
  'py:thread': '#6c3483',
  'py:python': '#c39bd3',
  'bun:fs.promises': '#b07a3b',
  'bun:fs.callbacks': '#8c564b',
  'bun:fs.readSync': '#c9b037',
  'bun:caio:uring': '#3b8bb0',
  'bun:caio:thread': '#6bb0d0',
  'bun:caio:uring+sqpoll': '#1f5f80',
  'deno:fs.promises': '#5f8f3e',
  'deno:fs.callbacks': '#3e6b2a',
  'deno:fs.readSync': '#a4c98a',
  'deno:caio:uring': '#2a6f97',
  'deno:caio:thread': '#61a5c2',
  'deno:caio:uring+sqpoll': '#1b4965',
}

function color(id: string): string {
  return COLORS[id] ?? '#999999'
}

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

function text(x: number, y: number, body: string, attrs = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(body)}</text>`
}

function line(x1: number, y1: number, x2: number, y2: number, attrs: string): string {
  return `<line x1="${x1.toFixed(1)}" y1="${y1.toFixed(1)}" x2="${x2.toFixed(1)}" y2="${y2.toFixed(1)}" ${attrs}/>`
}

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`
}

/** A log scale over [lo, hi] onto [a, b], with decade ticks. */
function logScale(lo: number, hi: number, a: number, b: number): { at: (v: number) => number; ticks: number[] } {
  const l0 = Math.floor(Math.log10(Math.max(lo, 1e-9)))
  const l1 = Math.max(l0 + 1, Math.ceil(Math.log10(Math.max(hi, lo * 1.01))))
  const at = (v: number): number => a + ((Math.log10(Math.max(v, 10 ** l0)) - l0) / (l1 - l0)) * (b - a)
  const ticks: number[] = []
  for (let e = l0; e <= l1; e++) ticks.push(10 ** e)
  return { at, ticks }
}

/** A linear scale from 0 to a round number above `hi`, with about 4 ticks. */
function linearScale(hi: number, a: number, b: number): { at: (v: number) => number; ticks: number[]; top: number } {
  const raw = hi > 0 ? hi / 4 : 1
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag
  const top = Math.ceil(hi / step) * step || step
  const ticks: number[] = []
  for (let v = 0; v <= top + step / 2; v += step) ticks.push(v)
  return { at: (v) => a + (v / top) * (b - a), ticks, top }
}

function tickLabel(v: number): string {
  if (v >= 1e6) return `${v / 1e6}M`
  if (v >= 1e3) return `${v / 1e3}k`
  return v < 1 ? String(Number(v.toPrecision(2))) : String(v)
}

/** One row group: bars of ops/s, then latency dots and bars. Returns its SVG and height. */
function groupPanel(group: Group, x: number, y: number): { svg: string; height: number } {
  const rows = group.rows.map((r) => ({ id: r.contender.id, label: r.contender.label(group.workload), summary: summarize(r.cell), failed: r.cell.errors.length > 0 }))
  const out: string[] = []
  const labelW = 250
  const barX = x + labelW
  const barW = 210
  const latX = barX + barW + 70
  const latW = x + PANEL_W - 10 - latX
  const top = y + 40
  const maxOps = Math.max(1, ...rows.map((r) => r.summary?.opsPerSec ?? 0))
  const withLat = rows.map((r) => r.summary).filter((s): s is Summary => s !== undefined && Number.isFinite(s.p50Us))
  const lat = logScale(Math.min(...withLat.map((s) => s.p50Us), 1), Math.max(...withLat.map((s) => s.p999Us), 10), latX, latX + latW)
  const height = 40 + rows.length * ROW_H + 34 + (group.missing.length > 0 ? 14 : 0)

  out.push(`<rect x="${x}" y="${y}" width="${PANEL_W}" height="${height}" fill="#fafafa" stroke="#dddddd"/>`)
  out.push(text(x + 8, y + 16, clip(group.workload.title, 105), 'font-size="12" font-weight="bold"'))
  out.push(text(barX, y + 33, `ops/s (linear)`, 'font-size="10" fill="#555"'))
  out.push(text(latX, y + 33, 'latency µs (log): ● p50  ▬ p99  | p99.9', 'font-size="10" fill="#555"'))
  // Latency grid.
  for (const t of lat.ticks) {
    const tx = lat.at(t)
    out.push(line(tx, top - 2, tx, top + rows.length * ROW_H, 'stroke="#e2e2e2"'))
    out.push(text(tx, top + rows.length * ROW_H + 12, tickLabel(t), 'font-size="9" fill="#666" text-anchor="middle"'))
  }
  rows.forEach((r, i) => {
    const ry = top + i * ROW_H
    const mid = ry + ROW_H / 2
    out.push(text(barX - 6, mid + 4, clip(r.label, 40), 'font-size="10.5" text-anchor="end"'))
    const s = r.summary
    if (!s) {
      out.push(text(barX + 2, mid + 4, r.failed ? 'failed' : 'no result', 'font-size="10" fill="#b00"'))
      return
    }
    const w = Math.max(1, (s.opsPerSec / maxOps) * barW)
    out.push(`<rect x="${barX}" y="${(ry + 2).toFixed(1)}" width="${w.toFixed(1)}" height="${ROW_H - 4}" fill="${color(r.id)}"/>`)
    const big = group.workload.blockSize >= 64 * 1024
    out.push(text(barX + w + 4, mid + 4, big ? `${formatOps(s.opsPerSec)} · ${formatMiB(s.mibPerSec)} MiB/s` : formatOps(s.opsPerSec), 'font-size="10"'))
    const c = color(r.id)
    out.push(line(lat.at(s.p50Us), mid, lat.at(s.p99Us), mid, `stroke="${c}" stroke-width="5" stroke-opacity="0.55"`))
    out.push(line(lat.at(s.p99Us), mid, lat.at(s.p999Us), mid, `stroke="${c}" stroke-width="1"`))
    out.push(line(lat.at(s.p999Us), mid - 5, lat.at(s.p999Us), mid + 5, `stroke="${c}" stroke-width="1.5"`))
    out.push(`<circle cx="${lat.at(s.p50Us).toFixed(1)}" cy="${mid}" r="3.5" fill="${c}"><title>${esc(`${r.id}: p50 ${formatUs(s.p50Us)} µs, p99 ${formatUs(s.p99Us)} µs, p99.9 ${formatUs(s.p999Us)} µs`)}</title></circle>`)
  })
  out.push(line(barX, top - 2, barX, top + rows.length * ROW_H, 'stroke="#888"'))
  if (group.missing.length > 0) {
    out.push(text(x + 8, y + height - 8, clip(`not run: ${[...new Set(group.missing.map((m) => m.id))].join(', ')} (see the table for why)`, 120), 'font-size="9.5" fill="#777"'))
  }
  return { svg: out.join('\n'), height }
}

/** One sweep chart: a line per contender, log x. */
function sweepPanel(sweep: Sweep, which: 'throughput' | 'latency', x: number, y: number, w: number, h: number): string {
  const out: string[] = []
  const plotX = x + 64
  const plotY = y + 30
  const plotW = w - 80
  const plotH = h - 70
  const xs = sweep.points.map((p) => sweepX(p.workload))
  // Log x from the first point to the last, the points' own values as ticks.
  const lo = Math.log10(Math.min(...xs))
  const hi = Math.log10(Math.max(...xs))
  const xAt = (v: number): number => (hi === lo ? plotX + plotW / 2 : plotX + ((Math.log10(v) - lo) / (hi - lo)) * plotW)
  const contenders = sweepContenders(sweep)
  const series = contenders.map((c) => ({
    id: c.id,
    points: sweep.points
      .map((p) => {
        const row = p.rows.find((r) => r.contender.id === c.id)
        const s = row ? summarize(row.cell) : undefined
        return s ? { x: sweepX(p.workload), s } : undefined
      })
      .filter((v): v is { x: number; s: Summary } => v !== undefined),
  }))
  const chunk = sweep.kind === 'sweep-chunk'
  const value = (s: Summary): number => (chunk ? s.mibPerSec : s.opsPerSec)
  out.push(`<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="#fafafa" stroke="#dddddd"/>`)
  const title = `${sweep.title} — ${which === 'throughput' ? (chunk ? 'MiB/s' : 'ops/s') : 'latency µs, p50 solid, p99 dashed (log)'}`
  out.push(text(x + 8, y + 18, clip(title, 110), 'font-size="12" font-weight="bold"'))
  let yAt: (v: number) => number
  let yTicks: number[]
  if (which === 'throughput') {
    const ys = linearScale(Math.max(1, ...series.flatMap((s) => s.points.map((p) => value(p.s)))), plotY + plotH, plotY)
    yAt = ys.at
    yTicks = ys.ticks
  } else {
    const all = series.flatMap((s) => s.points.flatMap((p) => [p.s.p50Us, p.s.p99Us])).filter((v) => Number.isFinite(v) && v > 0)
    const ys = logScale(Math.min(1, ...all), Math.max(10, ...all), plotY + plotH, plotY)
    yAt = ys.at
    yTicks = ys.ticks
  }
  for (const t of yTicks) {
    const ty = yAt(t)
    out.push(line(plotX, ty, plotX + plotW, ty, 'stroke="#e2e2e2"'))
    out.push(text(plotX - 6, ty + 3, tickLabel(t), 'font-size="9" fill="#666" text-anchor="end"'))
  }
  for (const v of xs) {
    const tx = xAt(v)
    out.push(line(tx, plotY, tx, plotY + plotH, 'stroke="#eeeeee"'))
    out.push(text(tx, plotY + plotH + 13, formatX(sweep, v), 'font-size="9" fill="#666" text-anchor="middle"'))
  }
  out.push(text(plotX + plotW / 2, plotY + plotH + 28, `${sweep.xLabel} (log)`, 'font-size="10" fill="#444" text-anchor="middle"'))
  out.push(`<rect x="${plotX}" y="${plotY}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`)
  const poly = (pts: Array<[number, number]>, attrs: string): string => `<polyline fill="none" points="${pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' ')}" ${attrs}/>`
  for (const s of series) {
    if (s.points.length === 0) continue
    const c = color(s.id)
    if (which === 'throughput') {
      out.push(poly(s.points.map((p) => [xAt(p.x), yAt(value(p.s))]), `stroke="${c}" stroke-width="2"`))
      for (const p of s.points) out.push(`<circle cx="${xAt(p.x).toFixed(1)}" cy="${yAt(value(p.s)).toFixed(1)}" r="2.5" fill="${c}"/>`)
    } else {
      out.push(poly(s.points.map((p) => [xAt(p.x), yAt(p.s.p50Us)]), `stroke="${c}" stroke-width="2"`))
      out.push(poly(s.points.map((p) => [xAt(p.x), yAt(p.s.p99Us)]), `stroke="${c}" stroke-width="1.2" stroke-opacity="0.7" stroke-dasharray="5,3"`))
    }
  }
  return out.join('\n')
}

function legend(ids: string[], x: number, y: number, width: number): { svg: string; height: number } {
  const out: string[] = []
  const colW = 190
  const perRow = Math.max(1, Math.floor(width / colW))
  ids.forEach((id, i) => {
    const lx = x + (i % perRow) * colW
    const ly = y + Math.floor(i / perRow) * 16
    out.push(`<rect x="${lx}" y="${ly}" width="14" height="10" fill="${color(id)}"/>`)
    out.push(text(lx + 19, ly + 9, id, 'font-size="10.5"'))
  })
  return { svg: out.join('\n'), height: Math.ceil(ids.length / perRow) * 16 }
}

/** The whole picture as SVG text. */
export function renderChart(input: ChartInput): string {
  const parts: string[] = []
  let y = 10
  parts.push(text(10, y + 16, input.title, 'font-size="16" font-weight="bold"'))
  y += 22
  for (const s of input.subtitle) {
    parts.push(text(10, y + 12, clip(s, 230), 'font-size="10.5" fill="#444"'))
    y += 15
  }
  y += 8
  // Row groups, two panels per line.
  for (let i = 0; i < input.groups.length; i += 2) {
    const left = groupPanel(input.groups[i]!, 10, y)
    const rightGroup = input.groups[i + 1]
    const right = rightGroup ? groupPanel(rightGroup, 10 + PANEL_W + GAP, y) : undefined
    parts.push(left.svg)
    if (right) parts.push(right.svg)
    y += Math.max(left.height, right?.height ?? 0) + GAP
  }
  const sweeps = input.sweeps.filter((s) => s.points.length > 0)
  if (sweeps.length > 0) {
    parts.push(text(10, y + 14, "The Python caio's sweeps (its benchmark/bench.py), random reads from the page cache", 'font-size="14" font-weight="bold"'))
    y += 24
    const h = 330
    for (const sweep of sweeps) {
      parts.push(sweepPanel(sweep, 'throughput', 10, y, PANEL_W, h))
      parts.push(sweepPanel(sweep, 'latency', 10 + PANEL_W + GAP, y, PANEL_W, h))
      y += h + GAP
    }
    const ids = [...new Set(sweeps.flatMap((s) => sweepContenders(s).map((c) => c.id)))]
    const l = legend(ids, 20, y, WIDTH - 40)
    parts.push(l.svg)
    y += l.height + GAP
  }
  const height = Math.ceil(y)
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="${FONT}">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n')
}

/** Writes the chart: SVG as is; PNG through `rsvg-convert` (librsvg2-bin). Throws with the reason if it cannot. */
export function writeChart(path: string, svg: string): void {
  if (!/\.png$/i.test(path)) {
    writeFileSync(path, svg)
    return
  }
  const tmp = `${path}.tmp.svg`
  writeFileSync(tmp, svg)
  try {
    const r = spawnSync('rsvg-convert', ['-b', 'white', '-o', path, tmp], { encoding: 'utf8' })
    if (r.error) throw new Error(`a .png chart needs rsvg-convert (apt-get install librsvg2-bin), or ask for .svg: ${r.error.message}`)
    if (r.status !== 0) throw new Error(`rsvg-convert failed: ${r.stderr.trim()}`)
  } finally {
    unlinkSync(tmp)
  }
}
