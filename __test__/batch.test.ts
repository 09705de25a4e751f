// Batches: ctx.submit(ops) validates the whole batch, runs it with one crossing into the
// backend, and resolves one entry per operation, in order; links chain operations.
import test from 'ava'

import type { BatchOp } from '../index'
import { collectGarbage, field, fileWith, NEVER_OPEN_FD, openContext, pattern, rejectsWithAbortError, rejectsWithArgumentError } from './helpers'

function isError(value: unknown): value is Error {
  return value instanceof Error
}

test('a mixed batch of writes, reads and syncs resolves one entry per operation, in order', async (t) => {
  const file = fileWith(t, 'x'.repeat(16))
  const ctx = openContext(t)
  const head = Buffer.alloc(5)
  const all = new Uint8Array(16)
  const first = await ctx.submit([
    { op: 'write', fd: file.fd, offset: 0, data: 'hello' },
    { op: 'write', fd: file.fd, offset: 5, data: Buffer.from(' world') },
    { op: 'fdsync', fd: file.fd },
  ])
  t.deepEqual(first, [5, 6, 0])
  const second = await ctx.submit([
    { op: 'read', fd: file.fd, offset: 0, buffer: head },
    { op: 'fsync', fd: file.fd },
    { op: 'read', fd: file.fd, offset: 0n, buffer: all },
    { op: 'read', fd: file.fd, offset: 100, buffer: Buffer.alloc(4) },
  ])
  t.deepEqual(second, [5, 0, 16, 0])
  t.is(head.toString(), 'hello')
  t.is(Buffer.from(all).toString(), 'hello worldxxxxx')
  t.is(file.content().toString(), 'hello worldxxxxx')
})

test('an empty batch resolves an empty array', async (t) => {
  const ctx = openContext(t)
  t.deepEqual(await ctx.submit([]), [])
})

test('a 10 000-operation batch over maxRequests 8 runs whole, in order, checked byte for byte', async (t) => {
  const size = 64 * 1024
  const content = pattern(size, 9)
  const file = fileWith(t, content)
  const ctx = openContext(t, { maxRequests: 8 })
  const ops: BatchOp[] = []
  const targets: Buffer[] = []
  for (let i = 0; i < 10_000; i++) {
    const offset = (i * 4099) % size
    const buffer = Buffer.alloc(1 + (i % 37))
    targets.push(buffer)
    ops.push({ op: 'read', fd: file.fd, offset, buffer })
  }
  const entries = await ctx.submit(ops)
  t.is(entries.length, 10_000)
  let mismatches = 0
  entries.forEach((entry, i) => {
    const offset = (i * 4099) % size
    const target = targets[i] as Buffer
    const expected = content.subarray(offset, offset + target.length)
    if (entry !== expected.length || !target.subarray(0, expected.length).equals(expected)) mismatches++
  })
  t.is(mismatches, 0)
})

test('an operation failing in the middle of a batch gets its own error while the others succeed', async (t) => {
  const file = fileWith(t, 'abcdef')
  const ctx = openContext(t)
  const a = Buffer.alloc(3)
  const b = Buffer.alloc(3)
  const entries = await ctx.submit([
    { op: 'read', fd: file.fd, offset: 0, buffer: a },
    { op: 'read', fd: NEVER_OPEN_FD, offset: 0, buffer: Buffer.alloc(3) },
    { op: 'fsync', fd: NEVER_OPEN_FD },
    { op: 'read', fd: file.fd, offset: 3, buffer: b },
  ])
  t.is(entries[0], 3)
  t.is(entries[3], 3)
  for (const [index, syscall] of [[1, 'read'], [2, 'fsync']] as const) {
    const entry = entries[index]
    t.true(isError(entry), `entry ${index} is an Error`)
    t.is(field(entry, 'code'), 'EBADF')
    t.is(field(entry, 'errno'), -9)
    t.is(field(entry, 'syscall'), syscall)
  }
  t.is(a.toString() + b.toString(), 'abcdef')
})

test('a linked write that fails leaves the fdsync linked to it ECANCELED', async (t) => {
  const file = fileWith(t, 'keep')
  const ctx = openContext(t)
  const entries = await ctx.submit([
    { op: 'write', fd: NEVER_OPEN_FD, offset: 0, data: 'lost', link: true },
    { op: 'fdsync', fd: file.fd },
  ])
  t.is(field(entries[0], 'code'), 'EBADF')
  t.is(field(entries[1], 'code'), 'ECANCELED')
  t.is(field(entries[1], 'syscall'), 'fdatasync')
})

test('a linked write and fdsync that succeed are a durable append', async (t) => {
  const file = fileWith(t, 'log:')
  const ctx = openContext(t)
  t.deepEqual(await ctx.submit([{ op: 'write', fd: file.fd, offset: 4, data: 'entry', link: true }, { op: 'fdsync', fd: file.fd }]), [5, 0])
  t.is(file.content().toString(), 'log:entry')
})

test('a chain of 100 linked appends lands in order', async (t) => {
  const file = fileWith(t)
  const ctx = openContext(t)
  // Each append overwrites the previous one's last byte: only in-order execution leaves
  // the bytes 0, 1, 2, ... 99 in place.
  const ops: BatchOp[] = []
  for (let i = 0; i < 100; i++) ops.push({ op: 'write', fd: file.fd, offset: i, data: Buffer.from([i, 0xff]), link: i < 99 })
  const entries = await ctx.submit(ops)
  t.true(entries.every((entry) => entry === 2))
  const content = file.content()
  t.is(content.length, 101)
  t.deepEqual([...content.subarray(0, 100)], Array.from({ length: 100 }, (_, i) => i))
})

test('linked chains run in order even with maxRequests smaller than the batch', async (t) => {
  const file = fileWith(t)
  const ctx = openContext(t, { maxRequests: 4 })
  const ops: BatchOp[] = []
  for (let chain = 0; chain < 10; chain++) {
    for (let i = 0; i < 4; i++) ops.push({ op: 'write', fd: file.fd, offset: chain * 8 + i, data: Buffer.from([chain, i]), link: i < 3 })
  }
  const entries = await ctx.submit(ops)
  t.true(entries.every((entry) => entry === 2))
  const content = file.content()
  for (let chain = 0; chain < 10; chain++) t.deepEqual([...content.subarray(chain * 8, chain * 8 + 5)], [chain, chain, chain, chain, 3])
})

test('a linked chain longer than maxRequests is refused before anything runs', async (t) => {
  const file = fileWith(t, 'unchanged')
  const ctx = openContext(t, { maxRequests: 2 })
  const ops: BatchOp[] = [0, 1, 2].map((i) => ({ op: 'write', fd: file.fd, offset: i, data: 'X', link: i < 2 }))
  await rejectsWithArgumentError(t, () => ctx.submit(ops), 'ERR_OUT_OF_RANGE', RangeError, 'a chain of 3 with maxRequests 2')
  t.is(file.content().toString(), 'unchanged')
})

test('a bad entry rejects the whole batch, names its index, and nothing reaches the kernel', async (t) => {
  const file = fileWith(t, 'unchanged')
  const ctx = openContext(t)
  const good: BatchOp = { op: 'write', fd: file.fd, offset: 0, data: 'XXXX' }
  const cases: Array<[string, unknown, string, typeof TypeError | typeof RangeError]> = [
    ['ops[1].offset', [good, { op: 'write', fd: file.fd, offset: -1, data: 'Y' }], 'ERR_OUT_OF_RANGE', RangeError],
    ['ops[2].fd', [good, good, { op: 'fsync', fd: 'x' }], 'ERR_INVALID_ARG_TYPE', TypeError],
    ['ops[1].buffer', [good, { op: 'read', fd: file.fd, offset: 0, buffer: 'nope' }], 'ERR_INVALID_ARG_TYPE', TypeError],
    ['ops[1].data', [good, { op: 'write', fd: file.fd, offset: 0, data: 42 }], 'ERR_INVALID_ARG_TYPE', TypeError],
    ['ops[1].op', [good, { op: 'truncate', fd: file.fd }], 'ERR_INVALID_ARG_VALUE', TypeError],
    ['ops[1].op', [good, { op: 'toString', fd: file.fd }], 'ERR_INVALID_ARG_VALUE', TypeError],
    ['ops[1].link', [good, { op: 'fsync', fd: file.fd, link: 'yes' }], 'ERR_INVALID_ARG_TYPE', TypeError],
    ['ops[0]', [null], 'ERR_INVALID_ARG_TYPE', TypeError],
    ['ops', 'not an array', 'ERR_INVALID_ARG_TYPE', TypeError],
  ]
  for (const [name, ops, code, kind] of cases) {
    await rejectsWithArgumentError(t, () => ctx.submit(ops as BatchOp[]), code, kind, name)
    const error = await ctx.submit(ops as BatchOp[]).catch((e: unknown) => e)
    t.true(error instanceof Error && error.message.includes(name), `the error names ${name}: ${String(error)}`)
  }
  t.is(file.content().toString(), 'unchanged')
})

test('priority is validated per entry before anything is submitted, and valid priorities work', async (t) => {
  const file = fileWith(t, 'unchanged')
  const ctx = openContext(t)
  for (const priority of [-1, 65536, 1.5, 7 << 13, (2 << 13) | 8]) {
    const ops: BatchOp[] = [
      { op: 'write', fd: file.fd, offset: 0, data: 'XXXX' },
      { op: 'fsync', fd: file.fd, priority },
    ]
    await rejectsWithArgumentError(t, () => ctx.submit(ops), 'ERR_OUT_OF_RANGE', RangeError, `priority ${priority}`)
  }
  await rejectsWithArgumentError(t, () => ctx.submit([{ op: 'fsync', fd: file.fd, priority: 'high' as unknown as number }]), 'ERR_INVALID_ARG_TYPE', TypeError, 'priority as a string')
  t.is(file.content().toString(), 'unchanged')
  const bestEffortLowest = (2 << 13) | 7
  t.deepEqual(await ctx.submit([{ op: 'write', fd: file.fd, offset: 0, data: 'DONE', priority: bestEffortLowest }, { op: 'fdsync', fd: file.fd, priority: 0 }]), [4, 0])
})

test('an already-aborted signal rejects the batch with AbortError and nothing runs', async (t) => {
  const file = fileWith(t, 'unchanged')
  const ctx = openContext(t)
  const controller = new AbortController()
  controller.abort()
  await rejectsWithAbortError(t, ctx.submit([{ op: 'write', fd: file.fd, offset: 0, data: 'XXXX' }], { signal: controller.signal }), 'submit')
  await ctx.fsync(file.fd)
  t.is(file.content().toString(), 'unchanged')
})

test('aborting a batch while it runs stops what has not run: AbortError entries, or a rejection if none ran', async (t) => {
  const file = fileWith(t, 'x'.repeat(4096))
  const ctx = openContext(t, { maxRequests: 2 })
  const controller = new AbortController()
  const ops: BatchOp[] = Array.from({ length: 200 }, (_, i) => ({ op: 'write', fd: file.fd, offset: i, data: 'A' }))
  const pending = ctx.submit(ops, { signal: controller.signal })
  controller.abort()
  const outcome = await pending.then(
    (entries) => ({ entries }),
    (error: unknown) => ({ error }),
  )
  if ('error' in outcome) {
    t.is(field(outcome.error, 'name'), 'AbortError', 'a rejected batch rejects with AbortError')
    return
  }
  const { entries } = outcome
  t.is(entries.length, 200)
  const aborted = entries.filter((entry) => isError(entry) && entry.name === 'AbortError').length
  const written = entries.filter((entry) => entry === 1).length
  t.is(aborted + written, 200, 'every entry is either done or aborted')
  t.true(aborted > 0, 'with maxRequests 2 most of the batch was still queued when it was aborted')
  // Exactly the operations reported done wrote their byte.
  const content = file.content()
  entries.forEach((entry, i) => {
    if (entry === 1) t.is(content[i], 0x41)
  })
})

test('a batch submitted while close() runs: queued operations get ERR_CAIO_CLOSED, started ones finish', async (t) => {
  const file = fileWith(t, 'x'.repeat(64))
  const ctx = openContext(t, { maxRequests: 1 })
  const ops: BatchOp[] = Array.from({ length: 20 }, (_, i) => ({ op: 'write', fd: file.fd, offset: i, data: 'B' }))
  const pending = ctx.submit(ops)
  const closing = ctx.close()
  const outcome = await pending.then(
    (entries) => ({ entries }),
    (error: unknown) => ({ error }),
  )
  await closing
  if ('error' in outcome) {
    t.is(field(outcome.error, 'code'), 'ERR_CAIO_CLOSED')
  } else {
    const closed = outcome.entries.filter((entry) => field(entry, 'code') === 'ERR_CAIO_CLOSED').length
    const done = outcome.entries.filter((entry) => entry === 1).length
    t.is(closed + done, 20)
    t.true(closed > 0)
    const content = file.content()
    outcome.entries.forEach((entry, i) => t.is(content[i], entry === 1 ? 0x42 : 0x78, `byte ${i}`))
  }
  await t.throwsAsync(ctx.submit([{ op: 'fsync', fd: file.fd }]), { code: 'ERR_CAIO_CLOSED' })
})

test('a batch keeps its buffers alive: dropped references and garbage collection change nothing', async (t) => {
  const content = pattern(256 * 1024, 4)
  const file = fileWith(t, content)
  const ctx = openContext(t, { maxRequests: 4 })
  const results = await Promise.all(
    Array.from({ length: 8 }, (_, round) => {
      const ops: BatchOp[] = Array.from({ length: 64 }, (_, i) => ({ op: 'read', fd: file.fd, offset: ((round * 64 + i) * 997) % (content.length - 512), buffer: Buffer.alloc(512) }))
      const promise = ctx.submit(ops).then((entries) => ops.every((op, i) => op.op === 'read' && entries[i] === 512 && Buffer.from(op.buffer.buffer, op.buffer.byteOffset, 512).equals(content.subarray(((round * 64 + i) * 997) % (content.length - 512)).subarray(0, 512))))
      collectGarbage()
      return promise
    }),
  )
  t.true(results.every(Boolean))
})

test('batches of cached reads with sqpoll: true come back right byte for byte, mixed with errors, links and an abort', async (t) => {
  const size = 256 * 1024
  const content = pattern(size, 5)
  const file = fileWith(t, content)
  // `sqpoll` is accepted everywhere; on uring, reads of a batch are shared between the
  // kernel thread and the submitting thread.
  const ctx = openContext(t, { sqpoll: true, maxRequests: 64 })
  for (let round = 0; round < 20; round++) {
    const ops: BatchOp[] = []
    const targets: Buffer[] = []
    for (let i = 0; i < 64; i++) {
      const offset = ((round * 64 + i) * 40_961) % size
      const buffer = Buffer.alloc(4096)
      targets.push(buffer)
      ops.push({ op: 'read', fd: i === 17 ? NEVER_OPEN_FD : file.fd, offset: i === 40 ? size + 1 : offset, buffer, link: i === 50 })
    }
    const entries = await ctx.submit(ops)
    entries.forEach((entry, i) => {
      if (i === 17) return t.is(field(entry, 'code'), 'EBADF')
      if (i === 40) return t.is(entry, 0)
      const offset = ((round * 64 + i) * 40_961) % size
      const expected = content.subarray(offset, offset + 4096)
      t.is(entry, expected.length, `round ${round} entry ${i}`)
      if (!(targets[i] as Buffer).subarray(0, expected.length).equals(expected)) t.fail(`round ${round} entry ${i}: wrong bytes`)
    })
  }
  const controller = new AbortController()
  const targets = Array.from({ length: 2000 }, () => Buffer.alloc(4096))
  const pending = ctx.submit(
    targets.map((buffer, i) => ({ op: 'read', fd: file.fd, offset: (i * 4096) % size, buffer })),
    { signal: controller.signal },
  )
  setImmediate(() => controller.abort())
  const entries = await pending.catch((error: unknown) => [error])
  let done = 0
  entries.forEach((entry, i) => {
    if (isError(entry)) return t.is(entry.name, 'AbortError')
    done++
    const offset = (i * 4096) % size
    t.is(entry, 4096)
    if (!(targets[i] as Buffer).equals(content.subarray(offset, offset + 4096))) t.fail(`entry ${i}: wrong bytes`)
  })
  t.true(entries.length === 1 || entries.length === 2000, 'a rejection, or one entry per operation')
  t.log(`${done} of 2000 reads done before the abort`)
})
