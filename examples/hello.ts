// The Python caio's README example, in TypeScript: `npm run example`.
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { Context } from '../index'

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'caio-example-'))
  const fd = openSync(join(dir, 'test.file'), 'w+')
  // maxRequests is 512 by default; the backend is the best one this machine has.
  await using ctx = new Context({ maxRequests: 128 })
  console.log(`backend: ${ctx.backend}`)
  try {
    // Execute one write operation
    await ctx.write('Hello world', fd, 0)

    // Execute one read operation
    console.log((await ctx.read(32, fd, 0)).toString())

    // Execute one fdsync operation
    await ctx.fdsync(fd)

    const op1 = ctx.write('Hello from ', fd, 0)
    const op2 = ctx.write('async world', fd, 11)
    await Promise.all([op1, op2])

    console.log((await ctx.read(32, fd, 0)).toString())
    // Hello from async world
  } finally {
    closeSync(fd)
    rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
