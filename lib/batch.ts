/**
 * Batches: the Python caio's `Context.submit(*operations)`, made Node-shaped. A batch is
 * validated whole (an error names the entry's index and nothing reaches the kernel),
 * encoded into one `Float64Array` for a single crossing into native code, and its results
 * come back as one `Float64Array` that becomes the array the caller sees.
 */
import { errorFromResult, invalidArgType, invalidArgValue, outOfRange } from './errors'
import type { Operand, PreparedBatch } from './engine'
import { BATCH_FIELDS, LINK_FLAG, Opcode, putOffset, RESULT_ABORTED, RESULT_CLOSED } from './wire'
import {
  fallocateMode,
  rangeArgs,
  syncRangeFlags,
  validateAdvice,
  validateBuffers,
  validateData,
  validateFd,
  validateOffset,
  validatePriority,
  validateView,
} from './validate'
import type { Advice, FallocateFlags, Offset, SyncRangeFlags } from './validate'

/** What every entry of a batch may say besides its operation. */
interface BatchEntry {
  fd: number
  /** The next entry starts only after this one succeeded; if this one fails, the rest of its chain gets `ECANCELED`. */
  link?: boolean
  priority?: number
}

/**
 * One entry of a batch (the Python caio's `Operation.read/write/fsync/fdsync`, and the
 * storage-engine operations): the same names and arguments as the `Context` methods.
 */
export type BatchOp =
  | (BatchEntry & { op: 'read'; offset: number | bigint; buffer: ArrayBufferView })
  | (BatchEntry & { op: 'write'; offset: number | bigint; data: ArrayBufferView | string })
  | (BatchEntry & { op: 'fsync' | 'fdsync' })
  | (BatchEntry & { op: 'readv' | 'writev'; offset: number | bigint; buffers: readonly ArrayBufferView[] })
  | (BatchEntry & FallocateFlags & { op: 'fallocate'; offset: number | bigint; length: number | bigint })
  | (BatchEntry & { op: 'ftruncate'; length: number | bigint })
  | (BatchEntry & SyncRangeFlags & { op: 'syncRange'; offset: number | bigint; length: number | bigint })
  | (BatchEntry & { op: 'fadvise'; offset: number | bigint; length: number | bigint; advice: Advice })

const OPCODES: Readonly<Record<string, Opcode>> = {
  read: Opcode.Read,
  write: Opcode.Write,
  fsync: Opcode.Fsync,
  fdsync: Opcode.Fdatasync,
  readv: Opcode.Readv,
  writev: Opcode.Writev,
  fallocate: Opcode.Fallocate,
  ftruncate: Opcode.Ftruncate,
  syncRange: Opcode.SyncRange,
  fadvise: Opcode.Fadvise,
}

const OP_NAMES = Object.keys(OPCODES)
  .map((name) => `'${name}'`)
  .join(', ')

function opcodeOf(name: unknown): Opcode | undefined {
  return typeof name === 'string' && Object.hasOwn(OPCODES, name) ? OPCODES[name] : undefined
}


/** The names an entry's errors use: plain ones while all goes well, indexed ones to report. */
interface EntryNames {
  entry: string
  op: string
  fd: string
  link: string
  priority: string
  offset: string
  buffer: string
  data: string
  /** What the storage-engine operations' own names start with: `op.`, `ops[3].`. */
  prefix: string
}

const PLAIN_NAMES: EntryNames = {
  entry: 'op',
  op: 'op.op',
  fd: 'op.fd',
  link: 'op.link',
  priority: 'op.priority',
  offset: 'op.offset',
  buffer: 'op.buffer',
  data: 'op.data',
  prefix: 'op.',
}

function indexedNames(i: number): EntryNames {
  const entry = `ops[${i}]`
  return {
    entry,
    op: `${entry}.op`,
    fd: `${entry}.fd`,
    link: `${entry}.link`,
    priority: `${entry}.priority`,
    offset: `${entry}.offset`,
    buffer: `${entry}.buffer`,
    data: `${entry}.data`,
    prefix: `${entry}.`,
  }
}

/**
 * Validates every entry and encodes the batch. Throws Node's argument errors naming the
 * entry (`ops[3].offset`). A linked chain longer than `maxRequests` is refused: it must go
 * into the backend whole.
 */
export function prepareBatch(ops: unknown, maxRequests: number): PreparedBatch {
  if (!Array.isArray(ops)) throw invalidArgType('ops', 'an instance of Array', ops)
  const count = ops.length
  const descriptor = new Float64Array(count * BATCH_FIELDS)
  const views: Operand[] = new Array(count)
  let chain = 0
  for (let i = 0; i < count; i++) {
    let link: boolean
    try {
      link = encodeEntry(ops[i], i, descriptor, views, PLAIN_NAMES)
    } catch {
      // Validation is pure: run it again with the entry's index in every name, to throw
      // the same error saying which entry it is. (Building those names for every entry
      // cost more than the rest of the validation.)
      link = encodeEntry(ops[i], i, descriptor, views, indexedNames(i))
    }
    chain = link ? chain + 1 : 0
    if (chain >= maxRequests) {
      throw outOfRange(`ops[${i}].link`, `part of a chain of at most maxRequests (${maxRequests}) operations`, link)
    }
  }
  return { count, descriptor, views }
}

/** Validates entry `i` and writes it into the batch; returns its `link` flag. */
function encodeEntry(entry: unknown, i: number, descriptor: Float64Array, views: Operand[], names: EntryNames): boolean {
  if (entry === null || typeof entry !== 'object') throw invalidArgType(names.entry, 'of type object', entry)
  const op = entry as Record<string, unknown>
  const opcode = opcodeOf(op.op)
  if (opcode === undefined) throw invalidArgValue(names.op, `must be one of ${OP_NAMES}`, op.op)
  const fd = validateFd(op.fd, names.fd)
  const link = op.link === undefined ? false : op.link
  if (typeof link !== 'boolean') throw invalidArgType(names.link, 'of type boolean', link)
  const priority = validatePriority(op.priority, names.priority)
  const field = i * BATCH_FIELDS
  descriptor[field] = opcode | (link ? LINK_FLAG : 0)
  descriptor[field + 1] = fd
  descriptor[field + 4] = priority
  if (opcode === Opcode.Read || opcode === Opcode.Write) {
    putOffset(descriptor, field + 2, validateOffset(op.offset, names.offset))
    views[i] = opcode === Opcode.Read ? validateView(op.buffer, names.buffer) : validateData(op.data, names.data)
  } else if (opcode !== Opcode.Fsync && opcode !== Opcode.Fdatasync) {
    encodeStorageEntry(op, opcode, descriptor, views, i, names)
  }
  return link
}

/**
 * Validates and encodes the fields of a storage-engine entry (as the `Context` methods of
 * the same names do): `ftruncate` carries its length in the offset field; the range
 * operations their length and flags in an argument area, the vectored ones their buffers.
 */
function encodeStorageEntry(op: Record<string, unknown>, opcode: Opcode, descriptor: Float64Array, views: Operand[], i: number, names: EntryNames): void {
  const field = i * BATCH_FIELDS
  const length = (): Offset => validateOffset(op.length, `${names.prefix}length`)
  switch (opcode) {
    case Opcode.Ftruncate:
      putOffset(descriptor, field + 2, length())
      return
    case Opcode.Readv:
    case Opcode.Writev:
      putOffset(descriptor, field + 2, validateOffset(op.offset, names.offset))
      views[i] = validateBuffers(op.buffers, `${names.prefix}buffers`)
      return
    case Opcode.Fallocate:
      putOffset(descriptor, field + 2, validateOffset(op.offset, names.offset))
      views[i] = rangeArgs(length(), fallocateMode(op, names.prefix))
      return
    case Opcode.SyncRange:
      putOffset(descriptor, field + 2, validateOffset(op.offset, names.offset))
      views[i] = rangeArgs(length(), syncRangeFlags(op, names.prefix))
      return
    default:
      putOffset(descriptor, field + 2, validateOffset(op.offset, names.offset))
      views[i] = rangeArgs(length(), validateAdvice(op.advice, `${names.prefix}advice`))
  }
}

/**
 * Turns a batch's raw results into what `submit` resolves with: bytes moved (0 for a
 * sync and the other operations that move none) or that operation's Error. Rejects with an AbortError (or `ERR_CAIO_CLOSED`) when
 * nothing of the batch ran because of the abort (or the close).
 */
export function batchEntries(batch: PreparedBatch, results: Float64Array, signal: AbortSignal | undefined): Array<number | Error> {
  const entries: Array<number | Error> = new Array(batch.count)
  let aborted = 0
  let closed = 0
  for (let i = 0; i < batch.count; i++) {
    const result = results[i] as number
    if (result >= 0) {
      entries[i] = result
      continue
    }
    if (result === RESULT_ABORTED) aborted++
    else if (result === RESULT_CLOSED) closed++
    const field = i * BATCH_FIELDS
    entries[i] = errorFromResult(result, (batch.descriptor[field] as number) & 0xff, batch.descriptor[field + 1] as number, signal)
  }
  if (batch.count > 0 && aborted === batch.count) throw entries[0]
  if (batch.count > 0 && closed === batch.count) throw entries[0]
  return entries
}
