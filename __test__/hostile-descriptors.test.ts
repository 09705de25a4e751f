// Hostile descriptors: closed, closed and reused by another file, pipes, sockets,
// /dev/null, /dev/zero and directories, through every method and a batch: the answers
// pread/pwrite give, never a crash and never another file's bytes.

import { closeSync, openSync, writeSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import type { Socket } from 'node:net'
import { join } from 'node:path'

import test from 'ava'

import { describeChild, directoryFd, field, fifo, fileWith, INDEX_JS, openContext, outcome, runNode, tempDir } from './helpers'
import type { Outcome } from './helpers'

// ---- Descriptors of every kind

test('a descriptor closed by the time the operation runs, and one closed and reused by another file meanwhile: EBADF or the bytes of whichever file the number names, never a crash', async (t) => {
  t.timeout(60_000)
  const a = fileWith(t, 'A'.repeat(4096))
  const b = fileWith(t, 'B'.repeat(4096))
  // In a child: a descriptor number closed here could be reused at once by a test beside this one.
  const result = await runNode(`
    const caio = require(${JSON.stringify(INDEX_JS)})
    const fs = require('node:fs')
    const ctx = new caio.Context({ maxRequests: 1 })
    async function main() {
      const out = {}
      // Closed: every operation after the close rejects with EBADF. Other threads of the
      // child open files now and then and get the lowest free number: with 32 free numbers
      // below the closed one, none of them can be handed it meanwhile.
      const descriptors = Array.from({ length: 64 }, () => fs.openSync(${JSON.stringify(a.path)}, 'r+'))
      let fd = descriptors.pop()
      fs.closeSync(fd)
      for (const spacer of descriptors.splice(0, 32)) fs.closeSync(spacer)
      for (const spacer of descriptors) fs.closeSync(spacer)
      out.closed = await Promise.all([ctx.read(4, fd, 0), ctx.readInto(Buffer.alloc(4), fd, 0), ctx.write('x', fd, 0), ctx.fsync(fd), ctx.fdsync(fd), ctx.submit([{ op: 'read', fd, offset: 0, buffer: Buffer.alloc(4) }]).then((e) => { throw e[0] })].map((p) => p.then(() => 'resolved', (e) => e.code)))
      // Closed and reused while operations wait in the queue (maxRequests 1).
      // Another thread's open may take the number first: try again until it was reused.
      const seen = new Set()
      for (let attempt = 0; attempt < 5 && !out.reusedSameNumber; attempt++) {
        fd = fs.openSync(${JSON.stringify(a.path)}, 'r+')
        const head = ctx.read(4096, fd, 0)
        const queued = Array.from({ length: 50 }, () => ctx.read(4, fd, 0).then((b) => b.toString(), (e) => e.code))
        fs.closeSync(fd)
        const reused = fs.openSync(${JSON.stringify(b.path)}, 'r+')
        out.reusedSameNumber = reused === fd
        await head.catch(() => {})
        const answers = await Promise.all(queued)
        if (out.reusedSameNumber) for (const r of answers) seen.add(r)
        fs.closeSync(reused)
      }
      out.reused = [...seen].sort()
      await ctx.close()
      console.log(JSON.stringify(out))
    }
    main()
  `)
  t.is(result.code, 0, describeChild(result))
  const report = JSON.parse(result.stdout.trim().split('\n').pop() ?? '{}') as { closed?: string[]; reused?: string[]; reusedSameNumber?: boolean }
  t.deepEqual(report.closed, ['EBADF', 'EBADF', 'EBADF', 'EBADF', 'EBADF', 'EBADF'])
  t.true(report.reusedSameNumber, 'the number was reused')
  t.true((report.reused ?? ['nothing']).every((r) => r === 'AAAA' || r === 'BBBB' || r === 'EBADF'), `queued reads on the reused number: ${String(report.reused)}`)
})

test('pipes and sockets with data waiting: positional I/O reads the stream or rejects with ESPIPE (thread, js: always, as pread; uring, linux: the kernel reads a pipe whatever the offset, a socket only at offset 0) — never a crash, never other bytes', async (t) => {
  t.timeout(30_000)
  const ctx = openContext(t)
  const pipe = fifo(t)
  writeSync(pipe.fd, 'from the pipe')
  const allowed = (o: Outcome<unknown>, bytes: string): boolean => (o.ok ? Buffer.isBuffer(o.value) && o.value.toString() === bytes : field(o.error, 'code') === 'ESPIPE' && field(o.error, 'syscall') === 'read')
  const fromPipe = await outcome(ctx.read(13, pipe.fd, 12345))
  t.true(allowed(fromPipe, 'from the pipe'), `a read on a pipe: ${String(fromPipe.ok ? fromPipe.value : fromPipe.error)}`)
  const toPipe = await outcome(ctx.write('into the pipe', pipe.fd, 99))
  t.true(toPipe.ok ? toPipe.value === 13 : field(toPipe.error, 'code') === 'ESPIPE', `a write to a pipe: ${String(toPipe.ok ? toPipe.value : toPipe.error)}`)
  await t.throwsAsync(ctx.fsync(pipe.fd), { code: 'EINVAL' }, 'fsync on a pipe')

  // A Unix socket pair through a server in this process.
  const path = join(tempDir(t), 'sock')
  const accepted = new Promise<Socket>((resolve) => {
    const server = createServer((socket) => resolve(socket)).listen(path)
    t.teardown(() => server.close())
  })
  const client = await new Promise<Socket>((resolve) => {
    const socket = connect(path, () => resolve(socket))
  })
  const peer = await accepted
  t.teardown(() => {
    client.destroy()
    peer.destroy()
  })
  client.pause()
  peer.pause()
  const clientFd = (client as unknown as { _handle: { fd: number } })._handle.fd
  const peerFd = (peer as unknown as { _handle: { fd: number } })._handle.fd
  writeSync(peerFd, 'from the socket')
  const fromSocket = await outcome(ctx.read(15, clientFd, 777))
  t.true(allowed(fromSocket, 'from the socket'), `a read on a socket: ${String(fromSocket.ok ? fromSocket.value : fromSocket.error)}`)
  const toSocket = await outcome(ctx.write('to the socket', clientFd, 5))
  t.true(toSocket.ok ? toSocket.value === 13 : field(toSocket.error, 'code') === 'ESPIPE', `a write to a socket: ${String(toSocket.ok ? toSocket.value : toSocket.error)}`)
  t.log(`${ctx.backend}: pipe read ${fromPipe.ok ? 'read the stream' : 'ESPIPE'}, socket read ${fromSocket.ok ? 'read the stream' : 'ESPIPE'}`)
})

test('/dev/null, /dev/zero and directories through every method and a batch: the answers pread/pwrite give', async (t) => {
  const ctx = openContext(t)
  const devNull = openSync('/dev/null', 'r+')
  const devZero = openSync('/dev/zero', 'r')
  t.teardown(() => [devNull, devZero].forEach((fd) => closeSync(fd)))
  const dir = directoryFd(t)
  t.is((await ctx.read(10, devNull, 5)).length, 0, 'reading /dev/null gives end of file')
  t.is(await ctx.write('discarded', devNull, 123), 9)
  t.true((await ctx.read(8, devZero, 1 << 30)).equals(Buffer.alloc(8)))
  await t.throwsAsync(ctx.fsync(devNull), { code: 'EINVAL' })
  const dirRead = await t.throwsAsync(ctx.read(10, dir, 0), { code: 'EISDIR' })
  t.is(field(dirRead, 'syscall'), 'read')
  await t.throwsAsync(ctx.readInto(new Uint8Array(4), dir, 0), { code: 'EISDIR' })
  await t.throwsAsync(ctx.write('x', dir, 0), { code: 'EBADF' })
  t.is(await ctx.fsync(dir), undefined, 'fsync of a directory works')
  t.is(await ctx.fdsync(dir), undefined)
  const entries = await ctx.submit([
    { op: 'read', fd: devNull, offset: 0, buffer: Buffer.alloc(4) },
    { op: 'read', fd: devZero, offset: 0, buffer: Buffer.alloc(4, 1) },
    { op: 'read', fd: dir, offset: 0, buffer: Buffer.alloc(4) },
    { op: 'write', fd: devNull, offset: 0, data: 'abc' },
    { op: 'fsync', fd: dir },
  ])
  t.is(entries[0], 0)
  t.is(entries[1], 4)
  t.is(field(entries[2], 'code'), 'EISDIR')
  t.is(entries[3], 3)
  t.is(entries[4], 0)
})
