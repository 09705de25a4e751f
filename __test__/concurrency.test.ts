// Many operations at once: independent, never lost, never EAGAIN for a full ring; beyond
// maxRequests they wait in a FIFO queue.
import test from 'ava'

import { fileWith, openContext, pattern } from './helpers'

/** A deterministic shuffle (Fisher–Yates over a seeded LCG). */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items]
  let state = seed >>> 0
  for (let i = out.length - 1; i > 0; i--) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    const j = state % (i + 1)
    ;[out[i], out[j]] = [out[j] as T, out[i] as T]
  }
  return out
}

test('5000 concurrent writes at random offsets over maxRequests 8 all land, and 5000 concurrent reads return them byte for byte', async (t) => {
  const file = fileWith(t)
  const ctx = openContext(t, { maxRequests: 8 })
  t.is(ctx.maxRequests, 8)
  // Records of 1..200 bytes laid end to end, written and read in a shuffled order so the
  // offsets jump around the file; no two records overlap.
  const count = 5000
  const records: Array<{ offset: number; data: Buffer }> = []
  let offset = 0
  for (let i = 0; i < count; i++) {
    const data = pattern(1 + ((i * 7919) % 200), i + 1)
    records.push({ offset, data })
    offset += data.length
  }
  const total = offset

  const writeOrder = shuffled(records, 42)
  const written = await Promise.all(writeOrder.map((record) => ctx.write(record.data, file.fd, record.offset)))
  writeOrder.forEach((record, i) => {
    if (written[i] !== record.data.length) t.fail(`write at ${record.offset} resolved ${written[i]}, not ${record.data.length}`)
  })
  const expected = Buffer.concat(records.map((record) => record.data))
  t.is(expected.length, total)
  t.true(file.content().equals(expected), 'the file holds every record at its offset')

  // Half the reads resolve Buffers, half fill views; bigint offsets for every third one.
  const readOrder = shuffled(records, 7)
  const reads = readOrder.map((record, i): Promise<Buffer> => {
    const at = i % 3 === 0 ? BigInt(record.offset) : record.offset
    if (i % 2 === 0) return ctx.read(record.data.length, file.fd, at)
    const target = Buffer.alloc(record.data.length)
    return ctx.readInto(target, file.fd, at).then((n) => target.subarray(0, n))
  })
  const results = await Promise.all(reads)
  let mismatches = 0
  readOrder.forEach((record, i) => {
    if (!results[i]?.equals(record.data)) mismatches++
  })
  t.is(mismatches, 0, 'every read returns the bytes written at its offset')
})

test('more operations than maxRequests at once never reject with EAGAIN: they wait their turn', async (t) => {
  const content = pattern(4096, 9)
  const file = fileWith(t, content)
  const ctx = openContext(t)
  t.is(ctx.maxRequests, 512)
  const count = 3000
  const results = await Promise.allSettled(Array.from({ length: count }, (_, i) => ctx.read(16, file.fd, (i * 16) % 4096)))
  const rejected = results.filter((result) => result.status === 'rejected')
  t.is(rejected.length, 0, `rejections: ${rejected.slice(0, 3).map((r) => String((r as PromiseRejectedResult).reason)).join('; ')}`)
  let mismatches = 0
  results.forEach((result, i) => {
    const at = (i * 16) % 4096
    if (result.status !== 'fulfilled' || !result.value.equals(content.subarray(at, at + 16))) mismatches++
  })
  t.is(mismatches, 0)
})

test('with maxRequests 1 operations run one at a time in the order they were started', async (t) => {
  const file = fileWith(t)
  const ctx = openContext(t, { maxRequests: 1 })
  t.is(ctx.maxRequests, 1)
  // Every write goes to the same bytes: only a strict one-at-a-time FIFO order leaves the
  // last one there, and settles them in order.
  const settled: number[] = []
  const writes = Array.from({ length: 50 }, (_, i) =>
    ctx.write(`write-${String(i).padStart(3, '0')}`, file.fd, 0).then((n) => {
      settled.push(i)
      return n
    }),
  )
  const counts = await Promise.all(writes)
  t.true(counts.every((n) => n === 9))
  t.deepEqual(
    settled,
    Array.from({ length: 50 }, (_, i) => i),
  )
  t.is(file.content().toString(), 'write-049')
})

test('a queued read after a queued write sees that write when maxRequests is 1', async (t) => {
  const file = fileWith(t, 'old old old')
  const ctx = openContext(t, { maxRequests: 1 })
  const [, , bytes] = await Promise.all([ctx.write('new', file.fd, 0), ctx.write('NEW', file.fd, 8), ctx.read(11, file.fd, 0)])
  t.is(bytes.toString(), 'new old NEW')
})

test('operations on two contexts at once are independent', async (t) => {
  const a = fileWith(t, pattern(8192, 1))
  const b = fileWith(t)
  const first = openContext(t, { maxRequests: 4 })
  const second = openContext(t, { maxRequests: 4 })
  const data = pattern(8192, 2)
  const [read, ...written] = await Promise.all([
    first.read(8192, a.fd, 0),
    ...Array.from({ length: 8 }, (_, i) => second.write(data.subarray(i * 1024, (i + 1) * 1024), b.fd, i * 1024)),
  ])
  t.true((read as Buffer).equals(pattern(8192, 1)))
  t.deepEqual(written, Array.from({ length: 8 }, () => 1024))
  t.true(b.content().equals(data))
})
