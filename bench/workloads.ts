/**
 * The workloads the bench knows: one row group of the table each. A workload says what
 * every contender does (operation, access pattern, block size, operations in flight);
 * the contenders say how. Later rows (O_DIRECT, writes, the Python caio's sweeps) are
 * new entries here, plus whatever field they need.
 */

/** One workload. Everything here is plain data: it travels to the child in the spec. */
export interface Workload {
  /** Name for `--workloads` and in the JSON. */
  name: string
  /** Heading of its row group. */
  title: string
  /** What each operation does. Only `read` for now. */
  op: 'read'
  /** Where each operation goes. Only `random` for now: block-aligned, uniform over the file. */
  pattern: 'random'
  /** Bytes per operation. */
  blockSize: number
  /** Operations in flight: that many workers, each awaiting one operation at a time. */
  depth: number
  /** `cached`: the data file is read once before the run, so reads come from the page cache. */
  cache: 'cached'
}

export const WORKLOADS: readonly Workload[] = [
  { name: 'randread-4k-qd1', title: '4 KiB random reads, page cache, 1 in flight', op: 'read', pattern: 'random', blockSize: 4096, depth: 1, cache: 'cached' },
  { name: 'randread-4k-qd64', title: '4 KiB random reads, page cache, 64 in flight', op: 'read', pattern: 'random', blockSize: 4096, depth: 64, cache: 'cached' },
]

/** The same workload with another depth (synchronous contenders run everything at depth 1). */
export function withDepth(workload: Workload, depth: number): Workload {
  return depth === workload.depth ? workload : { ...workload, depth }
}

/** A key that two workloads share exactly when a contender does the same work in both. */
export function workloadKey(workload: Workload): string {
  return `${workload.op}/${workload.pattern}/${workload.blockSize}/${workload.depth}/${workload.cache}`
}
