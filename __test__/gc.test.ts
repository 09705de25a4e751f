// Garbage-collector pressure: operations whose buffers, Promises and even contexts nobody
// references any more, with full collections forced again and again while they are in
// flight. The buffers the kernel writes into or reads from must stay alive until each
// operation settled (tiny typed arrays, which V8 keeps inside its moving heap, included),
// every result must be right, and a context dropped when idle must be collected.
//
// In the ava worker `collectGarbage()` forces full collections; one test runs a child
// process with `node --expose-gc`, where the context itself is dropped too.
import test from 'ava'

import { Context } from '../index'
import type { BatchOp } from '../index'
import { backendUnderTest, CHILD_USAGE_JS, collectGarbage, describeChild, fileWith, INDEX_JS, lastJsonLine, nextTurn, openContext, pattern, Random, runChild, childEnv, field } from './helpers'

/** A fresh buffer of a random kind; small ones (≤ 64 bytes) live inside V8's heap. */
function freshBuffer(rng: Random, size: number): ArrayBufferView {
  switch (rng.below(4)) {
    case 0:
      return Buffer.alloc(size)
    case 1:
      return new Uint8Array(size)
    case 2:
      return new DataView(new ArrayBuffer(size + 8), 8, size)
    default:
      return new Uint8Array(new ArrayBuffer(size))
  }
}

function fill(view: ArrayBufferView, bytes: Uint8Array): ArrayBufferView {
  new Uint8Array(view.buffer, view.byteOffset, view.byteLength).set(bytes)
  return view
}

/** Forces collections on every turn of the loop until `done()` says stop. */
function collectWhile(done: () => boolean): Promise<number> {
  return new Promise((resolve) => {
    let rounds = 0
    const step = (): void => {
      if (done()) return resolve(rounds)
      collectGarbage()
      rounds++
      setImmediate(step)
    }
    step()
  })
}

test('3000 operations whose buffers and Promises are dropped at once, with full collections while they are in flight: every result and every byte is right', async (t) => {
  t.timeout(60_000)
  const rng = new Random(11)
  const size = 256 * 1024
  const readOnly = pattern(size, 12)
  const source = fileWith(t, readOnly)
  const target = fileWith(t, Buffer.alloc(size))
  const ctx = openContext(t, { maxRequests: 16 })
  const model = Buffer.alloc(size)
  const failures: string[] = []
  let pending = 0
  let finished = 0
  const settled = (): void => {
    pending--
    finished++
  }
  const failed = (what: string) => (error: unknown) => {
    failures.push(`${what}: ${String(error)}`)
    settled()
  }
  // Writes go to disjoint slots of the target (so the model is exact); reads come from
  // the read-only source.
  const slot = 64
  const slots = size / slot
  let nextSlot = 0
  for (let i = 0; i < 3000; i++) {
    pending++
    const kind = rng.below(10)
    if (kind < 4) {
      const at = (nextSlot++ % slots) * slot
      const len = 1 + rng.below(slot)
      const bytes = rng.bytes(len)
      model.set(bytes, at)
      // Nothing but the operation refers to this buffer or this Promise after this line.
      ctx.write(fill(freshBuffer(rng, len), bytes), target.fd, at).then((n) => {
        if (n !== len) failures.push(`write of ${len} at ${at} resolved ${n}`)
        settled()
      }, failed(`write of ${len} at ${at}`))
    } else if (kind < 7) {
      const len = 1 + rng.below(rng.chance(0.5) ? 64 : 8192)
      const at = rng.below(size - len)
      ctx.read(len, source.fd, at).then((bytes) => {
        if (!bytes.equals(readOnly.subarray(at, at + len))) failures.push(`read of ${len} at ${at} returned other bytes`)
        settled()
      }, failed(`read of ${len} at ${at}`))
    } else if (kind < 9) {
      const len = 1 + rng.below(rng.chance(0.5) ? 64 : 8192)
      const at = rng.below(size - len)
      ctx.readInto(freshBuffer(rng, len), source.fd, at).then((n) => {
        if (n !== len) failures.push(`readInto of ${len} at ${at} resolved ${n}`)
        settled()
      }, failed(`readInto of ${len} at ${at}`))
    } else {
      // A batch of reads into fresh views, checked through the views the batch array holds
      // (the array itself is only referenced by the batch and this closure).
      const ops: BatchOp[] = Array.from({ length: 1 + rng.below(6) }, () => {
        const len = 1 + rng.below(128)
        return { op: 'read', fd: source.fd, offset: rng.below(size - len), buffer: freshBuffer(rng, len) }
      })
      ctx.submit(ops).then((entries) => {
        ops.forEach((op, j) => {
          if (op.op !== 'read') return
          const got = Buffer.from(op.buffer.buffer, op.buffer.byteOffset, op.buffer.byteLength)
          const at = Number(op.offset)
          if (entries[j] !== got.length || !got.equals(readOnly.subarray(at, at + got.length))) failures.push(`batch read at ${at} gave ${String(entries[j])} or other bytes`)
        })
        settled()
      }, failed('batch'))
    }
    if (i % 50 === 0) collectGarbage()
  }
  const rounds = await collectWhile(() => pending === 0)
  t.log(`${rounds} full collections while operations were in flight`)
  t.is(finished, 3000, 'every operation settled')
  t.deepEqual(failures.slice(0, 10), [])
  t.is(failures.length, 0)
  collectGarbage()
  t.true(target.content().equals(model), 'the target file holds exactly what the dropped buffers held')
})

test('tiny typed arrays (on V8’s moving heap) read into and written from while collections compact the heap', async (t) => {
  t.timeout(60_000)
  const content = pattern(4096, 13)
  const file = fileWith(t, content)
  const out = fileWith(t, Buffer.alloc(4096))
  const ctx = openContext(t, { maxRequests: 8 })
  const expected = Buffer.alloc(4096)
  const checks: Array<Promise<boolean>> = []
  for (let i = 0; i < 1000; i++) {
    const len = 1 + (i % 48)
    const at = (i * 37) % (4096 - len)
    // Garbage between operations makes the collector move what survives.
    const garbage = Array.from({ length: 20 }, (_, j) => new Uint8Array(8 + j))
    const into = new Uint8Array(len)
    checks.push(ctx.readInto(into, file.fd, at).then((n) => n === len && Buffer.from(into).equals(content.subarray(at, at + len))))
    if (i < 4096 / 64) {
      const bytes = new Uint8Array(64).map((_, j) => (i * 7 + j) & 0xff)
      expected.set(bytes, i * 64)
      checks.push(ctx.write(bytes, out.fd, i * 64).then((n) => n === 64))
    }
    if (garbage.length > 0 && i % 25 === 0) collectGarbage()
  }
  let settledCount = 0
  for (const check of checks) void check.then(() => settledCount++, () => settledCount++)
  await collectWhile(() => settledCount === checks.length)
  const results = await Promise.all(checks)
  t.is(results.filter((ok) => !ok).length, 0, 'every tiny read has the file’s bytes and every tiny write moved all of its')
  t.true(out.content().equals(expected))
})

test('a context dropped (never closed) with operations in flight finishes them, and is collected once idle', async (t) => {
  t.timeout(60_000)
  const content = pattern(64 * 1024, 14)
  const file = fileWith(t, content)
  const results: boolean[] = []
  let weak: WeakRef<Context> | undefined
  let backend: string | undefined
  // The context is referenced only inside this function (and by its own operations).
  ;(() => {
    const ctx = new Context({ maxRequests: 4 })
    backend = ctx.backend
    weak = new WeakRef(ctx)
    for (let i = 0; i < 200; i++) {
      const at = (i * 331) % (content.length - 512)
      ctx.read(512, file.fd, at).then(
        (bytes) => results.push(bytes.equals(content.subarray(at, at + 512))),
        () => results.push(false),
      )
    }
  })()
  const expected = backendUnderTest()
  if (expected !== undefined) t.is(backend, expected)
  await collectWhile(() => results.length === 200)
  t.is(results.filter(Boolean).length, 200, 'every read of the dropped context resolved with the right bytes')
  for (let i = 0; i < 100 && weak?.deref() !== undefined; i++) {
    collectGarbage()
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  t.is(weak?.deref(), undefined, 'the idle, unreferenced context was collected')
})

test('node --expose-gc: contexts, buffers and Promises all dropped mid-flight, gc() on every turn; every byte right, every context collected, descriptors back to where they were', async (t) => {
  t.timeout(90_000)
  const size = 256 * 1024
  const file = fileWith(t, Buffer.alloc(size))
  const script = `
    const caio = require(${JSON.stringify(INDEX_JS)})
    const fs = require('node:fs')
    ${CHILD_USAGE_JS}
    const fd = fs.openSync(${JSON.stringify(file.path)}, 'r+')
    const size = ${size}
    const model = Buffer.alloc(size)
    let pending = 0, failures = [], collected = 0, created = 0
    const registry = new FinalizationRegistry(() => collected++)
    let seed = 7
    const rand = (n) => { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; return seed % n }
    let backend
    // Contexts are made in a plain function: a suspended async frame could keep the last
    // one in a stale register, which is the test's reference, not the library's.
    function round(r) {
      // A context nobody keeps: only its operations hold it.
      const ctx = new caio.Context({ maxRequests: 1 + rand(16) })
      backend = ctx.backend
      registry.register(ctx, r)
      created++
      for (let i = 0; i < 50; i++) {
        const slot = (r * 50 + i) % (size / 128)
        const len = 1 + rand(128)
        const bytes = Buffer.alloc(len, (r * 50 + i) % 251 + 1)
        bytes.copy(model, slot * 128)
        pending++
        ctx.write(new Uint8Array(bytes), fd, slot * 128).then((n) => { if (n !== len) failures.push('write ' + n); pending-- }, (e) => { failures.push(String(e)); pending-- })
        pending++
        ctx.readInto(new Uint8Array(1 + rand(64)), fd, rand(size)).then(() => pending--, (e) => { failures.push(String(e)); pending-- })
      }
    }
    function warmUp() {
      const warm = new caio.Context()
      return warm.read(1, fd, 0).then(() => warm.close())
    }
    async function main() {
      await warmUp()
      gc()
      const before = usage()
      for (let r = 0; r < 40; r++) {
        round(r)
        gc()
      }
      while (pending > 0) { gc(); await new Promise((r) => setImmediate(r)) }
      for (let i = 0; i < 100 && collected < created; i++) { gc(); await new Promise((r) => setTimeout(r, 10)) }
      const after = await settleUsage(before, 5000)
      const onDisk = fs.readFileSync(${JSON.stringify(file.path)})
      console.log(JSON.stringify({ backend, failures: failures.slice(0, 5), created, collected, before, after, equal: onDisk.equals(model) }))
    }
    main()
  `
  const result = await runChild(process.execPath, ['--expose-gc', '-e', script], childEnv(), 80_000)
  t.is(result.code, 0, describeChild(result))
  const report = lastJsonLine(result.stdout)
  const expected = backendUnderTest()
  if (expected !== undefined) t.is(field(report, 'backend'), expected)
  t.deepEqual(field(report, 'failures'), [])
  t.true(field(report, 'equal'), 'the file holds what every dropped buffer held')
  t.is(field(report, 'created'), 40)
  t.is(field(report, 'collected'), 40, 'every dropped context was collected once idle')
  t.deepEqual(field(report, 'after'), field(report, 'before'), `[descriptors, threads] before and after 40 dropped contexts: ${result.stdout}`)
})

test('aborts and close while dropped operations are in flight and collections run: each operation settles exactly once', async (t) => {
  t.timeout(60_000)
  const content = pattern(128 * 1024, 15)
  const file = fileWith(t, content)
  const ctx = openContext(t, { maxRequests: 8 })
  const settlements = new Map<number, number>()
  const bad: string[] = []
  const note = (i: number) => {
    settlements.set(i, (settlements.get(i) ?? 0) + 1)
  }
  const controllers: AbortController[] = []
  for (let i = 0; i < 600; i++) {
    const controller = new AbortController()
    if (i % 3 === 0) controllers.push(controller)
    const at = (i * 211) % (content.length - 256)
    ctx.read(256, file.fd, at, { signal: controller.signal }).then(
      (bytes) => {
        if (!bytes.equals(content.subarray(at, at + 256))) bad.push(`read ${i}: other bytes`)
        note(i)
      },
      (error: unknown) => {
        const code = field(error, 'code')
        if (code !== 'ABORT_ERR' && code !== 'ERR_CAIO_CLOSED') bad.push(`read ${i}: ${String(error)}`)
        note(i)
      },
    )
    if (i === 300) for (const c of controllers.splice(0)) c.abort()
    if (i % 40 === 0) collectGarbage()
  }
  for (const c of controllers.splice(0)) c.abort()
  const closing = ctx.close()
  await collectWhile(() => settlements.size === 600)
  await closing
  for (let i = 0; i < 5; i++) {
    collectGarbage()
    await nextTurn()
  }
  t.deepEqual(bad, [])
  t.is(settlements.size, 600, 'every operation settled')
  t.true([...settlements.values()].every((n) => n === 1), 'and each exactly once')
})
