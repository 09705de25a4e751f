// The Python caio's README example, ported: write, read, fdsync, two concurrent writes,
// read back "Hello from async world".
import test from 'ava'

import { fileWith, openContext } from './helpers'

test('the seed README example reads back "Hello from async world"', async (t) => {
  const file = fileWith(t, '', 'w+')
  await using ctx = openContext(t, { maxRequests: 128 })

  // Execute one write operation
  t.is(await ctx.write('Hello world', file.fd, 0), 11)

  // Execute one read operation
  t.is((await ctx.read(32, file.fd, 0)).toString(), 'Hello world')

  // Execute one fdsync operation
  t.is(await ctx.fdsync(file.fd), undefined)

  const op1 = ctx.write('Hello from ', file.fd, 0)
  const op2 = ctx.write('async world', file.fd, 11)
  t.deepEqual(await Promise.all([op1, op2]), [11, 11])

  const final = await ctx.read(32, file.fd, 0)
  t.is(final.toString(), 'Hello from async world')
  t.is(final.length, 22)
})
