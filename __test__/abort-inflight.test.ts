// AbortSignal against operations in every state — not yet submitted (aborted in the same
// tick), in the kernel (a read blocked on an empty pipe, slow O_DIRECT reads and writes),
// and after completion — with the outcome each backend can honestly give:
//
// - uring asks the kernel to cancel (IORING_OP_ASYNC_CANCEL): a read waiting on a pipe is
//   cancelled (AbortError, nothing consumed); block I/O already at the device is not.
// - linux: an operation staged but not yet given to io_submit is withdrawn; once in the
//   kernel, io_cancel does not work on file I/O, so it settles with its real result.
// - thread: a job no pool thread has started is withdrawn; a started one settles with its
//   real result.
// - js: node:fs cannot cancel what it started, and it starts an operation as soon as a
//   slot is free: such an operation settles with its real result.
// Whatever happens, each Promise settles exactly once, and what reports AbortError did
// nothing.
import { closeSync, constants, openSync, readSync, writeSync } from 'node:fs'

import test from 'ava'

import { alignedBuffer } from '../index'
import { backendUnderTest, CHILD_USAGE_JS, childEnv, describeChild, directFileWith, field, fifo, fileWith, INDEX_JS, lastJsonLine, nextTurn, openContext, outcome, pattern, runChild, within } from './helpers'
import type { Outcome } from './helpers'

const isAbort = (o: Outcome<unknown>): boolean => !o.ok && field(o.error, 'name') === 'AbortError' && field(o.error, 'code') === 'ABORT_ERR'

test('a read blocked in the kernel on an empty pipe, then aborted: uring cancels it (AbortError, nothing consumed); the others cannot block there', async (t) => {
  t.timeout(30_000)
  const ctx = openContext(t, { maxRequests: 64 })
  const pipe = fifo(t)
  if (ctx.backend === 'uring') {
    // 20 reads wait on the pipe; 19 share one signal, the last has none.
    const controller = new AbortController()
    const doomed = Array.from({ length: 19 }, () => outcome(ctx.read(16, pipe.fd, 0, { signal: controller.signal })))
    const survivor = outcome(ctx.read(16, pipe.fd, 0))
    let settled = 0
    for (const o of [...doomed, survivor]) void o.then(() => settled++)
    await nextTurn()
    await nextTurn()
    t.is(settled, 0, 'the reads wait in the kernel: the pipe is empty')
    controller.abort()
    const results = await within(Promise.all(doomed), 10_000, 'the aborted pipe reads')
    t.true(results.every(isAbort), `every aborted read rejected with AbortError: ${results.filter((r) => !isAbort(r)).map((r) => String(r.ok ? r.value : r.error)).join('; ')}`)
    t.is(settled, 19, 'the read without a signal still waits')
    writeSync(pipe.fd, 'payload')
    const last = await within(survivor, 10_000, 'the read without a signal')
    t.true(last.ok && Buffer.isBuffer(last.value) && last.value.toString() === 'payload', 'the one read left got the data: the cancelled ones consumed nothing')
    // The context goes on working, and close does not wait for anything cancelled.
    writeSync(pipe.fd, 'again')
    t.is((await ctx.read(16, pipe.fd, 0)).toString(), 'again')
    await within(ctx.close(), 10_000, 'close after the cancelled reads')
  } else if (ctx.backend === 'linux') {
    // Kernel AIO would block io_submit — and with it the event loop — on a blocking pipe
    // (reported); on an O_NONBLOCK descriptor the read fails at once, before any abort.
    const fd = openSync(pipe.path, constants.O_RDWR | constants.O_NONBLOCK)
    t.teardown(() => closeSync(fd))
    const controller = new AbortController()
    const read = outcome(ctx.read(16, fd, 0, { signal: controller.signal }))
    await nextTurn()
    controller.abort()
    const result = await within(read, 10_000, 'the pipe read')
    t.true(!result.ok && field(result.error, 'code') === 'EAGAIN', `linux: EAGAIN, got ${String(result.ok ? result.value : result.error)}`)
  } else {
    // pread(2) on a pipe fails with ESPIPE; nothing waits, so there is nothing to abort.
    const controller = new AbortController()
    const read = outcome(ctx.read(16, pipe.fd, 0, { signal: controller.signal }))
    await nextTurn()
    controller.abort()
    const result = await within(read, 10_000, 'the pipe read')
    t.true(!result.ok && (field(result.error, 'code') === 'ESPIPE' || isAbort(result)), `${ctx.backend}: ESPIPE (or AbortError had the abort come first), got ${String(result.ok ? result.value : result.error)}`)
    writeSync(pipe.fd, 'intact')
    const back = Buffer.alloc(16)
    t.is(readSync(pipe.fd, back), 6, 'the pipe lost nothing')
  }
})

test('aborting O_DIRECT reads and writes in the kernel: each either did nothing (AbortError) or settled with its real, complete result', async (t) => {
  t.timeout(60_000)
  const mib = 1024 * 1024
  const count = 8
  const content = pattern(2 * count * mib, 51)
  const file = directFileWith(t, content)
  if (file === undefined) return
  const ctx = openContext(t, { maxRequests: 64, poolSize: 2 })
  const targets = Array.from({ length: count }, () => alignedBuffer(mib))
  const sources = Array.from({ length: count }, (_, i) => {
    const source = alignedBuffer(mib)
    source.set(pattern(mib, 200 + i))
    return source
  })
  const controllers = Array.from({ length: 2 * count }, () => new AbortController())
  const reads = targets.map((target, i) => outcome(ctx.readInto(target, file.fd, i * mib, { signal: (controllers[i] as AbortController).signal })))
  const writes = sources.map((source, i) => outcome(ctx.write(source, file.fd, (count + i) * mib, { signal: (controllers[count + i] as AbortController).signal })))
  await nextTurn()
  for (const controller of controllers) controller.abort()
  const readResults = await within(Promise.all(reads), 30_000, 'the aborted O_DIRECT reads')
  const writeResults = await within(Promise.all(writes), 30_000, 'the aborted O_DIRECT writes')
  const onDisk = file.content()
  const strict = ctx.backend === 'linux' || ctx.backend === 'js'
  let aborted = 0
  readResults.forEach((result, i) => {
    if (isAbort(result)) {
      aborted++
      return
    }
    t.true(result.ok && result.value === mib, `read #${i}: ${String(result.ok ? result.value : result.error)}`)
    t.true((targets[i] as Buffer).equals(content.subarray(i * mib, (i + 1) * mib)), `read #${i} holds the file's bytes`)
  })
  writeResults.forEach((result, i) => {
    const region = onDisk.subarray((count + i) * mib, (count + i + 1) * mib)
    if (isAbort(result)) {
      aborted++
      t.true(region.equals(content.subarray((count + i) * mib, (count + i + 1) * mib)), `aborted write #${i} wrote nothing`)
      return
    }
    t.true(result.ok && result.value === mib, `write #${i}: ${String(result.ok ? result.value : result.error)}`)
    t.true(region.equals(sources[i] as Buffer), `write #${i} landed whole`)
  })
  t.log(`${ctx.backend}: ${aborted} of ${2 * count} cancelled, the rest settled with their real result`)
  if (strict) t.is(aborted, 0, `${ctx.backend} cannot cancel an operation in the kernel: every one settles with its real result`)
})

test('aborting in the same tick, before the flush submits: linux and thread withdraw what is still staged, js has started everything, uring does either — consistently with the file', async (t) => {
  t.timeout(30_000)
  const slot = 4096
  // Few enough that no backend submits early for a full batch: all of them are staged.
  const count = 12
  const content = pattern(slot * count, 52)
  const file = fileWith(t, content)
  // Room for every operation at once: none waits in a queue.
  const ctx = openContext(t, { maxRequests: 2 * count + 2 })
  const controller = new AbortController()
  const { signal } = controller
  const writes = Array.from({ length: count }, (_, i) => outcome(ctx.write(Buffer.alloc(slot, i + 1), file.fd, i * slot, { signal })))
  const reads = Array.from({ length: count }, (_, i) => outcome(ctx.read(slot, file.fd, ((i + 7) % count) * slot, { signal })))
  const syncs = [outcome(ctx.fsync(file.fd, { signal })), outcome(ctx.fdsync(file.fd, { signal }))]
  controller.abort()
  const [w, r, s] = await within(Promise.all([Promise.all(writes), Promise.all(reads), Promise.all(syncs)]), 20_000, 'the operations aborted before submission')
  const onDisk = file.content()
  const all = [...w, ...r, ...s]
  const abortedCount = all.filter(isAbort).length
  w.forEach((result, i) => {
    const region = onDisk.subarray(i * slot, (i + 1) * slot)
    if (isAbort(result)) t.true(region.equals(content.subarray(i * slot, (i + 1) * slot)), `aborted write #${i} wrote nothing`)
    else {
      t.true(result.ok && result.value === slot, `write #${i}: ${String(result.ok ? result.value : result.error)}`)
      t.true(region.every((byte) => byte === i + 1), `write #${i} landed`)
    }
  })
  r.forEach((result, i) => {
    if (isAbort(result)) return
    const at = ((i + 7) % count) * slot
    // The read raced with the write of its slot (independent operations): old or new bytes.
    const value = result.ok ? result.value : undefined
    const old = content.subarray(at, at + slot)
    const fresh = Buffer.alloc(slot, (i + 7) % count + 1)
    t.true(Buffer.isBuffer(value) && value.length === slot && (value.equals(old) || value.equals(fresh)), `read #${i}: ${String(result.ok ? 'other bytes' : result.error)}`)
  })
  s.forEach((result, i) => t.true(isAbort(result) || (result.ok && result.value === undefined), `sync #${i}`))
  t.log(`${ctx.backend}: ${abortedCount} of ${all.length} withdrawn before submission`)
  // The abort reaches the operations in the order they were started. The first one is
  // still staged, so linux and thread withdraw it; asking for that cancellation submits
  // everything else staged, so the later ones may already be in the kernel or a pool thread.
  if (ctx.backend === 'linux' || ctx.backend === 'thread') t.true(isAbort(w[0] as Outcome<number>), `${ctx.backend} withdraws the first operation, still staged when the abort came`)
  if (ctx.backend === 'js') t.is(abortedCount, 0, 'js started every operation at once (free slots), and fs cannot cancel')
})

test('many operations aborted at every moment (before start, same tick, in flight, after completion) each settle exactly once; afterwards close resolves and nothing is left: descriptors, threads, a process that exits by itself', async (t) => {
  t.timeout(90_000)
  const content = pattern(512 * 1024, 53)
  const file = fileWith(t, content)
  const script = `
    const caio = require(${JSON.stringify(INDEX_JS)})
    const fs = require('node:fs')
    const { execFileSync } = require('node:child_process')
    ${CHILD_USAGE_JS}
    const content = fs.readFileSync(${JSON.stringify(file.path)})
    const fd = fs.openSync(${JSON.stringify(file.path)}, 'r+')
    let seed = 99
    const rand = (n) => { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; return seed % n }
    async function main() {
      { const warm = new caio.Context(); await warm.read(1, fd, 0); await warm.close() }
      // Made before the baseline: running mkfifo leaves Node holding a /dev/null descriptor.
      const path = ${JSON.stringify(file.path)} + '.fifo'
      execFileSync('mkfifo', [path])
      const before = usage()
      const ctx = new caio.Context({ maxRequests: 32, poolSize: 2 })
      let pipe
      if (ctx.backend === 'uring') pipe = fs.openSync(path, 'r+')
      fs.unlinkSync(path)
      const counts = new Map()
      const bad = []
      const track = (i, promise, check) => promise.then(
        (value) => { counts.set(i, (counts.get(i) || 0) + 1); if (!check(value)) bad.push(i + ': wrong result') },
        (error) => { counts.set(i, (counts.get(i) || 0) + 1); if (error.name !== 'AbortError' && error.code !== 'ERR_CAIO_CLOSED') bad.push(i + ': ' + error.message) })
      const late = []
      let total = 0
      for (let i = 0; i < 3000; i++) {
        const controller = new AbortController()
        const when = rand(5) // 0: before the call, 1: same tick, 2: next turn, 3: after it settled, 4: never
        if (when === 0) controller.abort()
        const signal = controller.signal
        const kind = rand(pipe === undefined ? 5 : 6)
        const at = rand(content.length - 4096)
        const len = 1 + rand(4096)
        let p
        if (kind === 0) p = track(i, ctx.read(len, fd, at, { signal }), (b) => b.equals(content.subarray(at, at + len)))
        else if (kind === 1) { const into = new Uint8Array(len); p = track(i, ctx.readInto(into, fd, at, { signal }), (n) => n === len && Buffer.from(into).equals(content.subarray(at, at + len))) }
        else if (kind === 2) p = track(i, ctx.write(content.subarray(at, at + len), fd, at, { signal }), (n) => n === len)
        else if (kind === 3) p = track(i, ctx.fdsync(fd, { signal }), (v) => v === undefined)
        else if (kind === 4) { const bufs = [new Uint8Array(64), new Uint8Array(64)]; p = track(i, ctx.submit([{ op: 'read', fd, offset: at, buffer: bufs[0] }, { op: 'read', fd, offset: at + 64, buffer: bufs[1] }], { signal }), (e) => e.length === 2 && e.every((x, j) => x instanceof Error ? x.name === 'AbortError' : x === 64 && Buffer.from(bufs[j]).equals(content.subarray(at + 64 * j, at + 64 * j + 64)))) }
        else p = track(i, ctx.read(8, pipe, 0, { signal }), () => false) // never gets data: must be aborted
        total++
        if (kind === 5 && when >= 3) controller.abort() // a pipe read never completes: it must not be left waiting
        else if (when === 1) controller.abort()
        else if (when === 2) late.push(controller)
        else if (when === 3) p.then(() => controller.abort())
        if (i % 64 === 0) { await new Promise((r) => setImmediate(r)); for (const c of late.splice(0)) c.abort() }
      }
      for (const c of late.splice(0)) c.abort()
      while (counts.size < total) await new Promise((r) => setImmediate(r))
      await ctx.close()
      for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r))
      if (pipe !== undefined) fs.closeSync(pipe)
      const after = await settleUsage(before, 5000)
      const multiple = [...counts.values()].filter((n) => n !== 1).length
      console.log(JSON.stringify({ backend: ctx.backend, total, settled: counts.size, multiple, bad: bad.slice(0, 5), before, after }))
    }
    main()
  `
  const result = await runChild(process.execPath, ['-e', script], childEnv(), 80_000)
  t.false(result.timedOut, `the child did not exit by itself: ${describeChild(result)}`)
  t.is(result.code, 0, describeChild(result))
  const report = lastJsonLine(result.stdout)
  const expected = backendUnderTest()
  if (expected !== undefined) t.is(field(report, 'backend'), expected)
  t.is(field(report, 'total'), 3000)
  t.is(field(report, 'settled'), 3000, 'every operation settled')
  t.is(field(report, 'multiple'), 0, 'none settled twice')
  t.deepEqual(field(report, 'bad'), [], 'every fulfilled operation has its right result, every rejection is an AbortError')
  t.deepEqual(field(report, 'after'), field(report, 'before'), `[descriptors, threads] before and after: ${result.stdout}`)
})
