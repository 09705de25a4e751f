/**
 * The bench's driver script: runs ONE contender on ONE workload in this process and
 * prints one JSON line (a {@link WorkerResult}) on stdout.
 *
 *     node dist/bench/worker.js '<WorkerSpec JSON>'
 *
 * Order: open the contender, check that it reads the right bytes, run `warmupSec`
 * uncounted (JIT, pool threads, rings), then `durationSec` measured: operations, wall
 * time, sampled latencies, and the CPU time of the whole process (`process.cpuUsage`
 * counts every thread: libuv's pool, caio's pool, io_uring's kernel threads).
 */
import { closeSync, openSync, readdirSync, readlinkSync, readSync } from 'node:fs'
import { performance } from 'node:perf_hooks'

import { contenderById } from './contenders'
import { drive, Meter, once, workerBuffers } from './drivers'
import type { Io, Shape } from './drivers'
import { parseSpec } from './spec'
import type { WorkerResult, WorkerSpec } from './spec'
import { mean, percentile } from './stats'
import { withDepth } from './workloads'

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

/** Reads a few blocks through the contender and compares them with `readSync`. */
async function verify(io: Io, spec: WorkerSpec, shape: Shape): Promise<void> {
  const fd = openSync(spec.file, 'r')
  try {
    const expected = Buffer.alloc(shape.blockSize)
    const got = Buffer.alloc(shape.blockSize)
    for (const block of [0, shape.blocks - 1, shape.blocks >> 1, (spec.seed >>> 0) % shape.blocks]) {
      const position = block * shape.blockSize
      readSync(fd, expected, 0, shape.blockSize, position)
      got.fill(0)
      await once(io, got, position)
      if (!got.equals(expected)) throw new Error(`${spec.contender} read wrong bytes at offset ${position}`)
    }
  } finally {
    closeSync(fd)
  }
}

async function main(): Promise<void> {
  const spec = parseSpec(process.argv[2] ?? '')
  const contender = contenderById(spec.contender)
  if (!contender) throw new Error(`bench: unknown contender ${spec.contender}`)
  const reason = contender.unavailable()
  if (reason !== undefined) throw new Error(`bench: ${contender.id} is not available here: ${reason}`)
  const workload = contender.sync ? withDepth(spec.workload, 1) : spec.workload
  const shape: Shape = {
    depth: workload.depth,
    blockSize: workload.blockSize,
    blocks: Math.floor(spec.fileSize / workload.blockSize),
    sampleEvery: spec.sampleEvery,
    seed: spec.seed,
  }
  const opened = await contender.open(spec.file, workload)
  let result: WorkerResult
  try {
    await verify(opened.io, spec, shape)
    const buffers = workerBuffers(shape)
    const meter = new Meter(RING)

    if (spec.warmupSec > 0) {
      meter.reset(performance.now() + spec.warmupSec * 1000)
      await drive(opened.io, shape, buffers, meter)
    }

    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    meter.reset(t0 + spec.durationSec * 1000)
    await drive(opened.io, shape, buffers, meter)
    const t1 = performance.now()
    const cpu = process.cpuUsage(cpu0)

    const wallSec = (t1 - t0) / 1000
    const sorted = meter.sorted()
    const cpuUs = cpu.user + cpu.system
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
      info: opened.info,
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
