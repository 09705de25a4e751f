// OS errors reject with Errors shaped like node:fs's own (code, negative errno, syscall,
// `'<CODE>: …, <syscall>'`), with the same code on every backend for the same bad call.
import { readSync } from 'node:fs'

import test from 'ava'

import { backendUnderTest, describeChild, directoryFd, errnoOf, field, fileWith, INDEX_JS, lastJsonLine, NEVER_OPEN_FD, openContext, rejectsWithSystemError, runNode } from './helpers'

test('read on a descriptor that is not open rejects with EBADF from read', async (t) => {
  const ctx = openContext(t)
  await rejectsWithSystemError(t, ctx.read(16, NEVER_OPEN_FD, 0), 'EBADF', 'read')
})

test('readInto on a descriptor that is not open rejects with EBADF from read', async (t) => {
  const ctx = openContext(t)
  await rejectsWithSystemError(t, ctx.readInto(Buffer.alloc(16), NEVER_OPEN_FD, 0), 'EBADF', 'read')
})

test('write on a descriptor that is not open rejects with EBADF from write', async (t) => {
  const ctx = openContext(t)
  await rejectsWithSystemError(t, ctx.write('data', NEVER_OPEN_FD, 0), 'EBADF', 'write')
})

test('fsync on a descriptor that is not open rejects with EBADF from fsync', async (t) => {
  const ctx = openContext(t)
  await rejectsWithSystemError(t, ctx.fsync(NEVER_OPEN_FD), 'EBADF', 'fsync')
})

test('fdsync on a descriptor that is not open rejects with EBADF from fdatasync', async (t) => {
  const ctx = openContext(t)
  await rejectsWithSystemError(t, ctx.fdsync(NEVER_OPEN_FD), 'EBADF', 'fdatasync')
})

test('zero-length read and write on a descriptor that is not open reject with EBADF', async (t) => {
  const ctx = openContext(t)
  await rejectsWithSystemError(t, ctx.read(0, NEVER_OPEN_FD, 0), 'EBADF', 'read')
  await rejectsWithSystemError(t, ctx.write('', NEVER_OPEN_FD, 0), 'EBADF', 'write')
})

test('write on a descriptor opened read-only rejects with EBADF and leaves the file unchanged', async (t) => {
  const file = fileWith(t, 'read only', 'r')
  const ctx = openContext(t)
  await rejectsWithSystemError(t, ctx.write('XXXX', file.fd, 0), 'EBADF', 'write')
  t.is(file.content().toString(), 'read only')
})

test('read on a descriptor opened write-only rejects with EBADF', async (t) => {
  const writeOnly = fileWith(t, '', 'w')
  const ctx = openContext(t)
  await ctx.write('write only', writeOnly.fd, 0)
  await rejectsWithSystemError(t, ctx.read(4, writeOnly.fd, 0), 'EBADF', 'read')
  await rejectsWithSystemError(t, ctx.readInto(new Uint8Array(4), writeOnly.fd, 0), 'EBADF', 'read')
  t.is(writeOnly.content().toString(), 'write only')
})

test('zero-length read and write on a descriptor not open for them reject with EBADF, as any other size does', async (t) => {
  const readOnly = fileWith(t, 'abc', 'r')
  const writeOnly = fileWith(t, 'abc', 'w')
  const ctx = openContext(t)
  await rejectsWithSystemError(t, ctx.write('', readOnly.fd, 0), 'EBADF', 'write')
  await rejectsWithSystemError(t, ctx.write(new Uint8Array(0), readOnly.fd, 0), 'EBADF', 'write')
  await rejectsWithSystemError(t, ctx.read(0, writeOnly.fd, 0), 'EBADF', 'read')
  await rejectsWithSystemError(t, ctx.readInto(Buffer.alloc(0), writeOnly.fd, 0), 'EBADF', 'read')
})

test('read of a directory rejects with EISDIR from read', async (t) => {
  const dir = directoryFd(t)
  const ctx = openContext(t)
  await rejectsWithSystemError(t, ctx.read(16, dir, 0), 'EISDIR', 'read')
  await rejectsWithSystemError(t, ctx.readInto(new Uint8Array(16), dir, 0), 'EISDIR', 'read')
})

test('write to a directory descriptor (opened read-only) rejects with EBADF from write', async (t) => {
  const dir = directoryFd(t)
  const ctx = openContext(t)
  await rejectsWithSystemError(t, ctx.write('x', dir, 0), 'EBADF', 'write')
})

test('an OS error has the code, errno and syscall node:fs gives for the same call', async (t) => {
  const ctx = openContext(t)
  let fsError: unknown
  try {
    readSync(NEVER_OPEN_FD, Buffer.alloc(16), 0, 16, 0)
  } catch (error) {
    fsError = error
  }
  const error = await t.throwsAsync(ctx.read(16, NEVER_OPEN_FD, 0))
  t.true(error instanceof Error)
  for (const name of ['code', 'errno', 'syscall']) {
    t.is(field(error, name), field(fsError, name), name)
  }
  t.regex(error?.message ?? '', /^EBADF: [^,]+, read$/)
})

test('an OS error does not affect operations running beside it', async (t) => {
  const file = fileWith(t, 'good data')
  const ctx = openContext(t, { maxRequests: 2 })
  const [good, bad, alsoGood] = await Promise.allSettled([ctx.read(4, file.fd, 0), ctx.read(4, NEVER_OPEN_FD, 0), ctx.read(4, file.fd, 5)])
  t.is(good.status === 'fulfilled' ? good.value.toString() : good.reason, 'good')
  t.is(bad.status === 'rejected' ? field(bad.reason, 'code') : 'resolved', 'EBADF')
  t.is(alsoGood.status === 'fulfilled' ? alsoGood.value.toString() : alsoGood.reason, 'data')
})

test('a context keeps working after an operation failed', async (t) => {
  const file = fileWith(t, 'still fine')
  const ctx = openContext(t, { maxRequests: 1 })
  await rejectsWithSystemError(t, ctx.write('x', NEVER_OPEN_FD, 0), 'EBADF', 'write')
  await rejectsWithSystemError(t, ctx.fsync(NEVER_OPEN_FD), 'EBADF', 'fsync')
  t.is((await ctx.read(10, file.fd, 0)).toString(), 'still fine')
  t.is(await ctx.write('STILL', file.fd, 0), 5)
  t.is(file.content().toString(), 'STILL fine')
})

test('reading at an offset whose end overflows 2^63 rejects with EINVAL from read', async (t) => {
  const file = fileWith(t, 'abc')
  const ctx = openContext(t)
  await rejectsWithSystemError(t, ctx.read(16, file.fd, 2n ** 63n - 1n), 'EINVAL', 'read')
})

test('a write beyond 2^53 on a descriptor not open for writing rejects with EBADF, as at any other offset', async (t) => {
  const readOnly = fileWith(t, 'abc', 'r')
  const ctx = openContext(t)
  await rejectsWithSystemError(t, ctx.write('x', NEVER_OPEN_FD, 2n ** 62n), 'EBADF', 'write')
  await rejectsWithSystemError(t, ctx.write('x', readOnly.fd, 2n ** 53n + 1n), 'EBADF', 'write')
})

test('operations on a descriptor that was closed reject with EBADF', async (t) => {
  t.timeout(60_000)
  const file = fileWith(t, 'closed soon')
  // In a child process, so that no test running beside this one opens files. Even there other
  // threads open files now and then (Node's read /sys/devices/system/cpu/online), and the
  // kernel gives them the lowest free number: a closed descriptor with 32 free numbers below
  // it cannot be handed out again while the test runs.
  const result = await runNode(`
    const caio = require(${JSON.stringify(INDEX_JS)})
    const fs = require('node:fs')
    const ctx = new caio.Context()
    const descriptors = Array.from({ length: 64 }, () => fs.openSync(${JSON.stringify(file.path)}, 'r+'))
    const fd = descriptors.pop()
    fs.closeSync(fd)
    for (const spacer of descriptors.splice(0, 32)) fs.closeSync(spacer)
    const describe = (p) => p.then((v) => 'resolved', (e) => [e.code, e.errno, e.syscall].join(' '))
    Promise.all([
      describe(ctx.read(4, fd, 0)),
      describe(ctx.readInto(Buffer.alloc(4), fd, 0)),
      describe(ctx.write('XXXX', fd, 0)),
      describe(ctx.fsync(fd)),
      describe(ctx.fdsync(fd)),
    ]).then((results) => {
      console.log(JSON.stringify({ backend: ctx.backend, results }))
      return ctx.close()
    })
  `)
  t.is(result.code, 0, describeChild(result))
  const report = lastJsonLine(result.stdout)
  const expected = backendUnderTest()
  if (expected !== undefined) t.is(field(report, 'backend'), expected)
  const ebadf = `EBADF ${errnoOf('EBADF')}`
  t.deepEqual(field(report, 'results'), [`${ebadf} read`, `${ebadf} read`, `${ebadf} write`, `${ebadf} fsync`, `${ebadf} fdatasync`])
  t.is(file.content().toString(), 'closed soon')
})
