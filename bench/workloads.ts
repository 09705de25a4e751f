/**
 * The workloads the bench knows: one row group of the table each. A workload says what
 * every contender does (operation, access pattern, block size, operations in flight, which
 * file); the contenders say how. Everything here is plain data: it travels to the child
 * processes (Node, Bun, the Python driver) in the spec.
 */

/**
 * The kind of a row group: which contenders have a row in it (see `joins` in
 * contenders.ts) and which file its operations go to.
 */
export type WorkloadKind =
  /** 4 KiB random reads from the page cache, one operation per call. */
  | 'cached-read'
  /** The same reads, many per `ctx.submit`. */
  | 'batch'
  /** 4 KiB random reads with O_DIRECT: the device, not the page cache. */
  | 'direct-read'
  | 'random-write'
  /** 4 KiB writes at one shared append cursor, each followed by fdatasync before the writer goes on (a group-commit log). */
  | 'group-commit'
  /** O_DIRECT 4 KiB random reads with the buffers and the file registered (`registerBuffers`, `registerFiles`; fio `--fixedbufs --registerfiles`). */
  | 'direct-read-fixed'
  /** `writev` of 16 × 4 KiB buffers per call at random offsets. */
  | 'writev'
  /** Sequential writes with an fsync every `fsyncEvery` of them. */
  | 'seq-write'
  | 'seq-read'
  /** The Python caio's sweeps (`--sweeps`): random reads from the page cache. */
  | 'sweep-concurrency'
  | 'sweep-chunk'

export interface Workload {
  /** Name for `--workloads` and in the JSON. */
  name: string
  /** Heading of its row group. */
  title: string
  kind: WorkloadKind
  op: 'read' | 'write'
  /**
   * `random`: block-aligned, uniform over the file. `sequential`: one shared cursor that
   * wraps, with the workers drained every segment. `append`: one shared cursor that wraps,
   * each worker taking the next block as it goes (no draining).
   */
  pattern: 'random' | 'sequential' | 'append'
  /** Bytes per operation. */
  blockSize: number
  /** Operations in flight: that many workers each awaiting one operation at a time (for batches: depth/batch workers each awaiting one submit). */
  depth: number
  /** Operations per `submit` (1: one call per operation). */
  batch: number
  /** Sequential writes: an fsync after every this many writes, waited for before the next one (0: never). */
  fsyncEvery: number
  /** `cached`: a file read once before the run, so reads come from the page cache. `direct`: opened with O_DIRECT. */
  cache: 'cached' | 'direct'
  /** For sweep points: the x value of its line chart (in flight, or chunk bytes). */
  x?: number
}

const KiB = 1024
const MiB = 1024 * KiB

function cachedRead(depth: number): Workload {
  return {
    name: `randread-4k-qd${depth}`,
    title: `4 KiB random reads, page cache, ${depth} in flight`,
    kind: 'cached-read',
    op: 'read',
    pattern: 'random',
    blockSize: 4 * KiB,
    depth,
    batch: 1,
    fsyncEvery: 0,
    cache: 'cached',
  }
}

/** The default row groups, in table order. */
export const WORKLOADS: readonly Workload[] = [
  cachedRead(1),
  cachedRead(8),
  cachedRead(64),
  {
    name: 'randread-4k-batch64',
    title: '4 KiB random reads, page cache, 64 per submit (1 submit in flight; latency is of one submit)',
    kind: 'batch',
    op: 'read',
    pattern: 'random',
    blockSize: 4 * KiB,
    depth: 64,
    batch: 64,
    fsyncEvery: 0,
    cache: 'cached',
  },
  {
    name: 'randread-4k-direct-qd64',
    title: '4 KiB random reads, O_DIRECT (the device), 64 in flight',
    kind: 'direct-read',
    op: 'read',
    pattern: 'random',
    blockSize: 4 * KiB,
    depth: 64,
    batch: 1,
    fsyncEvery: 0,
    cache: 'direct',
  },
  {
    name: 'randwrite-64k-qd16',
    title: '64 KiB random writes, page cache, 16 in flight',
    kind: 'random-write',
    op: 'write',
    pattern: 'random',
    blockSize: 64 * KiB,
    depth: 16,
    batch: 1,
    fsyncEvery: 0,
    cache: 'cached',
  },
  {
    name: 'append-4k-fdatasync-x32',
    title: '4 KiB appends into a preallocated log segment, fdatasync after each, 32 appenders (group commit; caio: linked write → fdsync)',
    kind: 'group-commit',
    op: 'write',
    pattern: 'append',
    blockSize: 4 * KiB,
    depth: 32,
    batch: 1,
    fsyncEvery: 0,
    cache: 'cached',
  },
  {
    name: 'randread-4k-direct-fixed-qd64',
    title: '4 KiB random reads, O_DIRECT, 64 in flight, buffers and file registered (caio registerBuffers/registerFiles; fio --fixedbufs --registerfiles)',
    kind: 'direct-read-fixed',
    op: 'read',
    pattern: 'random',
    blockSize: 4 * KiB,
    depth: 64,
    batch: 1,
    fsyncEvery: 0,
    cache: 'direct',
  },
  {
    name: 'writev-16x4k-qd16',
    title: 'writev of 16 × 4 KiB (64 KiB) at random offsets, page cache, 16 in flight',
    kind: 'writev',
    op: 'write',
    pattern: 'random',
    blockSize: 64 * KiB,
    depth: 16,
    batch: 1,
    fsyncEvery: 0,
    cache: 'cached',
  },
  {
    name: 'seqwrite-1m-fsync',
    title: '1 MiB sequential writes, fsync after every 16 (16 MiB), 1 in flight; fsync time counts',
    kind: 'seq-write',
    op: 'write',
    pattern: 'sequential',
    blockSize: MiB,
    depth: 1,
    batch: 1,
    fsyncEvery: 16,
    cache: 'cached',
  },
  {
    name: 'seqread-1m',
    title: '1 MiB sequential reads, page cache, 1 in flight',
    kind: 'seq-read',
    op: 'read',
    pattern: 'sequential',
    blockSize: MiB,
    depth: 1,
    batch: 1,
    fsyncEvery: 0,
    cache: 'cached',
  },
]

/** The Python caio's `benchmark/bench.py`: in-flight counts of its concurrency sweep (16 KiB reads). */
export const CONCURRENCY_SWEEP = [1, 4, 16, 64, 256, 512, 1024, 2048, 4096] as const
/** Chunk sizes of its chunk sweep (64 in flight). */
export const CHUNK_SWEEP = [4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, MiB, 4 * MiB] as const

export function sizeName(bytes: number): string {
  return bytes >= MiB ? `${bytes / MiB} MiB` : `${bytes / KiB} KiB`
}

function shortSize(bytes: number): string {
  return bytes >= MiB ? `${bytes / MiB}m` : `${bytes / KiB}k`
}

/** The sweeps' points (`--sweeps`), each a workload of its own, 16 KiB random cached reads at N in flight, then the chunk sizes at 64. */
export const SWEEPS: readonly Workload[] = [
  ...CONCURRENCY_SWEEP.map(
    (depth): Workload => ({
      name: `sweep-conc-16k-qd${depth}`,
      title: `concurrency sweep: 16 KiB random reads, page cache, ${depth} in flight`,
      kind: 'sweep-concurrency',
      op: 'read',
      pattern: 'random',
      blockSize: 16 * KiB,
      depth,
      batch: 1,
      fsyncEvery: 0,
      cache: 'cached',
      x: depth,
    }),
  ),
  ...CHUNK_SWEEP.map(
    (size): Workload => ({
      name: `sweep-chunk-${shortSize(size)}-qd64`,
      title: `chunk sweep: ${sizeName(size)} random reads, page cache, 64 in flight`,
      kind: 'sweep-chunk',
      op: 'read',
      pattern: 'random',
      blockSize: size,
      depth: 64,
      batch: 1,
      fsyncEvery: 0,
      cache: 'cached',
      x: size,
    }),
  ),
]

/** The storage-engine rows (issue 16): group commit, registered O_DIRECT reads, writev. */
export function isStorageEngine(workload: Workload): boolean {
  return workload.kind === 'group-commit' || workload.kind === 'direct-read-fixed' || workload.kind === 'writev'
}

/** Bytes of each buffer of a `writev` row's calls. */
export const WRITEV_PIECE = 4 * KiB

export function isSweep(workload: Workload): boolean {
  return workload.kind === 'sweep-concurrency' || workload.kind === 'sweep-chunk'
}

/** Which of the bench's files a workload's operations go to. */
export function fileRole(workload: Workload): 'data' | 'direct' | 'scratch' {
  if (workload.op === 'write') return 'scratch'
  return workload.cache === 'direct' ? 'direct' : 'data'
}

/**
 * `--workloads` accepts names and these group names. `default` is every row group;
 * `sweeps` every sweep point.
 */
export const WORKLOAD_GROUPS: Readonly<Record<string, (w: Workload) => boolean>> = {
  default: (w) => !isSweep(w),
  cached: (w) => w.kind === 'cached-read',
  batch: (w) => w.kind === 'batch',
  direct: (w) => w.kind === 'direct-read' || w.kind === 'direct-read-fixed',
  storage: (w) => isStorageEngine(w),
  write: (w) => w.op === 'write',
  read: (w) => w.op === 'read' && !isSweep(w),
  sweeps: (w) => isSweep(w),
}

/** The same workload with another depth and batch (synchronous contenders run everything at depth 1, per-op ones batch 1). */
export function reshape(workload: Workload, depth: number, batch: number): Workload {
  return depth === workload.depth && batch === workload.batch ? workload : { ...workload, depth, batch }
}

/** A key that two workloads share exactly when a contender does the same work in both. */
export function workloadKey(workload: Workload): string {
  // A storage-engine row does other work than a plain row of the same shape (writev against
  // 64 KiB writes, registered against plain O_DIRECT reads).
  const kind = isStorageEngine(workload) ? workload.kind : ''
  return [workload.op, workload.pattern, workload.blockSize, workload.depth, workload.batch, workload.fsyncEvery, workload.cache, kind].join('/')
}
