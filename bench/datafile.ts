/**
 * The bench's data file: written in a fresh directory on a real disk file system (not
 * tmpfs: its reads take another kernel path, and O_DIRECT rows will need a disk), read
 * once so every block is in the page cache, removed at the end.
 */
import { randomFillSync } from 'node:crypto'
import { closeSync, fsyncSync, mkdtempSync, openSync, readSync, rmSync, statfsSync, writeSync } from 'node:fs'
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

/**
 * Makes `size` bytes of random data in a new directory under `parent`, then reads it
 * back once. `onDir` gets the directory as soon as it exists, so cleanup can find it
 * even if writing fails halfway.
 */
export function createDataFile(parent: string, size: number, onDir: (dir: string) => void): DataFile {
  const dir = mkdtempSync(join(parent, 'caio-bench-'))
  onDir(dir)
  const path = join(dir, 'data.bin')
  const chunk = Buffer.allocUnsafe(CHUNK)
  const fd = openSync(path, 'w+')
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(CHUNK, size - done)
      randomFillSync(chunk, 0, n)
      let written = 0
      while (written < n) written += writeSync(fd, chunk, written, n - written, done + written)
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

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
}
