// Registered buffers and files: registerBuffers/registerFiles change nothing a caller sees —
// every read and write gives the bytes node:fs gives, buffered and with O_DIRECT, single and
// in batches, inside a registered buffer, straddling its end or outside it — while on uring
// the operations inside registered memory and on registered descriptors really are fixed
// ones (`ctx.registered()` counts what the ring submitted as READ_FIXED/WRITE_FIXED and with
// IOSQE_FIXED_FILE, so these tests fail if fixed I/O silently is not used). The other
// backends accept the same calls, validate them the same way, and count nothing.
// Unregistering waits for the operations using the set; the context keeps the registered
// memory alive; the kernel's limits come back as Node-shaped errors.
import { existsSync, readSync, writeSync } from 'node:fs'

import test from 'ava'
import type { ExecutionContext } from 'ava'

import { alignedBuffer } from '../index'
import type { BatchOp, Context } from '../index'
import {
  childEnv,
  describeChild,
  detach,
  directFileWith,
  fifo,
  field,
  fileWith,
  INDEX_JS,
  lastJsonLine,
  NEVER_OPEN_FD,
  nextTurn,
  openContext,
  outcome,
  pattern,
  Random,
  rejectsWithArgumentError,
  rejectsWithSystemError,
  runChild,
  within,
} from './helpers'

/** Whether this context does fixed I/O (uring, on a kernel with IORING_FEAT_RSRC_TAGS, 5.13+). */
const fixedHere = (ctx: Context): boolean => ctx.backend === 'uring'

/** The fixed operations counted so far, and a check that exactly `buffers`/`files` more came since `before`. */
function expectFixed(t: ExecutionContext, ctx: Context, before: { fixedBufferOps: number; fixedFileOps: number }, buffers: number, files: number, what: string): void {
  const now = ctx.registered()
  const expected = fixedHere(ctx) ? [buffers, files] : [0, 0]
  t.deepEqual([now.fixedBufferOps - before.fixedBufferOps, now.fixedFileOps - before.fixedFileOps], expected, `${what}: fixed buffer and file operations on ${ctx.backend}`)
}

test('reads and writes inside registered buffers give the bytes node:fs gives, and on uring each one is fixed; a view straddling a registered buffer’s end is not', async (t) => {
  const size = 256 * 1024
  const content = pattern(size, 31)
  const file = fileWith(t, content)
  const ctx = openContext(t)
  // One ArrayBuffer, two registered views of it with a gap between them.
  const memory = Buffer.alloc(512 * 1024)
  const low = memory.subarray(0, 128 * 1024)
  const high = memory.subarray(192 * 1024, 320 * 1024)
  await ctx.registerBuffers([low, high])
  await ctx.registerFiles([file.fd])
  t.like(ctx.registered(), { buffers: 2, files: 1 })
  const start = ctx.registered()
  const random = new Random(32)
  let inside = 0
  for (let i = 0; i < 64; i++) {
    const region = i % 2 === 0 ? low : high
    const length = 1 + random.below(8192)
    const at = random.below(region.length - length)
    const offset = random.below(size - length)
    const into = region.subarray(at, at + length)
    t.is(await ctx.readInto(into, file.fd, offset), length)
    t.true(into.equals(content.subarray(offset, offset + length)), `read ${i}`)
    inside++
  }
  expectFixed(t, ctx, start, inside, inside, 'reads inside')

  // Writes from inside, checked with readSync.
  const before = ctx.registered()
  const expected = Buffer.from(content)
  for (let i = 0; i < 32; i++) {
    const region = i % 2 === 0 ? high : low
    const length = 1 + random.below(4096)
    const at = random.below(region.length - length)
    const offset = random.below(size - length)
    const from = region.subarray(at, at + length)
    from.set(pattern(length, 100 + i))
    t.is(await ctx.write(from, file.fd, offset), length)
    from.copy(expected, offset)
  }
  await ctx.fdsync(file.fd)
  expectFixed(t, ctx, before, 32, 33, 'writes inside, and the fdsync on the registered file')
  t.true(file.content().equals(expected), 'the file holds what the registered buffers held')

  // Straddling the end of `low` (into the gap), wholly in the gap, and outside the memory:
  // ordinary reads, right all the same; only the descriptor is fixed.
  const straddling = memory.subarray(128 * 1024 - 100, 128 * 1024 + 100)
  const inGap = memory.subarray(150 * 1024, 151 * 1024)
  const elsewhere = Buffer.alloc(300)
  const ordinary = ctx.registered()
  for (const [what, view] of [['straddling', straddling], ['in the gap', inGap], ['elsewhere', elsewhere]] as const) {
    view.fill(0)
    t.is(await ctx.readInto(view, file.fd, 1000), view.length)
    t.true(view.equals(expected.subarray(1000, 1000 + view.length)), what)
  }
  expectFixed(t, ctx, ordinary, 0, 3, 'views not wholly inside a registered buffer')
})

test('batches: reads and writes inside registered buffers, linked write → fdsync chains, all fixed on uring', async (t) => {
  const size = 128 * 1024
  const content = pattern(size, 33)
  const file = fileWith(t, content)
  const ctx = openContext(t)
  const memory = Buffer.alloc(64 * 1024)
  await ctx.registerBuffers([memory])
  await ctx.registerFiles([file.fd])
  const before = ctx.registered()
  const ops: BatchOp[] = []
  for (let i = 0; i < 16; i++) ops.push({ op: 'read', fd: file.fd, offset: i * 4096, buffer: memory.subarray(i * 2048, i * 2048 + 2048) })
  const results = await ctx.submit(ops)
  t.deepEqual(results, ops.map(() => 2048))
  for (let i = 0; i < 16; i++) t.true(memory.subarray(i * 2048, i * 2048 + 2048).equals(content.subarray(i * 4096, i * 4096 + 2048)), `batch read ${i}`)
  const record = memory.subarray(40_000, 44_096)
  record.set(pattern(4096, 34))
  const appended = await ctx.submit([
    { op: 'write', fd: file.fd, offset: size, data: record, link: true },
    { op: 'fdsync', fd: file.fd },
  ])
  t.deepEqual(appended, [4096, 0])
  expectFixed(t, ctx, before, 17, 18, 'a batch of 16 reads and a write → fdsync chain')
  t.true(file.content().subarray(size).equals(pattern(4096, 34)))
})

test('O_DIRECT reads and writes inside a registered aligned buffer give the file’s bytes, fixed on uring', async (t) => {
  const block = 4096
  const content = pattern(64 * block, 35)
  const file = directFileWith(t, content)
  if (file === undefined) return
  const ctx = openContext(t)
  const memory = alignedBuffer(16 * block)
  await ctx.registerBuffers([memory])
  await ctx.registerFiles([file.fd])
  const before = ctx.registered()
  const random = new Random(36)
  const reads: Array<Promise<number>> = []
  const where: Array<[number, number]> = []
  for (let i = 0; i < 16; i++) {
    const blockAt = random.below(64)
    where.push([i, blockAt])
    reads.push(ctx.readInto(memory.subarray(i * block, (i + 1) * block), file.fd, blockAt * block))
  }
  t.deepEqual(await Promise.all(reads), reads.map(() => block))
  for (const [i, blockAt] of where) t.true(memory.subarray(i * block, (i + 1) * block).equals(content.subarray(blockAt * block, (blockAt + 1) * block)), `O_DIRECT read ${i}`)
  const out = memory.subarray(3 * block, 5 * block)
  out.set(pattern(2 * block, 37))
  t.is(await ctx.write(out, file.fd, 10 * block), 2 * block)
  const back = alignedBuffer(2 * block)
  t.is(readSync(file.fd, back, 0, 2 * block, 10 * block), 2 * block)
  t.true(back.equals(pattern(2 * block, 37)), 'the O_DIRECT write wrote the registered bytes')
  expectFixed(t, ctx, before, 17, 17, '16 O_DIRECT reads and one write')
})

test('after unregisterBuffers and unregisterFiles reads and writes still work and nothing is fixed', async (t) => {
  const content = pattern(64 * 1024, 38)
  const file = fileWith(t, content)
  const ctx = openContext(t)
  const memory = Buffer.alloc(16 * 1024)
  await ctx.registerBuffers([memory])
  await ctx.registerFiles([file.fd])
  t.is(await ctx.readInto(memory.subarray(0, 4096), file.fd, 4096), 4096)
  await ctx.unregisterBuffers()
  await ctx.unregisterFiles()
  t.like(ctx.registered(), { buffers: 0, files: 0 })
  const before = ctx.registered()
  t.is(await ctx.readInto(memory.subarray(4096, 8192), file.fd, 8192), 4096)
  t.true(memory.subarray(4096, 8192).equals(content.subarray(8192, 12288)))
  memory.subarray(0, 100).fill(7)
  t.is(await ctx.write(memory.subarray(0, 100), file.fd, 0), 100)
  t.true(file.content().subarray(0, 100).equals(Buffer.alloc(100, 7)))
  expectFixed(t, ctx, before, 0, 0, 'after unregistering')
  // Unregistering with nothing registered resolves; registering again works.
  await ctx.unregisterBuffers()
  await ctx.registerBuffers([memory])
  t.is(await ctx.readInto(memory.subarray(0, 512), file.fd, 0), 512)
  expectFixed(t, ctx, before, 1, 0, 'registered again')
})

test('registering again replaces the set: the old memory is no longer fixed, the new one is', async (t) => {
  const content = pattern(32 * 1024, 39)
  const file = fileWith(t, content)
  const ctx = openContext(t)
  const first = Buffer.alloc(8192)
  const second = Buffer.alloc(8192)
  await ctx.registerBuffers([first])
  const replaced = ctx.registerBuffers([second, Buffer.alloc(100)])
  await replaced
  t.like(ctx.registered(), { buffers: 2 })
  const before = ctx.registered()
  t.is(await ctx.readInto(first.subarray(0, 4096), file.fd, 0), 4096)
  expectFixed(t, ctx, before, 0, 0, 'the replaced buffer')
  t.is(await ctx.readInto(second.subarray(0, 4096), file.fd, 4096), 4096)
  expectFixed(t, ctx, before, 1, 0, 'the new buffer')
  t.true(first.subarray(0, 4096).equals(content.subarray(0, 4096)) && second.subarray(0, 4096).equals(content.subarray(4096, 8192)))
})

test('unregisterBuffers while 200 reads into registered memory are in flight: every read is right, and on uring the unregister settles only after all of them', async (t) => {
  const block = 4096
  const content = pattern(256 * block, 40)
  const file = directFileWith(t, content)
  if (file === undefined) return
  const ctx = openContext(t)
  const memory = alignedBuffer(200 * block)
  await ctx.registerBuffers([memory])
  const before = ctx.registered()
  let settled = 0
  const reads = Array.from({ length: 200 }, (_, i) =>
    ctx.readInto(memory.subarray(i * block, (i + 1) * block), file.fd, ((i * 37) % 256) * block).then((n) => {
      settled++
      return n
    }),
  )
  const settledAtUnregister = ctx.unregisterBuffers().then(() => settled)
  const counts = await within(Promise.all(reads), 30_000, 'the 200 reads')
  t.deepEqual(counts, reads.map(() => block))
  for (let i = 0; i < 200; i++) {
    const at = ((i * 37) % 256) * block
    if (!memory.subarray(i * block, (i + 1) * block).equals(content.subarray(at, at + block))) t.fail(`read ${i} has other bytes`)
  }
  const seen = await settledAtUnregister
  expectFixed(t, ctx, before, 200, 0, 'the 200 reads')
  if (fixedHere(ctx)) t.is(seen, 200, 'the unregister settled after every read using the buffers')
  t.is(ctx.registered().buffers, 0)
})

test('on uring an unregister waits for a read blocked in the kernel on a registered buffer; elsewhere there is nothing to wait for', async (t) => {
  const ctx = openContext(t)
  const memory = Buffer.alloc(4096)
  await ctx.registerBuffers([memory])
  const before = ctx.registered()
  if (!fixedHere(ctx)) {
    // Only io_uring reads an empty pipe without blocking the thread that submits (kernel
    // AIO's io_submit would wait in the pipe): here a file read is in flight instead.
    const file = fileWith(t, 'in flight')
    const read = ctx.readInto(memory.subarray(0, 9), file.fd, 0)
    await within(ctx.unregisterBuffers(), 10_000, 'the unregister')
    t.is(await read, 9)
    t.is(memory.subarray(0, 9).toString(), 'in flight')
    expectFixed(t, ctx, before, 0, 0, 'ordinary I/O')
    return
  }
  const pipe = fifo(t)
  const read = outcome(ctx.readInto(memory.subarray(0, 64), pipe.fd, 0))
  let unregistered = false
  const unregister = ctx.unregisterBuffers().then(() => {
    unregistered = true
  })
  for (let i = 0; i < 20; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5))
    await nextTurn()
  }
  t.false(unregistered, 'the unregister waits for the blocked fixed read')
  t.is(ctx.registered().buffers, 1, 'the set stays registered meanwhile')
  writeSync(pipe.fd, Buffer.from('through the pipe'))
  t.deepEqual(await within(read, 10_000, 'the pipe read'), { ok: true, value: 16 })
  await within(unregister, 10_000, 'the unregister')
  t.true(unregistered)
  t.is(memory.subarray(0, 16).toString(), 'through the pipe')
  t.is(ctx.registered().buffers, 0)
  expectFixed(t, ctx, before, 1, 0, 'the pipe read')
})

test('bad arguments are refused with Node’s error codes on every backend, before anything is registered', async (t) => {
  const ctx = openContext(t)
  await rejectsWithArgumentError(t, () => ctx.registerBuffers('x' as unknown as ArrayBufferView[]), 'ERR_INVALID_ARG_TYPE', TypeError, 'not an array')
  await rejectsWithArgumentError(t, () => ctx.registerBuffers([]), 'ERR_OUT_OF_RANGE', RangeError, 'no buffers')
  await rejectsWithArgumentError(t, () => ctx.registerBuffers(Array.from({ length: 16385 }, () => Buffer.alloc(1))), 'ERR_OUT_OF_RANGE', RangeError, '16,385 buffers')
  await rejectsWithArgumentError(t, () => ctx.registerBuffers([Buffer.alloc(8), Buffer.alloc(0)]), 'ERR_OUT_OF_RANGE', RangeError, 'an empty view')
  await rejectsWithArgumentError(t, () => ctx.registerBuffers([{} as ArrayBufferView]), 'ERR_INVALID_ARG_TYPE', TypeError, 'not a view')
  const gone = new ArrayBuffer(64)
  const view = new Uint8Array(gone)
  detach(gone)
  await rejectsWithArgumentError(t, () => ctx.registerBuffers([view]), 'ERR_INVALID_ARG_VALUE', TypeError, 'a detached view')
  const Resizable = ArrayBuffer as unknown as new (length: number, options: { maxByteLength: number }) => ArrayBuffer
  await rejectsWithArgumentError(t, () => ctx.registerBuffers([new Uint8Array(new Resizable(64, { maxByteLength: 128 }))]), 'ERR_INVALID_ARG_VALUE', TypeError, 'a resizable buffer')
  await rejectsWithArgumentError(t, () => ctx.registerFiles(3 as unknown as number[]), 'ERR_INVALID_ARG_TYPE', TypeError, 'fds not an array')
  await rejectsWithArgumentError(t, () => ctx.registerFiles([]), 'ERR_OUT_OF_RANGE', RangeError, 'no fds')
  await rejectsWithArgumentError(t, () => ctx.registerFiles([-1]), 'ERR_OUT_OF_RANGE', RangeError, 'a negative fd')
  await rejectsWithArgumentError(t, () => ctx.registerFiles(['1' as unknown as number]), 'ERR_INVALID_ARG_TYPE', TypeError, 'an fd that is a string')
  t.like(ctx.registered(), { buffers: 0, files: 0, fixedBufferOps: 0, fixedFileOps: 0 })
})

test('registering a descriptor that is not open rejects with EBADF, syscall io_uring_register, on every backend', async (t) => {
  const file = fileWith(t, 'x')
  const ctx = openContext(t)
  await rejectsWithSystemError(t, ctx.registerFiles([file.fd, NEVER_OPEN_FD]), 'EBADF', 'io_uring_register')
  t.is(ctx.registered().files, 0)
  const before = ctx.registered()
  t.is((await ctx.read(1, file.fd, 0)).toString(), 'x')
  expectFixed(t, ctx, before, 0, 0, 'nothing was registered')
})

test('a closed context rejects registrations with ERR_CAIO_CLOSED and has let go of its registered buffers', async (t) => {
  const ctx = openContext(t)
  await ctx.registerBuffers([Buffer.alloc(4096)])
  await ctx.close()
  t.is(ctx.registered().buffers, 0)
  await t.throwsAsync(ctx.registerBuffers([Buffer.alloc(16)]), { code: 'ERR_CAIO_CLOSED' })
  await t.throwsAsync(ctx.unregisterBuffers(), { code: 'ERR_CAIO_CLOSED' })
  await t.throwsAsync(ctx.registerFiles([0]), { code: 'ERR_CAIO_CLOSED' })
})

test('node --expose-gc: a registered buffer nobody else references stays alive and intact until it is unregistered, then is collected', async (t) => {
  t.timeout(60_000)
  const file = fileWith(t, Buffer.alloc(64 * 1024))
  const script = `
    const caio = require(${JSON.stringify(INDEX_JS)})
    const fs = require('node:fs')
    const ctx = new caio.Context()
    const fd = fs.openSync(${JSON.stringify(file.path)}, 'r+')
    const turn = () => new Promise((resolve) => setTimeout(resolve, 1))
    let weak
    let collected = false
    const registry = new FinalizationRegistry(() => { collected = true })
    async function main() {
      // Made and registered in a plain function: no frame of main keeps the buffer.
      const registered = (() => {
        const memory = new Uint8Array(64 * 1024)
        for (let i = 0; i < memory.length; i++) memory[i] = (i * 7 + 3) & 0xff
        weak = new WeakRef(memory)
        registry.register(memory, 'memory')
        return ctx.registerBuffers([memory])
      })()
      await registered
      for (let i = 0; i < 20; i++) {
        gc()
        // Garbage the collector may move and reuse memory for.
        const garbage = Array.from({ length: 200 }, (_, j) => new Uint8Array(1024 + j))
        garbage.length = 0
        await turn()
      }
      const alive = weak.deref() !== undefined && !collected
      const before = ctx.registered()
      // Written from the registered memory (fixed on uring): the file must hold its pattern.
      const written = await ctx.write(weak.deref(), fd, 0)
      const after = ctx.registered()
      const onDisk = fs.readFileSync(${JSON.stringify(file.path)})
      let intact = onDisk.length === 64 * 1024
      for (let i = 0; intact && i < onDisk.length; i++) if (onDisk[i] !== ((i * 7 + 3) & 0xff)) intact = false
      await ctx.unregisterBuffers()
      for (let i = 0; i < 100 && !collected; i++) { gc(); await turn() }
      console.log(JSON.stringify({ backend: ctx.backend, alive, written, intact, fixed: after.fixedBufferOps - before.fixedBufferOps, collected }))
      await ctx.close()
    }
    main()
  `
  const result = await runChild(process.execPath, ['--expose-gc', '-e', script], childEnv(), 50_000)
  t.is(result.code, 0, describeChild(result))
  const report = lastJsonLine(result.stdout)
  t.true(field(report, 'alive'), `the registered buffer survived 20 full collections: ${result.stdout}`)
  t.is(field(report, 'written'), 64 * 1024)
  t.true(field(report, 'intact'), 'and its bytes were intact when written out')
  t.is(field(report, 'fixed'), field(report, 'backend') === 'uring' ? 1 : 0, 'the write used the registered copy on uring')
  t.true(field(report, 'collected'), 'once unregistered, the buffer was collected')
})

test('the kernel’s RLIMIT_MEMLOCK refusal comes back as ENOMEM, syscall io_uring_register, on uring; the other backends register nothing and succeed', async (t) => {
  t.timeout(30_000)
  const tools = ['/usr/bin/setpriv', '/usr/bin/prlimit'].filter((tool) => !existsSync(tool))
  t.deepEqual(tools, [], 'util-linux’s setpriv and prlimit run the child without CAP_IPC_LOCK under a 1 MiB RLIMIT_MEMLOCK')
  if (tools.length > 0) return
  const script = `
    const caio = require(${JSON.stringify(INDEX_JS)})
    const ctx = new caio.Context()
    ctx.registerBuffers([Buffer.alloc(8 * 1024 * 1024)]).then(
      () => console.log(JSON.stringify({ backend: ctx.backend, ok: true })),
      (error) => console.log(JSON.stringify({ backend: ctx.backend, ok: false, code: error.code, errno: error.errno, syscall: error.syscall, message: error.message, isError: error instanceof Error })),
    ).then(() => ctx.close())
  `
  const result = await runChild('/usr/bin/prlimit', ['--memlock=1048576:1048576', '/usr/bin/setpriv', '--inh-caps=-ipc_lock', '--bounding-set=-ipc_lock', process.execPath, '-e', script], childEnv(), 25_000)
  t.is(result.code, 0, describeChild(result))
  const report = lastJsonLine(result.stdout)
  if (field(report, 'backend') === 'uring') {
    t.like(report, { ok: false, code: 'ENOMEM', errno: -12, syscall: 'io_uring_register', isError: true }, result.stdout)
    t.regex(String(field(report, 'message')), /^ENOMEM: .*, io_uring_register$/)
  } else {
    t.like(report, { ok: true }, result.stdout)
  }
})
