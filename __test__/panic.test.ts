// A panic in the native addon must reach JavaScript as a thrown Error, never abort the
// process, and leave the context it happened in usable. The addon exports a hook that
// panics with the context borrowed only when it is loaded with CAIO_TEST_HOOKS=1, so the
// test runs in a child process with that variable set.
import { join } from 'node:path'

import test from 'ava'

import { backendUnderTest, childEnv, describeChild, fileWith, lastJsonLine, pattern, REPO_ROOT, runNode } from './helpers'

const backend = backendUnderTest()
const native = backend === undefined || backend === 'js' ? 'thread' : backend

test(`a panic inside the addon (${native}) is thrown as an Error, the process lives on, and the context still works`, async (t) => {
  const content = pattern(4096, 7)
  const file = fileWith(t, content)
  const script = `
    const binding = require(${JSON.stringify(join(REPO_ROOT, 'binding.js'))})
    const { openSync, readFileSync } = require('node:fs')
    const wire = new Float64Array(64)
    let delivered = []
    const ctx = binding.open(${JSON.stringify(native)}, 8, 1, false, (count) => { delivered.push(...wire.subarray(0, 2 * count)) }, wire, process.env.CAIO_COMPLETIONS || "libuv")
    let thrown
    try { binding.panicForTest(ctx) } catch (error) { thrown = { name: error.name, message: error.message } }
    const fd = openSync(${JSON.stringify(file.path)}, 'r')
    const buffer = Buffer.alloc(4096)
    // The call area, the wire's last 6 numbers: a read (opcode 0) of fd at offset 0.
    wire.set([0, fd, 0, 0, 0, 0], wire.length - 6)
    binding.start(ctx, buffer)
    const token = wire[wire.length - 1]
    binding.flush(ctx)
    const finish = () => {
      if (delivered.length === 0) return setTimeout(finish, 5)
      console.log(JSON.stringify({ thrown, token, delivered, same: buffer.equals(readFileSync(${JSON.stringify(file.path)})) }))
    }
    finish()
  `
  const result = await runNode(script, childEnv({ CAIO_TEST_HOOKS: '1' }))
  t.is(result.code, 0, describeChild(result))
  const report = lastJsonLine(result.stdout)
  t.truthy(report, describeChild(result))
  const thrown = report?.thrown as { name: string; message: string } | undefined
  t.is(thrown?.name, 'Error', 'the panic became an Error')
  t.regex(thrown?.message ?? '', /^caio: internal error in the native addon: deliberate panic/)
  t.true(typeof report?.token === 'number' && report.token >= 0, 'the context started a read after the panic')
  t.deepEqual(report?.delivered, [(report?.token as number) % 2 ** 24, content.length], 'and delivered its result under its slot')
  t.true(report?.same, 'with the file’s bytes')
})

test('without CAIO_TEST_HOOKS=1 the addon exports no panic hook', async (t) => {
  const script = `console.log(JSON.stringify({ hook: typeof require(${JSON.stringify(join(REPO_ROOT, 'binding.js'))}).panicForTest }))`
  const result = await runNode(script, childEnv({ CAIO_TEST_HOOKS: undefined }))
  t.is(result.code, 0, describeChild(result))
  t.deepEqual(lastJsonLine(result.stdout), { hook: 'undefined' })
})
