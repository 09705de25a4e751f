/**
 * The bench's driver script: runs ONE contender on ONE workload in this process and
 * prints one JSON line (a {@link WorkerResult}) on stdout.
 *
 *     node dist/bench/worker.js '<WorkerSpec JSON>'      (and `bun dist/bench/worker.js …` for bun:…,
 *                                                        `deno run -A dist/bench/worker.js …` for deno:…)
 *
 * Order: open the contender, check that it reads (or writes) the right bytes, run
 * `warmupSec` uncounted (JIT, pool threads, rings), then `durationSec` measured:
 * operations, wall time, sampled latencies, and the CPU time of the whole process
 * (`process.cpuUsage` counts every thread: libuv's pool, caio's pool, io_uring's workers).
 */
import { randomFillSync } from 'node:crypto'
import { closeSync, constants, openSync, readdirSync, readlinkSync, readSync } from 'node:fs'
import { performance } from 'node:perf_hooks'

import { alignedBuffer } from '../index'
import { contenderById, effective } from './contenders'
import type { Opened } from './contenders'
import { drive, Meter, once } from './drivers'
import type { Shape } from './drivers'
import { parseSpec } from './spec'
import type { WorkerResult, WorkerSpec } from './spec'
import { mean, percentile } from './stats'

/** Latency ring: the newest 2^20 samples (8 MiB), plenty for seconds at 1 in 8. */
const RING = 1 << 20

/** io_uring instances this process holds (libuv's own, caio's), or -1 where /proc cannot say. */
function countUringFds(): number {
  try {
    let n = 0
    for (const entry of readdirSync('/proc/self/fd')) {
      try {
        if (readlinkSync(`/proc/self/fd/${entry}`) === 'anon_inode:[io_uring]') n++
      } catch {
        // closed while listing
      }
    }
    return n
  } catch {
    return -1
  }
}

/** A buffer for one operation: page-aligned for O_DIRECT. */
function allocate(size: number, direct: boolean): Buffer {
  return direct ? alignedBuffer(size) : Buffer.alloc(size)
}

/**
 * Reads a few blocks through the contender and compares them with `readSync` (an
 * O_DIRECT one for O_DIRECT workloads, so checking pulls nothing into the page cache),
 * or writes a few and reads them back.
 */
async function verify(opened: Opened, spec: WorkerSpec, shape: Shape): Promise<void> {
  const direct = spec.workload.cache === 'direct'
  const fd = openSync(spec.file, direct ? constants.O_RDONLY | constants.O_DIRECT : constants.O_RDONLY)
  try {
    const expected = allocate(shape.blockSize, direct)
    const got = allocate(shape.blockSize, direct)
    for (const block of [0, shape.blocks - 1, shape.blocks >> 1, (spec.seed >>> 0) % shape.blocks]) {
      const position = block * shape.blockSize
      if (spec.workload.op === 'write') {
        randomFillSync(got)
        await once(opened.io, got, position)
        readSync(fd, expected, 0, shape.blockSize, position)
      } else {
        readSync(fd, expected, 0, shape.blockSize, position)
        got.fill(0)
        await once(opened.io, got, position)
      }
      if (!got.equals(expected)) throw new Error(`${spec.contender} ${spec.workload.op === 'write' ? 'wrote' : 'read'} wrong bytes at offset ${position}`)
    }
  } finally {
    closeSync(fd)
  }
}

async function main(): Promise<void> {
  const spec = parseSpec(process.argv[2] ?? '')
  const contender = contenderById(spec.contender)
  if (!contender?.open) throw new Error(`bench: ${spec.contender} is not a contender this worker runs`)
  const here = typeof process.versions.bun === 'string' ? 'bun' : 'Deno' in globalThis ? 'deno' : 'node'
  if (contender.runner !== here) throw new Error(`bench: ${contender.id} must run under ${contender.runner}, this is ${here}`)
  const workload = effective(contender, spec.workload)
  const shape: Shape = {
    depth: workload.depth,
    blockSize: workload.blockSize,
    blocks: Math.floor(spec.fileSize / workload.blockSize),
    pattern: workload.pattern,
    batch: workload.batch,
    fsyncEvery: workload.fsyncEvery,
    sampleEvery: spec.sampleEvery,
    seed: spec.seed,
  }
  const opened = await contender.open(spec.file, workload)
  let result: WorkerResult
  try {
    await verify(opened, spec, shape)
    const direct = workload.cache === 'direct'
    const buffers = Array.from({ length: shape.depth }, () => allocate(shape.blockSize, direct))
    // Writes write random bytes (the same ones every time: the page cache does not compress).
    if (workload.op === 'write') for (const b of buffers) randomFillSync(b)
    await opened.prepare?.(buffers)
    const meter = new Meter(RING)

    if (spec.warmupSec > 0) {
      meter.reset(performance.now() + spec.warmupSec * 1000)
      await drive(opened.io, opened.sync, shape, buffers, meter)
    }

    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    meter.reset(t0 + spec.durationSec * 1000)
    await drive(opened.io, opened.sync, shape, buffers, meter)
    const t1 = performance.now()
    const cpu = process.cpuUsage(cpu0)

    const wallSec = (t1 - t0) / 1000
    const sorted = meter.sorted()
    const cpuUs = cpu.user + cpu.system
    const versions: Record<string, string | undefined> = process.versions
    const info = { ...opened.info, runtime: `${here} ${here === 'node' ? process.version : (versions[here] ?? '')}` }
    if (meter.syncs > 0) Object.assign(info, { fsyncs: meter.syncs, fsyncMeanUs: (meter.syncMs / meter.syncs) * 1000 })
    result = {
      contender: contender.id,
      workload: spec.workload.name,
      depth: workload.depth,
      ops: meter.ops,
      wallSec,
      opsPerSec: meter.ops / wallSec,
      p50Us: percentile(sorted, 50) * 1000,
      p99Us: percentile(sorted, 99) * 1000,
      p999Us: percentile(sorted, 99.9) * 1000,
      meanUs: mean(sorted) * 1000,
      samples: meter.samples,
      cpuUserUs: cpu.user,
      cpuSysUs: cpu.system,
      cpuUsPerOp: cpuUs / meter.ops,
      cores: cpuUs / 1e6 / wallSec,
      uringFds: countUringFds(),
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
      info,
    }
  } finally {
    await opened.close()
  }
  process.stdout.write(JSON.stringify(result) + '\n')
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exitCode = 1
})
