// An idle context never keeps a process alive; a busy one does, until its operations
// complete (as node:fs does). Each case runs in a child process on the backend under test.
import test from 'ava'

import { backendUnderTest, describeChild, fileWith, INDEX_JS, pattern, runNode } from './helpers'

/** The head of every child script: the library, a context, and a check of its backend. */
function prelude(file: string, options = '{}'): string {
  return `
    const caio = require(${JSON.stringify(INDEX_JS)})
    const fs = require('node:fs')
    const ctx = new caio.Context(${options})
    const expected = ${JSON.stringify(backendUnderTest() ?? null)}
    if (expected !== null && ctx.backend !== expected) {
      console.error('wrong backend: ' + ctx.backend)
      process.exit(3)
    }
    const fd = fs.openSync(${JSON.stringify(file)}, 'r+')
  `
}

test('a context left open and idle after one read does not keep the process alive', async (t) => {
  t.timeout(60_000)
  const file = fileWith(t, 'idle context')
  const result = await runNode(`${prelude(file.path)}
    ctx.read(64, fd, 0).then((bytes) => console.log(bytes.toString()))
  `)
  t.false(result.timedOut, `the child did not exit by itself: ${describeChild(result)}`)
  t.is(result.code, 0, describeChild(result))
  t.is(result.stdout.trim(), 'idle context')
})

test('a context that never ran an operation does not keep the process alive', async (t) => {
  t.timeout(60_000)
  const file = fileWith(t, 'x')
  const result = await runNode(`${prelude(file.path)}
    console.log('opened ' + ctx.backend)
  `)
  t.false(result.timedOut, `the child did not exit by itself: ${describeChild(result)}`)
  t.is(result.code, 0, describeChild(result))
  t.regex(result.stdout, /^opened (uring|linux|thread|js)$/m)
})

test('a context idle after failed operations does not keep the process alive', async (t) => {
  t.timeout(60_000)
  const file = fileWith(t, 'x')
  const result = await runNode(`${prelude(file.path)}
    Promise.allSettled([ctx.read(4, 0x7fffffff, 0), ctx.fsync(0x7fffffff), ctx.write('x', 0x7fffffff, 0)])
      .then((results) => console.log(results.map((r) => r.status === 'rejected' ? r.reason.code : 'resolved').join(',')))
  `)
  t.false(result.timedOut, `the child did not exit by itself: ${describeChild(result)}`)
  t.is(result.code, 0, describeChild(result))
  t.is(result.stdout.trim(), 'EBADF,EBADF,EBADF')
})

test('a busy context keeps the process alive until its operations complete', async (t) => {
  t.timeout(60_000)
  const content = pattern(4 * 1024 * 1024, 8)
  const file = fileWith(t, content)
  // No timer anywhere: only the context's own pending operations can keep the child
  // running until the last read of the chain has printed.
  const result = await runNode(`${prelude(file.path, '{ maxRequests: 4 }')}
    let total = 0
    const step = (round) => ctx.read(${content.length}, fd, 0).then((bytes) => {
      total += bytes.length
      if (round < 20) return step(round + 1)
      const crypto = require('node:crypto')
      console.log(total + ' ' + crypto.createHash('sha256').update(bytes).digest('hex'))
    })
    step(1)
  `)
  t.false(result.timedOut, describeChild(result))
  t.is(result.code, 0, describeChild(result))
  const { createHash } = await import('node:crypto')
  t.is(result.stdout.trim(), `${20 * content.length} ${createHash('sha256').update(content).digest('hex')}`)
})

test('a busy context keeps the process alive for many concurrent operations and a final fsync', async (t) => {
  t.timeout(60_000)
  const file = fileWith(t)
  const result = await runNode(`${prelude(file.path, '{ maxRequests: 8 }')}
    const writes = []
    for (let i = 0; i < 500; i++) writes.push(ctx.write(String(i % 10).repeat(100), fd, i * 100))
    Promise.all(writes)
      .then(() => ctx.fsync(fd))
      .then(() => ctx.read(100, fd, 499 * 100))
      .then((bytes) => console.log('last ' + bytes.toString().slice(0, 5)))
  `)
  t.false(result.timedOut, describeChild(result))
  t.is(result.code, 0, describeChild(result))
  t.is(result.stdout.trim(), 'last 99999')
  t.is(file.content().length, 500 * 100)
})

test('a process that closes its context with operations in flight exits after they complete', async (t) => {
  t.timeout(60_000)
  const file = fileWith(t, 'closing')
  const result = await runNode(`${prelude(file.path, '{ maxRequests: 1 }')}
    ctx.read(7, fd, 0).then((bytes) => console.log('read ' + bytes.toString()))
    ctx.read(7, fd, 0).catch((error) => console.log('queued ' + error.code))
    ctx.close().then(() => console.log('closed'))
  `)
  t.false(result.timedOut, describeChild(result))
  t.is(result.code, 0, describeChild(result))
  t.deepEqual(result.stdout.trim().split('\n').sort(), ['closed', 'queued ERR_CAIO_CLOSED', 'read closing'])
})

test('terminating worker threads with operations in flight does not crash the process', async (t) => {
  t.timeout(60_000)
  const file = fileWith(t, Buffer.alloc(1024 * 1024, 7))
  const worker = `
    const { parentPort } = require('node:worker_threads')
    const caio = require(${JSON.stringify(INDEX_JS)})
    const fs = require('node:fs')
    const ctx = new caio.Context({ maxRequests: 64 })
    const fd = fs.openSync(${JSON.stringify(file.path)}, 'r+')
    for (let i = 0; i < 1000; i++) {
      const at = (i * 4096) % (1024 * 1024)
      ctx.read(4096, fd, at).catch(() => {})
      ctx.write(Buffer.alloc(4096, 7), fd, at).catch(() => {})
    }
    parentPort.postMessage(ctx.backend)
  `
  const result = await runNode(`${prelude(file.path)}
    const { Worker } = require('node:worker_threads')
    const backends = new Set()
    let rounds = 0
    const round = () => {
      const w = new Worker(${JSON.stringify(worker)}, { eval: true })
      w.once('message', (name) => { backends.add(name); w.terminate() })
      w.once('error', (error) => { console.error(error); process.exitCode = 2 })
      w.once('exit', () => (++rounds < 10 ? round() : finish()))
    }
    const finish = () => ctx.read(4, fd, 0).then((bytes) => {
      console.log([...backends].join(',') + ' ' + bytes.join(','))
    })
    round()
  `)
  t.false(result.timedOut, describeChild(result))
  t.is(result.code, 0, describeChild(result))
  const expected = backendUnderTest()
  t.regex(result.stdout.trim(), new RegExp(`^${expected ?? '(uring|linux|thread|js)'} 7,7,7,7$`))
})
