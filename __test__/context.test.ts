// The Context itself: its options and what it reports, backends(), the subpath imports,
// and the native addon's errno table.
import { join } from 'node:path'
import { getSystemErrorMap } from 'node:util'

import test from 'ava'

import { backends, Context } from '../index'
import * as jsSubpath from '../subpath/js'
import * as linuxSubpath from '../subpath/linux'
import * as threadSubpath from '../subpath/thread'
import * as uringSubpath from '../subpath/uring'
import { backendUnderTest, field, fileWith, isBackendName, openContext, REPO_ROOT } from './helpers'

test('a context runs on the backend under test, which backends() reports available', (t) => {
  const ctx = openContext(t)
  t.true(isBackendName(ctx.backend))
  const status = backends().find((row) => row.name === ctx.backend)
  t.is(status?.available, true)
  const expected = backendUnderTest()
  if (expected !== undefined) t.is(ctx.backend, expected)
})

test('maxRequests defaults to 512', (t) => {
  const ctx = openContext(t)
  t.is(ctx.maxRequests, 512)
})

test('maxRequests reflects the option', (t) => {
  t.is(openContext(t, { maxRequests: 1 }).maxRequests, 1)
  t.is(openContext(t, { maxRequests: 8 }).maxRequests, 8)
  t.is(openContext(t, { maxRequests: 1000 }).maxRequests, 1000)
})

test('poolSize and sqpoll options are accepted on every backend', async (t) => {
  const file = fileWith(t, 'abc')
  const ctx = openContext(t, { poolSize: 2, sqpoll: false })
  t.is((await ctx.read(3, file.fd, 0)).toString(), 'abc')
})

test('backends() lists uring, linux, thread and js in order, with a reason for each unavailable one', (t) => {
  const rows = backends()
  t.deepEqual(
    rows.map((row) => row.name),
    ['uring', 'linux', 'thread', 'js'],
  )
  for (const row of rows) {
    t.is(typeof row.available, 'boolean', `${row.name}.available`)
    if (!row.available) {
      t.is(typeof row.reason, 'string', `${row.name} says why it is unavailable`)
      t.not(row.reason?.trim() ?? '', '', `${row.name}'s reason is not empty`)
    }
  }
  t.is(rows.find((row) => row.name === 'js')?.available, true, 'js is always available')
})

test('new Context({ backend }) opens every available backend and throws with the reason for every unavailable one', async (t) => {
  const file = fileWith(t, 'explicit')
  for (const row of backends()) {
    if (row.available) {
      const ctx = new Context({ backend: row.name })
      t.teardown(() => ctx.close())
      t.is(ctx.backend, row.name)
      t.is((await ctx.read(8, file.fd, 0)).toString(), 'explicit', `read on ${row.name}`)
      await ctx.close()
    } else {
      const error = t.throws(() => new Context({ backend: row.name }), { instanceOf: Error }, row.name)
      t.true(error?.message.includes(row.reason ?? '\u0000') ?? false, `the ${row.name} error '${error?.message}' contains the reason '${row.reason}'`)
    }
  }
})

test('each caio/<backend> subpath gives a Context bound to that backend, or throws with the reason', (t) => {
  const subpaths = { uring: uringSubpath, linux: linuxSubpath, thread: threadSubpath, js: jsSubpath }
  for (const row of backends()) {
    const Bound = subpaths[row.name].Context
    if (row.available) {
      const ctx = new Bound({ maxRequests: 4 })
      t.teardown(() => ctx.close())
      t.is(ctx.backend, row.name)
      t.is(ctx.maxRequests, 4)
    } else {
      const error = t.throws(() => new Bound(), { instanceOf: Error }, row.name)
      t.true(error?.message.includes(row.reason ?? '\u0000') ?? false, `${row.name}: ${error?.message}`)
    }
  }
})

test('bad constructor options throw synchronously with Node argument errors', (t) => {
  const cases: Array<[string, unknown, string, typeof TypeError | typeof RangeError]> = [
    ["backend 'nope'", { backend: 'nope' }, 'ERR_INVALID_ARG_VALUE', TypeError],
    ['maxRequests 0', { maxRequests: 0 }, 'ERR_OUT_OF_RANGE', RangeError],
    ['maxRequests -1', { maxRequests: -1 }, 'ERR_OUT_OF_RANGE', RangeError],
    ['maxRequests 1.5', { maxRequests: 1.5 }, 'ERR_OUT_OF_RANGE', RangeError],
    ['maxRequests NaN', { maxRequests: NaN }, 'ERR_OUT_OF_RANGE', RangeError],
    ["maxRequests 'x'", { maxRequests: 'x' }, 'ERR_INVALID_ARG_TYPE', TypeError],
    ['poolSize 0', { poolSize: 0 }, 'ERR_OUT_OF_RANGE', RangeError],
    ["poolSize '4'", { poolSize: '4' }, 'ERR_INVALID_ARG_TYPE', TypeError],
    ["sqpoll 'yes'", { sqpoll: 'yes' }, 'ERR_INVALID_ARG_TYPE', TypeError],
    ['sqpoll 1', { sqpoll: 1 }, 'ERR_INVALID_ARG_TYPE', TypeError],
    ['options 42', 42, 'ERR_INVALID_ARG_TYPE', TypeError],
    ["options 'uring'", 'uring', 'ERR_INVALID_ARG_TYPE', TypeError],
    ['options null', null, 'ERR_INVALID_ARG_TYPE', TypeError],
  ]
  for (const [what, options, code, kind] of cases) {
    t.throws(() => new Context(options as never), { code, instanceOf: kind }, what)
  }
})

test('new Context() with an empty options object uses the defaults', (t) => {
  const ctx = openContext(t, {})
  t.is(ctx.maxRequests, 512)
})

test("the native addon's errno names match Node's util.getSystemErrorMap()", (t) => {
  // The built binding lives at the repository root; the suite runs from dist/__test__/.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const binding: unknown = require(join(REPO_ROOT, 'binding.js'))
  const errnoNames: unknown = field(binding, 'errnoNames')
  if (typeof errnoNames !== 'function') {
    t.fail('binding.errnoNames is not a function')
    return
  }
  const rows: unknown = errnoNames()
  if (!Array.isArray(rows)) {
    t.fail('errnoNames() did not return an array')
    return
  }
  t.true(rows.length > 0)
  const map = getSystemErrorMap()
  const codes = new Set<string>()
  for (const row of rows as unknown[]) {
    if (!Array.isArray(row) || row.length !== 3 || typeof row[0] !== 'number') {
      t.fail(`malformed row ${JSON.stringify(row)}`)
      continue
    }
    const [errno, code, message] = row as [number, unknown, unknown]
    t.true(errno > 0, `${String(code)}: the table holds positive errno values`)
    t.deepEqual([code, message], map.get(-errno), `errno ${errno}`)
    if (typeof code === 'string') codes.add(code)
  }
  for (const needed of ['EBADF', 'EISDIR', 'EINVAL', 'ECANCELED', 'EIO', 'ENOSPC']) {
    t.true(codes.has(needed), `the table knows ${needed}`)
  }
})
