// read and readInto: the bytes at an offset, short at end of file, empty past it, never
// padded; readInto fills any ArrayBufferView from its start and resolves the count.
import test from 'ava'

import { bytesOf, directoryFd, field, fileWith, openContext, pattern } from './helpers'

const TEXT = 'The quick brown fox jumps over the lazy dog'

test('read resolves a Buffer holding exactly the bytes at the offset', async (t) => {
  const file = fileWith(t, TEXT)
  const ctx = openContext(t)
  const bytes = await ctx.read(5, file.fd, 4)
  t.true(Buffer.isBuffer(bytes))
  t.is(bytes.length, 5)
  t.is(bytes.toString(), 'quick')
})

test('read at offset 0 of the whole file resolves the whole file', async (t) => {
  const content = pattern(10_000, 7)
  const file = fileWith(t, content)
  const ctx = openContext(t)
  const bytes = await ctx.read(content.length, file.fd, 0)
  t.true(bytes.equals(content))
})

test('read that reaches end of file resolves a short Buffer, never padded', async (t) => {
  const file = fileWith(t, TEXT)
  const ctx = openContext(t)
  const bytes = await ctx.read(4096, file.fd, TEXT.length - 8)
  t.true(Buffer.isBuffer(bytes))
  t.is(bytes.length, 8)
  t.is(bytes.byteLength, 8)
  t.is(bytes.toString(), 'lazy dog')
})

test('read exactly at end of file resolves an empty Buffer', async (t) => {
  const file = fileWith(t, TEXT)
  const ctx = openContext(t)
  const bytes = await ctx.read(16, file.fd, TEXT.length)
  t.true(Buffer.isBuffer(bytes))
  t.is(bytes.length, 0)
})

test('read past end of file resolves an empty Buffer', async (t) => {
  const file = fileWith(t, TEXT)
  const ctx = openContext(t)
  const bytes = await ctx.read(16, file.fd, 1_000_000)
  t.true(Buffer.isBuffer(bytes))
  t.is(bytes.length, 0)
})

test('read of an empty file resolves an empty Buffer', async (t) => {
  const file = fileWith(t, '')
  const ctx = openContext(t)
  const bytes = await ctx.read(4096, file.fd, 0)
  t.true(Buffer.isBuffer(bytes))
  t.is(bytes.length, 0)
})

test('read of zero bytes resolves an empty Buffer', async (t) => {
  const file = fileWith(t, TEXT)
  const ctx = openContext(t)
  const bytes = await ctx.read(0, file.fd, 0)
  t.true(Buffer.isBuffer(bytes))
  t.is(bytes.length, 0)
})

test('read takes a bigint offset and reads the same bytes as the number offset', async (t) => {
  const file = fileWith(t, TEXT)
  const ctx = openContext(t)
  const [fromBigint, fromNumber] = await Promise.all([ctx.read(5, file.fd, 10n), ctx.read(5, file.fd, 10)])
  t.is(fromBigint.toString(), 'brown')
  t.true(fromBigint.equals(fromNumber))
})

test('read at a huge bigint offset past end of file resolves an empty Buffer', async (t) => {
  const file = fileWith(t, TEXT)
  const ctx = openContext(t)
  const bytes = await ctx.read(16, file.fd, 2n ** 62n)
  t.true(Buffer.isBuffer(bytes))
  t.is(bytes.length, 0)
})

test('read at the largest bigint offset (2^63 - 1) of zero bytes resolves an empty Buffer', async (t) => {
  const file = fileWith(t, TEXT)
  const ctx = openContext(t)
  const bytes = await ctx.read(0, file.fd, 2n ** 63n - 1n)
  t.is(bytes.length, 0)
})

test('read at the largest safe number offset resolves an empty Buffer', async (t) => {
  const file = fileWith(t, TEXT)
  const ctx = openContext(t)
  const bytes = await ctx.read(1, file.fd, Number.MAX_SAFE_INTEGER)
  t.is(bytes.length, 0)
})

test('concurrent reads of one file each resolve their own bytes', async (t) => {
  const content = pattern(64 * 1024, 3)
  const file = fileWith(t, content)
  const ctx = openContext(t)
  const offsets = Array.from({ length: 64 }, (_, i) => (i * 997) % (content.length - 100))
  const results = await Promise.all(offsets.map((offset) => ctx.read(100, file.fd, offset)))
  results.forEach((bytes, i) => {
    const offset = offsets[i] as number
    t.true(bytes.equals(content.subarray(offset, offset + 100)), `read #${i} at ${offset}`)
  })
})

test('readInto fills a Buffer from its start and resolves the count', async (t) => {
  const file = fileWith(t, TEXT)
  const ctx = openContext(t)
  const target = Buffer.alloc(9, 0xee)
  const count = await ctx.readInto(target, file.fd, 4)
  t.is(count, 9)
  t.is(target.toString(), 'quick bro')
})

test('readInto fills a Uint8Array from its start and resolves the count', async (t) => {
  const file = fileWith(t, TEXT)
  const ctx = openContext(t)
  const target = new Uint8Array(5)
  const count = await ctx.readInto(target, file.fd, 16)
  t.is(count, 5)
  t.is(Buffer.from(target).toString(), 'fox j')
})

test('readInto fills other TypedArrays byte for byte and resolves the count in bytes', async (t) => {
  const content = pattern(64, 11)
  const file = fileWith(t, content)
  const ctx = openContext(t)
  const targets = [new Uint16Array(8), new Int32Array(4), new Float64Array(2), new BigUint64Array(2), new Float32Array(4)]
  const counts = await Promise.all(targets.map((target) => ctx.readInto(target, file.fd, 8)))
  targets.forEach((target, i) => {
    t.is(counts[i], 16, `${target.constructor.name} count`)
    t.true(bytesOf(target).equals(content.subarray(8, 24)), `${target.constructor.name} bytes`)
  })
})

test('readInto fills a DataView from its start and resolves the count', async (t) => {
  const file = fileWith(t, TEXT)
  const ctx = openContext(t)
  const view = new DataView(new ArrayBuffer(3))
  const count = await ctx.readInto(view, file.fd, 0)
  t.is(count, 3)
  t.is(bytesOf(view).toString(), 'The')
})

test('readInto writes only inside a view that starts partway into its ArrayBuffer', async (t) => {
  const file = fileWith(t, TEXT)
  const ctx = openContext(t)
  const backing = new ArrayBuffer(32)
  new Uint8Array(backing).fill(0xee)
  const view = new Uint8Array(backing, 8, 5)
  const count = await ctx.readInto(view, file.fd, 4)
  t.is(count, 5)
  t.is(Buffer.from(view).toString(), 'quick')
  const all = new Uint8Array(backing)
  t.true(all.subarray(0, 8).every((byte) => byte === 0xee), 'bytes before the view untouched')
  t.true(all.subarray(13).every((byte) => byte === 0xee), 'bytes after the view untouched')
})

test('readInto that reaches end of file resolves the short count and leaves the rest of the view untouched', async (t) => {
  const file = fileWith(t, TEXT)
  const ctx = openContext(t)
  const target = Buffer.alloc(64, 0xee)
  const count = await ctx.readInto(target, file.fd, TEXT.length - 3)
  t.is(count, 3)
  t.is(target.subarray(0, 3).toString(), 'dog')
  t.true(target.subarray(3).every((byte) => byte === 0xee))
})

test('readInto past end of file resolves 0 and leaves the view untouched', async (t) => {
  const file = fileWith(t, TEXT)
  const ctx = openContext(t)
  const target = Buffer.alloc(16, 0xee)
  t.is(await ctx.readInto(target, file.fd, 10_000n), 0)
  t.true(target.every((byte) => byte === 0xee))
})

test('readInto into an empty view resolves 0', async (t) => {
  const file = fileWith(t, TEXT)
  const ctx = openContext(t)
  t.is(await ctx.readInto(new Uint8Array(0), file.fd, 0), 0)
})

test('thousands of reads at once each settle with their own bytes, error or short read', async (t) => {
  // More completions than the addon hands the facade in one delivery (512): a result given
  // to the wrong Promise shows as wrong bytes, a wrong length or a misplaced error.
  const count = 1500
  const content = pattern(64 * count, 3)
  const file = fileWith(t, content)
  const dir = directoryFd(t)
  const ctx = openContext(t, { maxRequests: 2048 })
  const outcomes = await Promise.all(
    Array.from({ length: count }, async (_, i): Promise<string> => {
      if (i % 7 === 3) return ctx.read(64, dir, 0).then(() => 'resolved', (error: unknown) => String(field(error, 'code')))
      if (i % 5 === 1) {
        const tail = await ctx.read(128, file.fd, content.length - 32 - (i % 16))
        return tail.equals(content.subarray(content.length - 32 - (i % 16))) ? 'tail' : `wrong tail of ${tail.length} bytes`
      }
      const target = Buffer.alloc(64)
      const n = await ctx.readInto(target, file.fd, i * 64)
      return n === 64 && target.equals(content.subarray(i * 64, i * 64 + 64)) ? 'block' : `wrong block (${n} bytes)`
    }),
  )
  outcomes.forEach((outcome, i) => {
    const expected = i % 7 === 3 ? 'EISDIR' : i % 5 === 1 ? 'tail' : 'block'
    if (outcome !== expected) t.fail(`operation ${i}: ${outcome}, expected ${expected}`)
  })
  t.is(outcomes.length, count)
})
