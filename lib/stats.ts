/**
 * The kernel's `struct statx` answer as Node's own `fs.Stats` / `fs.BigIntStats`: objects of
 * Node's classes, with the same own fields in the same order and the same values that
 * `fs.promises.stat` gives (Node, through libuv, asks `statx` too).
 */
import { statSync } from 'node:fs'
import type { BigIntStats, Stats } from 'node:fs'

// Offsets in struct statx (include/uapi/linux/stat.h).
const STX_BLKSIZE = 4
const STX_NLINK = 16
const STX_UID = 20
const STX_GID = 24
const STX_MODE = 28
const STX_INO = 32
const STX_SIZE = 40
const STX_BLOCKS = 48
const STX_ATIME = 64
const STX_BTIME = 80
const STX_CTIME = 96
const STX_MTIME = 112
const STX_RDEV_MAJOR = 128
const STX_RDEV_MINOR = 132
const STX_DEV_MAJOR = 136
const STX_DEV_MINOR = 140

// A real Stats of each kind, made once, to build answers on: their prototype, and the order
// of their own fields, which this Node version decides.
let numberModel: Stats | undefined
let bigintModel: BigIntStats | undefined

function models(): [Stats, BigIntStats] {
  numberModel ??= statSync(__filename)
  bigintModel ??= statSync(__filename, { bigint: true })
  return [numberModel, bigintModel]
}

/** glibc's `makedev`, as libuv combines the two halves statx gives. */
function makedev(major: number, minor: number): bigint {
  const M = BigInt(major >>> 0)
  const m = BigInt(minor >>> 0)
  return ((M & 0xfffff000n) << 32n) | ((M & 0xfffn) << 8n) | ((m & 0xffffff00n) << 12n) | (m & 0xffn)
}

function nanoseconds(view: DataView, at: number): bigint {
  return view.getBigInt64(at, true) * 1_000_000_000n + BigInt(view.getUint32(at + 8, true))
}

function milliseconds(view: DataView, at: number): number {
  return Number(view.getBigInt64(at, true)) * 1e3 + view.getUint32(at + 8, true) / 1e6
}

/** The Stats of a statx answer held in the first 256 bytes of `area`. */
export function statsFromStatx(area: Uint8Array, bigint: false): Stats
export function statsFromStatx(area: Uint8Array, bigint: true): BigIntStats
export function statsFromStatx(area: Uint8Array, bigint: boolean): Stats | BigIntStats
export function statsFromStatx(area: Uint8Array, bigint: boolean): Stats | BigIntStats {
  const view = new DataView(area.buffer, area.byteOffset, area.byteLength)
  const base = {
    dev: makedev(view.getUint32(STX_DEV_MAJOR, true), view.getUint32(STX_DEV_MINOR, true)),
    mode: view.getUint16(STX_MODE, true),
    nlink: view.getUint32(STX_NLINK, true),
    uid: view.getUint32(STX_UID, true),
    gid: view.getUint32(STX_GID, true),
    rdev: makedev(view.getUint32(STX_RDEV_MAJOR, true), view.getUint32(STX_RDEV_MINOR, true)),
    blksize: view.getUint32(STX_BLKSIZE, true),
    ino: view.getBigUint64(STX_INO, true),
    size: view.getBigUint64(STX_SIZE, true),
    blocks: view.getBigUint64(STX_BLOCKS, true),
  }
  const times = [
    ['atime', STX_ATIME],
    ['mtime', STX_MTIME],
    ['ctime', STX_CTIME],
    ['birthtime', STX_BTIME],
  ] as const
  const [numbers, bigints] = models()
  const model: object = bigint ? bigints : numbers
  const fields: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(base)) {
    fields[key] = bigint ? BigInt(value) : Number(value)
  }
  for (const [name, at] of times) {
    if (bigint) {
      const ns = nanoseconds(view, at)
      fields[`${name}Ms`] = ns / 1_000_000n
      fields[`${name}Ns`] = ns
      fields[name] = new Date(Number(ns / 1_000_000n))
    } else {
      const ms = milliseconds(view, at)
      fields[`${name}Ms`] = ms
      fields[name] = new Date(Math.round(ms))
    }
  }
  const stats = Object.create(Object.getPrototypeOf(model) as object) as Record<string, unknown>
  for (const key of Object.keys(model)) stats[key] = fields[key]
  return stats as unknown as Stats | BigIntStats
}
