/**
 * The bench's files, in a fresh directory on a real disk file system (not tmpfs: its
 * reads take another kernel path, and it refuses O_DIRECT), removed at the end: the data
 * file (random bytes, read once so every block is in the page cache), its O_DIRECT copy
 * (never in the page cache), and the scratch file the write workloads write into.
 */
import { randomFillSync } from 'node:crypto'
import { closeSync, constants, fsyncSync, mkdtempSync, openSync, readSync, rmSync, statfsSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'

/** `statfs` f_type magic numbers of file systems that live in memory. */
const MEMORY_FS: ReadonlyMap<number, string> = new Map([
  [0x01021994, 'tmpfs'],
  [0x858458f6, 'ramfs'],
])

/** Some common disk file systems, to name in the header. */
const KNOWN_FS: ReadonlyMap<number, string> = new Map([
  [0xef53, 'ext4'],
  [0x58465342, 'xfs'],
  [0x9123683e, 'btrfs'],
  [0x794c7630, 'overlayfs'],
  [0x2fc12fc1, 'zfs'],
  [0xf2f52010, 'f2fs'],
  ...MEMORY_FS,
])

export function fsName(dir: string): string {
  try {
    const type = Number(statfsSync(dir).type)
    return KNOWN_FS.get(type) ?? `fs type 0x${type.toString(16)}`
  } catch {
    return 'unknown fs'
  }
}

function inMemory(dir: string): boolean {
  try {
    return MEMORY_FS.has(Number(statfsSync(dir).type))
  } catch {
    return false
  }
}

/**
 * Where to put the data file: `--dir` if given (with a warning if it is in memory),
 * else the first of os.tmpdir(), /var/tmp, the working directory that is on a disk.
 */
export function chooseParent(dir: string | undefined, warn: (message: string) => void): string {
  if (dir !== undefined) {
    if (inMemory(dir)) warn(`${dir} is ${fsName(dir)}: reads from it are not page-cache reads of a disk file`)
    return dir
  }
  const candidates = [tmpdir(), '/var/tmp', process.cwd()]
  const onDisk = candidates.find((c) => {
    try {
      statfsSync(c)
    } catch {
      return false
    }
    return !inMemory(c)
  })
  if (onDisk === undefined) {
    warn(`no disk-backed directory among ${candidates.join(', ')}; using ${candidates[0]} (${fsName(candidates[0]!)}). Pass --dir to choose one.`)
    return candidates[0]!
  }
  if (onDisk !== candidates[0]) warn(`${candidates[0]} is ${fsName(candidates[0]!)}; the data file goes to ${onDisk} instead (--dir to choose)`)
  return onDisk
}

export interface DataFile {
  dir: string
  path: string
  size: number
  fs: string
  /** Seconds the warming read took, and its rate in bytes/s. */
  warmSec: number
  warmRate: number
}

const CHUNK = 1 << 20

function writeAll(fd: number, chunk: Buffer, n: number, position: number): void {
  let written = 0
  while (written < n) written += writeSync(fd, chunk, written, n - written, position + written)
}

/** A new directory under `parent` for the bench's files; `onDir` gets it at once, so cleanup can find it even if writing fails halfway. */
export function makeDir(parent: string, onDir: (dir: string) => void): string {
  const dir = mkdtempSync(join(parent, 'caio-bench-'))
  onDir(dir)
  return dir
}

/**
 * The data file: `size` bytes of random data in `dir`, flushed to disk, then read back
 * once so every block is in the page cache.
 */
export function createDataFile(dir: string, size: number): DataFile {
  const path = join(dir, 'data.bin')
  const chunk = Buffer.allocUnsafe(CHUNK)
  const fd = openSync(path, 'w+')
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(CHUNK, size - done)
      randomFillSync(chunk, 0, n)
      writeAll(fd, chunk, n, done)
      done += n
    }
    // Written pages are dirty; flushing now keeps writeback from competing with the rounds.
    fsyncSync(fd)
    const t0 = performance.now()
    for (let done = 0; done < size; ) {
      const n = readSync(fd, chunk, 0, Math.min(CHUNK, size - done), done)
      if (n === 0) throw new Error(`bench: the data file ended at ${done} of ${size} bytes`)
      done += n
    }
    const warmSec = (performance.now() - t0) / 1000
    return { dir, path, size, fs: fsName(dir), warmSec, warmRate: size / warmSec }
  } finally {
    closeSync(fd)
  }
}

/**
 * The O_DIRECT file: `size` bytes of random data (whole 4 KiB pages) written with O_DIRECT,
 * so none of it ever enters the page cache (every contender, and fio with --direct=1, reads
 * it with O_DIRECT too). Throws with the reason when the file system refuses O_DIRECT
 * (tmpfs does).
 */
export function createDirectFile(dir: string, size: number, aligned: (size: number) => Buffer): string {
  const path = join(dir, 'direct.bin')
  const length = size - (size % 4096)
  const chunk = aligned(CHUNK)
  let fd: number
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_DIRECT, 0o600)
  } catch (error) {
    const code = error instanceof Error && 'code' in error ? String(error.code) : ''
    throw new Error(code === 'EINVAL' ? `${fsName(dir)} at ${dir} does not take O_DIRECT (pass --dir on ext4 or xfs)` : `cannot open ${path} with O_DIRECT: ${error instanceof Error ? error.message : String(error)}`)
  }
  try {
    for (let done = 0; done < length; ) {
      const n = Math.min(CHUNK, length - done)
      randomFillSync(chunk, 0, n)
      writeAll(fd, chunk, n, done)
      done += n
    }
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  return path
}

/**
 * The scratch file the write workloads write into: `size` bytes, written once and flushed,
 * so every write lands on allocated blocks whose pages are in the page cache.
 */
export function createScratchFile(dir: string, size: number): string {
  const path = join(dir, 'scratch.bin')
  const chunk = Buffer.alloc(CHUNK)
  const fd = openSync(path, 'w+')
  try {
    for (let done = 0; done < size; done += CHUNK) writeAll(fd, chunk, Math.min(CHUNK, size - done), done)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  return path
}

/** Flushes a file's dirty pages (after a write run, so its writeback does not land in the next run). */
export function flushFile(path: string): void {
  const fd = openSync(path, 'r+')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
}
