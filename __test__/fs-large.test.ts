// Large files read whole: their Buffers come from memory that earlier large reads let go
// of (crates/node/src/large.rs). Each one must still be a Buffer of its own — exactly its
// file's bytes, its ArrayBuffer exactly that long, never sharing memory with another one
// alive — however often memory goes round.
import { writeFileSync } from 'node:fs'
import { readFile as nodeReadFile } from 'node:fs/promises'
import { join } from 'node:path'

import test from 'ava'

import { collectGarbage, openContext, pattern, tempDir } from './helpers'

const MiB = 1024 * 1024

test('large files read whole, again and again, are each exactly their bytes in a Buffer of their own', async (t) => {
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
