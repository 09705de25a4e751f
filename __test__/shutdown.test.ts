// Closing in awkward places, and processes that end with work in flight. close.test.ts
// covers close with operations in flight and queued, close twice and operations after
// close; here: close from inside completion callbacks and abort listeners, close racing
// aborts and batches, close while a read waits in the kernel (uring), and contexts never
// closed when the process ends — by itself, by process.exit() mid-flight, by an uncaught
// exception — which must exit with the right code, no crash and no hang.
import { writeSync } from 'node:fs'

import test from 'ava'
import type { ExecutionContext } from 'ava'

import { backendUnderTest, describeChild, field, fifo, fileWith, INDEX_JS, nextTurn, openContext, outcome, pattern, runNode, within } from './helpers'
import type { Outcome } from './helpers'

const closedOrDone = (o: Outcome<unknown>, check: (value: unknown) => boolean): boolean => (o.ok ? check(o.value) : field(o.error, 'code') === 'ERR_CAIO_CLOSED')

async function rejectsClosed(t: ExecutionContext, promise: Promise<unknown>, what: string): Promise<void> {
  await t.throwsAsync(promise, { code: 'ERR_CAIO_CLOSED' }, what)
}

test('close() called from inside a completion callback, with operations in flight and queued behind it', async (t) => {
  const content = pattern(64 * 1024, 61)
  const file = fileWith(t, content)
  const ctx = openContext(t, { maxRequests: 4 })
  let closing: Promise<void> | undefined
  const reads = Array.from({ length: 40 }, (_, i) =>
    ctx.read(1024, file.fd, i * 1024).then((bytes) => {
      if (i === 5) closing = ctx.close()
      return bytes
    }),
  )
  const results = await within(Promise.all(reads.map(outcome)), 20_000, 'the reads')
  t.not(closing, undefined, 'the callback ran and closed the context')
  await within(closing as Promise<void>, 20_000, 'close called from a callback')
  results.forEach((result, i) => {
    t.true(
      closedOrDone(result, (bytes) => Buffer.isBuffer(bytes) && bytes.equals(content.subarray(i * 1024, (i + 1) * 1024))),
      `read #${i}: its bytes or ERR_CAIO_CLOSED, got ${String(result.ok ? 'other bytes' : result.error)}`,
    )
  })
  t.true(results.slice(0, 6).every((r) => r.ok), 'the reads up to the one whose callback closed resolved')
  // The queue is FIFO: once one read was rejected as closed, every later one was too.
  // (How many ran before the callback did depends on the backend: native ones settle
  // whatever completes inside one flush before any callback runs.)
  const firstClosed = results.findIndex((r) => !r.ok)
  t.true(firstClosed === -1 || results.slice(firstClosed).every((r) => !r.ok), `reads rejected as closed form the tail of the queue (first at #${firstClosed})`)
  await rejectsClosed(t, ctx.read(1, file.fd, 0), 'a read after close')
})

test('close() from inside a callback of every one of many operations, and a new operation from inside the close callback', async (t) => {
  const file = fileWith(t, 'x'.repeat(4096))
  const ctx = openContext(t, { maxRequests: 8 })
  const closes: Array<Promise<void>> = []
  const after: Array<Promise<unknown>> = []
  const writes = Array.from({ length: 64 }, (_, i) =>
    outcome(
      ctx.write(Buffer.from([i]), file.fd, i).finally(() => {
        closes.push(ctx.close())
        after.push(ctx.write('Z', file.fd, 100 + i))
      }),
    ),
  )
  const results = await within(Promise.all(writes), 20_000, 'the writes')
  await within(Promise.all(closes), 20_000, 'every close')
  for (const [i, promise] of after.entries()) await rejectsClosed(t, promise, `the write started in callback #${i}`)
  const content = file.content()
  results.forEach((result, i) => {
    t.true(closedOrDone(result, (n) => n === 1), `write #${i}`)
    t.is(content[i], result.ok ? i : 0x78, `byte ${i} is there exactly when write #${i} resolved`)
  })
  t.true(content.subarray(100, 164).every((byte) => byte === 0x78), 'no write started after close landed')
  const closedAfter = await ctx.close().then(() => ctx.close())
  t.is(closedAfter, undefined)
})

test('close() called from an abort listener and from the callback of a batch', async (t) => {
  const file = fileWith(t, pattern(8192, 62))
  const ctx = openContext(t, { maxRequests: 2 })
  const controller = new AbortController()
  let fromListener: Promise<void> | undefined
  // The user's listener runs before the library's (registered first): it closes, then the
  // library asks to cancel an operation of a closing context.
  controller.signal.addEventListener('abort', () => {
    fromListener = ctx.close()
  })
  const batch = outcome(ctx.submit(Array.from({ length: 10 }, (_, i) => ({ op: 'read' as const, fd: file.fd, offset: i * 512, buffer: Buffer.alloc(512) }))))
  const reads = Array.from({ length: 10 }, (_, i) => outcome(ctx.read(512, file.fd, i * 512, { signal: controller.signal })))
  controller.abort()
  t.not(fromListener, undefined)
  const settled = await within(Promise.all([batch, ...reads]), 20_000, 'the operations')
  await within(fromListener as Promise<void>, 20_000, 'the close called from the abort listener')
  for (const [i, result] of settled.slice(1).entries()) {
    const code = result.ok ? 'resolved' : field(result.error, 'code')
    t.true(result.ok || code === 'ABORT_ERR' || code === 'ERR_CAIO_CLOSED', `read #${i}: ${String(code)}`)
  }
  const first = settled[0] as Outcome<Array<number | Error>>
  t.true(first.ok ? first.value.every((entry) => entry === 512 || field(entry, 'code') === 'ERR_CAIO_CLOSED') : field(first.error, 'code') === 'ERR_CAIO_CLOSED', 'the batch: its bytes or ERR_CAIO_CLOSED per entry')
  // A second context closes from a batch's callback.
  const other = openContext(t, { maxRequests: 1 })
  const batches = Array.from({ length: 5 }, () => outcome(other.submit([{ op: 'fsync', fd: file.fd }]).then((entries) => (other.close(), entries))))
  const done = await within(Promise.all(batches), 20_000, 'the batches')
  t.true(done[0]?.ok && done[0].value[0] === 0, 'the first batch ran')
  t.true(done.slice(1).every((result) => closedOrDone(result, (entries) => Array.isArray(entries) && entries[0] === 0)), 'later batches ran or were rejected as closed')
  await rejectsClosed(t, other.submit([]), 'an empty batch after close')
})

test('close() while a read waits in the kernel: uring lets it finish when data comes (close resolves after it); other backends never wait on a pipe', async (t) => {
  const ctx = openContext(t)
  const pipe = fifo(t)
  if (ctx.backend !== 'uring') {
    // linux would block io_submit on a blocking pipe (reported); thread and js fail with
    // ESPIPE at once. Either way close resolves without waiting for anything.
    if (ctx.backend !== 'linux') await t.throwsAsync(ctx.read(4, pipe.fd, 0), { code: 'ESPIPE' })
    await within(ctx.close(), 10_000, 'close')
    await rejectsClosed(t, ctx.read(4, pipe.fd, 0), 'a read after close')
    return
  }
  const read = outcome(ctx.read(16, pipe.fd, 0))
  await nextTurn()
  let closed = false
  const closing = ctx.close().then(() => (closed = true))
  await nextTurn()
  await nextTurn()
  t.false(closed, 'close waits for the read in the kernel')
  await rejectsClosed(t, ctx.read(4, pipe.fd, 0), 'a read started while closing')
  writeSync(pipe.fd, 'late data')
  const result = await within(read, 10_000, 'the read in flight')
  t.true(result.ok && result.value.toString() === 'late data', 'the read in flight completed with the data')
  await within(closing, 10_000, 'close after the read finished')
  t.true(closed)
})

/** A child on the backend under test with `fd` open on `path`. */
function childPrelude(path: string): string {
  return `
    const caio = require(${JSON.stringify(INDEX_JS)})
    const fs = require('node:fs')
    const ctx = new caio.Context({ maxRequests: 64, poolSize: 2 })
    const expected = ${JSON.stringify(backendUnderTest() ?? null)}
    if (expected !== null && ctx.backend !== expected) { console.error('wrong backend ' + ctx.backend); process.exit(3) }
    const fd = fs.openSync(${JSON.stringify(path)}, 'r+')
  `
}

test('process.exit() with hundreds of operations in flight and queued on a context never closed: exits with its code, no crash, no hang', async (t) => {
  t.timeout(60_000)
  const file = fileWith(t, pattern(4 * 1024 * 1024, 63))
  for (const when of ['at once', 'from a completion callback', 'from a timer']) {
    const result = await runNode(`${childPrelude(file.path)}
      for (let i = 0; i < 500; i++) {
        const at = (i * 8192) % (4 * 1024 * 1024 - 65536)
        ctx.read(65536, fd, at).then((b) => { if (${JSON.stringify(when)} === 'from a completion callback' && i === 10) process.exit(7) }, () => {})
        ctx.write(Buffer.alloc(4096, i & 0xff), fd, at).catch(() => {})
      }
      ctx.submit(Array.from({ length: 64 }, (_, i) => ({ op: 'read', fd, offset: i * 4096, buffer: Buffer.alloc(4096) }))).catch(() => {})
      if (${JSON.stringify(when)} === 'at once') process.exit(7)
      if (${JSON.stringify(when)} === 'from a timer') setTimeout(() => process.exit(7), 1)
    `)
    t.false(result.timedOut, `${when}: ${describeChild(result)}`)
    t.is(result.code, 7, `${when}: ${describeChild(result)}`)
    t.is(result.signal, null, `${when}: killed by a signal: ${describeChild(result)}`)
  }
})

test('process.exit() while reads wait in the kernel on a pipe (uring) and writes are in flight: no hang at exit', async (t) => {
  t.timeout(60_000)
  const file = fileWith(t, 'x')
  const pipe = fifo(t)
  const result = await runNode(`${childPrelude(file.path)}
    const pipe = fs.openSync(${JSON.stringify(pipe.path)}, 'r+')
    if (ctx.backend === 'uring') {
      // Never gets data: only the teardown's cancel can end it.
      for (let i = 0; i < 16; i++) ctx.read(8, pipe, 0).catch(() => {})
    }
    for (let i = 0; i < 200; i++) ctx.write(Buffer.alloc(65536, 1), fd, i * 65536).catch(() => {})
    setTimeout(() => { console.log('exiting'); process.exit(0) }, 20)
  `)
  t.false(result.timedOut, describeChild(result))
  t.is(result.code, 0, describeChild(result))
  t.is(result.stdout.trim(), 'exiting')
})

test('an uncaught exception with operations in flight on a context never closed: exit code 1 and the error, no crash', async (t) => {
  t.timeout(60_000)
  const file = fileWith(t, pattern(1024 * 1024, 64))
  const result = await runNode(`${childPrelude(file.path)}
    for (let i = 0; i < 300; i++) ctx.read(4096, fd, (i * 4096) % (1024 * 1024)).catch(() => {})
    ctx.read(16, fd, 0).then(() => { throw new Error('boom from a callback') })
  `)
  t.false(result.timedOut, describeChild(result))
  t.is(result.code, 1, describeChild(result))
  t.is(result.signal, null)
  t.regex(result.stderr, /boom from a callback/)
})

test('a context never closed, whose last operations end in the exit handler: the process exits by itself with code 0', async (t) => {
  t.timeout(60_000)
  const file = fileWith(t, 'final words')
  const result = await runNode(`${childPrelude(file.path)}
    ctx.read(11, fd, 0).then((b) => console.log(b.toString()))
    // Operations started from the exit handler never complete (the loop is gone): they
    // must not crash or hold the process.
    process.on('exit', () => { for (let i = 0; i < 10; i++) ctx.read(11, fd, 0).catch(() => {}) })
  `)
  t.false(result.timedOut, describeChild(result))
  t.is(result.code, 0, describeChild(result))
  t.is(result.stdout.trim(), 'final words')
})
