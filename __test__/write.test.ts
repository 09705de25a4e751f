// write, fsync and fdsync: write resolves the bytes it wrote, a string goes out as UTF-8,
// any ArrayBufferView is written as the bytes it covers, offsets may be bigints; the
// syncs resolve undefined.
import { readSync } from 'node:fs'

import test from 'ava'

import { bytesOf, fileWith, openContext, pattern } from './helpers'

test('write resolves the number of bytes written and they land at the offset', async (t) => {
  const file = fileWith(t, 'aaaaaaaaaa')
  const ctx = openContext(t)
  const written = await ctx.write(Buffer.from('XYZ'), file.fd, 4)
  t.is(written, 3)
  t.is(file.content().toString(), 'aaaaXYZaaa')
})

test('write of a string writes it as UTF-8 and resolves its length in bytes', async (t) => {
  const file = fileWith(t)
  const ctx = openContext(t)
  const text = 'héllo → wörld, 日本語, 🦀🚀'
  const written = await ctx.write(text, file.fd, 0)
  t.is(written, Buffer.byteLength(text, 'utf8'))
  t.true(written > text.length, 'multi-byte characters count as several bytes')
  t.true(file.content().equals(Buffer.from(text, 'utf8')))
  t.is((await ctx.read(written, file.fd, 0)).toString('utf8'), text)
})

test('write of an empty string resolves 0 and leaves the file unchanged', async (t) => {
  const file = fileWith(t, 'unchanged')
  const ctx = openContext(t)
  t.is(await ctx.write('', file.fd, 3), 0)
  t.is(file.content().toString(), 'unchanged')
})

test('write of an empty Buffer resolves 0 and leaves the file unchanged', async (t) => {
  const file = fileWith(t, 'unchanged')
  const ctx = openContext(t)
  t.is(await ctx.write(Buffer.alloc(0), file.fd, 0), 0)
  t.is(file.content().toString(), 'unchanged')
})

test('write of a Uint8Array writes its bytes', async (t) => {
  const file = fileWith(t)
  const ctx = openContext(t)
  const data = new Uint8Array([1, 2, 3, 250, 251, 252])
  t.is(await ctx.write(data, file.fd, 0), 6)
  t.true(file.content().equals(Buffer.from(data)))
})

test('write of other TypedArrays and a DataView writes the bytes each view covers', async (t) => {
  const file = fileWith(t)
  const ctx = openContext(t)
  const source = pattern(256, 5)
  const backing = source.buffer.slice(source.byteOffset, source.byteOffset + source.byteLength)
  // Each view starts partway into the same ArrayBuffer and covers 16 bytes.
  const views: ArrayBufferView[] = [
    new Uint16Array(backing, 16, 8),
    new Int32Array(backing, 64, 4),
    new Float64Array(backing, 128, 2),
    new DataView(backing, 200, 16),
  ]
  const written = await Promise.all(views.map((view, i) => ctx.write(view, file.fd, i * 16)))
  t.deepEqual(written, [16, 16, 16, 16])
  const expected = Buffer.concat(views.map(bytesOf))
  t.true(file.content().equals(expected))
})

test('write of a Buffer that is a slice of a larger one writes only the slice', async (t) => {
  const file = fileWith(t)
  const ctx = openContext(t)
  const whole = Buffer.from('0123456789')
  t.is(await ctx.write(whole.subarray(3, 6), file.fd, 0), 3)
  t.is(file.content().toString(), '345')
})

test('write past end of file extends it with a zero-filled hole', async (t) => {
  const file = fileWith(t, 'abc')
  const ctx = openContext(t)
  t.is(await ctx.write('xyz', file.fd, 10), 3)
  t.true(file.content().equals(Buffer.concat([Buffer.from('abc'), Buffer.alloc(7), Buffer.from('xyz')])))
})

test('write at a bigint offset lands where the same number offset reads it', async (t) => {
  const file = fileWith(t)
  const ctx = openContext(t)
  const offset = 2n ** 32n + 5n
  t.is(await ctx.write('beyond 4 GiB', file.fd, offset), 12)
  t.is((await ctx.read(12, file.fd, Number(offset))).toString(), 'beyond 4 GiB')
  const check = Buffer.alloc(12)
  t.is(readSync(file.fd, check, 0, 12, Number(offset)), 12)
  t.is(check.toString(), 'beyond 4 GiB')
  t.true((await ctx.read(16, file.fd, 0n)).equals(Buffer.alloc(16)), 'the start of the file is a hole')
})

test('writes at a bigint and a number offset are the same write', async (t) => {
  const file = fileWith(t, '..........')
  const ctx = openContext(t)
  await Promise.all([ctx.write('A', file.fd, 1n), ctx.write('B', file.fd, 8)])
  t.is(file.content().toString(), '.A......B.')
})

test('a 16 MiB write and read round trip byte for byte', async (t) => {
  const file = fileWith(t)
  const ctx = openContext(t)
  const data = pattern(16 * 1024 * 1024, 16)
  t.is(await ctx.write(data, file.fd, 0), data.length)
  const back = await ctx.read(data.length, file.fd, 0)
  t.is(back.length, data.length)
  t.true(back.equals(data))
  const into = Buffer.alloc(data.length)
  t.is(await ctx.readInto(into, file.fd, 0), data.length)
  t.true(into.equals(data))
})

test('fsync resolves undefined and the written data is there', async (t) => {
  const file = fileWith(t)
  const ctx = openContext(t)
  await ctx.write('durable', file.fd, 0)
  t.is(await ctx.fsync(file.fd), undefined)
  t.is(file.content().toString(), 'durable')
})

test('fdsync resolves undefined and the written data is there', async (t) => {
  const file = fileWith(t)
  const ctx = openContext(t)
  await ctx.write('durable', file.fd, 0)
  t.is(await ctx.fdsync(file.fd), undefined)
  t.is(file.content().toString(), 'durable')
})

test('fsync and fdsync of a file with nothing written resolve undefined', async (t) => {
  const file = fileWith(t, 'x')
  const ctx = openContext(t)
  t.deepEqual(await Promise.all([ctx.fsync(file.fd), ctx.fdsync(file.fd)]), [undefined, undefined])
})

test('fsync of a read-only descriptor resolves undefined', async (t) => {
  const file = fileWith(t, 'x', 'r')
  const ctx = openContext(t)
  t.is(await ctx.fsync(file.fd), undefined)
})
