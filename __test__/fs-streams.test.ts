// FileHandle streams (createReadStream, createWriteStream, readableWebStream, readLines) and
// the many-file calls (readFiles, writeFiles), checked side by side against Node's own
// FileHandle and fs/promises on the same files: the same bytes, the same chunk sizes, the
// same events and the same errors.
import { once } from 'node:events'
import { mkdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs'
import { open as nodeOpen, readFile as nodeReadFile, writeFile as nodeWriteFile } from 'node:fs/promises'
import type { FileHandle as NodeFileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'

import test from 'ava'
import type { ExecutionContext } from 'ava'

import type { Context, FileHandle } from '../index'
import { getDefaultContext, readFiles as defaultReadFiles, writeFiles as defaultWriteFiles } from '../subpath/fs'
import {
  INDEX_JS,
  backendUnderTest,
  childEnv,
  describeChild,
  fifo,
  lastJsonLine,
  nextTurn,
  openContext,
  pattern,
  rejectsWithArgumentError,
  runNode,
  tempDir,
  within,
} from './helpers'

const MB = 1024 * 1024

/** A file holding `content` in a fresh temp dir; its path. */
function fileOf(t: ExecutionContext, content: Uint8Array | string, name = 'file'): string {
  const path = join(tempDir(t), name)
  writeFileSync(path, content)
  return path
}

/** A Node FileHandle and a caio one on `path`, both closed after the test. */
async function handles(t: ExecutionContext, ctx: Context, path: string, flags = 'r'): Promise<{ node: NodeFileHandle; caio: FileHandle }> {
  const node = await nodeOpen(path, flags)
  t.teardown(() => node.close())
  const caio = await ctx.open(path, flags)
  t.teardown(() => caio.close())
  return { node, caio }
}

/** Two copies of `content` (one for Node, one for caio) and a handle on each. */
async function twinFiles(t: ExecutionContext, ctx: Context, content: Uint8Array | string, flags: string): Promise<{ nodePath: string; caioPath: string; node: NodeFileHandle; caio: FileHandle }> {
  const dir = tempDir(t)
  const nodePath = join(dir, 'node')
  const caioPath = join(dir, 'caio')
  writeFileSync(nodePath, content)
  writeFileSync(caioPath, content)
  const node = await nodeOpen(nodePath, flags)
  t.teardown(() => node.close())
  const caio = await ctx.open(caioPath, flags)
  t.teardown(() => caio.close())
  return { nodePath, caioPath, node, caio }
}

interface Drained {
  bytes: Buffer
  lengths: number[]
}

/** Everything a byte stream gives, and the length of each chunk. */
async function drain(stream: AsyncIterable<Uint8Array>): Promise<Drained> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(Buffer.from(chunk))
  return { bytes: Buffer.concat(chunks), lengths: chunks.map((chunk) => chunk.length) }
}

/** The fields of an error that Node fixes: what `node:fs` and caio must agree on. */
function errorShape(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { notAnError: error }
  const e = error as Error & Record<string, unknown>
  return { class: e.constructor.name, name: e.name, message: e.message, code: e.code, errno: e.errno, syscall: e.syscall, path: e.path }
}

/** Resolves once `stream` has emitted 'close' (at once if it has already). */
function closed(stream: Readable | Writable): Promise<void> {
  return new Promise((resolve) => (stream.closed ? resolve() : stream.once('close', () => resolve())))
}

/** The error a stream emits (`undefined` when it ends without one), once it has closed. */
async function streamOutcome(stream: Readable | Writable): Promise<Error | undefined> {
  let failure: Error | undefined
  stream.on('error', (error: Error) => (failure = error))
  await closed(stream)
  return failure
}

/** A Writable that takes one chunk at a time and answers each a turn later. */
function slowSink(into: Buffer[]): Writable {
  return new Writable({
    highWaterMark: 1,
    write(chunk: Buffer, _encoding, callback) {
      into.push(Buffer.from(chunk))
      setImmediate(callback)
    },
  })
}

// ---- createReadStream

test('fs streams: createReadStream gives the whole file in the chunks Node gives', async (t) => {
  const ctx = openContext(t)
  const content = pattern(MB + 12_345, 11)
  const { node, caio } = await handles(t, ctx, fileOf(t, content))
  const [expected, actual] = await Promise.all([drain(node.createReadStream()), drain(caio.createReadStream())])
  t.true(expected.bytes.equals(content), 'Node reads the file')
  t.true(actual.bytes.equals(content))
  t.deepEqual(actual.lengths, expected.lengths)
})

test('fs streams: createReadStream ranges (start/end inclusive) read what Node reads', async (t) => {
  const ctx = openContext(t)
  const content = pattern(200_000, 12)
  const path = fileOf(t, content)
  const size = content.length
  const ranges = [
    { start: 10, end: 20 },
    { start: 0, end: 0 },
    { start: size - 10, end: size + 5000 },
    { start: size - 1 },
    { start: size },
    { start: size + 5 },
    { start: 70_000 },
    { end: 99 },
    { end: size * 2 },
    { start: 65_536, end: 65_536 * 2 },
  ]
  for (const range of ranges) {
    const { node, caio } = await handles(t, ctx, path)
    const [expected, actual] = await Promise.all([drain(node.createReadStream(range)), drain(caio.createReadStream(range))])
    const from = range.start ?? 0
    const to = Math.min(range.end ?? Infinity, size - 1)
    t.true(expected.bytes.equals(content.subarray(from, to + 1)), `Node's bytes of ${JSON.stringify(range)}`)
    t.true(actual.bytes.equals(expected.bytes), `bytes of ${JSON.stringify(range)}: ${actual.bytes.length} vs ${expected.bytes.length}`)
    t.deepEqual(actual.lengths, expected.lengths, `chunks of ${JSON.stringify(range)}`)
  }
})

test('fs streams: createReadStream with a small highWaterMark gives chunks of that size but the last', async (t) => {
  const ctx = openContext(t)
  const content = pattern(MB + 123, 13)
  const path = fileOf(t, content)
  for (const options of [{ highWaterMark: 1000, start: 0 }, { highWaterMark: 1000 }, { highWaterMark: 1000, start: 1 }]) {
    const { node, caio } = await handles(t, ctx, path)
    const [expected, actual] = await Promise.all([drain(node.createReadStream(options)), drain(caio.createReadStream(options))])
    const from = options.start ?? 0
    t.true(actual.bytes.equals(content.subarray(from)), JSON.stringify(options))
    t.deepEqual(actual.lengths, expected.lengths, JSON.stringify(options))
    t.true(
      actual.lengths.slice(0, -1).every((length) => length === 1000),
      `${JSON.stringify(options)}: every chunk but the last is 1000 bytes`,
    )
    t.is(actual.lengths[actual.lengths.length - 1], (content.length - from) % 1000 || 1000)
  }
})

test('fs streams: createReadStream without start reads on from the file position, as Node does', async (t) => {
  const ctx = openContext(t)
  const content = pattern(300_000, 14)
  const { node, caio } = await handles(t, ctx, fileOf(t, content))
  t.is((await node.read(Buffer.alloc(10), 0, 10, null)).bytesRead, 10)
  t.is((await caio.read(Buffer.alloc(10), 0, 10, null)).bytesRead, 10)
  const [expected, actual] = await Promise.all([drain(node.createReadStream()), drain(caio.createReadStream())])
  t.true(expected.bytes.equals(content.subarray(10)), 'Node gives the rest of the file')
  t.true(actual.bytes.equals(expected.bytes))
  t.deepEqual(actual.lengths, expected.lengths)
})

test('fs streams: createReadStream with an encoding gives strings, characters whole across chunks', async (t) => {
  const ctx = openContext(t)
  const text = 'héllo wörld → 日本語 🦀🚀 '.repeat(500)
  const path = fileOf(t, text)
  for (const encoding of ['utf8', 'hex', 'base64', 'latin1'] as const) {
    const { node, caio } = await handles(t, ctx, path)
    const options = { encoding, highWaterMark: 7 }
    const expected: string[] = []
    for await (const chunk of node.createReadStream(options)) expected.push(chunk as string)
    const actual: unknown[] = []
    for await (const chunk of caio.createReadStream(options)) actual.push(chunk)
    t.true(
      actual.every((chunk) => typeof chunk === 'string'),
      `${encoding}: every chunk is a string`,
    )
    t.is(actual.join(''), Buffer.from(text).toString(encoding), encoding)
    t.deepEqual(actual, expected, `${encoding}: the same strings as Node's`)
  }
})

test('fs streams: createReadStream closes the handle at its end, or with autoClose false leaves it open', async (t) => {
  const ctx = openContext(t)
  const path = fileOf(t, pattern(100_000, 15))
  {
    const { node, caio } = await handles(t, ctx, path)
    const nodeStream = node.createReadStream()
    const caioStream = caio.createReadStream()
    nodeStream.resume()
    caioStream.resume()
    t.is(await streamOutcome(nodeStream), undefined)
    t.is(await streamOutcome(caioStream), undefined)
    t.is(node.fd, -1, "Node's handle is closed")
    t.is(caio.fd, -1, 'the handle is closed by the time the stream closes')
    await t.throwsAsync(caio.read(Buffer.alloc(4), 0, 4, 0), { code: 'EBADF' })
  }
  {
    const { node, caio } = await handles(t, ctx, path)
    const sequences: string[][] = []
    for (const [name, fh] of [
      ['Node', node],
      ['caio', caio],
    ] as const) {
      const stream = fh.createReadStream({ autoClose: false, start: 0 })
      const events: string[] = []
      for (const event of ['end', 'close', 'error'] as const) stream.on(event, () => events.push(event))
      stream.resume()
      await within(once(stream, 'end'), 5000, `${name}: end of the stream`)
      for (let i = 0; i < 5; i++) await nextTurn()
      t.not(fh.fd, -1, `${name}: the handle stays open`)
      sequences.push([...events])
      // Node's stream holds its handle until destroyed (its close() would wait forever).
      stream.destroy()
      await within(closed(stream), 5000, `${name}: close after destroy`)
    }
    t.deepEqual(sequences, [['end'], ['end']], "caio's events are Node's: no 'close', the descriptor is open")
    t.not(caio.fd, -1, 'destroyed, the stream still leaves the handle open')
    t.is((await caio.read(Buffer.alloc(4), 0, 4, 0)).bytesRead, 4, 'the handle still reads')
  }
})

test('fs streams: destroy() mid-stream emits close and closes the handle (autoClose), as Node does', async (t) => {
  const ctx = openContext(t)
  const size = 2 * MB
  const path = fileOf(t, pattern(size, 16))
  for (const options of [{}, { start: 0 }, { start: 0, highWaterMark: 1000 }]) {
    const { node, caio } = await handles(t, ctx, path)
    for (const [name, fh, stream] of [
      ['Node', node, node.createReadStream(options)],
      ['caio', caio, caio.createReadStream(options)],
    ] as const) {
      const events: string[] = []
      stream.on('end', () => events.push('end'))
      stream.once('data', () => {
        events.push('data')
        stream.destroy()
      })
      const failure = await within(streamOutcome(stream), 5000, `${name} ${JSON.stringify(options)}: close after destroy`)
      t.is(failure, undefined, `${name}: destroy() without an error emits none`)
      t.deepEqual(events, ['data'], `${name}: no end after destroy`)
      t.is(fh.fd, -1, `${name} ${JSON.stringify(options)}: the handle is closed`)
      t.true(stream.bytesRead < size, `${name}: destroyed before the end`)
    }
  }
  // autoClose false: destroy leaves the handle usable. Node's closes it all the same, which
  // its maintainers count a bug (nodejs/node#45721, #49241), so this is not compared.
  for (const options of [{ autoClose: false }, { autoClose: false, start: 0 }]) {
    const caio = await ctx.open(path, 'r')
    t.teardown(() => caio.close())
    const stream = caio.createReadStream(options)
    stream.once('data', () => stream.destroy())
    t.is(await within(streamOutcome(stream), 5000, 'close after destroy'), undefined)
    t.not(caio.fd, -1, `${JSON.stringify(options)}: the handle stays open`)
    t.is((await caio.read(Buffer.alloc(8), 0, 8, 0)).bytesRead, 8)
  }
})

test('fs streams: bytesRead equals what the stream gave', async (t) => {
  const ctx = openContext(t)
  const content = pattern(777_777, 17)
  const path = fileOf(t, content)
  for (const options of [{}, { start: 0 }, { start: 1000, end: 500_000 }, { highWaterMark: 4096 }]) {
    const { node, caio } = await handles(t, ctx, path)
    const nodeStream = node.createReadStream(options)
    const caioStream = caio.createReadStream(options)
    const [expected, actual] = await Promise.all([drain(nodeStream), drain(caioStream)])
    t.is(caioStream.bytesRead, actual.bytes.length, JSON.stringify(options))
    t.is(caioStream.bytesRead, nodeStream.bytesRead, `${JSON.stringify(options)}: the same as Node's`)
    t.is(actual.bytes.length, expected.bytes.length)
  }
})

test('fs streams: createReadStream on a write-only handle errors with EBADF like Node', async (t) => {
  const ctx = openContext(t)
  const dir = tempDir(t)
  for (const options of [{}, { start: 0 }, { start: 0, highWaterMark: 16 }]) {
    const node = await nodeOpen(join(dir, 'node'), 'w')
    t.teardown(() => node.close())
    const caio = await ctx.open(join(dir, 'caio'), 'w')
    t.teardown(() => caio.close())
    const nodeStream = node.createReadStream(options)
    const caioStream = caio.createReadStream(options)
    nodeStream.resume()
    caioStream.resume()
    const [expected, actual] = await Promise.all([streamOutcome(nodeStream), streamOutcome(caioStream)])
    t.is(field(expected, 'code'), 'EBADF', "Node's stream fails")
    t.deepEqual(errorShape(actual), errorShape(expected), JSON.stringify(options))
    t.is(caio.fd, node.fd, 'closed (autoClose) as Node closes its own')
    t.is(caio.fd, -1)
  }
})

test('fs streams: reads ahead that fail before the head, or past end of file, leave no unhandled rejection', async (t) => {
  // The stream over a scripted source, in a child: an unhandled rejection ends it (exit 1).
  const script = `
    const { FileReadStream } = require(${JSON.stringify(join(__dirname, '..', 'lib', 'streams.js'))})
    const failure = () => Object.assign(new Error('EBADF: bad file descriptor, read'), { code: 'EBADF' })
    const later = (ms, outcome) => new Promise((resolve, reject) => setTimeout(() => (outcome instanceof Error ? reject(outcome) : resolve(outcome)), ms))
    const source = (plan) => ({ appending: false, readAt: (view, position) => plan(position), writeAt: () => Promise.reject(failure()), sync: async () => {}, close: async () => {} })
    const closed = (stream) => new Promise((resolve) => (stream.closed ? resolve() : stream.once('close', resolve)))
    ;(async () => {
      const seen = []
      // The head read fails last; the three ahead of it fail at once.
      const failing = new FileReadStream(source((at) => (at === 0 ? later(30, failure()) : Promise.reject(failure()))), { start: 0, highWaterMark: 16 })
      failing.on('error', (error) => seen.push(error.code))
      failing.resume()
      await closed(failing)
      // End of file 3 bytes in (read again there: 0 bytes); the reads past it fail afterwards.
      const ending = new FileReadStream(source((at) => (at === 0 ? Promise.resolve(3) : at === 3 ? Promise.resolve(0) : later(30, failure()))), { start: 0, highWaterMark: 16 })
      ending.on('error', (error) => seen.push(error.code))
      ending.on('end', () => seen.push('end'))
      ending.resume()
      await closed(ending)
      await later(80)
      console.log(JSON.stringify({ seen }))
    })()
  `
  const result = await runNode(script, childEnv())
  t.is(result.code, 0, describeChild(result))
  t.deepEqual(lastJsonLine(result.stdout), { seen: ['EBADF', 'end'] }, describeChild(result))
  t.notRegex(result.stderr, /Unhandled|PromiseRejection/, describeChild(result))
})

test('fs streams: reads ahead that fail out of order on the backend leave no unhandled rejection', async (t) => {
  const backend = backendUnderTest()
  const script = `
    const { Context } = require(${JSON.stringify(INDEX_JS)})
    const { mkdtempSync, rmSync } = require('node:fs')
    const { join } = require('node:path')
    const { tmpdir } = require('node:os')
    ;(async () => {
      const ctx = new Context(${JSON.stringify(backend === undefined ? {} : { backend })})
      const dir = mkdtempSync(join(tmpdir(), 'caio-test-'))
      let errors = 0
      const one = async (i) => {
        const fh = await ctx.open(join(dir, 'w' + i), 'w')
        const stream = fh.createReadStream({ start: 0, highWaterMark: 16 })
        stream.on('error', (error) => { if (error.code === 'EBADF') errors++ })
        stream.resume()
        await new Promise((resolve) => stream.on('close', resolve))
      }
      // Several at once, so that reads of one stream complete out of order.
      for (const [width, rounds] of [[20, 10], [4, 50]]) {
        for (let round = 0; round < rounds; round++) await Promise.all(Array.from({ length: width }, (_, i) => one(width * 1000 + round * width + i)))
      }
      // A turn for late rejections to be reported.
      await new Promise((resolve) => setTimeout(resolve, 50))
      await ctx.close()
      rmSync(dir, { recursive: true, force: true })
      console.log(JSON.stringify({ errors }))
    })()
  `
  const result = await runNode(script, childEnv())
  t.is(result.code, 0, describeChild(result))
  t.deepEqual(lastJsonLine(result.stdout), { errors: 400 }, describeChild(result))
  t.notRegex(result.stderr, /Unhandled|PromiseRejection/, describeChild(result))
})

test('fs streams: a stream at the file position of a pipe goes on after a short read, as Node does', async (t) => {
  const ctx = openContext(t)
  const pipe = fifo(t)
  const pieces = ['abc', 'def', 'ghi']
  const node = await nodeOpen(pipe.path, 'r+')
  t.teardown(() => node.close())
  const caio = await ctx.open(pipe.path, 'r+')
  t.teardown(() => caio.close())
  for (const [name, stream] of [
    ['Node', node.createReadStream({ end: 8 })],
    ['caio', caio.createReadStream({ end: 8 })],
  ] as const) {
    const chunks: string[] = []
    let next = 0
    writeSync(pipe.fd, pieces[next++]!)
    stream.on('data', (chunk: Buffer) => {
      chunks.push(chunk.toString())
      // The next piece only once this one is taken: each read finds exactly one piece.
      if (next < pieces.length) writeSync(pipe.fd, pieces[next++]!)
    })
    await within(once(stream, 'end'), 5000, `${name}: end of the range`)
    t.deepEqual(chunks, pieces, `${name}: every piece the pipe gave`)
  }
})

/** Resolves once `stream` has read something from its file. */
async function readSome(stream: { bytesRead: number }): Promise<void> {
  while (stream.bytesRead === 0) await nextTurn()
}

test('fs streams: a paused stream stays within its backpressure, then gives every byte in order', async (t) => {
  const ctx = openContext(t)
  const content = pattern(MB, 18)
  const path = fileOf(t, content)
  for (const options of [{ start: 0, highWaterMark: 1000 }, { highWaterMark: 1000 }]) {
    const caio = await ctx.open(path, 'r')
    t.teardown(() => caio.close())
    const stream = caio.createReadStream(options)
    // Paused, nothing taken: read(0) has the stream fill its buffer up to its mark. Wait
    // for it to have read something however busy the machine is, then give it time to
    // overrun its mark, which it must not.
    stream.read(0)
    await within(readSome(stream), 10_000, `${JSON.stringify(options)}: the stream read ahead`)
    for (let i = 0; i < 20; i++) await nextTurn()
    await new Promise((resolve) => setTimeout(resolve, 20))
    t.true(stream.bytesRead > 0, `${JSON.stringify(options)}: the stream read ahead`)
    t.true(stream.bytesRead < 100 * 1000, `${JSON.stringify(options)}: read ${stream.bytesRead} bytes ahead of a paused consumer`)
    t.true(stream.readableLength < 100 * 1000, `${JSON.stringify(options)}: ${stream.readableLength} bytes buffered`)
    const received: Buffer[] = []
    await within(pipeline(stream, slowSink(received)), 10_000, 'pipeline into a slow sink')
    t.true(Buffer.concat(received).equals(content), JSON.stringify(options))
    t.is(stream.bytesRead, content.length)
  }
})

test('fs streams: a slow consumer through pipeline() receives every byte in order, like Node', async (t) => {
  const ctx = openContext(t)
  const content = pattern(MB / 2, 19)
  const path = fileOf(t, content)
  for (const options of [{ start: 0, highWaterMark: 777 }, { highWaterMark: 1024 }, { start: 100, end: 400_000, highWaterMark: 3000 }]) {
    const { node, caio } = await handles(t, ctx, path)
    const expected: Buffer[] = []
    const actual: Buffer[] = []
    await Promise.all([pipeline(node.createReadStream(options), slowSink(expected)), pipeline(caio.createReadStream(options), slowSink(actual))])
    t.true(Buffer.concat(actual).equals(Buffer.concat(expected)), JSON.stringify(options))
    t.deepEqual(
      actual.map((chunk) => chunk.length),
      expected.map((chunk) => chunk.length),
      JSON.stringify(options),
    )
  }
})

test('fs streams: a 5 MB file piped into createWriteStream of another handle arrives exactly', async (t) => {
  const ctx = openContext(t)
  const content = pattern(5 * MB + 17, 20)
  const source = fileOf(t, content)
  const dir = tempDir(t)
  for (const [name, readOptions, writeOptions] of [
    ['positioned', { start: 0 }, { start: 0 }],
    ['at the file position', {}, {}],
  ] as const) {
    const from = await ctx.open(source, 'r')
    t.teardown(() => from.close())
    const target = join(dir, `copy-${name}`)
    const to = await ctx.open(target, 'w')
    t.teardown(() => to.close())
    const reader = from.createReadStream(readOptions)
    const writer = to.createWriteStream(writeOptions)
    await within(pipeline(reader, writer), 10_000, `pipeline ${name}`)
    t.true(readFileSync(target).equals(content), name)
    t.is(writer.bytesWritten, content.length)
    t.is(reader.bytesRead, content.length)
    t.is(from.fd, -1, `${name}: the source is closed`)
    t.is(to.fd, -1, `${name}: the target is closed`)
  }
})

// ---- createWriteStream

/** Writes `chunks` through `stream` and waits for it to close; its error, if any. */
async function writeThrough(stream: Writable, chunks: readonly (Buffer | string)[]): Promise<Error | undefined> {
  const outcome = streamOutcome(stream)
  for (const chunk of chunks) stream.write(chunk)
  stream.end()
  return outcome
}

test('fs streams: createWriteStream with start writes every chunk in order at its place', async (t) => {
  const ctx = openContext(t)
  const chunks = Array.from({ length: 200 }, (_, i) => pattern(1000 + (i % 7) * 333, 100 + i))
  for (const start of [0, 5, 12_345]) {
    const twins = await twinFiles(t, ctx, Buffer.alloc(20_000, 0x2e), 'r+')
    const nodeStream = twins.node.createWriteStream({ start })
    const caioStream = twins.caio.createWriteStream({ start })
    t.is(await writeThrough(nodeStream, chunks), undefined)
    t.is(await writeThrough(caioStream, chunks), undefined)
    const expected = readFileSync(twins.nodePath)
    t.true(expected.subarray(start, start + Buffer.concat(chunks).length).equals(Buffer.concat(chunks)), "Node's file")
    t.true(readFileSync(twins.caioPath).equals(expected), `start ${start}`)
    t.is(caioStream.bytesWritten, nodeStream.bytesWritten)
  }
})

test('fs streams: createWriteStream without start writes at the file position, on w and a handles', async (t) => {
  const ctx = openContext(t)
  const chunks = ['one,', 'two,', Buffer.from('three,'), 'four', pattern(70_000, 21)]
  for (const [flags, options] of [
    ['w', {}],
    ['r+', {}],
    ['a', {}],
    ['a', { start: 0 }],
    ['a+', { start: 3 }],
  ] as const) {
    const twins = await twinFiles(t, ctx, 'previous content\n', flags)
    // Move the file position first: the stream must go on from it.
    await twins.node.write('HEAD', null)
    await twins.caio.write('HEAD', null)
    t.is(await writeThrough(twins.node.createWriteStream(options), chunks), undefined)
    t.is(await writeThrough(twins.caio.createWriteStream(options), chunks), undefined)
    const expected = readFileSync(twins.nodePath)
    t.true(readFileSync(twins.caioPath).equals(expected), `${flags} ${JSON.stringify(options)}: ${readFileSync(twins.caioPath).subarray(0, 40).toString()} vs ${expected.subarray(0, 40).toString()}`)
  }
})

test('fs streams: a write stream with start on an appending handle keeps its writes in order', async (t) => {
  const ctx = openContext(t)
  // The kernel ignores positions on an O_APPEND descriptor: writes land in the order they run.
  const chunks = Array.from({ length: 200 }, (_, i) => pattern(500 + (i % 13) * 97, 300 + i))
  for (const flags of ['a', 'a+', 'a', 'a+', 'a', 'a+']) {
    const twins = await twinFiles(t, ctx, 'start\n', flags)
    for (const fh of [twins.node, twins.caio]) {
      const stream = fh.createWriteStream({ start: 0 })
      const outcome = streamOutcome(stream)
      // One chunk per write call, each after the last one's callback: writes that a stream
      // with a start may keep in flight side by side.
      for (const chunk of chunks) await new Promise((resolve) => stream.write(chunk, resolve))
      stream.end()
      t.is(await outcome, undefined)
    }
    const expected = readFileSync(twins.nodePath)
    t.true(expected.equals(Buffer.concat([Buffer.from('start\n'), ...chunks])), "Node's file")
    t.true(readFileSync(twins.caioPath).equals(expected), flags)
  }
})

test('fs streams: 10,000 writes of 100 bytes make exactly the file', async (t) => {
  const ctx = openContext(t)
  const dir = tempDir(t)
  const content = pattern(10_000 * 100, 22)
  for (const options of [{ start: 0 }, {}, { start: 0, highWaterMark: 1 }]) {
    const path = join(dir, `many-${JSON.stringify(options)}`)
    const fh = await ctx.open(path, 'w')
    t.teardown(() => fh.close())
    const stream = fh.createWriteStream(options)
    const done = streamOutcome(stream)
    let waited = 0
    for (let i = 0; i < 10_000; i++) {
      if (!stream.write(content.subarray(i * 100, (i + 1) * 100))) {
        waited++
        await once(stream, 'drain')
      }
    }
    stream.end()
    t.is(await within(done, 10_000, 'many small writes'), undefined)
    t.true(readFileSync(path).equals(content), JSON.stringify(options))
    t.is(stream.bytesWritten, content.length)
    t.true(waited > 0, `${JSON.stringify(options)}: the producer was held back at times`)
  }
})

test('fs streams: createWriteStream with flush: true finishes with the data in the file', async (t) => {
  const ctx = openContext(t)
  const twins = await twinFiles(t, ctx, '', 'w')
  const chunks = [pattern(100_000, 23), 'tail']
  t.is(await writeThrough(twins.node.createWriteStream({ flush: true }), chunks), undefined)
  const stream = twins.caio.createWriteStream({ flush: true })
  const finished = once(stream, 'finish')
  t.is(await writeThrough(stream, chunks), undefined)
  await finished
  t.true(readFileSync(twins.caioPath).equals(readFileSync(twins.nodePath)))
  t.is(twins.caio.fd, -1)
})

test('fs streams: end() emits finish then close, as Node does; autoClose false keeps the handle', async (t) => {
  const ctx = openContext(t)
  for (const autoClose of [true, false]) {
    const twins = await twinFiles(t, ctx, '', 'w')
    const sequences: string[][] = []
    for (const fh of [twins.node, twins.caio]) {
      const stream = fh.createWriteStream({ autoClose })
      const events: string[] = []
      for (const name of ['finish', 'close', 'error'] as const) stream.on(name, () => events.push(name))
      stream.write('hello ')
      await new Promise<void>((resolve) => stream.end('world', () => resolve()))
      if (autoClose) await within(closed(stream), 5000, 'close of the stream')
      for (let i = 0; i < 5; i++) await nextTurn()
      sequences.push([...events])
      t.is(fh.fd === -1, autoClose, `autoClose ${autoClose}: the handle is ${autoClose ? 'closed' : 'open'}`)
      if (!autoClose && fh === twins.caio) t.is((await twins.caio.write('!', null)).bytesWritten, 1, 'the handle still writes')
      // Node's stream holds its handle until destroyed (its close() would wait forever).
      stream.destroy()
    }
    t.deepEqual(sequences[1], sequences[0], `autoClose ${autoClose}: the events Node emits`)
    t.deepEqual(sequences[1], autoClose ? ['finish', 'close'] : ['finish'])
    t.is(readFileSync(twins.caioPath).toString(), autoClose ? 'hello world' : 'hello world!')
  }
})

test('fs streams: bytesWritten and the encoding option match Node', async (t) => {
  const ctx = openContext(t)
  for (const encoding of ['utf8', 'hex', 'base64', 'latin1'] as const) {
    const twins = await twinFiles(t, ctx, '', 'w')
    const data = ['c3a9', 'abcdef00', 'aGVsbG8=', 'héllo']
    const nodeStream = twins.node.createWriteStream({ encoding })
    const caioStream = twins.caio.createWriteStream({ encoding })
    t.is(await writeThrough(nodeStream, data), undefined)
    t.is(await writeThrough(caioStream, data), undefined)
    const expected = readFileSync(twins.nodePath)
    t.true(readFileSync(twins.caioPath).equals(expected), encoding)
    t.is(caioStream.bytesWritten, expected.length, encoding)
    t.is(caioStream.bytesWritten, nodeStream.bytesWritten)
  }
})

test('fs streams: createWriteStream on a read-only handle errors with EBADF like Node', async (t) => {
  const ctx = openContext(t)
  for (const options of [{}, { start: 0 }]) {
    const twins = await twinFiles(t, ctx, 'read only', 'r')
    const [expected, actual] = await Promise.all([writeThrough(twins.node.createWriteStream(options), ['abc']), writeThrough(twins.caio.createWriteStream(options), ['abc'])])
    t.is(field(expected, 'code'), 'EBADF', "Node's stream fails")
    t.deepEqual(errorShape(actual), errorShape(expected), JSON.stringify(options))
    t.is(twins.caio.fd, twins.node.fd, 'closed (autoClose) as Node closes its own')
    t.is(readFileSync(twins.caioPath).toString(), 'read only')
  }
})

// ---- readableWebStream and readLines

test('fs streams: readableWebStream gives the whole file, or the rest after a read', async (t) => {
  const ctx = openContext(t)
  const content = pattern(MB + 999, 24)
  const path = fileOf(t, content)
  {
    const { node, caio } = await handles(t, ctx, path)
    const [expected, actual] = await Promise.all([drain(node.readableWebStream() as AsyncIterable<Uint8Array>), drain(caio.readableWebStream())])
    t.true(expected.bytes.equals(content), "Node's web stream")
    t.true(actual.bytes.equals(content))
  }
  {
    const { node, caio } = await handles(t, ctx, path)
    await node.read(Buffer.alloc(1000), 0, 1000, null)
    await caio.read(Buffer.alloc(1000), 0, 1000, null)
    const [expected, actual] = await Promise.all([drain(node.readableWebStream() as AsyncIterable<Uint8Array>), drain(caio.readableWebStream())])
    t.true(expected.bytes.equals(content.subarray(1000)), "Node's web stream, after a read")
    t.true(actual.bytes.equals(expected.bytes))
  }
  {
    // A BYOB reader gets the same bytes.
    const caio = await ctx.open(fileOf(t, content.subarray(0, 200_000), 'small'), 'r')
    t.teardown(() => caio.close())
    const reader = caio.readableWebStream().getReader({ mode: 'byob' })
    const parts: Buffer[] = []
    for (;;) {
      const { value, done } = await reader.read(new Uint8Array(30_000))
      if (value !== undefined && value.byteLength > 0) parts.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength))
      if (done) break
    }
    t.true(Buffer.concat(parts).equals(content.subarray(0, 200_000)), 'a BYOB reader')
  }
})

test('fs streams: readLines gives the lines Node gives', async (t) => {
  const ctx = openContext(t)
  const long = 'x'.repeat(70_000)
  const texts = [
    'one\ntwo\nthree\n',
    'one\r\ntwo\r\nthree\r\n',
    'mixed\r\nendings\nhere\r\n\r\n\nlast',
    '\n\n\nempty lines\n\n',
    'no trailing newline',
    '',
    '\n',
    `${long}\r\n${long}\n日本語\r\n🦀`,
  ]
  for (const text of texts) {
    const path = fileOf(t, text)
    for (const options of [undefined, { highWaterMark: 3 }, { start: 2 }]) {
      const { node, caio } = await handles(t, ctx, path)
      const expected: string[] = []
      for await (const line of node.readLines(options)) expected.push(line)
      const actual: string[] = []
      for await (const line of caio.readLines(options)) actual.push(line)
      t.deepEqual(actual, expected, `${JSON.stringify(text.slice(0, 40))} ${JSON.stringify(options)}`)
    }
  }
})

// ---- readFiles

function field(error: unknown, name: string): unknown {
  return typeof error === 'object' && error !== null ? (error as Record<string, unknown>)[name] : undefined
}

/** What Node's readFile gives for `path`: its content or its error. */
function nodeReadOutcome(path: unknown, encoding?: BufferEncoding): Promise<unknown> {
  return (nodeReadFile as (path: unknown, options: unknown) => Promise<unknown>)(path, encoding === undefined ? undefined : { encoding }).catch((error: unknown) => error)
}

/** Compares an entry of readFiles with what Node's readFile gave for its path. */
function sameOutcome(t: ExecutionContext, actual: unknown, expected: unknown, what: string): void {
  if (expected instanceof Error) {
    t.true(actual instanceof Error, `${what}: an Error entry`)
    t.deepEqual(errorShape(actual), errorShape(expected), what)
  } else if (Buffer.isBuffer(expected)) {
    t.true(Buffer.isBuffer(actual), `${what}: a Buffer entry`)
    t.true(Buffer.isBuffer(actual) && actual.equals(expected), what)
  } else {
    t.is(actual, expected, what)
  }
}

test('fs streams: readFiles gives each file or its Error, in order, with the errors of Node', async (t) => {
  const ctx = openContext(t)
  const dir = tempDir(t)
  mkdirSync(join(dir, 'sub'))
  writeFileSync(join(dir, 'a'), 'first')
  writeFileSync(join(dir, 'b'), pattern(300_000, 25))
  writeFileSync(join(dir, 'empty'), '')
  writeFileSync(join(dir, 'file'), 'not a directory')
  const paths = [join(dir, 'a'), join(dir, 'missing'), join(dir, 'sub'), join(dir, 'b'), join(dir, 'empty'), join(dir, 'file', 'below'), Buffer.from(join(dir, 'a')), new URL(`file://${join(dir, 'b')}`), join(dir, 'a')]
  const results = await ctx.readFiles(paths)
  t.true(Array.isArray(results))
  t.is(results.length, paths.length)
  for (const [i, path] of paths.entries()) sameOutcome(t, results[i], await nodeReadOutcome(path), `entry ${i} (${String(path)})`)
  t.true(results[1] instanceof Error && field(results[1], 'code') === 'ENOENT')
  t.true(results[2] instanceof Error && field(results[2], 'code') === 'EISDIR')
  t.true(results[5] instanceof Error && field(results[5], 'code') === 'ENOTDIR')
})

test('fs streams: readFiles never rejects for one bad path, its entry is the Error Node throws', async (t) => {
  const ctx = openContext(t)
  const dir = tempDir(t)
  writeFileSync(join(dir, 'ok'), 'fine')
  const paths = [join(dir, 'ok'), 'nul\0byte', {}, 42.5, join(dir, 'ok')] as unknown as string[]
  const results = await ctx.readFiles(paths)
  t.is(results.length, paths.length)
  t.is(String(results[0]), 'fine')
  t.is(String(results[4]), 'fine')
  for (const i of [1, 2, 3]) {
    t.true(results[i] instanceof Error, `entry ${i} is an Error`)
    const expected = await nodeReadOutcome(paths[i])
    t.is(field(results[i], 'code'), field(expected, 'code'), `entry ${i}: ${String(field(expected, 'message'))}`)
    t.is((results[i] as Error).constructor, (expected as Error).constructor, `entry ${i}: the class of Node's error`)
  }
})

test('fs streams: readFiles with an encoding gives strings, as readFile does', async (t) => {
  const ctx = openContext(t)
  const dir = tempDir(t)
  const texts = ['héllo', 'wörld 🦀', '']
  const paths = texts.map((text, i) => {
    writeFileSync(join(dir, `t${i}`), text)
    return join(dir, `t${i}`)
  })
  paths.push(join(dir, 'missing'))
  for (const options of [{ encoding: 'utf8' }, 'utf8', { encoding: 'hex' }, 'latin1'] as const) {
    const results = await ctx.readFiles(paths, options)
    const encoding = typeof options === 'string' ? options : options.encoding
    for (const [i, path] of paths.entries()) sameOutcome(t, results[i], await nodeReadOutcome(path, encoding), `${JSON.stringify(options)} entry ${i}`)
    t.is(typeof results[1], 'string')
  }
})

test('fs streams: readFiles gives the same results whatever its concurrency', async (t) => {
  const ctx = openContext(t)
  const dir = tempDir(t)
  const paths: string[] = []
  for (let i = 0; i < 40; i++) {
    const path = join(dir, `f${i}`)
    if (i % 5 !== 3) writeFileSync(path, pattern(100 + i * 997, 200 + i))
    paths.push(path)
  }
  paths.push(dir)
  const reference = await ctx.readFiles(paths)
  for (const concurrency of [1, 3, 1000]) {
    const results = await ctx.readFiles(paths, { concurrency })
    t.is(results.length, paths.length)
    for (const [i, path] of paths.entries()) sameOutcome(t, results[i], await nodeReadOutcome(path), `concurrency ${concurrency}, entry ${i}`)
    for (const [i] of paths.entries()) sameOutcome(t, results[i], reference[i], `concurrency ${concurrency} vs the default, entry ${i}`)
  }
})

test('fs streams: readFiles of 2,000 small files gives each its own content', async (t) => {
  const ctx = openContext(t)
  const dir = tempDir(t)
  const paths: string[] = []
  for (let i = 0; i < 2000; i++) {
    const path = join(dir, `s${i}`)
    writeFileSync(path, `file number ${i}\n`.repeat((i % 9) + 1))
    paths.push(path)
  }
  const results = await within(ctx.readFiles(paths, 'utf8'), 10_000, 'readFiles of 2,000 files')
  t.is(results.length, 2000)
  const wrong = results.filter((result, i) => result !== `file number ${i}\n`.repeat((i % 9) + 1))
  t.is(wrong.length, 0, `${wrong.length} entries wrong, first: ${String(wrong[0])}`)
})

test('fs streams: readFiles and writeFiles reject bad arguments with ERR_INVALID_ARG_TYPE / ERR_OUT_OF_RANGE', async (t) => {
  const ctx = openContext(t)
  const anyCtx = ctx as unknown as Record<'readFiles' | 'writeFiles', (...args: unknown[]) => unknown>
  for (const bad of ['/etc/hostname', undefined, null, 42, { length: 1, 0: '/etc/hostname' }, new Set(['/etc/hostname'])]) {
    await rejectsWithArgumentError(t, () => anyCtx.readFiles(bad), 'ERR_INVALID_ARG_TYPE', TypeError, `readFiles(${String(bad)})`)
    await rejectsWithArgumentError(t, () => anyCtx.writeFiles(bad), 'ERR_INVALID_ARG_TYPE', TypeError, `writeFiles(${String(bad)})`)
  }
  for (const concurrency of [0, -1, 1.5]) {
    await rejectsWithArgumentError(t, () => anyCtx.readFiles([], { concurrency }), 'ERR_OUT_OF_RANGE', RangeError, `readFiles concurrency ${concurrency}`)
    await rejectsWithArgumentError(t, () => anyCtx.writeFiles([], { concurrency }), 'ERR_OUT_OF_RANGE', RangeError, `writeFiles concurrency ${concurrency}`)
  }
  await rejectsWithArgumentError(t, () => anyCtx.readFiles([], { concurrency: '2' }), 'ERR_INVALID_ARG_TYPE', TypeError, 'readFiles concurrency as a string')
  t.deepEqual(await ctx.readFiles([]), [])
  t.deepEqual(await ctx.writeFiles([]), [])
})

// ---- writeFiles

test('fs streams: writeFiles writes tuple and object entries; a failing one gives the Error Node gives', async (t) => {
  const ctx = openContext(t)
  const dir = tempDir(t)
  writeFileSync(join(dir, 'old'), 'a much longer previous content')
  mkdirSync(join(dir, 'sub'))
  const bytes = pattern(200_000, 26)
  const entries = [
    [join(dir, 'one'), 'first'],
    { path: join(dir, 'two'), data: bytes },
    [join(dir, 'no', 'such', 'dir'), 'lost'],
    { path: join(dir, 'old'), data: 'short' },
    [join(dir, 'sub'), 'a directory'],
    [join(dir, 'iterable'), ['a', Buffer.from('b'), 'c']],
  ] as const
  const results = await ctx.writeFiles(entries)
  t.is(results.length, entries.length)
  t.is(results[0], undefined)
  t.is(results[1], undefined)
  t.is(results[3], undefined)
  t.is(results[5], undefined)
  t.is(readFileSync(join(dir, 'one')).toString(), 'first')
  t.true(readFileSync(join(dir, 'two')).equals(bytes))
  t.is(readFileSync(join(dir, 'old')).toString(), 'short', 'replaced, not overwritten in place')
  t.is(readFileSync(join(dir, 'iterable')).toString(), 'abc')
  for (const i of [2, 4]) {
    const [path, data] = entries[i] as readonly [string, string]
    const expected = await nodeWriteFile(path, data).then(
      () => undefined,
      (error: unknown) => error,
    )
    t.true(expected instanceof Error, `Node fails entry ${i}`)
    t.true(results[i] instanceof Error, `entry ${i} is an Error`)
    t.deepEqual(errorShape(results[i]), errorShape(expected), `entry ${i}`)
  }
})

test('fs streams: writeFiles options (encoding hex, flag a) apply to every entry', async (t) => {
  const ctx = openContext(t)
  const dir = tempDir(t)
  const paths = ['h1', 'h2', 'h3'].map((name) => join(dir, name))
  t.deepEqual(await ctx.writeFiles(paths.map((path, i) => [path, `0${i}ff`] as const), { encoding: 'hex' }), [undefined, undefined, undefined])
  t.deepEqual(
    paths.map((path) => [...readFileSync(path)]),
    [
      [0x00, 0xff],
      [0x01, 0xff],
      [0x02, 0xff],
    ],
  )
  t.deepEqual(await ctx.writeFiles(paths.map((path) => ({ path, data: 'abcd' })), 'hex'), [undefined, undefined, undefined])
  t.deepEqual([...readFileSync(paths[0]!)], [0xab, 0xcd], 'options as an encoding string')
  t.deepEqual(await ctx.writeFiles(paths.map((path, i) => [path, ` more ${i}`] as const), { flag: 'a' }), [undefined, undefined, undefined])
  t.deepEqual(await ctx.writeFiles([[paths[1]!, '!']], { flag: 'a', concurrency: 1 }), [undefined])
  // Node's own appendFile on a copy gives the same bytes.
  const twin = join(dir, 'twin')
  await nodeWriteFile(twin, 'abcd', { encoding: 'hex' })
  await nodeWriteFile(twin, ' more 1', { flag: 'a' })
  await nodeWriteFile(twin, '!', { flag: 'a' })
  t.true(readFileSync(paths[1]!).equals(readFileSync(twin)))
  const exclusive = await ctx.writeFiles([[paths[2]!, 'x'], [join(dir, 'new'), 'x']], { flag: 'wx' })
  t.is(field(exclusive[0], 'code'), 'EEXIST')
  t.is(exclusive[1], undefined)
})

test('fs streams: readFiles and writeFiles of caio/fs run on the default context', async (t) => {
  const expected = backendUnderTest()
  if (expected !== undefined) t.is(getDefaultContext().backend, expected)
  const dir = tempDir(t)
  const entries = [
    [join(dir, 'x'), 'ex'],
    [join(dir, 'y'), 'why'],
  ] as const
  t.deepEqual(await defaultWriteFiles(entries), [undefined, undefined])
  const results = await defaultReadFiles([join(dir, 'x'), join(dir, 'nope'), join(dir, 'y')], { encoding: 'utf8' })
  t.is(results[0], 'ex')
  t.is(results[2], 'why')
  sameOutcome(t, results[1], await nodeReadOutcome(join(dir, 'nope')), 'the missing one')
})
