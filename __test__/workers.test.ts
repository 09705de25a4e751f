// worker_threads: each worker makes its own context and does I/O; workers are terminated
// mid-flight (before loading caio, with operations in flight and queued, while closing,
// while a read waits in the kernel), exit by process.exit() or an uncaught exception, or
// finish normally — many times over, several at once — while the main thread's context
// keeps doing checked I/O. Nothing may crash (environment cleanup hooks), the finished
// workers' data must be right, and descriptors and threads must come back to where they
// were. Each case runs in a child process, so a crash is reported, not suffered.
import test from 'ava'

import { backendUnderTest, CHILD_USAGE_JS, childEnv, describeChild, field, fileWith, INDEX_JS, lastJsonLine, runChild } from './helpers'

const WORKER = `
  const { parentPort, workerData } = require('node:worker_threads')
  const caio = require(${JSON.stringify(INDEX_JS)})
  const fs = require('node:fs')
  const { mode, path, pipePath, region, size } = workerData
  const fd = fs.openSync(path, 'r+')
  const ctx = new caio.Context({ maxRequests: 1 + (region % 32), poolSize: 2 })
  const second = mode === 'two contexts' ? new caio.Context({ maxRequests: 4 }) : undefined
  const base = region * size
  const block = 4096
  const pending = []
  for (let i = 0; i < size / block; i++) {
    const data = Buffer.alloc(block, (region + i) % 251 + 1)
    pending.push(ctx.write(data, fd, base + i * block).then((n) => n === block && ctx.read(block, fd, base + i * block)).then((b) => b && b.equals(data)))
    if (second) pending.push(second.read(block, fd, base + i * block).then(() => true))
  }
  pending.push(ctx.submit(Array.from({ length: 16 }, (_, i) => ({ op: 'read', fd, offset: base + i * 512, buffer: Buffer.alloc(512) }))).then((e) => e.length === 16))
  if (mode === 'pipe read' && ctx.backend === 'uring') {
    const pipe = fs.openSync(pipePath, 'r+')
    for (let i = 0; i < 8; i++) ctx.read(8, pipe, 0).catch(() => {})
  }
  if (mode === 'closing') ctx.close()
  parentPort.postMessage({ started: ctx.backend })
  if (mode === 'exit') setImmediate(() => process.exit(3))
  if (mode === 'throw') setImmediate(() => { throw new Error('worker boom') })
  Promise.allSettled(pending).then((results) => {
    const ok = results.every((r) => r.status === 'fulfilled' && r.value === true)
    const closing = mode === 'closing' && results.every((r) => r.status === 'fulfilled' ? r.value === true : r.reason.code === 'ERR_CAIO_CLOSED')
    parentPort.postMessage({ done: ok || closing, count: results.length })
    return Promise.all([ctx.close(), second && second.close()])
  })
`

test('120 workers, 4 at a time, each with its own context, terminated at every stage or exiting on their own, while the main thread’s context keeps working: no crash, right data, nothing left behind', async (t) => {
  t.timeout(120_000)
  const regions = 128
  const size = 64 * 1024
  const file = fileWith(t, Buffer.alloc(regions * size))
  const main = fileWith(t, Buffer.alloc(1024 * 1024))
  const pipePath = `${main.path}.fifo`
  const script = `
    const { Worker } = require('node:worker_threads')
    const { execFileSync } = require('node:child_process')
    const caio = require(${JSON.stringify(INDEX_JS)})
    const fs = require('node:fs')
    ${CHILD_USAGE_JS}
    const source = ${JSON.stringify(WORKER)}
    const modes = ['terminate at once', 'terminate when started', 'terminate soon', 'closing', 'exit', 'throw', 'pipe read', 'two contexts', 'finish']
    execFileSync('mkfifo', [${JSON.stringify(pipePath)}])
    const fd = fs.openSync(${JSON.stringify(main.path)}, 'r+')
    let seed = 5
    const rand = (n) => { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; return seed % n }
    const report = { backend: null, workers: 0, byMode: {}, finishedOk: 0, finishedBad: 0, workerErrors: [], mainOps: 0, mainBad: 0 }
    const runWorker = (index) => new Promise((resolve) => {
      const mode = modes[index % modes.length]
      report.byMode[mode] = (report.byMode[mode] || 0) + 1
      const w = new Worker(source, { eval: true, workerData: { mode, path: ${JSON.stringify(file.path)}, pipePath: ${JSON.stringify(pipePath)}, region: index % ${regions}, size: ${size} } })
      report.workers++
      if (mode === 'terminate at once') w.terminate()
      if (mode === 'terminate soon') setTimeout(() => w.terminate(), rand(5))
      w.on('message', (m) => {
        if (m.started) {
          report.backend = m.started
          if (mode === 'terminate when started' || mode === 'closing' || mode === 'pipe read' || mode === 'two contexts' && index % 2 === 0) w.terminate()
        }
        if (m.done !== undefined && mode === 'finish') m.done ? report.finishedOk++ : report.finishedBad++
      })
      w.on('error', (e) => { if (!(mode === 'throw' && /worker boom/.test(e.message))) report.workerErrors.push(mode + ': ' + e.message) })
      w.on('exit', () => resolve())
    })
    async function mainLoop(stop) {
      const ctx = new caio.Context({ maxRequests: 16 })
      while (!stop.done) {
        const at = rand(256) * 4096
        const data = Buffer.alloc(4096, rand(255) + 1)
        const n = await ctx.write(data, fd, at)
        const back = await ctx.read(4096, fd, at)
        report.mainOps += 2
        if (n !== 4096 || !back.equals(data)) report.mainBad++
      }
      await ctx.close()
    }
    async function main() {
      // One worker first, so that what Node sets up once for workers exists at the baseline.
      await runWorker(${9 * 13 - 1})
      for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 5))
      const before = usage()
      const stop = { done: false }
      const loop = mainLoop(stop)
      let next = 0
      const lanes = Array.from({ length: 4 }, async () => { while (next < 120) await runWorker(next++) })
      await Promise.all(lanes)
      stop.done = true
      await loop
      const after = await settleUsage(before, 10000)
      fs.unlinkSync(${JSON.stringify(pipePath)})
      console.log(JSON.stringify({ ...report, before, after }))
    }
    main()
  `
  const result = await runChild(process.execPath, ['-e', script], childEnv(), 110_000)
  t.false(result.timedOut, describeChild(result))
  t.is(result.code, 0, describeChild(result))
  t.is(result.signal, null)
  const report = lastJsonLine(result.stdout)
  t.log(JSON.stringify(field(report, 'byMode')), `main thread: ${String(field(report, 'mainOps'))} operations`)
  const expected = backendUnderTest()
  if (expected !== undefined) t.is(field(report, 'backend'), expected)
  t.is(field(report, 'workers'), 121)
  t.deepEqual(field(report, 'workerErrors'), [])
  t.is(field(report, 'finishedBad'), 0, 'every worker that finished read back what it wrote')
  t.true((field(report, 'finishedOk') as number) >= 13, `workers that finished: ${String(field(report, 'finishedOk'))}`)
  t.is(field(report, 'mainBad'), 0, 'the main thread read back everything it wrote')
  t.true((field(report, 'mainOps') as number) > 0, 'the main thread kept working')
  t.deepEqual(field(report, 'after'), field(report, 'before'), `[descriptors, threads] before and after 120 workers: ${result.stdout}`)
})

test('a worker terminated while its context has a batch and thousands of operations queued, 30 times in a row, each time after a different number of completions', async (t) => {
  t.timeout(120_000)
  const file = fileWith(t, Buffer.alloc(1024 * 1024, 9))
  const script = `
    const { Worker } = require('node:worker_threads')
    const caio = require(${JSON.stringify(INDEX_JS)})
    const fs = require('node:fs')
    const worker = \`
      const { parentPort } = require('node:worker_threads')
      const caio = require(${JSON.stringify(INDEX_JS)})
      const fd = require('node:fs').openSync(${JSON.stringify(file.path)}, 'r+')
      const ctx = new caio.Context({ maxRequests: 8 })
      let done = 0
      for (let i = 0; i < 4000; i++) ctx.read(256, fd, (i * 256) % (1024 * 1024)).then(() => { if (++done % 50 === 0) parentPort.postMessage(done) })
      ctx.submit(Array.from({ length: 500 }, (_, i) => ({ op: 'write', fd, offset: i * 16, data: Buffer.alloc(16, 9) })))
    \`
    const fd = fs.openSync(${JSON.stringify(file.path)}, 'r')
    const ctx = new caio.Context()
    async function main() {
      const seen = []
      for (let round = 0; round < 30; round++) {
        await new Promise((resolve) => {
          const w = new Worker(worker, { eval: true })
          let stopped = false
          w.on('message', (done) => { if (!stopped && done >= 50 * (1 + round % 10)) { stopped = true; seen.push(done); w.terminate() } })
          w.on('error', (e) => { console.error(e); process.exitCode = 2 })
          w.on('exit', resolve)
        })
        const bytes = await ctx.read(4, fd, 0)
        if (!bytes.equals(Buffer.alloc(4, 9))) { console.error('main read ' + bytes.toString('hex')); process.exitCode = 4 }
      }
      await ctx.close()
      console.log(JSON.stringify({ backend: ctx.backend, rounds: seen.length }))
    }
    main()
  `
  const result = await runChild(process.execPath, ['-e', script], childEnv(), 110_000)
  t.false(result.timedOut, describeChild(result))
  t.is(result.code, 0, describeChild(result))
  const report = lastJsonLine(result.stdout)
  const expected = backendUnderTest()
  if (expected !== undefined) t.is(field(report, 'backend'), expected)
  t.is(field(report, 'rounds'), 30, describeChild(result))
})
