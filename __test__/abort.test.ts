// AbortSignal: an already-aborted signal rejects at once with AbortError and nothing runs;
// aborting a queued operation removes it; aborting one in flight cancels it or lets it
// settle with its real result; an abort after completion changes nothing.
import test from 'ava'

import { field, fileWith, openContext, rejectsWithAbortError } from './helpers'

function aborted(reason?: unknown): AbortSignal {
  const controller = new AbortController()
  controller.abort(reason)
  return controller.signal
}

test('an already-aborted signal rejects read with AbortError (code ABORT_ERR)', async (t) => {
  const file = fileWith(t, 'abcd')
  const ctx = openContext(t)
  await rejectsWithAbortError(t, ctx.read(4, file.fd, 0, { signal: aborted() }), 'read')
})

test('an already-aborted signal rejects readInto with AbortError and the target is never filled', async (t) => {
  const file = fileWith(t, 'abcd')
  const ctx = openContext(t, { maxRequests: 1 })
  const target = Buffer.alloc(4, 0xee)
  await rejectsWithAbortError(t, ctx.readInto(target, file.fd, 0, { signal: aborted() }), 'readInto')
  // Anything that had been started would have finished before this one (maxRequests 1).
  t.is((await ctx.read(4, file.fd, 0)).toString(), 'abcd')
  t.true(target.every((byte) => byte === 0xee))
})

test('an already-aborted signal rejects write with AbortError and its data never lands', async (t) => {
  const file = fileWith(t, 'original')
  const ctx = openContext(t, { maxRequests: 1 })
  await rejectsWithAbortError(t, ctx.write('XXXXXXXX', file.fd, 0, { signal: aborted() }), 'write')
  await rejectsWithAbortError(t, ctx.write(Buffer.from('YYYY'), file.fd, 8n, { signal: aborted('custom reason') }), 'write with a reason')
  await ctx.fsync(file.fd)
  t.is(file.content().toString(), 'original')
})

test('an already-aborted signal rejects fsync and fdsync with AbortError', async (t) => {
  const file = fileWith(t, 'abcd')
  const ctx = openContext(t)
  const signal = aborted()
  await rejectsWithAbortError(t, ctx.fsync(file.fd, { signal }), 'fsync')
  await rejectsWithAbortError(t, ctx.fdsync(file.fd, { signal }), 'fdsync')
})

test('an already-aborted signal rejects even an operation that would fail', async (t) => {
  const ctx = openContext(t)
  await rejectsWithAbortError(t, ctx.read(4, 0x7fffffff, 0, { signal: aborted() }), 'read on a bad descriptor')
})

test('aborting a queued operation rejects it with AbortError and it never runs, while the others complete', async (t) => {
  const file = fileWith(t, '............')
  const ctx = openContext(t, { maxRequests: 1 })
  const controller = new AbortController()
  const first = ctx.write('AAAA', file.fd, 0)
  const victim = ctx.write('BBBB', file.fd, 4, { signal: controller.signal })
  const last = ctx.write('CCCC', file.fd, 8)
  controller.abort()
  await rejectsWithAbortError(t, victim, 'the queued write')
  t.is(await first, 4)
  t.is(await last, 4)
  t.is(file.content().toString(), 'AAAA....CCCC')
})

test('aborting several queued operations with one signal rejects each of them', async (t) => {
  const file = fileWith(t, 'abcdefgh')
  const ctx = openContext(t, { maxRequests: 1 })
  const controller = new AbortController()
  const head = ctx.read(8, file.fd, 0)
  const signal = controller.signal
  const doomed = [ctx.read(2, file.fd, 0, { signal }), ctx.readInto(Buffer.alloc(2), file.fd, 2, { signal }), ctx.write('ZZ', file.fd, 4, { signal }), ctx.fdsync(file.fd, { signal })]
  const tail = ctx.read(2, file.fd, 6)
  controller.abort()
  for (const [i, promise] of doomed.entries()) await rejectsWithAbortError(t, promise, `queued operation #${i}`)
  t.is((await head).toString(), 'abcdefgh')
  t.is((await tail).toString(), 'gh')
  t.is(file.content().toString(), 'abcdefgh')
})

test('aborting after completion changes nothing', async (t) => {
  const file = fileWith(t, 'done')
  const ctx = openContext(t)
  const controller = new AbortController()
  const read = ctx.read(4, file.fd, 0, { signal: controller.signal })
  const written = ctx.write('DONE', file.fd, 4, { signal: controller.signal })
  t.is((await read).toString(), 'done')
  t.is(await written, 4)
  controller.abort()
  t.is((await read).toString(), 'done', 'the settled Promise keeps its value')
  t.is(file.content().toString(), 'doneDONE')
  // The context goes on working, and an operation with another signal is unaffected.
  t.is((await ctx.read(8, file.fd, 0, { signal: new AbortController().signal })).toString(), 'doneDONE')
})

test('aborting an operation in flight settles it either with AbortError or with its real result', async (t) => {
  const file = fileWith(t)
  const ctx = openContext(t)
  const data = Buffer.alloc(8 * 1024 * 1024, 0x5a)
  const controller = new AbortController()
  const write = ctx.write(data, file.fd, 0, { signal: controller.signal })
  controller.abort()
  const outcome = await write.then(
    (n) => ({ n }),
    (error: unknown) => ({ error }),
  )
  if ('n' in outcome) {
    t.is(outcome.n, data.length, 'not cancelled: the write reports its real result')
    t.true(file.content().equals(data))
  } else {
    t.is(field(outcome.error, 'name'), 'AbortError', `rejected with ${String(outcome.error)}`)
    t.is(field(outcome.error, 'code'), 'ABORT_ERR')
    await ctx.fsync(file.fd)
    t.is(file.content().length, 0, 'a cancelled write wrote nothing')
  }
})

test('an abort signal that never fires changes nothing', async (t) => {
  const file = fileWith(t, 'calm')
  const ctx = openContext(t, { maxRequests: 1 })
  const { signal } = new AbortController()
  const results = await Promise.all([ctx.read(4, file.fd, 0, { signal }), ctx.write('CALM', file.fd, 0, { signal }), ctx.fsync(file.fd, { signal })])
  t.is(results[0].toString(), 'calm')
  t.is(results[1], 4)
  t.is(results[2], undefined)
  t.is(file.content().toString(), 'CALM')
})

test('aborting many operations in flight: each one either rejects with AbortError and wrote nothing, or resolves with its real result', async (t) => {
  const slot = 64 * 1024
  const count = 64
  const file = fileWith(t, Buffer.alloc(slot * count))
  const ctx = openContext(t, { maxRequests: count, poolSize: 1 })
  const controllers = Array.from({ length: count }, () => new AbortController())
  const outcomes = controllers.map((controller, i) =>
    ctx.write(Buffer.alloc(slot, i + 1), file.fd, i * slot, { signal: controller.signal }).then(
      (n): { n: number } | { error: unknown } => ({ n }),
      (error: unknown) => ({ error }),
    ),
  )
  // Abort the even ones at once (not yet submitted, or just handed to the backend) and the
  // odd ones once write #1 has finished, so that aborts meet operations in every state.
  controllers.forEach((controller, i) => i % 2 === 0 && controller.abort())
  await outcomes[1]
  controllers.forEach((controller, i) => i % 2 === 1 && controller.abort())
  const settled = await Promise.all(outcomes)
  const content = file.content()
  for (const [i, outcome] of settled.entries()) {
    const bytes = content.subarray(i * slot, (i + 1) * slot)
    if ('n' in outcome) {
      t.is(outcome.n, slot, `write #${i} resolved with its real result`)
      t.true(bytes.every((byte) => byte === i + 1), `write #${i} resolved and its data is there`)
    } else {
      t.is(field(outcome.error, 'name'), 'AbortError', `write #${i} rejected with ${String(outcome.error)}`)
      t.true(bytes.every((byte) => byte === 0), `write #${i} was cancelled and wrote nothing`)
    }
  }
})

test("an AbortError carries the signal's reason as its cause, whether the signal was aborted before the call or while the operation was queued", async (t) => {
  const file = fileWith(t, 'abcdefgh')
  const ctx = openContext(t, { maxRequests: 1 })
  const early = new Error('aborted before the call')
  const before = await t.throwsAsync(ctx.read(2, file.fd, 0, { signal: aborted(early) }))
  t.is(field(before, 'cause'), early)
  const controller = new AbortController()
  const head = ctx.read(8, file.fd, 0)
  const queued = ctx.readInto(Buffer.alloc(2), file.fd, 2, { signal: controller.signal })
  const late = new Error('aborted while queued')
  controller.abort(late)
  const error = await t.throwsAsync(queued)
  t.is(field(error, 'name'), 'AbortError')
  t.is(field(error, 'cause'), late)
  t.is((await head).toString(), 'abcdefgh')
})
