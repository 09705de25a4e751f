// lib/wire.ts and crates/scheduler/src/wire.rs (with caio_core's Opcode and the token
// codec) describe the same wire: read the Rust source and hold every number against it.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import test from 'ava'

import { Opcode } from '../lib/wire'
import * as wire from '../lib/wire'
import { REPO_ROOT } from './helpers'

const rust = (path: string): string => readFileSync(join(REPO_ROOT, path), 'utf8')

function constant(source: string, name: string): number {
  const match = new RegExp(`pub const ${name}: \\w+ = ([^;]+);`).exec(source)
  if (match === null) throw new Error(`no constant ${name}`)
  return Number(match[1]!.replace(/_/g, '').replace(/\.0$/, '').replace(/^1 << (\d+)$/, (_, bits: string) => String(2 ** Number(bits))))
}

test('the wire constants are the scheduler crate’s', (t) => {
  const source = rust('crates/scheduler/src/wire.rs')
  t.is(wire.BATCH_FIELDS, constant(source, 'BATCH_FIELDS'))
  t.is(wire.LINK_FLAG, constant(source, 'LINK_FLAG'))
  t.is(wire.CALL_FIELDS, constant(source, 'CALL_FIELDS'))
  t.is(wire.CALL_TOKEN, constant(source, 'CALL_TOKEN'))
  t.is(wire.RESULT_ABORTED, constant(source, 'ABORTED'))
  t.is(wire.RESULT_CLOSED, constant(source, 'CLOSED'))
  t.is(wire.RESULT_UNSUPPORTED, constant(source, 'UNSUPPORTED'))
  t.is(wire.IOVEC_ROOM, constant(source, 'IOVEC_ROOM'))
  t.is(wire.MAX_IOVECS, constant(source, 'MAX_IOVECS'))
  t.is(wire.MAX_REGISTERED_BUFFERS, constant(source, 'MAX_REGISTERED_BUFFERS'))
  t.is(wire.MAX_REGISTERED_BUFFERS, constant(rust('crates/uring/src/registered.rs'), 'MAX_REGISTERED_BUFFERS'))
  t.is(wire.RANGE_ARGS_SIZE, constant(rust('crates/core/src/lib.rs'), 'RANGE_ARGS_SIZE'))
  t.is(wire.CLOSED_SLOT, constant(source, 'CLOSED_SLOT'))
  t.is(wire.SLOT_COUNT, 2 ** constant(rust('crates/scheduler/src/token.rs'), 'INDEX_BITS'))
})

test('the opcodes are caio_core’s', (t) => {
  const body = /pub enum Opcode \{([^}]*)\}/.exec(rust('crates/core/src/lib.rs'))?.[1] ?? ''
  const variants = Object.fromEntries([...body.matchAll(/(\w+) = (\d+),/g)].map((m) => [m[1], Number(m[2])]))
  t.deepEqual(variants, {
    Read: Opcode.Read,
    Write: Opcode.Write,
    Fsync: Opcode.Fsync,
    Fdatasync: Opcode.Fdatasync,
    Open: Opcode.Open,
    Close: Opcode.Close,
    Stat: Opcode.Stat,
    Fstat: Opcode.Fstat,
    Unlink: Opcode.Unlink,
    Rename: Opcode.Rename,
    Mkdir: Opcode.Mkdir,
    Ftruncate: Opcode.Ftruncate,
    Access: Opcode.Access,
    Copyfile: Opcode.Copyfile,
    ReadSmall: Opcode.ReadSmall,
    Readv: Opcode.Readv,
    Writev: Opcode.Writev,
    Fallocate: Opcode.Fallocate,
    SyncRange: Opcode.SyncRange,
    Fadvise: Opcode.Fadvise,
    RegisterBuffers: Opcode.RegisterBuffers,
    UnregisterBuffers: Opcode.UnregisterBuffers,
    RegisterFiles: Opcode.RegisterFiles,
    UnregisterFiles: Opcode.UnregisterFiles,
  })
})

test('the cursor offset and the stat area are caio_core’s', (t) => {
  const core = rust('crates/core/src/lib.rs')
  t.regex(core, /pub const AT_CURSOR: u64 = u64::MAX;/)
  t.is(wire.AT_CURSOR, -1, 'JavaScript says -1 for u64::MAX (the call area says (-1, 0): crates/scheduler wire::decode_call)')
  t.is(wire.STATX_SIZE, constant(core, 'STATX_SIZE'))
  t.regex(rust('crates/scheduler/src/wire.rs'), /if high == -1\.0 && low == 0\.0 \{\s*caio_core::AT_CURSOR/)
})

test('results that are not an errno lie below every errno and never collide', (t) => {
  t.true(wire.RESULT_ABORTED < -4095 && wire.RESULT_CLOSED < -4095 && wire.RESULT_UNSUPPORTED < -4095)
  t.is(new Set([wire.RESULT_ABORTED, wire.RESULT_CLOSED, wire.RESULT_UNSUPPORTED]).size, 3)
})
