#!/usr/bin/env node
// caio's core behaviours under whichever runtime runs this file — Node, `bun`, or
// `deno run -A` — on every backend, without a test framework (ava runs only under Node).
// Prints TAP: one `ok N - backend › case` or `not ok N - …` line per case, then a
// `# runtime: N passed, N failed` line; exits non-zero if any failed. Under CI=true on
// Linux every native backend must be available, and `new Context()` must pick uring.
//
//   node scripts/runtime-test.mjs | bun scripts/runtime-test.mjs | deno run -A scripts/runtime-test.mjs
//   … --child-idle / --child-busy: what the lifetime cases run in a child process.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, write, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = fileURLToPath(import.meta.url)
const root = join(dirname(here), '..')
const require = createRequire(import.meta.url)
const caio = require(join(root, 'dist', 'index.js'))
const caioFs = require(join(root, 'dist', 'subpath', 'fs.js'))

const runtimeName = typeof process.versions.bun === 'string' ? `Bun ${process.versions.bun}` : 'Deno' in globalThis ? `Deno ${process.versions.deno}` : `Node.js ${process.versions.node}`
const pattern = Buffer.alloc(1 << 20)
for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 31 + (i >> 9)) & 0xff

// ---- the lifetime cases' children: `--child-idle|--child-busy <backend> <pattern file>` --
const [mode, childBackend, childPath] = process.argv.slice(-3)
if (mode === '--child-idle') {
  // An idle context after one read: the process must exit by itself, at once.
  const ctx = new caio.Context({ backend: childBackend })
  const bytes = await ctx.read(8, openSync(childPath, 'r'), 0)
  console.log(`read ${bytes.length}`)
} else if (mode === '--child-busy') {
  // Operations in flight and nothing awaited: the process must live until they finish.
  const ctx = new caio.Context({ backend: childBackend })
  const fd = openSync(childPath, 'r')
  const reads = Array.from({ length: 2000 }, (_, i) => ctx.read(16, fd, i * 512))
  Promise.all(reads).then((all) => console.log(`finished ${all.length} ${all.every((b, i) => b.equals(pattern.subarray(i * 512, i * 512 + 16)))}`))
} else {
  await main()
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'caio-runtime-'))
  const patternPath = join(dir, 'pattern')
  writeFileSync(patternPath, pattern)
  let number = 0
  let passed = 0
  let failed = 0
  const check = async (name, body) => {
    number++
    try {
      await withTimeout(body(), 60_000, name)
      passed++
      console.log(`ok ${number} - ${runtimeName} › ${name}`)
    } catch (error) {
      failed++
      console.log(`not ok ${number} - ${runtimeName} › ${name}`)
      for (const line of String(error?.stack ?? error).split('\n')) console.log(`#   ${line}`)
    }
  }

  const strict = process.env.CI === 'true' && process.platform === 'linux'
  const statuses = caio.backends()
  console.log(`# ${runtimeName}: ${JSON.stringify(statuses)}`)

  await check('backends(): every native backend is available, on the threadsafe-function path outside Node (or when CAIO_COMPLETIONS asks)', () => {
    for (const row of statuses) {
      if (row.name === 'js') continue
      if (strict) assert.equal(row.available, true, `${row.name}: ${row.reason}`)
      const onNode = runtimeName.startsWith('Node') && process.env.CAIO_COMPLETIONS !== 'threadsafe-function'
      if (row.available) assert.equal(row.completions, onNode ? 'libuv' : 'threadsafe-function', row.name)
    }
  })
  await check("the ES-module entry points give the CommonJS modules' own exports", async () => {
    const esm = await import(join(root, 'dist', 'index.mjs'))
    assert.equal(esm.Context, caio.Context)
    assert.equal(esm.default, caio)
    const fsEsm = await import(join(root, 'dist', 'subpath', 'fs.mjs'))
    assert.equal(fsEsm.readFile, caioFs.readFile)
    const ctx = new esm.Context()
    try {
      const path = join(dir, 'esm.txt')
      await fsEsm.writeFile(path, 'through the ES-module entry')
      assert.equal((await ctx.readFile(path)).toString(), 'through the ES-module entry')
    } finally {
      await ctx.close()
    }
  })
  await check('new Context() picks the first available backend (uring here)', async () => {
    const ctx = new caio.Context()
    try {
      assert.equal(ctx.backend, statuses.find((row) => row.available).name)
      if (strict) assert.equal(ctx.backend, 'uring')
    } finally {
      await ctx.close()
    }
  })

  for (const row of statuses) {
    if (!row.available) {
      console.log(`# ${row.name}: not available (${row.reason})`)
      continue
    }
    const backend = row.name
    const ctx = new caio.Context({ backend, maxRequests: 256 })
    const file = join(dir, `${backend}.file`)
    const fd = openSync(file, 'w+')
    const readFd = openSync(patternPath, 'r')
    const name = (what) => `${backend} › ${what}`

    await check(name("the Python caio's README example"), async () => {
      await ctx.write('Hello world', fd, 0)
      assert.equal((await ctx.read(32, fd, 0)).toString(), 'Hello world')
      await ctx.fdsync(fd)
      await Promise.all([ctx.write('Hello from ', fd, 0), ctx.write('async world', fd, 11)])
      assert.equal((await ctx.read(32, fd, 0)).toString(), 'Hello from async world')
      await ctx.fsync(fd)
    })

    await check(name('reads at and past end of file are short, then empty'), async () => {
      const tail = await ctx.read(64, readFd, pattern.length - 10)
      assert.deepEqual(tail, pattern.subarray(pattern.length - 10))
      assert.equal((await ctx.read(64, readFd, pattern.length + 4096)).length, 0)
      const into = Buffer.alloc(32)
      assert.equal(await ctx.readInto(into, readFd, pattern.length - 5), 5)
    })

    await check(name("an OS error is shaped like Node's: code, errno, syscall"), async () => {
      const closed = openSync(patternPath, 'r')
      closeSync(closed)
      const error = await ctx.read(8, closed, 0).then(() => undefined, (e) => e)
      assert.ok(error instanceof Error, `rejected with an Error: ${error}`)
      assert.equal(error.code, 'EBADF')
      assert.equal(error.errno, -9)
      assert.equal(error.syscall, 'read')
      assert.match(error.message, /^EBADF: bad file descriptor, read/)
    })

    await check(name('bad arguments throw TypeError / RangeError with Node codes'), async () => {
      const caught = async (call) => {
        try {
          await call()
        } catch (error) {
          return error
        }
        return undefined
      }
      const negative = await caught(() => ctx.read(-1, readFd, 0))
      assert.ok(negative instanceof RangeError, String(negative))
      assert.equal(negative.code, 'ERR_OUT_OF_RANGE')
      const notFd = await caught(() => ctx.read(1, 'three', 0))
      assert.ok(notFd instanceof TypeError, String(notFd))
      assert.equal(notFd.code, 'ERR_INVALID_ARG_TYPE')
    })

    await check(name('5,000 reads in flight at once each get their own bytes'), async () => {
      const offsets = Array.from({ length: 5000 }, (_, i) => (i * 7919) % (pattern.length - 64))
      const all = await Promise.all(offsets.map((offset) => ctx.read(64, readFd, offset)))
      all.forEach((bytes, i) => assert.ok(bytes.equals(pattern.subarray(offsets[i], offsets[i] + 64)), `read ${i}`))
    })

    await check(name('a batch with a linked chain: results in order; a failure cancels the rest of its chain'), async () => {
      const into = Buffer.alloc(5)
      const results = await ctx.submit([
        { op: 'write', fd, offset: 100, data: 'batch', link: true },
        { op: 'fdsync', fd, link: true },
        { op: 'read', fd, offset: 100, buffer: into },
      ])
      assert.deepEqual(results, [5, 0, 5])
      assert.equal(into.toString(), 'batch')
      const broken = await ctx.submit([
        { op: 'write', fd: readFd, offset: 0, data: 'no', link: true },
        { op: 'fsync', fd },
      ])
      // The js backend answers as this runtime's own fs.write does (Deno's says EIO here).
      const expected = backend === 'js' ? await new Promise((resolve) => write(readFd, Buffer.from('no'), 0, 2, 0, (error) => resolve(error?.code))) : 'EBADF'
      assert.equal(broken[0].code, expected)
      assert.equal(broken[1].code, 'ECANCELED')
    })

    await check(name('AbortSignal: aborted before the call, and while 500 are in flight, each settles exactly once'), async () => {
      const early = new AbortController()
      early.abort()
      const error = await ctx.read(8, readFd, 0, { signal: early.signal }).then(() => undefined, (e) => e)
      assert.equal(error?.name, 'AbortError')
      const controller = new AbortController()
      const settled = new Array(500).fill(0)
      const reads = Array.from({ length: 500 }, (_, i) =>
        ctx.read(16, readFd, i * 64, { signal: controller.signal }).then(
          (bytes) => {
            settled[i]++
            assert.ok(bytes.equals(pattern.subarray(i * 64, i * 64 + 16)))
          },
          (e) => {
            settled[i]++
            assert.equal(e.name, 'AbortError')
          },
        ),
      )
      controller.abort()
      await Promise.all(reads)
      assert.ok(settled.every((n) => n === 1))
    })

    await check(name('caio/fs on this backend: writeFile, readFile (small and 9 MiB), stat, open and a read stream'), async () => {
      const fsCtx = new caio.Context({ backend })
      try {
        const path = join(dir, `${backend}.whole`)
        await fsCtx.writeFile(path, pattern.subarray(0, 100_000))
        assert.ok((await fsCtx.readFile(path)).equals(pattern.subarray(0, 100_000)))
        assert.equal((await fsCtx.stat(path)).size, 100_000)
        // From 4 MiB up a whole-file read's memory is an external ArrayBuffer over a
        // mapping the addon reuses: this runtime's Node-API must make and free those.
        const large = join(dir, `${backend}.large`)
        const largeContent = Buffer.concat(Array.from({ length: 9 }, () => pattern))
        writeFileSync(large, largeContent)
        for (let i = 0; i < 3; i++) assert.ok((await fsCtx.readFile(large)).equals(largeContent), `large read ${i}`)
        const handle = await fsCtx.open(path, 'r')
        const chunks = []
        for await (const chunk of handle.createReadStream({ highWaterMark: 16384 })) chunks.push(chunk)
        assert.ok(Buffer.concat(chunks).equals(pattern.subarray(0, 100_000)))
      } finally {
        await fsCtx.close()
      }
    })

    await check(name('close with 1,000 reads in flight: each resolves or rejects ERR_CAIO_CLOSED, and close resolves'), async () => {
      const closing = new caio.Context({ backend, maxRequests: 64 })
      const outcomes = Array.from({ length: 1000 }, (_, i) =>
        closing.read(16, readFd, i * 16).then(
          (bytes) => (bytes.equals(pattern.subarray(i * 16, i * 16 + 16)) ? 'read' : 'wrong bytes'),
          (e) => e.code,
        ),
      )
      await closing.close()
      const counts = {}
      for (const outcome of await Promise.all(outcomes)) counts[outcome] = (counts[outcome] ?? 0) + 1
      assert.deepEqual(Object.keys(counts).filter((k) => k !== 'read' && k !== 'ERR_CAIO_CLOSED'), [], JSON.stringify(counts))
      const after = await closing.read(1, readFd, 0).then(() => 'resolved', (e) => e.code)
      assert.equal(after, 'ERR_CAIO_CLOSED')
    })

    await check(name('a process with an idle context exits at once; one with reads in flight finishes them'), () => {
      const idle = runSelf(['--child-idle', backend, patternPath])
      assert.equal(idle.status, 0, idle.describe)
      assert.match(idle.stdout, /read 8/, idle.describe)
      assert.ok(idle.seconds < 10, `exited after ${idle.seconds} s`)
      const busy = runSelf(['--child-busy', backend, patternPath])
      assert.equal(busy.status, 0, busy.describe)
      assert.match(busy.stdout, /finished 2000 true/, busy.describe)
    })

    await check(name('a worker thread opens its own context and reads'), async () => {
      let Worker
      try {
        ;({ Worker } = await import('node:worker_threads'))
      } catch {
        Worker = undefined
      }
      if (typeof Worker !== 'function') {
        console.log(`# ${runtimeName} has no worker_threads: the worker case checks nothing more`)
        return
      }
      const script = join(dir, `worker-${backend}.cjs`)
      writeFileSync(
        script,
        `const { parentPort, workerData } = require('node:worker_threads')
         const caio = require(${JSON.stringify(join(root, 'dist', 'index.js'))})
         const fs = require('node:fs')
         const ctx = new caio.Context({ backend: workerData.backend })
         const fd = fs.openSync(workerData.path, 'r')
         Promise.all([ctx.read(32, fd, 4096), ctx.read(32, fd, 8192)])
           .then(async (reads) => { await ctx.close(); parentPort.postMessage({ backend: ctx.backend, hex: reads.map((b) => b.toString('hex')) }) },
                 (error) => parentPort.postMessage({ error: String(error && error.stack) }))`,
      )
      const worker = new Worker(script, { workerData: { backend, path: patternPath } })
      const message = await new Promise((resolve, reject) => {
        worker.once('message', resolve)
        worker.once('error', reject)
      })
      await worker.terminate()
      assert.equal(message.error, undefined)
      // A worker terminated with reads in flight and its context open: no crash, no hang.
      const busy = new Worker(
        `const { parentPort, workerData } = require('node:worker_threads')
         const ctx = new (require(${JSON.stringify(join(root, 'dist', 'index.js'))}).Context)({ backend: workerData.backend })
         const fd = require('node:fs').openSync(workerData.path, 'r')
         for (let i = 0; i < 2000; i++) ctx.read(4096, fd, (i * 4096) % (1 << 20))
         parentPort.postMessage('started')`,
        { eval: true, workerData: { backend, path: patternPath } },
      )
      await new Promise((resolve, reject) => {
        busy.once('message', resolve)
        busy.once('error', reject)
      })
      await busy.terminate()
      assert.equal(message.backend, backend)
      assert.deepEqual(message.hex, [pattern.subarray(4096, 4128).toString('hex'), pattern.subarray(8192, 8224).toString('hex')])
    })

    await ctx.close()
    closeSync(fd)
    closeSync(readFd)
  }

  await check('caio/fs default context: readFile, writeFile, readFiles', async () => {
    const a = join(dir, 'a.txt')
    await caioFs.writeFile(a, 'first')
    assert.equal(await caioFs.readFile(a, 'utf8'), 'first')
    const [one, missing] = await caioFs.readFiles([a, join(dir, 'missing')], { encoding: 'utf8' })
    assert.equal(one, 'first')
    assert.equal(missing.code, 'ENOENT')
    assert.deepEqual(readFileSync(a), Buffer.from('first'))
  })

  rmSync(dir, { recursive: true, force: true })
  console.log(`# runtime (${runtimeName}): ${passed} passed, ${failed} failed`)
  process.exitCode = failed === 0 && passed > 0 ? 0 : 1
  // Nothing may keep the process alive now: every context is closed.
}

/** Runs this file again under the same runtime with `args`; its outcome and duration. */
function runSelf(args) {
  const deno = 'Deno' in globalThis
  const started = performance.now()
  const result = spawnSync(process.execPath, [...(deno ? ['run', '-A'] : []), here, ...args], { encoding: 'utf8', timeout: 60_000 })
  const seconds = (performance.now() - started) / 1000
  return {
    status: result.status,
    stdout: result.stdout ?? '',
    seconds,
    describe: `exit ${result.status} signal ${result.signal} after ${seconds.toFixed(1)} s; stdout: ${result.stdout}; stderr: ${result.stderr}`,
  }
}

function withTimeout(promise, ms, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ms} ms`)), ms)
  })
  return Promise.race([Promise.resolve(promise), timeout]).finally(() => clearTimeout(timer))
}
