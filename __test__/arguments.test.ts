// Bad arguments: the returned Promise rejects (never a synchronous throw) with Node's own
// argument errors — TypeError ERR_INVALID_ARG_TYPE, RangeError ERR_OUT_OF_RANGE — and
// nothing reaches the kernel.
import test from 'ava'
import type { ExecutionContext } from 'ava'

import type { Context, OpOptions } from '../index'
import { fileWith, openContext, rejectsWithArgumentError } from './helpers'

const TYPE = ['ERR_INVALID_ARG_TYPE', TypeError] as const
const RANGE = ['ERR_OUT_OF_RANGE', RangeError] as const
type Expected = typeof TYPE | typeof RANGE
type Case = readonly [value: unknown, expected: Expected]

const METHODS = ['read', 'readInto', 'write', 'fsync', 'fdsync'] as const
type Method = (typeof METHODS)[number]

interface Call {
  fd?: unknown
  offset?: unknown
  nbytes?: unknown
  target?: unknown
  data?: unknown
  options?: unknown
}

/**
 * Calls `method` with good arguments except those in `call`. The bad values go through
 * `as never`: the point is what the library does with what TypeScript would refuse.
 */
function invoke(ctx: Context, method: Method, fd: number, call: Call): Promise<unknown> {
  const file = ('fd' in call ? call.fd : fd) as never
  const offset = ('offset' in call ? call.offset : 0) as never
  const options = call.options as never
  switch (method) {
    case 'read':
      return ctx.read(('nbytes' in call ? call.nbytes : 4) as never, file, offset, options)
    case 'readInto':
      return ctx.readInto(('target' in call ? call.target : Buffer.alloc(4)) as never, file, offset, options)
    case 'write':
      return ctx.write(('data' in call ? call.data : 'data') as never, file, offset, options)
    case 'fsync':
      return ctx.fsync(file, options)
    case 'fdsync':
      return ctx.fdsync(file, options)
  }
}

function show(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`
  if (typeof value === 'string') return `'${value}'`
  if (typeof value === 'object' && value !== null) return value.constructor?.name ?? 'object'
  return String(value)
}

async function expectAll(t: ExecutionContext, ctx: Context, fd: number, method: Method, name: keyof Call, cases: readonly Case[]): Promise<void> {
  for (const [value, [code, kind]] of cases) {
    await rejectsWithArgumentError(t, () => invoke(ctx, method, fd, { [name]: value }), code, kind, `${method} with ${name} ${show(value)}`)
  }
}

const BAD_FDS: readonly Case[] = [
  ['3', TYPE],
  [null, TYPE],
  [undefined, TYPE],
  [3n, TYPE],
  [-1, RANGE],
  [1.5, RANGE],
  [2 ** 31, RANGE],
  [2 ** 32, RANGE],
  [NaN, RANGE],
  [Infinity, RANGE],
]

const BAD_OFFSETS: readonly Case[] = [
  ['0', TYPE],
  [null, TYPE],
  [undefined, TYPE],
  [{}, TYPE],
  [-1, RANGE],
  [1.5, RANGE],
  [2 ** 53, RANGE],
  [-1n, RANGE],
  [2n ** 63n, RANGE],
  [NaN, RANGE],
  [Infinity, RANGE],
]

const BAD_OPTIONS: readonly Case[] = [
  ['x', TYPE],
  [42, TYPE],
  [null, TYPE],
  [true, TYPE],
]

const BAD_SIGNALS: readonly Case[] = [
  [{ aborted: true }, TYPE],
  ['x', TYPE],
  [new AbortController(), TYPE],
]

const BAD_PRIORITIES: readonly Case[] = [
  ['x', TYPE],
  [null, TYPE],
  [-1, RANGE],
  [65536, RANGE],
  [1.5, RANGE],
  [NaN, RANGE],
  // Not an ioprio: class 7 does not exist, and best-effort levels stop at 7.
  [65535, RANGE],
  [7 << 13, RANGE],
  [(2 << 13) | 8, RANGE],
]

for (const method of METHODS) {
  test(`${method} rejects a bad fd with ERR_INVALID_ARG_TYPE or ERR_OUT_OF_RANGE`, async (t) => {
    const file = fileWith(t, 'abcd')
    const ctx = openContext(t)
    await expectAll(t, ctx, file.fd, method, 'fd', BAD_FDS)
  })

  test(`${method} rejects options that are not an object with ERR_INVALID_ARG_TYPE`, async (t) => {
    const file = fileWith(t, 'abcd')
    const ctx = openContext(t)
    await expectAll(t, ctx, file.fd, method, 'options', BAD_OPTIONS)
  })

  test(`${method} rejects a signal that is not an AbortSignal with ERR_INVALID_ARG_TYPE`, async (t) => {
    const file = fileWith(t, 'abcd')
    const ctx = openContext(t)
    await expectAll(
      t,
      ctx,
      file.fd,
      method,
      'options',
      BAD_SIGNALS.map(([signal, expected]): Case => [{ signal }, expected]),
    )
  })

  test(`${method} rejects a priority that is not an integer ioprio value (class 0-3, level 0-7)`, async (t) => {
    const file = fileWith(t, 'abcd')
    const ctx = openContext(t)
    await expectAll(
      t,
      ctx,
      file.fd,
      method,
      'options',
      BAD_PRIORITIES.map(([priority, expected]): Case => [{ priority }, expected]),
    )
  })
}

for (const method of ['read', 'readInto', 'write'] as const) {
  test(`${method} rejects a bad offset with ERR_INVALID_ARG_TYPE or ERR_OUT_OF_RANGE`, async (t) => {
    const file = fileWith(t, 'abcd')
    const ctx = openContext(t)
    await expectAll(t, ctx, file.fd, method, 'offset', BAD_OFFSETS)
  })
}

test('read rejects a bad nbytes with ERR_INVALID_ARG_TYPE or ERR_OUT_OF_RANGE', async (t) => {
  const file = fileWith(t, 'abcd')
  const ctx = openContext(t)
  await expectAll(t, ctx, file.fd, 'read', 'nbytes', [
    ['x', TYPE],
    [null, TYPE],
    [undefined, TYPE],
    [4n, TYPE],
    [-1, RANGE],
    [2 ** 31, RANGE],
    [1.5, RANGE],
    [NaN, RANGE],
  ])
})

test('readInto rejects a target that is not an ArrayBufferView with ERR_INVALID_ARG_TYPE', async (t) => {
  const file = fileWith(t, 'abcd')
  const ctx = openContext(t)
  await expectAll(t, ctx, file.fd, 'readInto', 'target', [
    [[1, 2, 3], TYPE],
    [{}, TYPE],
    ['abcd', TYPE],
    [null, TYPE],
    [undefined, TYPE],
    [42, TYPE],
    [new ArrayBuffer(8), TYPE],
  ])
})

test('write rejects data that is neither a string nor an ArrayBufferView with ERR_INVALID_ARG_TYPE', async (t) => {
  const file = fileWith(t, 'abcd')
  const ctx = openContext(t)
  await expectAll(t, ctx, file.fd, 'write', 'data', [
    [42, TYPE],
    [{}, TYPE],
    [{ length: 4 }, TYPE],
    [null, TYPE],
    [undefined, TYPE],
    [[1, 2], TYPE],
    [new ArrayBuffer(8), TYPE],
    [true, TYPE],
    [1n, TYPE],
  ])
})

test('a write rejected for a bad argument never reaches the file', async (t) => {
  const file = fileWith(t, 'original content')
  const ctx = openContext(t, { maxRequests: 1 })
  const calls: Array<[string, () => Promise<unknown>]> = [
    ['offset -1', () => ctx.write('XXXX', file.fd, -1)],
    ['offset 1.5', () => ctx.write('XXXX', file.fd, 1.5)],
    ['offset -1n', () => ctx.write('XXXX', file.fd, -1n)],
    ['offset 2n ** 63n', () => ctx.write('XXXX', file.fd, 2n ** 63n)],
    ['offset "0"', () => ctx.write('XXXX', file.fd, '0' as never)],
    ['options "x"', () => ctx.write('XXXX', file.fd, 0, 'x' as never)],
    ['signal {}', () => ctx.write('XXXX', file.fd, 0, { signal: {} as never })],
    ['priority -1', () => ctx.write('XXXX', file.fd, 0, { priority: -1 })],
    ['priority 65536', () => ctx.write('XXXX', file.fd, 0, { priority: 65536 })],
  ]
  for (const [what, call] of calls) {
    await t.throwsAsync(call(), { instanceOf: Error }, what)
  }
  // With maxRequests 1 this sync runs after anything that might have been queued.
  await ctx.fsync(file.fd)
  t.is(file.content().toString(), 'original content')
})

test('a readInto rejected for a bad argument leaves its target untouched', async (t) => {
  const file = fileWith(t, 'file content')
  const ctx = openContext(t, { maxRequests: 1 })
  const target = Buffer.alloc(8, 0xee)
  const options: Array<[string, number | bigint, OpOptions | undefined]> = [
    ['offset -1', -1, undefined],
    ['offset 2 ** 53', 2 ** 53, undefined],
    ['offset 2n ** 63n', 2n ** 63n, undefined],
    ['priority 1.5', 0, { priority: 1.5 }],
    ['signal "x"', 0, { signal: 'x' as never }],
  ]
  for (const [what, offset, o] of options) {
    await t.throwsAsync(ctx.readInto(target, file.fd, offset, o), { instanceOf: Error }, what)
  }
  await ctx.read(1, file.fd, 0)
  t.true(target.every((byte) => byte === 0xee))
})

test('a view of a detached ArrayBuffer is refused with a rejection, not a crash', async (t) => {
  const file = fileWith(t, 'abcd')
  const ctx = openContext(t)
  const backing = new ArrayBuffer(16)
  const view = new Uint8Array(backing)
  structuredClone(backing, { transfer: [backing] })
  t.is(view.byteLength, 0, 'the ArrayBuffer is detached')
  await t.throwsAsync(ctx.readInto(view, file.fd, 0), { instanceOf: TypeError })
  await t.throwsAsync(ctx.write(view, file.fd, 0), { instanceOf: TypeError })
  t.is(file.content().toString(), 'abcd')
})

test('boundary values are accepted: offset 2^53 - 1, offset 2n^63n - 1n, nbytes 0, priority 0 and a best-effort priority', async (t) => {
  const file = fileWith(t, 'abcd')
  const ctx = openContext(t)
  t.is((await ctx.read(0, file.fd, Number.MAX_SAFE_INTEGER)).length, 0)
  t.is((await ctx.read(0, file.fd, 2n ** 63n - 1n)).length, 0)
  // ioprio class 2 (best effort) << 13 | level 4: allowed to any process.
  const bestEffort = (2 << 13) | 4
  t.is((await ctx.read(4, file.fd, 0, { priority: 0 })).toString(), 'abcd')
  t.is((await ctx.read(4, file.fd, 0, { priority: bestEffort })).toString(), 'abcd')
  t.is(await ctx.write('ABCD', file.fd, 0, { priority: bestEffort }), 4)
  t.is(await ctx.fdsync(file.fd, { priority: bestEffort }), undefined)
  t.is(await ctx.fsync(file.fd, {}), undefined)
  t.is(file.content().toString(), 'ABCD')
})
