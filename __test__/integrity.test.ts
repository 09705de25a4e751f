// Integrity under concurrency: thousands of random-offset, random-length writes of known
// content, interleaved with reads (checked against a model as they complete), fsyncs and
// batches, then a byte-for-byte check of every file against its model — with one file and
// one context, with many files and several contexts at once, and with O_DIRECT.
//
// Concurrent operations are independent (no ordering between them), so the driver never
// has two overlapping operations in flight on one file where one of them writes: every
// completed write is then the last word on its bytes, and every read has one right answer.
import test from 'ava'
import type { ExecutionContext } from 'ava'

import { alignedBuffer } from '../index'
import type { BatchOp, Context } from '../index'
import { directFileWith, fileWith, openContext, pattern, Random } from './helpers'

interface Target {
  name: string
  fd: number
  /** What the file holds, as far as completed writes tell. */
  model: Buffer
  /** Byte ranges of operations in flight: [start, end, writes]. */
  busy: Array<[number, number, boolean]>
  content(): Buffer
}

function target(name: string, fd: number, model: Buffer, content: () => Buffer): Target {
  return { name, fd, model, busy: [], content }
}

function overlaps(t: Target, start: number, end: number, writes: boolean): boolean {
  return t.busy.some(([s, e, w]) => s < end && start < e && (w || writes))
}

function release(t: Target, start: number, end: number): void {
  const at = t.busy.findIndex(([s, e]) => s === start && e === end)
  if (at >= 0) t.busy.splice(at, 1)
}

interface Tally {
  ops: Record<string, number>
  failures: string[]
}

function fail(tally: Tally, what: string): void {
  if (tally.failures.length < 10) tally.failures.push(what)
  else if (tally.failures.length === 10) tally.failures.push('… more')
}

/** A length: mostly small, some medium, a few large. */
function length(rng: Random, max: number, unit: number): number {
  const roll = rng.below(100)
  const bytes = roll < 70 ? 1 + rng.below(512) : roll < 95 ? 512 + rng.below(16 * 1024) : 16 * 1024 + rng.below(112 * 1024)
  return Math.min(max, Math.max(unit, Math.ceil(bytes / unit) * unit))
}

/** The same bytes as a view of a kind chosen at random (a string only for ASCII). */
function asView(rng: Random, bytes: Buffer): ArrayBufferView | string {
  const kind = rng.below(6)
  if (kind === 0) return Buffer.from(bytes)
  if (kind === 1) return new Uint8Array(bytes)
  if (kind === 2) {
    // A view in the middle of a larger ArrayBuffer.
    const backing = new ArrayBuffer(bytes.length + 24)
    const view = new DataView(backing, 11, bytes.length)
    new Uint8Array(backing, 11, bytes.length).set(bytes)
    return view
  }
  if (kind === 3 && bytes.length % 8 === 0) {
    const copy = new Float64Array(bytes.length / 8)
    new Uint8Array(copy.buffer).set(bytes)
    return copy
  }
  if (kind === 4) {
    // ASCII: a string whose UTF-8 encoding is exactly these bytes.
    for (let i = 0; i < bytes.length; i++) bytes[i] = 0x20 + ((bytes[i] as number) % 95)
    return bytes.toString('latin1')
  }
  return bytes
}

function bytesOfData(data: ArrayBufferView | string): Buffer {
  return typeof data === 'string' ? Buffer.from(data, 'latin1') : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
}

interface DriveOptions {
  contexts: readonly Context[]
  targets: readonly Target[]
  ops: number
  depth: number
  seed: number
  /** Offsets, lengths and buffers aligned for O_DIRECT. */
  direct?: boolean
}

/**
 * Runs `ops` random operations with `depth` of them in flight at once, over every context
 * and target, and checks each result against the model as it comes.
 */
async function drive(options: DriveOptions): Promise<Tally> {
  const { contexts, targets, direct = false } = options
  const rng = new Random(options.seed)
  const unit = direct ? 4096 : 1
  const tally: Tally = { ops: {}, failures: [] }
  let issued = 0
  const count = (kind: string, n = 1): void => {
    tally.ops[kind] = (tally.ops[kind] ?? 0) + n
  }

  /** A free range on a random target, or undefined after a few tries. */
  const range = (writes: boolean): [Target, number, number] | undefined => {
    for (let attempt = 0; attempt < 8; attempt++) {
      const t = rng.pick(targets)
      const size = t.model.length
      const len = length(rng, size, unit)
      const start = Math.floor(rng.below(size - len + 1) / unit) * unit
      if (!overlaps(t, start, start + len, writes)) {
        t.busy.push([start, start + len, writes])
        return [t, start, start + len]
      }
    }
    return undefined
  }
  const offsetOf = (start: number): number | bigint => (rng.chance(0.2) ? BigInt(start) : start)
  const buffer = (len: number): Uint8Array => (direct ? alignedBuffer(len) : rng.chance(0.5) ? Buffer.alloc(len) : new Uint8Array(len))

  async function write(ctx: Context): Promise<void> {
    const picked = range(true)
    if (!picked) return
    const [t, start, end] = picked
    const bytes = rng.bytes(end - start)
    let source: ArrayBufferView | string
    if (direct) {
      const aligned = alignedBuffer(bytes.length)
      aligned.set(bytes)
      source = aligned
    } else source = asView(rng, bytes)
    const expected = Buffer.from(bytesOfData(source))
    try {
      const n = await ctx.write(source, t.fd, offsetOf(start))
      if (n !== end - start) fail(tally, `${t.name}: write of ${end - start} at ${start} resolved ${n}`)
      else expected.copy(t.model, start)
    } catch (error) {
      fail(tally, `${t.name}: write of ${end - start} at ${start} rejected: ${String(error)}`)
    } finally {
      release(t, start, end)
    }
    count('write')
  }

  async function read(ctx: Context): Promise<void> {
    const picked = range(false)
    if (!picked) return
    const [t, start, end] = picked
    try {
      let got: Buffer
      if (direct || rng.chance(0.4)) {
        const into = buffer(end - start)
        const n = await ctx.readInto(into, t.fd, offsetOf(start))
        got = Buffer.from(into.buffer, into.byteOffset, n)
        count('readInto')
      } else {
        got = await ctx.read(end - start, t.fd, offsetOf(start))
        count('read')
      }
      if (!got.equals(t.model.subarray(start, end))) fail(tally, `${t.name}: read of ${end - start} at ${start} differs from the model (${got.length} bytes)`)
    } catch (error) {
      fail(tally, `${t.name}: read of ${end - start} at ${start} rejected: ${String(error)}`)
    } finally {
      release(t, start, end)
    }
  }

  async function sync(ctx: Context): Promise<void> {
    const t = rng.pick(targets)
    const data = rng.chance(0.5)
    try {
      const result = data ? await ctx.fdsync(t.fd) : await ctx.fsync(t.fd)
      if (result !== undefined) fail(tally, `${t.name}: ${data ? 'fdsync' : 'fsync'} resolved ${String(result)}`)
    } catch (error) {
      fail(tally, `${t.name}: ${data ? 'fdsync' : 'fsync'} rejected: ${String(error)}`)
    }
    count(data ? 'fdsync' : 'fsync')
  }

  async function batch(ctx: Context): Promise<void> {
    const ops: BatchOp[] = []
    const checks: Array<(entry: number | Error) => void> = []
    const held: Array<[Target, number, number]> = []
    const size = 2 + rng.below(7)
    for (let i = 0; i < size; i++) {
      const writes = rng.chance(0.5)
      const picked = range(writes)
      if (!picked) continue
      held.push(picked)
      const [t, start, end] = picked
      const len = end - start
      if (writes) {
        const bytes = rng.bytes(len)
        const data = direct ? alignedBuffer(len) : asView(rng, bytes)
        if (direct) (data as Buffer).set(bytes)
        const expected = Buffer.from(bytesOfData(data))
        ops.push({ op: 'write', fd: t.fd, offset: offsetOf(start), data })
        checks.push((entry) => {
          if (entry === len) expected.copy(t.model, start)
          else fail(tally, `${t.name}: batch write of ${len} at ${start} gave ${String(entry)}`)
        })
      } else {
        const into = buffer(len)
        ops.push({ op: 'read', fd: t.fd, offset: offsetOf(start), buffer: into })
        checks.push((entry) => {
          if (entry !== len || !Buffer.from(into.buffer, into.byteOffset, len).equals(t.model.subarray(start, end))) {
            fail(tally, `${t.name}: batch read of ${len} at ${start} gave ${String(entry)} or other bytes than the model`)
          }
        })
      }
      if (rng.chance(0.2)) {
        ops.push({ op: rng.chance(0.5) ? 'fsync' : 'fdsync', fd: t.fd })
        checks.push((entry) => entry !== 0 && fail(tally, `${t.name}: batch sync gave ${String(entry)}`))
      }
    }
    try {
      const entries = await ctx.submit(ops)
      if (entries.length !== ops.length) fail(tally, `a batch of ${ops.length} resolved ${entries.length} entries`)
      else checks.forEach((check, i) => check(entries[i] as number | Error))
    } catch (error) {
      fail(tally, `a batch of ${ops.length} rejected: ${String(error)}`)
    } finally {
      for (const [t, start, end] of held) release(t, start, end)
    }
    count('batch')
    count('batched ops', ops.length)
  }

  async function lane(): Promise<void> {
    while (issued < options.ops) {
      issued++
      const ctx = rng.pick(contexts)
      const roll = rng.below(100)
      if (roll < 45) await write(ctx)
      else if (roll < 88) await read(ctx)
      else if (roll < 94) await sync(ctx)
      else await batch(ctx)
    }
  }
  await Promise.all(Array.from({ length: options.depth }, lane))
  return tally
}

/** Every file against its model, read with node:fs and with each context, byte for byte. */
async function checkFiles(t: ExecutionContext, contexts: readonly Context[], targets: readonly Target[], direct = false): Promise<void> {
  for (const file of targets) {
    t.true(file.content().equals(file.model), `${file.name}: the file on disk is byte for byte the model`)
    for (const [i, ctx] of contexts.entries()) {
      const whole = direct ? alignedBuffer(file.model.length) : Buffer.alloc(file.model.length)
      const n = await ctx.readInto(whole, file.fd, 0)
      t.is(n, file.model.length)
      t.true(whole.equals(file.model), `${file.name}: context ${i} reads back the model`)
    }
  }
}

function report(t: ExecutionContext, tally: Tally, min: number): void {
  const total = Object.entries(tally.ops).reduce((sum, [kind, n]) => (kind === 'batched ops' ? sum : sum + n), 0)
  t.log(`operations: ${JSON.stringify(tally.ops)}`)
  t.deepEqual(tally.failures, [], 'every operation resolved with the model’s answer')
  t.true(total >= min, `ran ${total} operations, expected at least ${min}`)
  t.true((tally.ops.write ?? 0) > min / 4 && (tally.ops.read ?? 0) + (tally.ops.readInto ?? 0) > min / 4 && (tally.ops.batch ?? 0) > 0, 'the mix has writes, reads and batches')
}

test('4000 random writes, reads, syncs and batches on one file through one context: every read and the whole file match the model', async (t) => {
  t.timeout(60_000)
  const initial = pattern(1024 * 1024, 31)
  const file = fileWith(t, initial)
  const ctx = openContext(t, { maxRequests: 64 })
  const targets = [target('file', file.fd, Buffer.from(initial), file.content)]
  const tally = await drive({ contexts: [ctx], targets, ops: 4000, depth: 96, seed: 1 })
  report(t, tally, 3900)
  await checkFiles(t, [ctx], targets)
})

test('6000 operations over 8 files and 3 contexts at once (small and large maxRequests, a 2-thread pool): every file matches its model', async (t) => {
  t.timeout(60_000)
  const contexts = [openContext(t), openContext(t, { maxRequests: 4 }), openContext(t, { maxRequests: 32, poolSize: 2 })]
  const targets = Array.from({ length: 8 }, (_, i) => {
    const initial = pattern(192 * 1024 + i * 4099, 100 + i)
    const file = fileWith(t, initial)
    return target(`file ${i}`, file.fd, Buffer.from(initial), file.content)
  })
  const tally = await drive({ contexts, targets, ops: 6000, depth: 128, seed: 2 })
  report(t, tally, 5900)
  await checkFiles(t, contexts, targets)
})

test('writes that grow files from empty, at random offsets: holes read as zeros, the rest as written', async (t) => {
  t.timeout(60_000)
  // The model starts as zeros (a hole), and the file is extended to its full size first so
  // that no read races with a write that would change where end of file is.
  const size = 512 * 1024
  const files = Array.from({ length: 3 }, () => fileWith(t))
  const ctx = openContext(t, { maxRequests: 16 })
  for (const file of files) t.is(await ctx.write(Buffer.alloc(1), file.fd, size - 1), 1)
  const targets = files.map((file, i) => target(`sparse ${i}`, file.fd, Buffer.alloc(size), file.content))
  const tally = await drive({ contexts: [ctx], targets, ops: 2500, depth: 48, seed: 3 })
  report(t, tally, 2400)
  await checkFiles(t, [ctx], targets)
})

test('O_DIRECT: 1200 aligned random writes, reads and batches on a 4 MiB file through two contexts: the file matches the model', async (t) => {
  t.timeout(60_000)
  const initial = pattern(4 * 1024 * 1024, 41)
  const file = directFileWith(t, initial)
  if (file === undefined) return
  const contexts = [openContext(t, { maxRequests: 32 }), openContext(t, { maxRequests: 8, poolSize: 4 })]
  const targets = [target('direct file', file.fd, Buffer.from(initial), file.content)]
  const tally = await drive({ contexts, targets, ops: 1200, depth: 48, seed: 4, direct: true })
  report(t, tally, 1150)
  await checkFiles(t, contexts, targets, true)
})
