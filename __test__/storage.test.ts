// The storage-engine operations: readv/writev against node:fs's own readvSync/writevSync,
// fallocate/ftruncate against fstat (sizes, block counts) and the bytes read back,
// syncRange/fadvise and every operation's errors, arguments, links and aborts. Natively
// on uring, linux and thread; on js readv, writev and ftruncate go through node:fs and
// fallocate, syncRange and fadvise reject with ERR_CAIO_UNSUPPORTED.
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readSync, readvSync, writeSync, writevSync } from 'node:fs'

import test from 'ava'
import type { ExecutionContext } from 'ava'

import type { BatchOp, Context } from '../index'
import { collectGarbage, directoryFd, fifo, field, fileWith, NEVER_OPEN_FD, nextTurn, openContext, outcome, pattern, Random, rejectsWithAbortError, rejectsWithArgumentError, rejectsWithSystemError, within } from './helpers'

const BLOCK = 4096

/** What node:fs's own call throws, as code and syscall. */
function nodeFailure(call: () => unknown): { code: unknown; syscall: unknown } {
  try {
    call()
  } catch (error) {
    return { code: field(error, 'code'), syscall: field(error, 'syscall') }
  }
  throw new Error('node:fs did not fail')
}

/** `count` views of random kinds and sizes (some empty, some in the middle of larger buffers) over fresh memory. */
function randomViews(random: Random, count: number): NodeJS.ArrayBufferView[] {
  const views: NodeJS.ArrayBufferView[] = []
  for (let i = 0; i < count; i++) {
    const size = random.chance(0.15) ? 0 : 1 + random.below(3000)
    const backing = new ArrayBuffer(size + 16)
    const start = random.below(9)
    switch (random.below(4)) {
      case 0:
        views.push(Buffer.from(backing, start, size))
        break
      case 1:
        views.push(new Uint8Array(backing, start, size))
        break
      case 2:
        views.push(new DataView(backing, start, size))
        break
      default:
        // A Float64Array needs an aligned start and a whole number of elements.
        views.push(new Float64Array(backing, 8, Math.floor(size / 8)))
    }
  }
  return views
}

const bytes = (view: ArrayBufferView): Buffer => Buffer.from(view.buffer, view.byteOffset, view.byteLength)

/** Copies of `views` with the same layout, filled with `fill`. */
function twins(views: readonly ArrayBufferView[], fill: number): Uint8Array[] {
  return views.map((view) => new Uint8Array(view.byteLength).fill(fill))
}

/** Whether the operation `call` started is one node:fs has no call for, on the backend under test. */
function unsupportedHere(ctx: Context): boolean {
  return ctx.backend === 'js'
}

/** Awaits `promise`, which must reject with ERR_CAIO_UNSUPPORTED naming the js backend and the call. */
async function rejectsUnsupported(t: ExecutionContext, promise: Promise<unknown>, syscall: string): Promise<void> {
  const error = await t.throwsAsync(promise, { code: 'ERR_CAIO_UNSUPPORTED' }, `${syscall} on js`)
  t.is(field(error, 'backend'), 'js')
  t.is(field(error, 'syscall'), syscall)
  t.regex(error?.message ?? '', /js backend/)
}

test('writev writes its buffers in order at the offset, byte for byte and count for count as fs.writevSync does', async (t) => {
  const ctx = openContext(t)
  const random = new Random(16)
  for (let round = 0; round < 12; round++) {
    const base = pattern(20_000, round)
    const ours = fileWith(t, base)
    const theirs = fileWith(t, base)
    const views = randomViews(random, 1 + random.below(12))
    const offset = random.below(24_000)
    const written = await ctx.writev(views, ours.fd, round % 2 === 0 ? offset : BigInt(offset))
    t.is(written, writevSync(theirs.fd, views, offset), `round ${round}: the count`)
    t.true(ours.content().equals(theirs.content()), `round ${round}: the file`)
  }
})

test('readv fills its buffers in order as fs.readvSync does: short at end of file, empty past it, nothing beyond what was read touched', async (t) => {
  const ctx = openContext(t)
  const random = new Random(61)
  const content = pattern(30_000, 7)
  const file = fileWith(t, content)
  for (let round = 0; round < 16; round++) {
    const views = randomViews(random, 1 + random.below(10))
    for (const view of views) bytes(view).fill(0xaa)
    const expected = twins(views, 0xaa)
    const offset = round === 15 ? 40_000 : random.below(31_000)
    const count = await ctx.readv(views, file.fd, offset)
    t.is(count, readvSync(file.fd, expected, offset), `round ${round}: the count`)
    views.forEach((view, i) => t.true(bytes(view).equals(expected[i] as Uint8Array), `round ${round}: buffer ${i}`))
  }
})

test('readv and writev take 1024 buffers and refuse 1025 with ERR_OUT_OF_RANGE; a bigint offset works', async (t) => {
  const ctx = openContext(t)
  const file = fileWith(t)
  const singles = Array.from({ length: 1024 }, (_, i) => Buffer.from([i & 0xff]))
  t.is(await ctx.writev(singles, file.fd, 4n), 1024)
  const expected = Buffer.concat([Buffer.alloc(4), Buffer.concat(singles)])
  t.true(file.content().equals(expected))
  const back = Array.from({ length: 1024 }, () => Buffer.alloc(1))
  t.is(await ctx.readv(back, file.fd, 4n), 1024)
  t.true(Buffer.concat(back).equals(Buffer.concat(singles)))
  const tooMany = [...back, Buffer.alloc(1)]
  await rejectsWithArgumentError(t, () => ctx.readv(tooMany, file.fd, 0), 'ERR_OUT_OF_RANGE', RangeError, 'readv of 1025 buffers')
  await rejectsWithArgumentError(t, () => ctx.writev(tooMany, file.fd, 0), 'ERR_OUT_OF_RANGE', RangeError, 'writev of 1025 buffers')
})

test('readv and writev of no buffers resolve 0 and still check the descriptor', async (t) => {
  const ctx = openContext(t)
  const file = fileWith(t, 'abc')
  t.is(await ctx.readv([], file.fd, 0), 0)
  t.is(await ctx.writev([], file.fd, 1), 0)
  t.is(file.content().toString(), 'abc')
  await rejectsWithSystemError(t, ctx.readv([], NEVER_OPEN_FD, 0), 'EBADF', 'read')
  await rejectsWithSystemError(t, ctx.writev([], NEVER_OPEN_FD, 0), 'EBADF', 'write')
})

test('readv and writev fail as node:fs does: EBADF (syscall read / write), EISDIR on a directory, EBADF writing a read-only descriptor', async (t) => {
  const ctx = openContext(t)
  const dir = directoryFd(t)
  const readOnly = fileWith(t, 'data', 'r')
  const cases: Array<[string, () => Promise<unknown>, () => unknown]> = [
    ['readv on a descriptor never opened', () => ctx.readv([Buffer.alloc(4)], NEVER_OPEN_FD, 0), () => readvSync(NEVER_OPEN_FD, [Buffer.alloc(4)], 0)],
    ['writev on a descriptor never opened', () => ctx.writev([Buffer.from('x')], NEVER_OPEN_FD, 0), () => writevSync(NEVER_OPEN_FD, [Buffer.from('x')], 0)],
    ['readv on a directory', () => ctx.readv([Buffer.alloc(4)], dir, 0), () => readvSync(dir, [Buffer.alloc(4)], 0)],
    ['writev on a read-only descriptor', () => ctx.writev([Buffer.from('x')], readOnly.fd, 0), () => writevSync(readOnly.fd, [Buffer.from('x')], 0)],
  ]
  for (const [, ours, theirs] of cases) {
    const expected = nodeFailure(theirs)
    await rejectsWithSystemError(t, ours(), String(expected.code), String(expected.syscall))
  }
  t.is(readOnly.content().toString(), 'data')
})

test('fallocate preallocates: with keepSize the blocks grow and the size stays, without it the size grows to offset + length and reads as zeros', async (t) => {
  const ctx = openContext(t)
  const file = fileWith(t, 'head')
  if (unsupportedHere(ctx)) {
    await rejectsUnsupported(t, ctx.fallocate(file.fd, 0, 1 << 20, { keepSize: true }), 'fallocate')
    t.is(fstatSync(file.fd).size, 4, 'nothing changed')
    return
  }
  const before = fstatSync(file.fd)
  t.is(await ctx.fallocate(file.fd, 0, 1 << 20, { keepSize: true }), undefined)
  const kept = fstatSync(file.fd)
  t.is(kept.size, 4, 'keepSize keeps the size')
  t.true(kept.blocks - before.blocks >= (1 << 20) / 512 - 8, `1 MiB allocated: ${before.blocks} → ${kept.blocks} blocks`)
  await ctx.fallocate(file.fd, BLOCK, 3n * BigInt(BLOCK))
  t.is(fstatSync(file.fd).size, 4 * BLOCK, 'a plain fallocate grows the file')
  const expected = Buffer.alloc(4 * BLOCK)
  expected.write('head')
  t.true(file.content().equals(expected), 'what it added reads as zeros')
})

test('fallocate punchHole with keepSize frees a written range, which reads back as zeros; zeroRange zeroes in place; sizes stay', async (t) => {
  const ctx = openContext(t)
  const content = pattern(16 * BLOCK, 3)
  const file = fileWith(t, content)
  if (unsupportedHere(ctx)) {
    await rejectsUnsupported(t, ctx.fallocate(file.fd, BLOCK, BLOCK, { punchHole: true, keepSize: true }), 'fallocate')
    t.true(file.content().equals(content), 'nothing changed')
    return
  }
  await ctx.fdsync(file.fd)
  const before = fstatSync(file.fd).blocks
  await ctx.fallocate(file.fd, 4 * BLOCK, 8 * BLOCK, { punchHole: true, keepSize: true })
  const after = fstatSync(file.fd)
  t.is(after.size, 16 * BLOCK)
  t.true(before - after.blocks >= (8 * BLOCK) / 512, `the hole's blocks were freed: ${before} → ${after.blocks}`)
  const expected = Buffer.from(content)
  expected.fill(0, 4 * BLOCK, 12 * BLOCK)
  t.true(file.content().equals(expected), 'the hole reads as zeros, the rest as written')
  await ctx.fallocate(file.fd, 100, 200, { zeroRange: true })
  expected.fill(0, 100, 300)
  t.true(file.content().equals(expected), 'zeroRange zeroes exactly its bytes')
  t.is(fstatSync(file.fd).size, 16 * BLOCK)
})

test('fallocate collapseRange removes whole blocks and insertRange makes room, where the file system does them', async (t) => {
  const ctx = openContext(t)
  const content = pattern(4 * BLOCK, 5)
  const file = fileWith(t, content)
  if (unsupportedHere(ctx)) {
    await rejectsUnsupported(t, ctx.fallocate(file.fd, BLOCK, BLOCK, { collapseRange: true }), 'fallocate')
    return
  }
  const collapsed = await ctx.fallocate(file.fd, BLOCK, BLOCK, { collapseRange: true }).then(
    () => undefined,
    (error: unknown) => error,
  )
  if (collapsed !== undefined) {
    // tmpfs and others refuse both: the refusal is the kernel's, shaped as node:fs shapes one.
    t.is(field(collapsed, 'code'), 'ENOTSUP', String(collapsed))
    t.is(field(collapsed, 'syscall'), 'fallocate')
    t.true(file.content().equals(content), 'a refused collapse changed nothing')
    t.log('this file system does neither collapseRange nor insertRange')
    return
  }
  const expected = Buffer.concat([content.subarray(0, BLOCK), content.subarray(2 * BLOCK)])
  t.true(file.content().equals(expected), 'the second block is gone, the rest moved down')
  await ctx.fallocate(file.fd, 2 * BLOCK, BLOCK, { insertRange: true })
  const inserted = Buffer.concat([expected.subarray(0, 2 * BLOCK), Buffer.alloc(BLOCK), expected.subarray(2 * BLOCK)])
  t.true(file.content().equals(inserted), 'a zero block inserted, the rest moved up')
  await rejectsWithSystemError(t, ctx.fallocate(file.fd, 100, BLOCK, { collapseRange: true }), 'EINVAL', 'fallocate')
})

test('fallocate fails as the kernel says: EBADF, punchHole without keepSize (ENOTSUP), a length of 0 (EINVAL), all with syscall fallocate', async (t) => {
  const ctx = openContext(t)
  const file = fileWith(t, 'data')
  if (unsupportedHere(ctx)) {
    await rejectsUnsupported(t, ctx.fallocate(NEVER_OPEN_FD, 0, 10), 'fallocate')
    return
  }
  await rejectsWithSystemError(t, ctx.fallocate(NEVER_OPEN_FD, 0, 10), 'EBADF', 'fallocate')
  await rejectsWithSystemError(t, ctx.fallocate(file.fd, 0, BLOCK, { punchHole: true }), 'ENOTSUP', 'fallocate')
  await rejectsWithSystemError(t, ctx.fallocate(file.fd, 0, 0), 'EINVAL', 'fallocate')
  t.is(file.content().toString(), 'data')
})

test('ftruncate cuts and extends as fs.ftruncateSync does (zeros past the old end), numbers and bigints', async (t) => {
  const ctx = openContext(t)
  const ours = fileWith(t, 'hello world')
  const theirs = fileWith(t, 'hello world')
  for (const length of [5, 5000, 0n, 70_000n, 3]) {
    t.is(await ctx.ftruncate(ours.fd, length), undefined)
    ftruncateSync(theirs.fd, Number(length))
    t.is(fstatSync(ours.fd).size, Number(length))
    t.true(ours.content().equals(theirs.content()), `ftruncate to ${length}`)
  }
  await rejectsWithSystemError(t, ctx.ftruncate(NEVER_OPEN_FD, 0), 'EBADF', 'ftruncate')
  const readOnly = fileWith(t, 'keep', 'r')
  const expected = nodeFailure(() => ftruncateSync(readOnly.fd, 1))
  await rejectsWithSystemError(t, ctx.ftruncate(readOnly.fd, 1), String(expected.code), 'ftruncate')
  t.is(readOnly.content().toString(), 'keep')
})

test('syncRange with every flag combination resolves and leaves the data as written; its errors name sync_file_range', async (t) => {
  const ctx = openContext(t)
  const content = pattern(64 * 1024, 9)
  const file = fileWith(t)
  await ctx.write(content, file.fd, 0)
  const combinations = [undefined, {}, { write: true }, { waitBefore: true, write: true, waitAfter: true }, { waitAfter: true }, { write: false, waitBefore: false }]
  for (const options of combinations) {
    const synced = ctx.syncRange(file.fd, 0, 0, options)
    if (unsupportedHere(ctx)) await rejectsUnsupported(t, synced, 'sync_file_range')
    else t.is(await synced, undefined, JSON.stringify(options))
  }
  t.true(file.content().equals(content))
  if (unsupportedHere(ctx)) return
  t.is(await ctx.syncRange(file.fd, 4096n, 2n ** 40n, { write: true, waitAfter: true }), undefined, 'a length past 32 bits')
  await rejectsWithSystemError(t, ctx.syncRange(NEVER_OPEN_FD, 0, 0), 'EBADF', 'sync_file_range')
  await rejectsWithSystemError(t, ctx.syncRange(file.fd, 2n ** 62n, 2n ** 62n), 'EINVAL', 'sync_file_range')
  await rejectsWithSystemError(t, ctx.syncRange(fifo(t).fd, 0, 0), 'ESPIPE', 'sync_file_range')
})

test('fadvise takes each of the six advices; a pipe answers ESPIPE and a bad descriptor EBADF, with syscall fadvise', async (t) => {
  const ctx = openContext(t)
  const file = fileWith(t, pattern(8192, 2))
  for (const advice of ['normal', 'sequential', 'random', 'noreuse', 'willneed', 'dontneed'] as const) {
    const advised = ctx.fadvise(file.fd, 0, 0, advice)
    if (unsupportedHere(ctx)) await rejectsUnsupported(t, advised, 'fadvise')
    else t.is(await advised, undefined, advice)
  }
  if (unsupportedHere(ctx)) return
  t.is(await ctx.fadvise(file.fd, 0, 2n ** 40n, 'willneed'), undefined, 'a length past 32 bits')
  await rejectsWithSystemError(t, ctx.fadvise(NEVER_OPEN_FD, 0, 0, 'normal'), 'EBADF', 'fadvise')
  await rejectsWithSystemError(t, ctx.fadvise(fifo(t).fd, 0, 0, 'willneed'), 'ESPIPE', 'fadvise')
  const back = Buffer.alloc(8192)
  t.is(readSync(file.fd, back, 0, 8192, 0), 8192)
  t.true(back.equals(pattern(8192, 2)), 'dontneed dropped nothing that was not on disk')
})

test('bad arguments reject with Node’s error codes before anything runs, for the methods and the batch entries alike', async (t) => {
  const ctx = openContext(t)
  const file = fileWith(t, 'untouched')
  const buffer = Buffer.alloc(4)
  const cases: Array<[string, () => Promise<unknown>, string, typeof TypeError | typeof RangeError]> = [
    ['readv of a non-array', () => ctx.readv(buffer as unknown as Buffer[], file.fd, 0), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['writev of a number among buffers', () => ctx.writev([buffer, 7 as unknown as Buffer], file.fd, 0), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['writev of a string among buffers', () => ctx.writev(['x' as unknown as Buffer], file.fd, 0), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['readv at a negative offset', () => ctx.readv([buffer], file.fd, -1), 'ERR_OUT_OF_RANGE', RangeError],
    ['writev on fd -1', () => ctx.writev([buffer], -1, 0), 'ERR_OUT_OF_RANGE', RangeError],
    ['fallocate of a string length', () => ctx.fallocate(file.fd, 0, '10' as unknown as number), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['fallocate of a negative length', () => ctx.fallocate(file.fd, 0, -1), 'ERR_OUT_OF_RANGE', RangeError],
    ['fallocate of a fractional offset', () => ctx.fallocate(file.fd, 0.5, 10), 'ERR_OUT_OF_RANGE', RangeError],
    ['fallocate with keepSize "yes"', () => ctx.fallocate(file.fd, 0, 10, { keepSize: 'yes' as unknown as boolean }), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['fallocate with null options', () => ctx.fallocate(file.fd, 0, 10, null as unknown as undefined), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['ftruncate to 2^63', () => ctx.ftruncate(file.fd, 2n ** 63n), 'ERR_OUT_OF_RANGE', RangeError],
    ['ftruncate on a string fd', () => ctx.ftruncate('3' as unknown as number, 0), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['syncRange with waitAfter 1', () => ctx.syncRange(file.fd, 0, 0, { waitAfter: 1 as unknown as boolean }), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['syncRange with a bad priority', () => ctx.syncRange(file.fd, 0, 0, { priority: 9 }), 'ERR_OUT_OF_RANGE', RangeError],
    ['fadvise of an unknown advice', () => ctx.fadvise(file.fd, 0, 0, 'soon' as unknown as 'normal'), 'ERR_INVALID_ARG_VALUE', TypeError],
    ['fadvise with a non-signal', () => ctx.fadvise(file.fd, 0, 0, 'normal', { signal: {} as AbortSignal }), 'ERR_INVALID_ARG_TYPE', TypeError],
  ]
  for (const [what, call, code, kind] of cases) await rejectsWithArgumentError(t, call, code, kind, what)
  const entries: Array<[string, Record<string, unknown>, string, RegExp]> = [
    ['a readv without buffers', { op: 'readv', fd: file.fd, offset: 0 }, 'ERR_INVALID_ARG_TYPE', /ops\[1\]\.buffers/],
    ['a fallocate with a bad length', { op: 'fallocate', fd: file.fd, offset: 0, length: -5 }, 'ERR_OUT_OF_RANGE', /ops\[1\]\.length/],
    ['a fallocate with a bad flag', { op: 'fallocate', fd: file.fd, offset: 0, length: 5, zeroRange: 0 }, 'ERR_INVALID_ARG_TYPE', /ops\[1\]\.zeroRange/],
    ['a syncRange with a bad flag', { op: 'syncRange', fd: file.fd, offset: 0, length: 0, write: 'no' }, 'ERR_INVALID_ARG_TYPE', /ops\[1\]\.write/],
    ['a fadvise with a bad advice', { op: 'fadvise', fd: file.fd, offset: 0, length: 0, advice: 'never' }, 'ERR_INVALID_ARG_VALUE', /ops\[1\]\.advice/],
    ['an ftruncate without a length', { op: 'ftruncate', fd: file.fd }, 'ERR_INVALID_ARG_TYPE', /ops\[1\]\.length/],
    ['an unknown op', { op: 'punch', fd: file.fd }, 'ERR_INVALID_ARG_VALUE', /ops\[1\]\.op/],
  ]
  for (const [what, entry, code, names] of entries) {
    const ops = [{ op: 'write', fd: file.fd, offset: 0, data: 'CLOBBERED' }, entry] as unknown as BatchOp[]
    const error = await t.throwsAsync(ctx.submit(ops), { code }, what)
    t.regex(error?.message ?? '', names, `${what}: names the entry`)
  }
  t.is(file.content().toString(), 'untouched', 'nothing ran')
})

test('a batch of readv, writev and ftruncate linked in a chain runs in order: each sees what the one before did', async (t) => {
  const ctx = openContext(t)
  const file = fileWith(t, 'xxxxxxxxxxxxxxxx')
  const back = [Buffer.alloc(3), Buffer.alloc(10)]
  const entries = await ctx.submit([
    { op: 'writev', fd: file.fd, offset: 0, buffers: [Buffer.from('abc'), Buffer.from('defgh')], link: true },
    { op: 'ftruncate', fd: file.fd, length: 6, link: true },
    { op: 'readv', fd: file.fd, offset: 0n, buffers: back, link: true },
    { op: 'writev', fd: file.fd, offset: 6, buffers: [Buffer.from('!')] },
  ])
  t.deepEqual(entries, [8, 0, 6, 1])
  t.is(Buffer.concat(back).subarray(0, 6).toString(), 'abcdef')
  t.is(file.content().toString(), 'abcdef!')
})

test('write → syncRange → fdsync linked in a batch is a durable append: each succeeds, in order (js: syncRange unsupported, the fdsync behind it ECANCELED)', async (t) => {
  const ctx = openContext(t)
  const file = fileWith(t)
  const records = Array.from({ length: 8 }, (_, i) => Buffer.from(`record ${i}\n`))
  let offset = 0
  for (const record of records) {
    const entries = await ctx.submit([
      { op: 'write', fd: file.fd, offset, data: record, link: true },
      { op: 'syncRange', fd: file.fd, offset, length: record.length, link: true },
      { op: 'fdsync', fd: file.fd },
    ])
    t.is(entries[0], record.length)
    if (unsupportedHere(ctx)) {
      t.is(field(entries[1], 'code'), 'ERR_CAIO_UNSUPPORTED')
      t.is(field(entries[2], 'code'), 'ECANCELED')
    } else {
      t.deepEqual(entries.slice(1), [0, 0])
    }
    offset += record.length
  }
  t.true(file.content().equals(Buffer.concat(records)))
})

test('a failing fallocate cancels the rest of its chain with ECANCELED; the next chain of the batch runs', async (t) => {
  const ctx = openContext(t)
  const file = fileWith(t, 'original')
  const entries = await ctx.submit([
    { op: 'fallocate', fd: file.fd, offset: 0, length: 0, link: true },
    { op: 'write', fd: file.fd, offset: 0, data: 'CLOBBER!', link: true },
    { op: 'fdsync', fd: file.fd },
    { op: 'writev', fd: file.fd, offset: 8, buffers: [Buffer.from('+more')] },
  ])
  t.is(field(entries[0], 'code'), unsupportedHere(ctx) ? 'ERR_CAIO_UNSUPPORTED' : 'EINVAL')
  if (!unsupportedHere(ctx)) t.is(field(entries[0], 'syscall'), 'fallocate')
  t.is(field(entries[1], 'code'), 'ECANCELED')
  t.is(field(entries[2], 'code'), 'ECANCELED')
  t.is(entries[3], 5)
  t.is(file.content().toString(), 'original+more')
})

test('batch entries of every new operation resolve as their methods do (0 for those that move no bytes)', async (t) => {
  const ctx = openContext(t)
  const file = fileWith(t, pattern(BLOCK, 4))
  const entries = await ctx.submit([
    { op: 'fallocate', fd: file.fd, offset: 0, length: 2 * BLOCK, keepSize: true, priority: (2 << 13) | 4 },
    { op: 'syncRange', fd: file.fd, offset: 0, length: 0, waitAfter: true, write: true },
    { op: 'fadvise', fd: file.fd, offset: 0, length: BLOCK, advice: 'sequential' },
    { op: 'readv', fd: file.fd, offset: 10, buffers: [Buffer.alloc(6)], priority: (3 << 13) | 0 },
  ])
  if (unsupportedHere(ctx)) t.deepEqual(entries.slice(0, 3).map((e) => field(e, 'code')), ['ERR_CAIO_UNSUPPORTED', 'ERR_CAIO_UNSUPPORTED', 'ERR_CAIO_UNSUPPORTED'])
  else t.deepEqual(entries.slice(0, 3), [0, 0, 0])
  t.is(entries[3], 6)
  t.is(fstatSync(file.fd).size, BLOCK, 'keepSize in a batch keeps the size')
})

test('an already-aborted signal rejects each new operation with AbortError and nothing runs', async (t) => {
  const ctx = openContext(t)
  const file = fileWith(t, 'steady')
  const signal = AbortSignal.abort()
  await rejectsWithAbortError(t, ctx.writev([Buffer.from('XX')], file.fd, 0, { signal }), 'writev')
  await rejectsWithAbortError(t, ctx.readv([Buffer.alloc(2)], file.fd, 0, { signal }), 'readv')
  await rejectsWithAbortError(t, ctx.fallocate(file.fd, 0, 1 << 20, { signal }), 'fallocate')
  await rejectsWithAbortError(t, ctx.ftruncate(file.fd, 0, { signal }), 'ftruncate')
  await rejectsWithAbortError(t, ctx.syncRange(file.fd, 0, 0, { signal }), 'syncRange')
  await rejectsWithAbortError(t, ctx.fadvise(file.fd, 0, 0, 'dontneed', { signal }), 'fadvise')
  await rejectsWithAbortError(t, ctx.submit([{ op: 'ftruncate', fd: file.fd, length: 0 }], { signal }), 'a batch ftruncate')
  t.is(file.content().toString(), 'steady')
  t.is(fstatSync(file.fd).size, 6)
})

test('aborting queued storage operations rejects them with AbortError and they never run, while the others complete', async (t) => {
  const ctx = openContext(t, { maxRequests: 1 })
  const file = fileWith(t, '............')
  const controller = new AbortController()
  const first = ctx.writev([Buffer.from('AA'), Buffer.from('AA')], file.fd, 0)
  const victims = [
    ctx.ftruncate(file.fd, 2, { signal: controller.signal }),
    ctx.writev([Buffer.from('BBBB')], file.fd, 4, { signal: controller.signal }),
    ctx.fallocate(file.fd, 0, 1 << 20, { signal: controller.signal }),
  ]
  const last = ctx.writev([Buffer.from('CCCC')], file.fd, 8)
  controller.abort()
  for (const [i, victim] of victims.entries()) await rejectsWithAbortError(t, victim, `queued operation ${i}`)
  t.is(await first, 4)
  t.is(await last, 4)
  t.is(file.content().toString(), 'AAAA....CCCC')
})

test('the README’s log segment: preallocated with keepSize, appended with linked writev + fdsync, sealed with syncRange, fdsync and ftruncate', async (t) => {
  const ctx = openContext(t)
  const file = fileWith(t, '', 'w+')
  const SEGMENT = 1 << 20
  if (unsupportedHere(ctx)) {
    await rejectsUnsupported(t, ctx.fallocate(file.fd, 0, SEGMENT, { keepSize: true }), 'fallocate')
    return
  }
  await ctx.fallocate(file.fd, 0, SEGMENT, { keepSize: true })
  t.true(fstatSync(file.fd).blocks >= SEGMENT / 512 - 8, 'the segment is allocated')
  let end = 0
  const records: Buffer[] = []
  for (let i = 0; i < 20; i++) {
    const payload = pattern(100 + i * 37, i)
    const header = Buffer.alloc(8)
    header.writeUInt32LE(payload.length, 0)
    header.writeUInt32LE(i, 4)
    const [written, synced] = await ctx.submit([
      { op: 'writev', fd: file.fd, offset: end, buffers: [header, payload], link: true },
      { op: 'fdsync', fd: file.fd },
    ])
    t.is(written, header.length + payload.length)
    t.is(synced, 0)
    end += header.length + payload.length
    records.push(header, payload)
  }
  t.is(fstatSync(file.fd).size, end, 'the size is what was written')
  await ctx.syncRange(file.fd, 0, end, { waitBefore: true, write: true, waitAfter: true })
  await ctx.fdsync(file.fd)
  await ctx.ftruncate(file.fd, end)
  t.true(file.content().equals(Buffer.concat(records)), 'every record whole, in place')
  t.is(fstatSync(file.fd).size, end)
})

test('a readv blocked in the kernel on an empty pipe, then aborted: uring cancels it (AbortError, its buffers untouched, nothing consumed); the others cannot block there', async (t) => {
  t.timeout(30_000)
  const ctx = openContext(t)
  const pipe = fifo(t)
  const buffers = [Buffer.alloc(4, 0xee), Buffer.alloc(12, 0xee)]
  const controller = new AbortController()
  if (ctx.backend === 'linux') {
    // Kernel AIO would block io_submit on a blocking pipe; a non-blocking one answers at once.
    const fd = openSync(pipe.path, constants.O_RDWR | constants.O_NONBLOCK)
    t.teardown(() => closeSync(fd))
    await rejectsWithSystemError(t, ctx.readv(buffers, fd, 0, { signal: controller.signal }), 'EAGAIN', 'read')
  } else if (ctx.backend === 'uring') {
    // io_uring reads a pipe wherever the offset says: the readv waits for data.
    const read = outcome(ctx.readv(buffers, pipe.fd, 0, { signal: controller.signal }))
    await nextTurn()
    await nextTurn()
    controller.abort()
    const result = await within(read, 10_000, 'the aborted readv')
    t.true(!result.ok && field(result.error, 'name') === 'AbortError', `AbortError, got ${String(result.ok ? result.value : result.error)}`)
  } else {
    // preadv(2) at an offset fails on a pipe: ESPIPE, before or after the abort.
    const read = outcome(ctx.readv(buffers, pipe.fd, 0, { signal: controller.signal }))
    await nextTurn()
    controller.abort()
    const result = await within(read, 10_000, 'the pipe readv')
    const code = result.ok ? undefined : field(result.error, 'code')
    t.true(code === 'ESPIPE' || code === 'ABORT_ERR', `${ctx.backend}: ESPIPE (or AbortError had the abort come first), got ${String(result.ok ? result.value : result.error)}`)
  }
  t.true(buffers.every((buffer) => buffer.every((byte) => byte === 0xee)), 'no buffer was written')
  writeSync(pipe.fd, 'intact')
  const back = Buffer.alloc(16)
  t.is(readSync(pipe.fd, back), 6, 'the pipe lost nothing')
})

test('readv and writev work on each view’s real memory when a subclass lies about its byteLength', async (t) => {
  class Liar extends Uint8Array {
    override get byteLength(): number {
      return 1 << 30
    }
  }
  const ctx = openContext(t)
  const file = fileWith(t, 'abcdefghijklmnop')
  const liar = new Liar(8)
  const plain = Buffer.alloc(4)
  t.is(await ctx.readv([liar, plain], file.fd, 1), 12)
  t.is(Buffer.from(liar.buffer, 0, 8).toString(), 'bcdefghi')
  t.is(plain.toString(), 'jklm')
  const source = new Liar(3)
  source.set([0x58, 0x59, 0x5a])
  t.is(await ctx.writev([source], file.fd, 0), 3)
  t.is(file.content().toString(), 'XYZdefghijklmnop')
})

/** Forces a full collection on every turn of the loop until `done()`. */
function collectWhile(done: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const step = (): void => {
      if (done()) return resolve()
      collectGarbage()
      setImmediate(step)
    }
    step()
  })
}

test('writev and readv whose buffers and iovec areas only caio references, with full collections while they are in flight: every count and byte right', async (t) => {
  t.timeout(60_000)
  const ctx = openContext(t, { maxRequests: 16 })
  const size = 128 * 256
  const file = fileWith(t, Buffer.alloc(size))
  const random = new Random(77)
  const model = Buffer.alloc(size)
  const failures: string[] = []
  let pending = 0
  for (let i = 0; i < 128; i++) {
    let offset = i * 256
    const start = offset
    const parts: Uint8Array[] = []
    // Small views (up to 64 bytes) live inside V8's moving heap until something pins them.
    for (let part = 0, count = 1 + random.below(4); part < count; part++) {
      const bytes = random.bytes(1 + random.below(60))
      const view = random.chance(0.5) ? new Uint8Array(bytes.length) : Buffer.alloc(bytes.length)
      view.set(bytes)
      model.set(bytes, offset)
      offset += bytes.length
      parts.push(view)
    }
    const total = offset - start
    pending++
    void ctx.writev(parts, file.fd, start).then(
      (count) => {
        if (count !== total) failures.push(`writev ${i}: ${count} of ${total}`)
        pending--
      },
      (error: unknown) => {
        failures.push(`writev ${i}: ${String(error)}`)
        pending--
      },
    )
  }
  await collectWhile(() => pending === 0)
  t.deepEqual(failures, [])
  t.true(file.content().equals(model), 'every writev landed whole, in place')
  for (let i = 0; i < 128; i++) {
    const lengths = [1 + random.below(60), 1 + random.below(60), 256 - 120]
    const offset = i * 256
    pending++
    void ((): void => {
      const views = lengths.map((length) => new Uint8Array(length))
      void ctx.readv(views, file.fd, offset).then(
        (count) => {
          const got = Buffer.concat(views).subarray(0, count)
          if (count !== 256 - 120 + (lengths[0] as number) + (lengths[1] as number) || !got.equals(model.subarray(offset, offset + count))) failures.push(`readv ${i}: wrong bytes`)
          pending--
        },
        (error: unknown) => {
          failures.push(`readv ${i}: ${String(error)}`)
          pending--
        },
      )
    })()
  }
  await collectWhile(() => pending === 0)
  t.deepEqual(failures, [])
})
