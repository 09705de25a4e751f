// close(): rejects new and still-queued operations with ERR_CAIO_CLOSED, lets those in
// flight finish, resolves, and is idempotent; `await using` and Symbol.asyncDispose close.
import test from 'ava'
import type { ExecutionContext } from 'ava'

import type { Context } from '../index'
import { backendUnderTest, describeChild, field, fileWith, INDEX_JS, lastJsonLine, openContext, pattern, runNode } from './helpers'

async function rejectsClosed(t: ExecutionContext, promise: Promise<unknown>, what: string): Promise<void> {
  await t.throwsAsync(promise, { code: 'ERR_CAIO_CLOSED', instanceOf: Error }, what)
}

test('close resolves undefined', async (t) => {
  const ctx = openContext(t)
  t.is(await ctx.close(), undefined)
})

test('closing twice in a row is fine: both calls resolve', async (t) => {
  const ctx = openContext(t)
  t.is(await ctx.close(), undefined)
  t.is(await ctx.close(), undefined)
})

test('two close calls at once both resolve', async (t) => {
  const file = fileWith(t, 'abc')
  const ctx = openContext(t)
  const read = ctx.read(3, file.fd, 0)
  t.deepEqual(await Promise.all([ctx.close(), ctx.close()]), [undefined, undefined])
  t.is((await read).toString(), 'abc')
})

test('every operation after close rejects with ERR_CAIO_CLOSED', async (t) => {
  const file = fileWith(t, 'untouched')
  const ctx = openContext(t)
  await ctx.close()
  await rejectsClosed(t, ctx.read(4, file.fd, 0), 'read')
  await rejectsClosed(t, ctx.readInto(Buffer.alloc(4), file.fd, 0), 'readInto')
  await rejectsClosed(t, ctx.write('XXXX', file.fd, 0), 'write')
  await rejectsClosed(t, ctx.fsync(file.fd), 'fsync')
  await rejectsClosed(t, ctx.fdsync(file.fd), 'fdsync')
  t.is(file.content().toString(), 'untouched', 'the write after close never ran')
})

test('an operation started right after close() was called rejects with ERR_CAIO_CLOSED', async (t) => {
  const file = fileWith(t, 'untouched')
  const ctx = openContext(t)
  const closing = ctx.close()
  await rejectsClosed(t, ctx.write('XXXX', file.fd, 0), 'write while closing')
  await closing
  t.is(file.content().toString(), 'untouched')
})

test('close rejects queued operations with ERR_CAIO_CLOSED while the one in flight completes with its result', async (t) => {
  const content = pattern(64 * 1024, 21)
  const file = fileWith(t, content)
  const ctx = openContext(t, { maxRequests: 1 })
  const inFlight = ctx.read(content.length, file.fd, 0)
  const queued = [ctx.read(16, file.fd, 0), ctx.readInto(Buffer.alloc(16), file.fd, 0), ctx.fsync(file.fd), ctx.fdsync(file.fd), ctx.read(16, file.fd, 100)]
  const closing = ctx.close()
  const first = await inFlight
  t.true(first.equals(content), 'the operation in flight resolves with the bytes it read')
  for (const [i, promise] of queued.entries()) await rejectsClosed(t, promise, `queued operation #${i}`)
  t.is(await closing, undefined)
})

test('queued writes rejected by close never land, the write in flight does', async (t) => {
  const file = fileWith(t, '................')
  const ctx = openContext(t, { maxRequests: 1 })
  const inFlight = ctx.write('AAAA', file.fd, 0)
  const queued = [ctx.write('BBBB', file.fd, 4), ctx.write('CCCC', file.fd, 8), ctx.write('DDDD', file.fd, 12)]
  await ctx.close()
  t.is(await inFlight, 4)
  for (const [i, promise] of queued.entries()) await rejectsClosed(t, promise, `queued write #${i}`)
  t.is(file.content().toString(), 'AAAA............')
})

test('close resolves only after the operations in flight have settled', async (t) => {
  const file = fileWith(t)
  const ctx = openContext(t, { maxRequests: 4 })
  const events: string[] = []
  const data = pattern(4 * 1024 * 1024, 5)
  const writes = Array.from({ length: 4 }, (_, i) =>
    ctx.write(data, file.fd, i * data.length).then((n) => {
      events.push(`write ${i}`)
      return n
    }),
  )
  await ctx.close().then(() => events.push('closed'))
  t.is(events.length, 5)
  t.is(events[4], 'closed', `settled in the order ${events.join(', ')}`)
  t.deepEqual(await Promise.all(writes), [data.length, data.length, data.length, data.length])
})

test('closing while reads run: the first ones resolve with their bytes, all after them reject with ERR_CAIO_CLOSED', async (t) => {
  // However far the queue has moved when close() comes, what ran ran completely and
  // correctly, and what did not is ERR_CAIO_CLOSED.
  const content = pattern(4096, 4)
  const file = fileWith(t, content)
  const ctx = openContext(t, { maxRequests: 2 })
  const reads = Array.from({ length: 200 }, (_, i) => ctx.read(64, file.fd, (i * 64) % 4096))
  await reads[0]
  await ctx.close()
  const results = await Promise.allSettled(reads)
  // With maxRequests 2 and a FIFO queue, the reads that ran are the first ones.
  const resolved = results.findIndex((result) => result.status === 'rejected')
  const ran = resolved === -1 ? results.length : resolved
  t.true(ran >= 1, 'the read awaited before close resolved')
  for (const [i, result] of results.entries()) {
    if (i < ran) {
      const at = (i * 64) % 4096
      t.true(result.status === 'fulfilled' && result.value.equals(content.subarray(at, at + 64)), `read #${i} resolved with its bytes`)
    } else {
      t.is(result.status === 'rejected' ? field(result.reason, 'code') : 'resolved', 'ERR_CAIO_CLOSED', `read #${i}`)
    }
  }
})

test('await using closes the context at the end of its block', async (t) => {
  const file = fileWith(t, 'scoped')
  let escaped: Context | undefined
  {
    await using ctx = openContext(t)
    escaped = ctx
    t.is((await ctx.read(6, file.fd, 0)).toString(), 'scoped')
  }
  await rejectsClosed(t, escaped.read(6, file.fd, 0), 'read after the block')
})

test('Symbol.asyncDispose closes the context', async (t) => {
  const file = fileWith(t, 'disposed')
  const ctx = openContext(t)
  t.is(await ctx[Symbol.asyncDispose](), undefined)
  await rejectsClosed(t, ctx.read(8, file.fd, 0), 'read after dispose')
  t.is(await ctx.close(), undefined, 'close after dispose still resolves')
})

test('closing one context leaves another one working', async (t) => {
  const file = fileWith(t, 'independent')
  const first = openContext(t)
  const second = openContext(t)
  await first.close()
  t.is((await second.read(11, file.fd, 0)).toString(), 'independent')
  await rejectsClosed(t, first.read(11, file.fd, 0), 'the closed one')
})

test('close releases the descriptors and threads of the backend by the time it resolves', async (t) => {
  t.timeout(60_000)
  const file = fileWith(t, 'abcd')
  // In a child process: tests running beside this one would open descriptors of their own.
  const result = await runNode(`
    const caio = require(${JSON.stringify(INDEX_JS)})
    const fs = require('node:fs')
    const procfs = fs.existsSync('/proc/self/fd')
    const usage = () => procfs
      ? [fs.readdirSync('/proc/self/fd').length, Number(/Threads:\\s+(\\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1])]
      : [0, 0]
    // A joined thread can still be counted for a moment: pthread_join returns when the
    // kernel clears its tid, a little before the kernel drops it from the thread group.
    const settled = async () => {
      let last = usage()
      for (let i = 0; i < 20; i++) {
        await new Promise((resolve) => setTimeout(resolve, 5))
        const now = usage()
        if (now[0] === last[0] && now[1] === last[1]) return now
        last = now
      }
      return last
    }
    const fd = fs.openSync(${JSON.stringify(file.path)}, 'r')
    async function main() {
      // Once first, so that whatever the library sets up once per process exists.
      const warm = new caio.Context()
      await warm.read(4, fd, 0)
      await warm.close()
      const before = await settled()
      const open = []
      for (let i = 0; i < 20; i++) {
        const ctx = new caio.Context({ poolSize: 2 })
        await ctx.read(4, fd, 0)
        open.push(ctx)
      }
      await Promise.all(open.map((ctx) => ctx.close()))
      for (let i = 0; i < 20; i++) {
        const ctx = new caio.Context({ poolSize: 2 })
        await ctx.read(4, fd, 0)
        await ctx.close()
      }
      console.log(JSON.stringify({ backend: warm.backend, procfs, before, after: await settled() }))
    }
    main()
  `)
  t.is(result.code, 0, describeChild(result))
  const report = lastJsonLine(result.stdout)
  const expected = backendUnderTest()
  if (expected !== undefined) t.is(field(report, 'backend'), expected)
  t.deepEqual(field(report, 'after'), field(report, 'before'), `[descriptors, threads] before and after 40 contexts: ${result.stdout}`)
})
