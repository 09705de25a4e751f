// Large files read whole: their Buffers come from memory that earlier large reads let go
// of (crates/node/src/large.rs). Each one must still be a Buffer of its own — exactly its
// file's bytes, its ArrayBuffer exactly that long, never sharing memory with another one
// alive — however often memory goes round.
import { closeSync, ftruncateSync, openSync, writeFileSync, writeSync } from 'node:fs'
import { readFile as nodeReadFile } from 'node:fs/promises'
import { join } from 'node:path'

import test from 'ava'

import { collectGarbage, openContext, pattern, tempDir } from './helpers'

const MiB = 1024 * 1024

test.serial('large files read whole, again and again, are each exactly their bytes in a Buffer of their own', async (t) => {
  const dir = tempDir(t)
  const sizes = [5 * MiB, 5 * MiB + 1, 9 * MiB - 7, 6 * MiB]
  const paths = sizes.map((size, i) => {
    const path = join(dir, `large-${i}`)
    writeFileSync(path, pattern(size, i + 1))
    return path
  })
  const ctx = openContext(t)
  for (let round = 0; round < 3; round++) {
    const alive = await Promise.all(paths.map((path) => ctx.readFile(path)))
    for (const [i, bytes] of alive.entries()) {
      t.is(bytes.length, sizes[i])
      t.is(bytes.byteOffset, 0)
      t.is(bytes.buffer.byteLength, sizes[i], 'the ArrayBuffer is exactly the file, as Node gives it')
      t.true(bytes.equals(await nodeReadFile(paths[i]!)), `round ${round}, file ${i}`)
    }
    // Memory of its own: writing into one changes no other.
    alive[0]!.fill(0xee)
    for (const [i, bytes] of alive.slice(1).entries()) t.true(bytes.equals(pattern(sizes[i + 1]!, i + 2)))
    alive.length = 0
    collectGarbage()
    await new Promise((resolve) => setImmediate(resolve))
  }
})

test('a large file read with an encoding decodes all of it', async (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'text')
  const text = 'caio ✓ '.repeat(800_000)
  writeFileSync(path, text)
  const ctx = openContext(t)
  t.is(await ctx.readFile(path, 'utf8'), text)
  collectGarbage()
  t.is(await ctx.readFile(path, { encoding: 'utf8' }), text)
})

// Node's readFile refuses files over 2 GiB (ERR_FS_FILE_TOO_LARGE); caio's reads them, up
// to the largest Buffer. A sparse file keeps the test light on disk: its holes read as 0.
test.serial('a file over 2 GiB is read whole, every part of it in its place', async (t) => {
  // Fresh memory for 2 GiB, on a busy machine: far more than the usual time.
  t.timeout(120_000)
  const dir = tempDir(t)
  const path = join(dir, 'over-2-gib')
  const size = 2 ** 31 + 3 * MiB + 5
  const marks = [0, 2 ** 31 - 1, 2 ** 31, size - 1]
  const fd = openSync(path, 'w')
  try {
    ftruncateSync(fd, size)
    for (const [i, at] of marks.entries()) writeSync(fd, Buffer.from([0xa0 + i]), 0, 1, at)
  } finally {
    closeSync(fd)
  }
  const ctx = openContext(t)
  let bytes: Buffer | undefined = await ctx.readFile(path)
  t.is(bytes.length, size)
  for (const [i, at] of marks.entries()) t.is(bytes[at], 0xa0 + i, `byte ${at}`)
  t.is(bytes[2 ** 31 + 1], 0)
  bytes = undefined
  collectGarbage()
})
