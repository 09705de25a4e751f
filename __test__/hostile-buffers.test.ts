// Hostile memory: views of detached ArrayBuffers, empty views, views in the middle of
// larger buffers (nothing outside a view may change) and typed arrays that lie about their
// length. Each call works on the real memory or rejects; none crashes the process.

import test from 'ava'

import { describeChild, detach, detachedDataView, detachedView, field, fileWith, INDEX_JS, isDetached, openContext, outcome, pattern, runNode } from './helpers'

const RANGE = 'ERR_OUT_OF_RANGE'
const VALUE = 'ERR_INVALID_ARG_VALUE'

// ---- Detached buffers

test('a view of an ArrayBuffer detached before the call is refused with ERR_INVALID_ARG_VALUE by readInto, write and submit, and nothing runs', async (t) => {
  const file = fileWith(t, 'unchanged')
  const ctx = openContext(t, { maxRequests: 1 })
  const viewThenDetach = (make: (buffer: ArrayBuffer) => ArrayBufferView) => () => {
    const buffer = new ArrayBuffer(32)
    const view = make(buffer)
    detach(buffer)
    return view
  }
  const makers: Array<[string, () => ArrayBufferView]> = [
    ['a Uint8Array (structuredClone transfer)', () => detachedView()],
    ['a Float64Array', viewThenDetach((buffer) => new Float64Array(buffer))],
    ['a Buffer over part of it', viewThenDetach((buffer) => Buffer.from(buffer, 2, 10))],
    // A DataView's byteLength getter throws once its buffer is detached.
    ['a DataView', () => detachedDataView()],
    [
      'a Uint8Array sent through a MessageChannel',
      () => {
        const { port1, port2 } = new MessageChannel()
        const view = new Uint8Array(32)
        port1.postMessage(view.buffer, [view.buffer])
        port1.close()
        port2.close()
        return view
      },
    ],
  ]
  for (const [what, make] of makers) {
    const view = make()
    t.true(isDetached(view.buffer), `${what} is detached`)
    await t.throwsAsync(ctx.readInto(view, file.fd, 0), { code: VALUE, instanceOf: TypeError }, `readInto with ${what}`)
    await t.throwsAsync(ctx.write(view, file.fd, 0), { code: VALUE, instanceOf: TypeError }, `write with ${what}`)
    await t.throwsAsync(ctx.submit([{ op: 'read', fd: file.fd, offset: 0, buffer: make() }]), { code: VALUE }, `a batch read with ${what}`)
    await t.throwsAsync(ctx.submit([{ op: 'fsync', fd: file.fd }, { op: 'write', fd: file.fd, offset: 0, data: make() }]), { code: VALUE, message: /ops\[1\]\.data/ }, `a batch write with ${what}`)
  }
  await ctx.fsync(file.fd)
  t.is(file.content().toString(), 'unchanged')
})

test('empty views that are not detached are valid everywhere: an empty SharedArrayBuffer, an empty ArrayBuffer, a view at the very end', async (t) => {
  const file = fileWith(t, 'abc')
  const ctx = openContext(t)
  const views: Array<[string, ArrayBufferView]> = [
    ['a view of an empty SharedArrayBuffer', new Uint8Array(new SharedArrayBuffer(0))],
    ['an empty view at the end of a SharedArrayBuffer', new Uint8Array(new SharedArrayBuffer(8), 8, 0)],
    ['a view of an empty ArrayBuffer', new Uint8Array(new ArrayBuffer(0))],
    ['an empty DataView at the end of an ArrayBuffer', new DataView(new ArrayBuffer(8), 8, 0)],
  ]
  for (const [what, view] of views) {
    const read = await outcome(ctx.readInto(view, file.fd, 0))
    t.true(read.ok && read.value === 0, `readInto with ${what}: ${String(read.ok ? read.value : `${String(field(read.error, 'code'))} ${String(read.error)}`)}`)
    const written = await outcome(ctx.write(view, file.fd, 0))
    t.true(written.ok && written.value === 0, `write with ${what}: ${String(written.ok ? written.value : field(written.error, 'code'))}`)
  }
  t.is(file.content().toString(), 'abc')
})

test('a priority of class 0 ("none") with a non-zero level is refused with ERR_OUT_OF_RANGE before it reaches the kernel (which refuses it; thread and js would ignore it)', async (t) => {
  const file = fileWith(t, 'abcd')
  const ctx = openContext(t)
  for (const priority of [1, 4, 7]) {
    const result = await outcome(ctx.read(4, file.fd, 0, { priority }))
    t.true(!result.ok && field(result.error, 'code') === RANGE && result.error instanceof RangeError, `priority ${priority} (class 0, level ${priority}): ${result.ok ? 'resolved' : String(field(result.error, 'code'))}`)
    const batch = await outcome(ctx.submit([{ op: 'fsync', fd: file.fd, priority }]))
    t.true(!batch.ok && field(batch.error, 'code') === RANGE, `a batch entry with priority ${priority}: ${batch.ok ? JSON.stringify(batch.value.map((e) => (e instanceof Error ? field(e, 'code') : e))) : String(field(batch.error, 'code'))}`)
  }
})

// ---- Views inside larger buffers: nothing outside a view may change

test('reads into views in the middle of larger buffers touch only the view: short reads, reads past end of file, every view kind, batches', async (t) => {
  const content = pattern(10_000, 83)
  const file = fileWith(t, content)
  const ctx = openContext(t, { maxRequests: 8 })
  const checks: Array<Promise<string | undefined>> = []
  const makeViews = (backing: ArrayBuffer): Array<[string, ArrayBufferView]> => [
    ['Uint8Array', new Uint8Array(backing, 40, 100)],
    ['Buffer', Buffer.from(backing, 41, 99)],
    ['DataView', new DataView(backing, 43, 77)],
    ['Uint16Array', new Uint16Array(backing, 40, 30)],
    ['Float64Array', new Float64Array(backing, 48, 9)],
    ['BigInt64Array', new BigInt64Array(backing, 56, 5)],
    ['empty Uint8Array at the end', new Uint8Array(backing, backing.byteLength, 0)],
  ]
  for (const offset of [0, 50, 9_950, 9_990, 10_000, 20_000]) {
    for (const viaBatch of [false, true]) {
      for (const [index] of makeViews(new ArrayBuffer(256)).entries()) {
        // A backing buffer of its own for each view, so that concurrent reads never share one.
        const backing = new ArrayBuffer(256)
        new Uint8Array(backing).fill(0xa5)
        const [kind, view] = makeViews(backing)[index] as [string, ArrayBufferView]
        const start = view.byteOffset
        const end = start + view.byteLength
        const expected = content.subarray(Math.min(offset, content.length), Math.min(offset + view.byteLength, content.length))
        const run = viaBatch ? ctx.submit([{ op: 'read', fd: file.fd, offset, buffer: view }]).then((entries) => entries[0] as number) : ctx.readInto(view, file.fd, offset)
        checks.push(
          run.then((n) => {
            const all = Buffer.from(backing)
            const what = `${viaBatch ? 'batch ' : ''}${kind} at file offset ${offset}`
            if (n !== expected.length) return `${what}: count ${n}, expected ${expected.length}`
            if (!all.subarray(start, start + n).equals(expected)) return `${what}: wrong bytes`
            // Everything before the view, and after the bytes it read, is untouched.
            if (!all.subarray(0, start).every((b) => b === 0xa5)) return `${what}: bytes before the view changed`
            if (!all.subarray(start + n).every((b) => b === 0xa5)) return `${what}: bytes after those read changed (view ends at ${end})`
            return undefined
          }),
        )
      }
    }
  }
  const problems = (await Promise.all(checks)).filter((p): p is string => p !== undefined)
  t.deepEqual(problems, [])
  t.is(checks.length, 6 * 2 * 7)
})

test('writes from views in the middle of larger buffers write only the view’s bytes', async (t) => {
  const file = fileWith(t, Buffer.alloc(512, 0x2e))
  const ctx = openContext(t, { maxRequests: 4 })
  const backing = new ArrayBuffer(300)
  const all = new Uint8Array(backing)
  for (let i = 0; i < all.length; i++) all[i] = i & 0xff
  const views: ArrayBufferView[] = [new Uint8Array(backing, 10, 20), new DataView(backing, 33, 7), new Uint32Array(backing, 100, 5), Buffer.from(backing, 299, 1), new Uint8Array(backing, 300, 0)]
  const results = await Promise.all(views.map((view, i) => ctx.write(view, file.fd, i * 64)))
  t.deepEqual(
    results,
    views.map((v) => v.byteLength),
  )
  const expected = Buffer.alloc(512, 0x2e)
  views.forEach((view, i) => Buffer.from(view.buffer, view.byteOffset, view.byteLength).copy(expected, i * 64))
  t.true(file.content().equals(expected))
})

test('typed arrays that lie about their length (a subclass overriding byteLength, or an own byteLength, byteOffset or length property on a Uint8Array or Buffer) never crash the process: each call works on the real memory or rejects', async (t) => {
  t.timeout(60_000)
  const file = fileWith(t, 'abcdefghijklmnopqrstuvwxyz')
  const cases = ['readInto', 'write', 'batch read', 'batch write', 'negative readInto', 'zero readInto', 'own byteLength readInto', 'own byteLength write', 'own byteOffset readInto', 'own length Buffer readInto', 'own byteLength Buffer batch read']
  const results: string[] = []
  for (const which of cases) {
    const result = await runNode(`
      const caio = require(${JSON.stringify(INDEX_JS)})
      const fs = require('node:fs')
      const ctx = new caio.Context()
      const fd = fs.openSync(${JSON.stringify(file.path)}, 'r+')
      class Huge extends Uint8Array { get byteLength() { return 1 << 20 } }
      class Negative extends Uint8Array { get byteLength() { return -5 } }
      class Zero extends Uint8Array { get byteLength() { return 0 } }
      const guarded = new Uint8Array(64).fill(0xee)
      const view = (Kind) => new Kind(guarded.buffer, 16, 8)
      const own = (make, name, value) => Object.defineProperty(make(), name, { value })
      const plain = () => new Uint8Array(guarded.buffer, 16, 8)
      const buffer = () => Buffer.from(guarded.buffer, 16, 8)
      const calls = {
        'readInto': () => ctx.readInto(view(Huge), fd, 0),
        'write': () => ctx.write(view(Huge), fd, 100),
        'batch read': () => ctx.submit([{ op: 'read', fd, offset: 0, buffer: view(Huge) }]),
        'batch write': () => ctx.submit([{ op: 'write', fd, offset: 100, data: view(Huge) }]),
        'negative readInto': () => ctx.readInto(view(Negative), fd, 0),
        'zero readInto': () => ctx.readInto(view(Zero), fd, 0),
        'own byteLength readInto': () => ctx.readInto(own(plain, 'byteLength', 1 << 20), fd, 0),
        'own byteLength write': () => ctx.write(own(plain, 'byteLength', 1 << 20), fd, 100),
        'own byteOffset readInto': () => ctx.readInto(own(plain, 'byteOffset', 40), fd, 0),
        'own length Buffer readInto': () => ctx.readInto(own(buffer, 'length', 1 << 20), fd, 0),
        'own byteLength Buffer batch read': () => ctx.submit([{ op: 'read', fd, offset: 0, buffer: own(buffer, 'byteLength', 1 << 20) }]),
      }
      calls[${JSON.stringify(which)}]().then((v) => 'resolved ' + JSON.stringify(v), (e) => 'rejected ' + e.code).then((r) => {
        const outside = [...guarded.subarray(0, 16), ...guarded.subarray(24)].every((b) => b === 0xee)
        console.log(r + (outside ? '' : ' WROTE OUTSIDE THE VIEW'))
        const size = fs.statSync(${JSON.stringify(file.path)}).size
        if (size > 108) console.log('WROTE PAST THE VIEW: file is ' + size + ' bytes')
        return ctx.close()
      })
    `)
    results.push(`${which}: ${result.stdout.trim()}`)
    t.is(result.signal, null, `${which}: the process was killed by ${String(result.signal)}: ${describeChild(result)}`)
    t.is(result.code, 0, `${which}: ${describeChild(result)}`)
    t.notRegex(result.stdout, /OUTSIDE|PAST/, `${which}: ${result.stdout}`)
  }
  t.log(results.join('\n'))
})
