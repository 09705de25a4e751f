/**
 * The operations on files by path that `caio/fs` is built from, in two kinds: on a native
 * engine they are ring (or pool) operations whose errors are made here, shaped exactly as
 * `node:fs`'s (`ENOENT: no such file or directory, open '/x'`, with `path` and `dest`);
 * on the `js` engine they are `node:fs`'s own calls, errors and all.
 */
import { access, close, copyFile, fstat, ftruncate, mkdir, open, rename, rmdir, stat, lstat, unlink } from 'node:fs'
import type { BigIntStats, Stats } from 'node:fs'

import { Fulfil } from './engine'
import type { Engine } from './engine'
import { systemError } from './errors'
import type { SystemError } from './errors'
import { pathArea, pathInto } from './fs-args'
import { FIRST_READ, PATH_ROOM, giveBack, takeScratch } from './scratch'
import type { CheckedPath } from './fs-args'
import { statsFromStatx } from './stats'
import { Opcode, STATX_SIZE } from './wire'

const O_CLOEXEC = 0o2000000
const AT_SYMLINK_NOFOLLOW = 0x100
const AT_REMOVEDIR = 0x200

/** What `caio/fs` asks of a backend, path by path. */
export interface PathOps {
  open(path: CheckedPath, flags: number, mode: number): Promise<number>
  /**
   * Opens `path` for a whole-file read and reads it in the same step if it is small: its
   * bytes, or the descriptor to read it through the ordinary way (at position 0). Where
   * this is missing, `open` and reads do it.
   */
  readSmall?(path: CheckedPath, flags: number): Promise<Buffer | number>
  close(fd: number): Promise<void>
  stat(path: CheckedPath, bigint: boolean, follow: boolean): Promise<Stats | BigIntStats>
  fstat(fd: number, bigint: boolean): Promise<Stats | BigIntStats>
  unlink(path: CheckedPath): Promise<void>
  rmdir(path: CheckedPath): Promise<void>
  rename(from: CheckedPath, to: CheckedPath): Promise<void>
  mkdir(path: CheckedPath, mode: number): Promise<void>
  ftruncate(fd: number, length: number): Promise<void>
  access(path: CheckedPath, mode: number): Promise<void>
  copyFile(from: CheckedPath, to: CheckedPath, mode: number): Promise<void>
}

/**
 * The error `node:fs` gives for a failed call on a path (and a destination): from an error
 * carrying an `errno` (any other error is returned as it is).
 */
export function pathError(error: unknown, syscall: string, path: CheckedPath, dest?: CheckedPath): unknown {
  const errno = (error as Partial<SystemError>).errno
  if (typeof errno !== 'number') return error
  const made = systemError(errno, syscall)
  made.message += dest === undefined ? ` '${path.text}'` : ` '${path.text}' -> '${dest.text}'`
  ;(made as SystemError & { path?: string; dest?: string }).path = path.text
  if (dest !== undefined) (made as SystemError & { dest?: string }).dest = dest.text
  return made
}

/** A descriptor error from an fd call: Node names no path for those. */
function fdError(error: unknown, syscall: string): unknown {
  const errno = (error as Partial<SystemError>).errno
  return typeof errno === 'number' ? systemError(errno, syscall) : error
}

/** Path operations as operations of a native engine. */
export class NativePathOps implements PathOps {
  readonly #engine: Engine

  constructor(engine: Engine) {
    this.#engine = engine
  }

  #run(opcode: Opcode, fd: number, flags: number, view: Uint8Array | undefined): Promise<unknown> {
    return this.#engine.start(opcode, fd, flags, view, 0, Fulfil.Count, undefined)
  }

  async #onPath(opcode: Opcode, syscall: string, path: CheckedPath, flags: number): Promise<number> {
    try {
      return (await this.#run(opcode, 0, flags, pathArea([path]))) as number
    } catch (error) {
      throw pathError(error, syscall, path)
    }
  }

  open(path: CheckedPath, flags: number, mode: number): Promise<number> {
    return this.#onPath(Opcode.Open, 'open', path, (flags | O_CLOEXEC) + mode * 2 ** 32)
  }

  async readSmall(path: CheckedPath, flags: number): Promise<Buffer | number> {
    const value = path.value
    const pathBytes = typeof value === 'string' ? Buffer.byteLength(value) : value.length
    // A path too long for the room is the kernel's ENAMETOOLONG to give, from an open.
    if (pathBytes >= PATH_ROOM) return this.open(path, flags, 0o666)
    const scratch = takeScratch()
    const room = PATH_ROOM + FIRST_READ - pathBytes - 1
    let result: number
    try {
      pathInto(scratch, path)
      result = (await this.#run(Opcode.ReadSmall, 0, flags, scratch)) as number
    } catch (error) {
      giveBack(scratch)
      throw pathError(error, 'open', path)
    }
    if (result > room) {
      giveBack(scratch)
      return result - room - 1
    }
    const bytes = Buffer.allocUnsafe(result)
    scratch.copy(bytes, 0, pathBytes + 1, pathBytes + 1 + result)
    giveBack(scratch)
    return bytes
  }

  async close(fd: number): Promise<void> {
    try {
      await this.#run(Opcode.Close, fd, 0, undefined)
    } catch (error) {
      throw fdError(error, 'close')
    }
  }

  async stat(path: CheckedPath, bigint: boolean, follow: boolean): Promise<Stats | BigIntStats> {
    const area = pathArea([path], STATX_SIZE)
    try {
      await this.#run(Opcode.Stat, 0, follow ? 0 : AT_SYMLINK_NOFOLLOW, area)
    } catch (error) {
      throw pathError(error, follow ? 'stat' : 'lstat', path)
    }
    return statsFromStatx(area, bigint)
  }

  async fstat(fd: number, bigint: boolean): Promise<Stats | BigIntStats> {
    const area = new Uint8Array(STATX_SIZE)
    try {
      await this.#run(Opcode.Fstat, fd, 0, area)
    } catch (error) {
      throw fdError(error, 'fstat')
    }
    return statsFromStatx(area, bigint)
  }

  async unlink(path: CheckedPath): Promise<void> {
    await this.#onPath(Opcode.Unlink, 'unlink', path, 0)
  }

  async rmdir(path: CheckedPath): Promise<void> {
    await this.#onPath(Opcode.Unlink, 'rmdir', path, AT_REMOVEDIR)
  }

  async mkdir(path: CheckedPath, mode: number): Promise<void> {
    await this.#onPath(Opcode.Mkdir, 'mkdir', path, mode)
  }

  async access(path: CheckedPath, mode: number): Promise<void> {
    await this.#onPath(Opcode.Access, 'access', path, mode)
  }

  async rename(from: CheckedPath, to: CheckedPath): Promise<void> {
    try {
      await this.#run(Opcode.Rename, 0, 0, pathArea([from, to]))
    } catch (error) {
      throw pathError(error, 'rename', from, to)
    }
  }

  async copyFile(from: CheckedPath, to: CheckedPath, mode: number): Promise<void> {
    try {
      await this.#run(Opcode.Copyfile, 0, mode, pathArea([from, to]))
    } catch (error) {
      throw pathError(error, 'copyfile', from, to)
    }
  }

  async ftruncate(fd: number, length: number): Promise<void> {
    try {
      await this.#run(Opcode.Ftruncate, fd, length, undefined)
    } catch (error) {
      throw fdError(error, 'ftruncate')
    }
  }
}

type Callback<T> = (error: NodeJS.ErrnoException | null, value?: T) => void

/** Runs a `node:fs` callback call as a Promise. */
function call<T = void>(start: (done: Callback<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => start((error, value) => (error ? reject(error) : resolve(value as T))))
}

/** Path operations as `node:fs`'s own calls, for the `js` engine. */
export class NodePathOps implements PathOps {
  open(path: CheckedPath, flags: number, mode: number): Promise<number> {
    return call<number>((done) => open(path.value, flags, mode, done))
  }
  close(fd: number): Promise<void> {
    return call((done) => close(fd, done))
  }
  stat(path: CheckedPath, bigint: boolean, follow: boolean): Promise<Stats | BigIntStats> {
    return call<Stats | BigIntStats>((done) => (follow ? stat : lstat)(path.value, { bigint }, done as never))
  }
  fstat(fd: number, bigint: boolean): Promise<Stats | BigIntStats> {
    return call<Stats | BigIntStats>((done) => fstat(fd, { bigint }, done as never))
  }
  unlink(path: CheckedPath): Promise<void> {
    return call((done) => unlink(path.value, done))
  }
  rmdir(path: CheckedPath): Promise<void> {
    return call((done) => rmdir(path.value, done))
  }
  rename(from: CheckedPath, to: CheckedPath): Promise<void> {
    return call((done) => rename(from.value, to.value, done))
  }
  mkdir(path: CheckedPath, mode: number): Promise<void> {
    return call((done) => mkdir(path.value, { mode }, (error) => done(error)))
  }
  ftruncate(fd: number, length: number): Promise<void> {
    return call((done) => ftruncate(fd, length, done))
  }
  access(path: CheckedPath, mode: number): Promise<void> {
    return call((done) => access(path.value, mode, done))
  }
  copyFile(from: CheckedPath, to: CheckedPath, mode: number): Promise<void> {
    return call((done) => copyFile(from.value, to.value, mode, done))
  }
}
