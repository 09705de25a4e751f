// Re-entry: user code that runs while the addon hands results over. Resolving a Promise
// with a Buffer looks up its `then`, so a getter on Uint8Array.prototype runs inside the
// delivery and may start, abort or close operations of the same context. The addon holds
// no borrow of the context while it calls JavaScript (docs/ARCHITECTURE.md, "Re-entry"),
// so each of those is an ordinary call: every Promise must settle once, with its own
// result.

import test from 'ava'

import { describeChild, fileWith, INDEX_JS, pattern, runNode } from './helpers'

test('a then getter on Uint8Array.prototype that starts and aborts reads while Promises settle: every Promise settles once, each with its own bytes', async (t) => {
  // Resolving a Promise with a Buffer looks up its `then`: user code, run while the context
  // hands results over. 1500 reads settle in one go (more than one hand-over holds), and
  // the getter starts new reads (a tenth of them aborted) in the middle of it.
  t.timeout(60_000)
  const file = fileWith(t, pattern(16 * 3000, 11))
  const result = await runNode(`
    const caio = require(${JSON.stringify(INDEX_JS)})
    const fs = require('node:fs')
    const ctx = new caio.Context({ maxRequests: 4096 })
    const fd = fs.openSync(${JSON.stringify(file.path)}, 'r')
    const content = fs.readFileSync(${JSON.stringify(file.path)})
    const check = (i) => (bytes) => (bytes.equals(content.subarray(i * 16, i * 16 + 16)) ? 'ok' : 'WRONG BYTES')
    const inner = []
    let lookups = 0
    Object.defineProperty(Uint8Array.prototype, 'then', { configurable: true, get() {
      lookups++
      if (lookups <= 800 && lookups % 2 === 0) {
        const i = 1500 + lookups
        const controller = new AbortController()
        inner.push(ctx.read(16, fd, i * 16, { signal: controller.signal }).then(check(i), (e) => e.code))
        if (lookups % 20 === 0) controller.abort()
      }
      return undefined
    } })
    const outer = Array.from({ length: 1500 }, (_, i) => ctx.read(16, fd, i * 16).then(check(i), (e) => e.code))
    const tally = (list) => list.reduce((counts, r) => ({ ...counts, [r]: (counts[r] || 0) + 1 }), {})
    ;(async () => {
      const outcomes = await Promise.all(outer)
      for (let seen = -1; seen !== inner.length; ) {
        seen = inner.length
        await Promise.all(inner)
      }
      delete Uint8Array.prototype.then
      console.log(JSON.stringify({ outer: tally(outcomes), inner: tally(await Promise.all(inner)) }))
      await ctx.close()
    })()
  `)
  t.is(result.code, 0, describeChild(result))
  const counts = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as { outer?: Record<string, number>; inner?: Record<string, number> }
  t.deepEqual(counts.outer, { ok: 1500 }, result.stdout)
  const inner = counts.inner ?? {}
  t.deepEqual(Object.keys(inner).filter((k) => k !== 'ok' && k !== 'ABORT_ERR'), [], result.stdout)
  t.is((inner.ok ?? 0) + (inner.ABORT_ERR ?? 0), 400, result.stdout)
})

test('a then getter that closes the context in the middle of a delivery, then starts a read and a batch on it: every Promise settles once, with its bytes or ERR_CAIO_CLOSED, and close resolves', async (t) => {
  t.timeout(60_000)
  const file = fileWith(t, pattern(16 * 400, 12))
  const result = await runNode(`
    const caio = require(${JSON.stringify(INDEX_JS)})
    const fs = require('node:fs')
    const ctx = new caio.Context({ maxRequests: 8 })
    const fd = fs.openSync(${JSON.stringify(file.path)}, 'r')
    const content = fs.readFileSync(${JSON.stringify(file.path)})
    const settled = new Map()
    const once = (name, value) => { settled.set(name, (settled.get(name) || 0) + 1); return value }
    const check = (i) => (bytes) => once(i, bytes.equals(content.subarray(i * 16, i * 16 + 16)) ? 'ok' : 'WRONG BYTES')
    let lookups = 0
    let late
    Object.defineProperty(Uint8Array.prototype, 'then', { configurable: true, get() {
      if (++lookups === 50) {
        late = [
          ctx.close().then(() => 'closed'),
          ctx.read(16, fd, 0).then(() => 'READ AFTER CLOSE', (e) => e.code),
          ctx.submit([{ op: 'read', fd, offset: 0, buffer: Buffer.alloc(16) }]).then(() => 'BATCH AFTER CLOSE', (e) => e.code),
        ]
      }
      return undefined
    } })
    const outer = Array.from({ length: 400 }, (_, i) => ctx.read(16, fd, i * 16).then(check(i), (e) => once(i, e.code)))
    ;(async () => {
      const outcomes = await Promise.all(outer)
      const lateOutcomes = late ? await Promise.all(late) : []
      delete Uint8Array.prototype.then
      const tally = outcomes.reduce((counts, r) => ({ ...counts, [r]: (counts[r] || 0) + 1 }), {})
      const twice = [...settled.values()].filter((n) => n !== 1).length
      console.log(JSON.stringify({ tally, late: lateOutcomes, twice }))
    })()
  `)
  t.is(result.code, 0, describeChild(result))
  const report = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as { tally?: Record<string, number>; late?: string[]; twice?: number }
  const tally = report.tally ?? {}
  t.deepEqual(Object.keys(tally).filter((k) => k !== 'ok' && k !== 'ERR_CAIO_CLOSED'), [], result.stdout)
  t.true((tally.ok ?? 0) >= 50, `the reads before the close kept their bytes: ${result.stdout}`)
  t.is((tally.ok ?? 0) + (tally.ERR_CAIO_CLOSED ?? 0), 400, result.stdout)
  t.deepEqual(report.late, ['closed', 'ERR_CAIO_CLOSED', 'ERR_CAIO_CLOSED'], result.stdout)
  t.is(report.twice, 0, 'no Promise settled twice')
})

