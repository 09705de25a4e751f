// Backend selection, in child processes with their own environment: CAIO_IMPL picks a
// backend, an unknown or unavailable one warns and automatic choice goes on; an explicit
// `backend` option that is unavailable throws with the reason.
import { existsSync } from 'node:fs'
import { join } from 'node:path'

import test from 'ava'
import type { ExecutionContext } from 'ava'

import type { BackendName } from '../index'
import { BACKEND_NAMES, childEnv, describeChild, field, fileWith, INDEX_JS, isReportedBackend, lastJsonLine, REPO_ROOT, runChild, runNode } from './helpers'
import type { ChildResult, ReportedBackend } from './helpers'

const CONTENT = 'selected and working'

/**
 * A child script that opens a context by automatic choice, reads the file, tries
 * `new Context({ backend })` for each of `explicit`, and prints one JSON line.
 */
function selectionScript(file: string, explicit: readonly BackendName[] = []): string {
  return `
    const caio = require(${JSON.stringify(INDEX_JS)})
    const fs = require('node:fs')
    const report = { backends: caio.backends(), explicit: {} }
    for (const name of ${JSON.stringify(explicit)}) {
      try {
        const other = new caio.Context({ backend: name })
        report.explicit[name] = { opened: other.backend }
        other.close()
      } catch (error) {
        report.explicit[name] = { error: String(error && error.message) }
      }
    }
    const ctx = new caio.Context()
    report.backend = ctx.backend
    const fd = fs.openSync(${JSON.stringify(file)}, 'r')
    ctx.read(64, fd, 0).then((bytes) => {
      report.data = bytes.toString()
      console.log(JSON.stringify(report))
      return ctx.close()
    })
  `
}

interface Report {
  backends: ReportedBackend[]
  backend: string
  data: string
  explicit: Record<string, { opened?: unknown; error?: unknown }>
}

/** The child's report, after asserting it exited cleanly and printed one. */
function reportOf(t: ExecutionContext, result: ChildResult): Report | undefined {
  t.false(result.timedOut, describeChild(result))
  t.is(result.code, 0, describeChild(result))
  const json = lastJsonLine(result.stdout)
  const backends = field(json, 'backends')
  const backend = field(json, 'backend')
  const data = field(json, 'data')
  const explicit = field(json, 'explicit')
  if (!Array.isArray(backends) || !backends.every(isReportedBackend) || typeof backend !== 'string' || typeof data !== 'string' || typeof explicit !== 'object' || explicit === null) {
    t.fail(`the child printed no report: ${describeChild(result)}`)
    return undefined
  }
  return { backends, backend, data, explicit: explicit as Report['explicit'] }
}

/** The backend automatic choice gives when `skipped` is not a candidate. */
function firstAvailable(backends: readonly ReportedBackend[], skipped?: BackendName): string {
  return backends.find((row) => row.available && row.name !== skipped)?.name ?? '(none available)'
}

/** The lines of a child's stderr that are caio's warnings. */
function caioWarnings(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.includes('caio:'))
}

test('without CAIO_IMPL the first available backend in the order uring, linux, thread, js is chosen, without a warning', async (t) => {
  t.timeout(60_000)
  const file = fileWith(t, CONTENT)
  const report = reportOf(t, await runNode(selectionScript(file.path), childEnv({ CAIO_IMPL: undefined })))
  if (!report) return
  t.deepEqual(
    report.backends.map((row) => row.name),
    [...BACKEND_NAMES],
  )
  t.is(report.backend, firstAvailable(report.backends))
  t.is(report.data, CONTENT)
})

test('CAIO_IMPL=bogus gives a process warning naming the valid backends, and automatic choice still works', async (t) => {
  t.timeout(60_000)
  const file = fileWith(t, CONTENT)
  const result = await runNode(selectionScript(file.path), childEnv({ CAIO_IMPL: 'bogus' }))
  const report = reportOf(t, result)
  if (!report) return
  t.true(/warning/i.test(result.stderr), `a process warning on stderr: ${result.stderr}`)
  const warning = caioWarnings(result.stderr).join('\n')
  t.true(warning.includes('bogus'), `the warning names the bad value: ${result.stderr}`)
  for (const name of BACKEND_NAMES) t.true(warning.includes(name), `the warning names ${name}: ${warning}`)
  t.is(report.backend, firstAvailable(report.backends))
  t.is(report.data, CONTENT)
})

for (const name of BACKEND_NAMES) {
  test(`CAIO_IMPL=${name} gives the ${name} backend when it is available, or a warning with the reason and automatic choice`, async (t) => {
    t.timeout(60_000)
    const file = fileWith(t, CONTENT)
    const result = await runNode(selectionScript(file.path), childEnv({ CAIO_IMPL: name }))
    const report = reportOf(t, result)
    if (!report) return
    t.is(report.data, CONTENT)
    const row = report.backends.find((status) => status.name === name)
    if (row?.available) {
      t.is(report.backend, name)
      t.deepEqual(caioWarnings(result.stderr), [], 'no warning')
    } else {
      t.true(caioWarnings(result.stderr).some((line) => line.includes(row?.reason ?? '\u0000')), `the warning gives the reason '${row?.reason}': ${result.stderr}`)
      t.is(report.backend, firstAvailable(report.backends, name))
    }
  })
}

test('without the native addon the native backends report why, CAIO_IMPL=thread warns and falls back to js, and new Context({ backend }) throws with the reason', async (t) => {
  t.timeout(60_000)
  const file = fileWith(t, CONTENT)
  // The napi-rs loader takes the addon from here when set; a path that does not exist makes
  // the addon fail to load, as on a platform without a prebuilt binary.
  const env = childEnv({ CAIO_IMPL: 'thread', NAPI_RS_NATIVE_LIBRARY_PATH: join(REPO_ROOT, 'no-such-dir', 'caio.node') })
  const result = await runNode(selectionScript(file.path, ['uring', 'linux', 'thread', 'js']), env)
  const report = reportOf(t, result)
  if (!report) return
  for (const row of report.backends) {
    if (row.name === 'js') {
      t.true(row.available, 'js is always available')
      t.deepEqual(report.explicit.js, { opened: 'js' })
      continue
    }
    t.false(row.available, `${row.name} is unavailable without the addon`)
    const reason = row.reason ?? ''
    t.not(reason.trim(), '', `${row.name} says why`)
    const error = report.explicit[row.name]?.error
    t.true(typeof error === 'string' && error.includes(reason), `new Context({ backend: '${row.name}' }) throws with the reason: ${String(error)}`)
  }
  const threadReason = report.backends.find((row) => row.name === 'thread')?.reason ?? '\u0000'
  t.true(caioWarnings(result.stderr).some((line) => line.includes(threadReason)), `CAIO_IMPL=thread warns with the reason: ${result.stderr}`)
  t.is(report.backend, 'js')
  t.is(report.data, CONTENT)
})

test('with io_uring blocked by a seccomp filter, uring says why, CAIO_IMPL=uring warns and falls back, and new Context({ backend: "uring" }) throws with the reason and the fix', async (t) => {
  t.timeout(60_000)
  const blocker = join(REPO_ROOT, 'scripts', 'without-io-uring.py')
  t.true(existsSync(blocker), `${blocker} exists`)
  const file = fileWith(t, CONTENT)
  const result = await runChild('python3', [blocker, process.execPath, '-e', selectionScript(file.path, ['uring'])], childEnv({ CAIO_IMPL: 'uring' }))
  const report = reportOf(t, result)
  if (!report) return
  const uring = report.backends.find((row) => row.name === 'uring')
  t.is(uring?.available, false, 'uring is unavailable under the filter')
  const reason = uring?.reason ?? '\u0000'
  t.regex(reason, /seccomp/i, 'the reason names the seccomp filter')
  t.true(caioWarnings(result.stderr).some((line) => line.includes(reason)), `the warning gives the reason: ${result.stderr}`)
  t.is(report.backend, firstAvailable(report.backends, 'uring'))
  t.is(report.data, CONTENT)
  const error = report.explicit.uring?.error
  t.true(typeof error === 'string' && error.includes(reason), `the error gives the reason: ${String(error)}`)
  t.true(typeof error === 'string' && error.includes('seccomp=unconfined'), `the error gives the Docker fix: ${String(error)}`)
  t.true(typeof error === 'string' && /seccompProfile/.test(error), `the error gives the Kubernetes fix: ${String(error)}`)
})

test("under Node every native backend's completions come through libuv; CAIO_COMPLETIONS=threadsafe-function moves them to a completion thread, and a bogus value warns and changes nothing", async (t) => {
  t.timeout(60_000)
  const file = fileWith(t, CONTENT)
  const cases = [
    { value: undefined, path: 'libuv', warns: false },
    { value: 'threadsafe-function', path: 'threadsafe-function', warns: false },
    { value: 'libuv', path: 'libuv', warns: false },
    { value: 'bogus', path: 'libuv', warns: true },
  ]
  for (const { value, path, warns } of cases) {
    const result = await runNode(selectionScript(file.path, ['thread']), childEnv({ CAIO_COMPLETIONS: value }))
    const report = reportOf(t, result)
    if (!report) return
    for (const row of report.backends) {
      const expected = row.available && row.name !== 'js' ? path : undefined
      t.is((row as { completions?: unknown }).completions, expected, `CAIO_COMPLETIONS=${value}: ${JSON.stringify(row)}`)
    }
    t.is(report.data, CONTENT, `CAIO_COMPLETIONS=${value}: the read went through`)
    t.deepEqual(report.explicit.thread, { opened: 'thread' })
    const warning = caioWarnings(result.stderr).join('\n')
    t.is(warning.includes('CAIO_COMPLETIONS'), warns, `CAIO_COMPLETIONS=${value}: ${result.stderr}`)
  }
})
