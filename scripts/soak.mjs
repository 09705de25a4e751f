#!/usr/bin/env node
// Soak: millions of mixed operations per backend, each backend in a child process of its
// own (node --expose-gc), reporting how much RSS and the JS heap grew between the end of a
// warm-up and the end of the run, after full collections. A backend passes when every
// operation gave the right answer and neither grew by more than the limit.
//
// Output is TAP, one line per backend (`ok 1 - soak uring: ...` / `not ok 1 - soak ...`),
// then `# soak: N passed, N failed`; the exit code is non-zero when any backend failed.
//
// Flags: --ops N            operations per backend (default 2000000; CI runs 200000)
//        --backends a,b     backends to soak (default: every one available here)
//        --limit MiB        allowed growth of RSS and heap (default 16)
//        --depth N          operations in flight (default 64)
//        --warmup N         operations before the first measurement (default 150000, or a
//                           tenth of --ops if more), not counted in --ops
// Run after a build (`npm run build`); `npm run soak` builds first. SOAK_TRACE=1 prints a
// memory sample (ops, RSS, heap total, heap used, external, array buffers) every 16 Ki ops.
import { spawn } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = fileURLToPath(import.meta.url)
const root = join(dirname(here), '..')
const require = createRequire(import.meta.url)
const args = process.argv.slice(2)
const flag = (name, fallback) => {
  const i = args.indexOf(name)
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback
}
const MIB = 1024 * 1024

if (args.includes('--help')) {
  console.log('usage: node scripts/soak.mjs [--ops 2000000] [--backends uring,linux,thread,js] [--limit 16] [--depth 64]')
  process.exit(0)
}

const ops = Number(flag('--ops', '2000000'))
const limit = Number(flag('--limit', '16'))
const depth = Number(flag('--depth', '64'))
const warmupOps = Number(flag('--warmup', '150000'))
if (!(ops > 0) || !(limit > 0) || !(depth > 0)) {
  console.error('soak: --ops, --limit and --depth take positive numbers')
  process.exit(2)
}

async function parent() {
  const { backends } = require(join(root, 'dist', 'index.js'))
  const statuses = backends()
  const wanted = flag('--backends', statuses.filter((s) => s.available).map((s) => s.name).join(',')).split(',')
  console.log('TAP version 13')
  console.log(`# soak: ${ops} mixed operations per backend after a warm-up, ${depth} in flight, growth limit ${limit} MiB (RSS and heap, measured after full GCs)`)
  let n = 0
  let failed = 0
  for (const name of wanted) {
    n++
    const status = statuses.find((s) => s.name === name)
    if (!status?.available) {
      console.log(`not ok ${n} - soak ${name}: not available here (${status?.reason ?? 'no such backend'})`)
      failed++
      continue
    }
    const started = Date.now()
    const result = await runChild(name)
    const seconds = (Date.now() - started) / 1000
    const report = result.report
    if (!report) {
      console.log(`not ok ${n} - soak ${name}: the child failed (exit ${result.code}${result.signal ? `, ${result.signal}` : ''})`)
      for (const line of result.stderr.trim().split('\n').slice(-15)) console.log(`#   ${line}`)
      failed++
      continue
    }
    const rss = report.end.rss - report.base.rss
    const heap = report.end.heapUsed - report.base.heapUsed
    const external = report.end.external - report.base.external
    const problems = []
    if (!(report.done >= ops)) problems.push(`${report.done} of ${ops} operations done`)
    if (report.bad > 0) problems.push(`${report.bad} wrong results (first: ${report.firstBad})`)
    if (rss > limit * MIB) problems.push(`RSS grew ${mib(rss)} MiB`)
    if (heap > limit * MIB) problems.push(`heap grew ${mib(heap)} MiB`)
    const afterClose = report.closed.rss - report.base.rss
    const summary = `${report.done} ops (after ${report.warmup} of warm-up) in ${seconds.toFixed(1)} s (${Math.round(report.done / report.seconds / 1000)} k ops/s), RSS ${sign(rss)}${mib(rss)} MiB (${mib(report.base.rss)} -> ${mib(report.end.rss)}, peak ${mib(report.peakRss)}), heap ${sign(heap)}${mib(heap)} MiB, external ${sign(external)}${mib(external)} MiB, RSS after close ${sign(afterClose)}${mib(afterClose)} MiB; limit ${limit} MiB`
    if (problems.length === 0) console.log(`ok ${n} - soak ${name}: ${summary}`)
    else {
      console.log(`not ok ${n} - soak ${name}: ${problems.join('; ')} — ${summary}`)
      failed++
    }
    console.log(`#   ${name}: ${JSON.stringify(report.counts)}`)
  }
  console.log(`1..${n}`)
  console.log(`# soak: ${n - failed} passed, ${failed} failed`)
  process.exitCode = failed === 0 ? 0 : 1
}

const mib = (bytes) => (bytes / MIB).toFixed(1)
const sign = (bytes) => (bytes >= 0 ? '+' : '')

function runChild(name) {
  return new Promise((resolve) => {
    // V8 grows its young generation under allocation pressure, committing up to 2 x 16 MiB
    // of semi-spaces over the first few hundred thousand operations: pinned to its largest
    // size from the start, it no longer passes for growth of the library's own memory.
    const v8 = ['--expose-gc', '--min-semi-space-size=16', '--max-semi-space-size=16']
    const child = spawn(process.execPath, [...v8, here, '--child', name, '--ops', String(ops), '--depth', String(depth), '--warmup', String(warmupOps)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    child.on('close', (code, signal) => {
      let report
      try {
        report = JSON.parse(stdout.trim().split('\n').pop())
      } catch {
        report = undefined
      }
      resolve({ code, signal, stderr, report })
    })
  })
}

/** xorshift32, seeded: the same run every time. */
function random(seed) {
  let state = seed >>> 0 || 1
  return (bound) => {
    state ^= state << 13
    state >>>= 0
    state ^= state >>> 17
    state ^= state << 5
    state >>>= 0
    return state % bound
  }
}

async function child(name) {
  const { Context } = require(join(root, 'dist', 'index.js'))
  const dir = mkdtempSync(join(tmpdir(), 'caio-soak-'))
  try {
    const size = 16 * MIB
    const content = Buffer.allocUnsafe(size)
    const rand = random(12345)
    for (let i = 0; i < size; i += 4) content.writeUInt32LE(rand(0x100000000) >>> 0, i)
    const path = join(dir, 'data')
    writeFileSync(path, content)
    const fd = openSync(path, 'r+')
    const ctx = new Context({ backend: name, maxRequests: 128, poolSize: 4 })
    const counts = { read: 0, readInto: 0, write: 0, fdsync: 0, batchOps: 0, aborted: 0, abortedSettled: 0, ebadf: 0 }
    let bad = 0
    let firstBad = ''
    const fail = (what) => {
      bad++
      if (!firstBad) firstBad = what
    }
    const pick = random(777)
    // The warm-up runs before the measured operations: malloc's high-water mark for the
    // Buffers that reads allocate, and V8's heap, settle over the first ~150 000.
    const warmup = Math.max(warmupOps, Math.round(ops / 10))
    const total = warmup + ops
    let base
    let peakRss = 0
    let nextSample = 0
    let next = 0
    const measure = () => {
      for (let i = 0; i < 3; i++) globalThis.gc()
      const m = process.memoryUsage()
      return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers }
    }
    let startTime = 0
    // Targets of readInto, reused: the soak measures the library, not fresh allocations.
    const lanes = Array.from({ length: depth }, async (_, lane) => {
      const scratch = Buffer.alloc(64 * 1024)
      const batchBuffers = Array.from({ length: 8 }, () => Buffer.alloc(4096))
      while (next < total) {
        if (next >= warmup && base === undefined) {
          // Let the other lanes drain into this point too: measure between two operations.
          base = measure()
          startTime = performance.now()
        }
        if (next >= nextSample) {
          nextSample = next + 16384
          const m = process.memoryUsage()
          peakRss = Math.max(peakRss, m.rss)
          if (process.env.SOAK_TRACE) console.error(next, (m.rss / MIB).toFixed(1), (m.heapTotal / MIB).toFixed(1), (m.heapUsed / MIB).toFixed(1), (m.external / MIB).toFixed(1), (m.arrayBuffers / MIB).toFixed(1))
        }
        const roll = pick(100)
        const len = 1 + pick(roll < 50 ? 4096 : 65536)
        const at = pick(size - len)
        if (roll < 40) {
          next++
          const bytes = await ctx.read(len, fd, at)
          if (bytes.length !== len || ((next & 63) === 0 && !bytes.equals(content.subarray(at, at + len)))) fail(`read ${len} at ${at}`)
          counts.read++
        } else if (roll < 60) {
          next++
          const view = scratch.subarray(0, len)
          const n = await ctx.readInto(view, fd, at)
          if (n !== len || ((next & 63) === 0 && !view.equals(content.subarray(at, at + len)))) fail(`readInto ${len} at ${at}`)
          counts.readInto++
        } else if (roll < 80) {
          next++
          // The file's own bytes, written back: reads stay checkable.
          const n = await ctx.write(content.subarray(at, at + len), fd, at)
          if (n !== len) fail(`write ${len} at ${at}: ${n}`)
          counts.write++
        } else if (roll < 81) {
          next++
          await ctx.fdsync(fd)
          counts.fdsync++
        } else if (roll < 93) {
          const batch = batchBuffers.map((buffer) => ({ op: 'read', fd, offset: pick(size - 4096), buffer }))
          next += batch.length
          const entries = await ctx.submit(batch)
          for (let i = 0; i < batch.length; i++) {
            if (entries[i] !== 4096 || ((next & 63) === 0 && !batch[i].buffer.equals(content.subarray(batch[i].offset, batch[i].offset + 4096)))) fail(`batch read at ${batch[i].offset}`)
          }
          counts.batchOps += batch.length
        } else if (roll < 98) {
          next++
          const controller = new AbortController()
          const promise = ctx.read(len, fd, at, { signal: controller.signal })
          if (pick(2) === 0) controller.abort()
          else queueMicrotask(() => controller.abort())
          try {
            const bytes = await promise
            if (bytes.length !== len) fail(`aborted read resolved ${bytes.length}`)
          } catch (error) {
            if (error.name !== 'AbortError') fail(`aborted read: ${error.message}`)
            else counts.abortedSettled++
          }
          counts.aborted++
        } else {
          next++
          try {
            await ctx.read(16, 0x7fffffff, 0)
            fail('a read on a closed descriptor resolved')
          } catch (error) {
            if (error.code !== 'EBADF') fail(`EBADF expected: ${error.message}`)
          }
          counts.ebadf++
        }
        // Now and then let the loop turn (timers, other I/O), as a real program would.
        if (lane === 0 && (next & 0x3ffff) < 8) await new Promise((resolve) => setImmediate(resolve))
      }
    })
    await Promise.all(lanes)
    const seconds = (performance.now() - startTime) / 1000
    // Measured with the context still open and idle (what a long-lived process holds), and
    // again after close.
    const end = measure()
    await ctx.close()
    closeSync(fd)
    const closed = measure()
    peakRss = Math.max(peakRss, end.rss, closed.rss)
    console.log(JSON.stringify({ backend: ctx.backend, done: next - warmup, warmup, bad, firstBad, counts, base, end, closed, peakRss, seconds }))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (args[0] === '--child') await child(args[1])
else await parent()
