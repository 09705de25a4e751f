// The durability test: a child process appends numbered, checksummed 4 KiB records to one
// file as fast as it can, each as a linked write → fdsync batch, four appenders at once, and
// prints a record's number only after its batch resolved. The parent kills it with SIGKILL
// at a random moment, 20 times over on the backend under test, and after every kill reads
// the file back: every record ever reported must be there, whole and in place; every other
// slot must hold either its own valid record or something the format detects as not one
// (zeros, a bad magic or a bad CRC) — never a valid-looking record of another number.
//
// A SIGKILL ends the process but keeps the page cache, so this proves that caio never
// reports a write (or the sync linked behind it) before the kernel has finished it, on every
// backend and whatever the moment of the kill: not that the data would survive a power loss,
// which is the device's and the file system's promise to keep after fdatasync.
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import test from 'ava'

import { backendUnderTest, childEnv, INDEX_JS, Random, tempDir } from './helpers'

const RECORD = 4096
const MAGIC = 0x4341494f // 'CAIO'
/** magic u32, sequence number as two u32 halves, payload length u32, payload, CRC32 u32. */
const HEADER = 16
const PAYLOAD = RECORD - HEADER - 4
const KILLS = 20
const APPENDERS = 4

/** The record format, as JavaScript source: the child builds records with it, the parent checks them. */
const FORMAT_JS = `
  const RECORD = ${RECORD}, MAGIC = ${MAGIC}, HEADER = ${HEADER}, PAYLOAD = ${PAYLOAD}
  const CRC_TABLE = new Int32Array(256).map((_, n) => {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    return c
  })
  function crc32(bytes, end) {
    let c = -1
    for (let i = 0; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8)
    return (c ^ -1) >>> 0
  }
  function payloadByte(seq, i) {
    return (Math.imul(seq + 1, 2654435761) >>> ((i % 4) * 8)) ^ (i * 31) & 0xff
  }
  function makeRecord(seq) {
    const record = Buffer.alloc(RECORD)
    record.writeUInt32LE(MAGIC, 0)
    record.writeUInt32LE(seq % 0x100000000, 4)
    record.writeUInt32LE(Math.floor(seq / 0x100000000), 8)
    record.writeUInt32LE(PAYLOAD, 12)
    for (let i = 0; i < PAYLOAD; i++) record[HEADER + i] = payloadByte(seq, i) & 0xff
    record.writeUInt32LE(crc32(record, RECORD - 4), RECORD - 4)
    return record
  }
  // 'valid' with its number, 'zero' (never written), or 'torn' (the format says it is not a record).
  function classify(slot) {
    if (slot.length < RECORD) return slot.every((b) => b === 0) ? { kind: 'zero' } : { kind: 'torn', why: 'short' }
    if (slot.every((b) => b === 0)) return { kind: 'zero' }
    if (slot.readUInt32LE(0) !== MAGIC) return { kind: 'torn', why: 'magic' }
    if (slot.readUInt32LE(12) !== PAYLOAD) return { kind: 'torn', why: 'length' }
    if (crc32(slot, RECORD - 4) !== slot.readUInt32LE(RECORD - 4)) return { kind: 'torn', why: 'crc' }
    return { kind: 'valid', seq: slot.readUInt32LE(4) + slot.readUInt32LE(8) * 0x100000000 }
  }
`

interface Slot {
  kind: 'valid' | 'zero' | 'torn'
  seq?: number
  why?: string
}

// The same functions for the parent, from the same source.
// eslint-disable-next-line @typescript-eslint/no-implied-eval
const format = new Function('Buffer', `${FORMAT_JS}; return { makeRecord, classify }`)(Buffer) as {
  makeRecord(seq: number): Buffer
  classify(slot: Buffer): Slot
}

/** The appender: `node -e CHILD path start`. */
const CHILD_JS = `
  const caio = require(${JSON.stringify(INDEX_JS)})
  const fs = require('node:fs')
  ${FORMAT_JS}
  const [path, start] = process.argv.slice(1)
  const fd = fs.openSync(path, 'r+')
  const ctx = new caio.Context()
  let next = Number(start)
  async function appender() {
    for (;;) {
      const seq = next++
      const results = await ctx.submit([
        { op: 'write', fd, offset: seq * RECORD, data: makeRecord(seq), link: true },
        { op: 'fdsync', fd },
      ])
      if (results[0] !== RECORD || results[1] !== 0) {
        process.stderr.write('batch ' + seq + ' settled with ' + results.map(String).join(', ') + '\\n')
        process.exit(3)
      }
      // Synchronous on Linux for a pipe: the line is in the pipe before the next append starts.
      process.stdout.write(seq + '\\n')
    }
  }
  process.stdout.write('ready ' + ctx.backend + '\\n')
  for (let i = 0; i < ${APPENDERS}; i++) appender()
`

/** One appender run, killed `delayMs` after it said it was ready: the numbers it reported, and how it ended. */
function appendUntilKilled(path: string, start: number, delayMs: number): Promise<{ reported: number[]; backend?: string; code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', CHILD_JS, path, String(start)], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let backend: string | undefined
    let timer: NodeJS.Timeout | undefined
    const guard = setTimeout(() => child.kill('SIGKILL'), 20_000)
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk
      if (backend === undefined) {
        const ready = /^ready (\w+)\n/.exec(stdout)
        if (ready) {
          backend = ready[1]
          timer = setTimeout(() => child.kill('SIGKILL'), delayMs)
        }
      }
    })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(guard)
      clearTimeout(timer)
      // Only whole lines count: a number is reported once its newline is out.
      const lines = stdout.split('\n').slice(1, -1)
      resolve({ reported: lines.map(Number), backend, code, signal, stderr })
    })
  })
}

test(`SIGKILL at ${KILLS} random moments while a child appends checksummed records with linked write → fdsync: every record it reported is in the file, whole and in place, and no slot holds a valid-looking wrong record`, async (t) => {
  t.timeout(180_000)
  const path = join(tempDir(t), 'log')
  writeFileSync(path, '')
  const seed = Date.now() >>> 0
  t.log(`kill delays from seed ${seed}`)
  const random = new Random(seed)
  const reported = new Set<number>()
  let next = 0
  let torn = 0
  let unreportedValid = 0
  for (let kill = 0; kill < KILLS; kill++) {
    const delay = 20 + random.below(281)
    const run = await appendUntilKilled(path, next, delay)
    t.is(run.signal, 'SIGKILL', `run ${kill} ended by the kill, not on its own (exit ${run.code}): ${run.stderr}`)
    const expected = backendUnderTest()
    if (expected !== undefined) t.is(run.backend, expected)
    for (const seq of run.reported) reported.add(seq)
    const file = readFileSync(path)
    const slots = Math.ceil(file.length / RECORD)
    const wrong: string[] = []
    for (const seq of reported) {
      const slot = file.subarray(seq * RECORD, (seq + 1) * RECORD)
      if (seq >= slots || !slot.equals(format.makeRecord(seq))) wrong.push(`reported record ${seq} is ${JSON.stringify(seq >= slots ? 'past the end' : format.classify(slot))}`)
    }
    for (let seq = 0; seq < slots; seq++) {
      if (reported.has(seq)) continue
      const found = format.classify(file.subarray(seq * RECORD, (seq + 1) * RECORD))
      if (found.kind === 'valid' && found.seq !== seq) wrong.push(`slot ${seq} holds a valid record numbered ${found.seq}`)
      if (found.kind === 'valid') unreportedValid++
      if (found.kind === 'torn') torn++
    }
    t.deepEqual(wrong.slice(0, 5), [], `after kill ${kill} (${delay} ms, ${run.reported.length} reported)`)
    // The next child appends after everything reported; what lies beyond was never promised.
    next = reported.size === 0 ? 0 : Math.max(...reported) + 1
  }
  t.true(reported.size > 0, 'the children reported records')
  t.log(`${reported.size} records reported over ${KILLS} kills; unreported slots found valid ${unreportedValid} times, torn ${torn} times`)
})
