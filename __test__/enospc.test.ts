// Full disks and I/O errors: writes to a full file system reject with ENOSPC (or resolve
// with the bytes that really fit) and never report bytes that were not written; device and
// procfs errors come back Node-shaped with the same code on every backend; the context
// keeps working afterwards.
//
// The full file system is a tmpfs of size=1M mounted for the test (needs root; where
// mounting is not allowed, that one test logs why and checks only that the reason is a
// missing privilege). /dev/full and /proc/self/mem need nothing.
import { execFileSync } from 'node:child_process'
import { closeSync, openSync, readFileSync, statfsSync, statSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'

import test from 'ava'
import type { ExecutionContext } from 'ava'

import type { BatchOp } from '../index'
import { errnoOf, field, fileWith, openContext, outcome, pattern, tempDir } from './helpers'

const MIB = 1024 * 1024

/** A fresh tmpfs of `size` mounted on a temp dir (unmounted after the test), or why not. */
function mountTmpfs(t: ExecutionContext, size: string): { dir: string } | { reason: string; privileged: boolean } {
  const dir = join(tempDir(t), 'small-fs')
  execFileSync('mkdir', [dir])
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' })
  } catch (error) {
    const stderr = String(field(error, 'stderr') ?? '')
    const notRoot = typeof process.getuid === 'function' && process.getuid() !== 0
    return { reason: `mount -t tmpfs failed: ${stderr.trim() || String(error)}`, privileged: !notRoot && !/permission denied|not permitted|only root/i.test(stderr) }
  }
  // Registered after tempDir's removal, so it runs first (teardowns run last-in first-out).
  t.teardown(() => {
    try {
      execFileSync('umount', [dir], { stdio: 'pipe' })
    } catch {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' })
    }
  })
  return { dir }
}

/** Resolves once the file system under `dir` has `bytes` free (within 10 s), else rejects. */
async function roomFor(dir: string, bytes: number): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const stats = statfsSync(dir)
    if (stats.bavail * stats.bsize >= bytes) return
    if (Date.now() > deadline) throw new Error(`${dir} still has only ${stats.bavail * stats.bsize} bytes free`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

function isEnospc(error: unknown): boolean {
  return error instanceof Error && field(error, 'code') === 'ENOSPC' && field(error, 'errno') === errnoOf('ENOSPC') && field(error, 'syscall') === 'write' && error.message.startsWith('ENOSPC:')
}

/**
 * A file opened in `dir`, closed once: by `close()` or else at teardown. Never twice: the
 * test files run in worker threads of one process, so a number closed already may by then
 * name another test's file, and a second close would close that.
 */
function openIn(t: ExecutionContext, dir: string, name: string): { path: string; fd: number; close(): void } {
  const path = join(dir, name)
  const fd = openSync(path, 'w+')
  let open = true
  const close = (): void => {
    if (!open) return
    open = false
    closeSync(fd)
  }
  t.teardown(close)
  return { path, fd, close }
}

test('a 1 MiB tmpfs filled by writes, sequential then concurrent then batched: ENOSPC rejections, short writes honest, every reported byte on disk; the context works on after space is freed', async (t) => {
  t.timeout(60_000)
  const mounted = mountTmpfs(t, '1M')
  if ('reason' in mounted) {
    t.log(`not run: ${mounted.reason}`)
    t.false(mounted.privileged, `mounting failed for a reason other than missing privileges: ${mounted.reason}`)
    return
  }
  const { dir } = mounted
  const ctx = openContext(t, { maxRequests: 16 })
  // Not a multiple of the page size: the write that meets the end of the space is short.
  const chunk = 60_000

  // 1. Sequential appends until the file system is full.
  const first = openIn(t, dir, 'sequential')
  const data = pattern(4 * MIB, 71)
  let end = 0
  let rejections = 0
  let shortWrites = 0
  for (let i = 0; i < 64 && end < data.length; i++) {
    const result = await outcome(ctx.write(data.subarray(end, end + chunk), first.fd, end))
    if (result.ok) {
      t.true(result.value > 0 && result.value <= chunk, `write #${i} resolved ${result.value}`)
      if (result.value < chunk) shortWrites++
      end += result.value
    } else {
      t.true(isEnospc(result.error), `write #${i} rejected with ${String(result.error)}`)
      rejections++
      if (rejections >= 3) break
    }
  }
  t.log(`sequential: ${end} bytes fit, ${shortWrites} short write(s), ${rejections} ENOSPC`)
  t.true(rejections >= 1, 'the file system filled up and a write rejected with ENOSPC')
  t.true(end > 0 && end <= MIB, `${end} bytes reported written on a 1 MiB file system`)
  const onDisk = readFileSync(first.path)
  t.is(onDisk.length, end, 'the file is exactly as long as the bytes reported written')
  t.true(onDisk.equals(data.subarray(0, end)), 'every reported byte is on disk')
  t.is(await ctx.fsync(first.fd), undefined, 'fsync on the full file system resolves')
  t.true((await ctx.read(end, first.fd, 0)).equals(data.subarray(0, end)), 'reads work on the full file system')

  // 2. Free it, then 48 concurrent 32 KiB writes at disjoint offsets of a new file (1.5 MiB asked).
  first.close()
  unlinkSync(first.path)
  const second = openIn(t, dir, 'concurrent')
  const size = 32 * 1024
  const sources = Array.from({ length: 48 }, (_, i) => pattern(size, 300 + i))
  const results = await Promise.all(sources.map((source, i) => outcome(ctx.write(source, second.fd, i * size))))
  const written = readFileSync(second.path)
  let reported = 0
  let enospc = 0
  results.forEach((result, i) => {
    if (result.ok) {
      t.true(result.value > 0 && result.value <= size, `concurrent write #${i} resolved ${result.value}`)
      reported += result.value
      t.true(written.subarray(i * size, i * size + result.value).equals((sources[i] as Buffer).subarray(0, result.value)), `the ${result.value} bytes write #${i} reported are on disk`)
    } else {
      t.true(isEnospc(result.error), `concurrent write #${i} rejected with ${String(result.error)}`)
      enospc++
    }
  })
  t.log(`concurrent: ${reported} bytes reported in ${48 - enospc} writes, ${enospc} ENOSPC`)
  t.true(enospc >= 1, 'some concurrent writes found the file system full')
  t.true(reported <= MIB, `${reported} bytes reported written on a 1 MiB file system`)

  // 3. A batch on the full file system: ENOSPC entries shaped like fs errors, the rest honest.
  const batchSources = Array.from({ length: 8 }, (_, i) => pattern(size, 400 + i))
  const ops: BatchOp[] = batchSources.map((source, i) => ({ op: 'write', fd: second.fd, offset: (48 + i) * size, data: source }))
  ops.push({ op: 'fdsync', fd: second.fd })
  const entries = await ctx.submit(ops)
  const afterBatch = readFileSync(second.path)
  let batchEnospc = 0
  entries.slice(0, 8).forEach((entry, i) => {
    if (typeof entry === 'number') {
      t.true(entry > 0 && entry <= size, `batch write #${i} gave ${entry}`)
      t.true(afterBatch.subarray((48 + i) * size, (48 + i) * size + entry).equals((batchSources[i] as Buffer).subarray(0, entry)), `batch write #${i}'s reported bytes are on disk`)
    } else {
      t.true(isEnospc(entry), `batch write #${i}: ${String(entry)}`)
      batchEnospc++
    }
  })
  t.is(entries[8], 0, 'the fdsync of the batch succeeded')
  t.true(batchEnospc >= 1, 'the batch found the file system full')

  // 4. Space freed: the same context writes again.
  second.close()
  unlinkSync(second.path)
  // The kernel may let go of the file a moment after the close: io_uring's io-wq workers,
  // which do tmpfs writes, drop their file references through a deferred fput. Wait until
  // the file system shows the room.
  await roomFor(dir, chunk)
  const third = openIn(t, dir, 'after')
  t.is(await ctx.write(data.subarray(0, chunk), third.fd, 0), chunk, 'after space was freed, a write succeeds')
  t.true(readFileSync(third.path).equals(data.subarray(0, chunk)))
})

test('a write bigger than the room left resolves with the bytes that fit (or ENOSPC), never more than it wrote', async (t) => {
  t.timeout(60_000)
  const mounted = mountTmpfs(t, '1M')
  if ('reason' in mounted) {
    t.log(`not run: ${mounted.reason}`)
    t.false(mounted.privileged, `mounting failed for a reason other than missing privileges: ${mounted.reason}`)
    return
  }
  const ctx = openContext(t)
  const file = openIn(t, mounted.dir, 'big')
  const data = pattern(3 * MIB, 72)
  const result = await outcome(ctx.write(data, file.fd, 0))
  const onDisk = readFileSync(file.path)
  if (result.ok) {
    t.true(result.value > 0 && result.value < data.length, `a 3 MiB write on a 1 MiB file system resolved ${result.value}`)
    t.is(onDisk.length, result.value, 'the file holds exactly the bytes reported')
    t.true(onDisk.equals(data.subarray(0, result.value)))
  } else {
    t.true(isEnospc(result.error), String(result.error))
    t.is(statSync(file.path).size, 0, 'a rejected write reported nothing, and wrote nothing')
  }
  // A second one, with the file system now full, must reject.
  const again = await outcome(ctx.write(data.subarray(0, 4096), file.fd, onDisk.length))
  t.true(!again.ok && isEnospc(again.error), `a write to the full file system: ${String(again.ok ? again.value : again.error)}`)
})

test('device and procfs errors are Node-shaped and the same on every backend: ENOSPC from /dev/full, EIO from /proc/self/mem, EBADF for a write to a read-only descriptor', async (t) => {
  const ctx = openContext(t)
  const full = openSync('/dev/full', 'w')
  const mem = openSync('/proc/self/mem', 'r')
  const readOnly = openSync('/dev/zero', 'r')
  t.teardown(() => [full, mem, readOnly].forEach((fd) => closeSync(fd)))
  const check = async (promise: Promise<unknown>, code: string, syscall: string, what: string): Promise<void> => {
    const result = await outcome(promise)
    const error = result.ok ? undefined : result.error
    t.true(error instanceof Error && field(error, 'code') === code && field(error, 'errno') === errnoOf(code) && field(error, 'syscall') === syscall, `${what}: expected ${code} from ${syscall}, got ${String(result.ok ? result.value : error)}`)
  }
  await check(ctx.write('abc', full, 0), 'ENOSPC', 'write', 'a write to /dev/full')
  await check(ctx.write(Buffer.alloc(MIB), full, 0), 'ENOSPC', 'write', 'a 1 MiB write to /dev/full')
  // Page 0 is never mapped (vm.mmap_min_addr), so reading it through /proc/self/mem fails.
  await check(ctx.read(64, mem, 0), 'EIO', 'read', 'a read of unmapped memory through /proc/self/mem')
  await check(ctx.readInto(Buffer.alloc(16), mem, 4096), 'EIO', 'read', 'readInto from /proc/self/mem')
  await check(ctx.write('x', readOnly, 0), 'EBADF', 'write', 'a write to a read-only descriptor')
  const entries = await ctx.submit([
    { op: 'write', fd: full, offset: 0, data: 'x' },
    { op: 'read', fd: mem, offset: 0, buffer: Buffer.alloc(8) },
    { op: 'read', fd: readOnly, offset: 0, buffer: Buffer.alloc(8) },
  ])
  await check(Promise.reject(entries[0]), 'ENOSPC', 'write', 'a batched write to /dev/full')
  await check(Promise.reject(entries[1]), 'EIO', 'read', 'a batched read from /proc/self/mem')
  t.is(entries[2], 8, 'the good entry of the batch read its bytes')
  t.is((await ctx.read(4, readOnly, 0)).length, 4, 'the context works on')
})

test('writes past the largest file the file system allows reject (EFBIG or EINVAL) and report no bytes; the file is untouched', async (t) => {
  const file = fileWith(t, 'small')
  const ctx = openContext(t)
  for (const offset of [2 ** 50, 2n ** 62n, 2n ** 63n - 1n]) {
    const result = await outcome(ctx.write('data', file.fd, offset))
    const code = result.ok ? `resolved ${result.value}` : field(result.error, 'code')
    t.true(!result.ok && (code === 'EFBIG' || code === 'EINVAL') && field(result.error, 'syscall') === 'write', `a write at ${offset}: ${String(code)}`)
  }
  t.is(file.content().toString(), 'small')
})
