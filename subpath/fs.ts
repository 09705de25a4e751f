/**
 * `caio/fs`: the everyday `node:fs/promises` calls — `readFile`, `writeFile`, `open` and its
 * `FileHandle`, `stat`, … — with Node's signatures, results and errors, done by a caio
 * context: switching is one import line.
 *
 * ```ts
 * import { readFile, writeFile } from 'caio/fs'
 * await writeFile('/tmp/hello.txt', 'Hello world')
 * const text = await readFile('/tmp/hello.txt', 'utf8')
 * ```
 *
 * The calls run on a default context, made at the first call with the best backend
 * (`CAIO_IMPL` applies) and never keeping the process alive while idle; choose its backend
 * and limits with {@link setDefaultContext}.
 */
import { constants } from 'node:fs'

import { Context } from '../index'
import type { ContextOptions } from '../index'
import type { FileSystem } from '../lib/fs'

export { constants }
export { FileHandle } from '../index'
export type {
  FileReadStream,
  FileWriteStream,
  ManyFilesOptions,
  MakeDirectoryOptions,
  PathLike,
  ReadFileOptions,
  ReadStreamOptions,
  RmOptions,
  WriteFileData,
  WriteFileOptions,
  WriteFilesEntry,
  WriteStreamOptions,
} from '../index'

let current: Context | undefined

/** The context the `caio/fs` calls of this thread run on (made at the first call). */
export function getDefaultContext(): Context {
  current ??= new Context()
  return current
}

/**
 * Opens a new default context with `options` (or returns `context` as the default) for the
 * calls that follow. The previous default is closed once its operations have finished;
 * FileHandles opened on it keep working until then and fail with `ERR_CAIO_CLOSED` after.
 */
export function setDefaultContext(options?: ContextOptions | Context): Context {
  const next = options instanceof Context ? options : new Context(options)
  const previous = current
  current = next
  if (previous !== undefined && previous !== next) void previous.close()
  return next
}

type Call<K extends keyof FileSystem> = FileSystem[K]

const on = (): Context => getDefaultContext()

export const open: Call<'open'> = (...args) => on().open(...args)
export const readFile = ((...args: Parameters<Call<'readFile'>>) => on().readFile(...args)) as Call<'readFile'>
export const writeFile: Call<'writeFile'> = (...args) => on().writeFile(...args)
export const appendFile: Call<'appendFile'> = (...args) => on().appendFile(...args)
export const readFiles = ((...args: Parameters<Call<'readFiles'>>) => on().readFiles(...args)) as Call<'readFiles'>
export const writeFiles: Call<'writeFiles'> = (...args) => on().writeFiles(...args)
export const stat = ((...args: Parameters<Call<'stat'>>) => on().stat(...args)) as Call<'stat'>
export const lstat = ((...args: Parameters<Call<'lstat'>>) => on().lstat(...args)) as Call<'lstat'>
export const truncate: Call<'truncate'> = (...args) => on().truncate(...args)
export const unlink: Call<'unlink'> = (...args) => on().unlink(...args)
export const rename: Call<'rename'> = (...args) => on().rename(...args)
export const mkdir: Call<'mkdir'> = (...args) => on().mkdir(...args)
export const rm: Call<'rm'> = (...args) => on().rm(...args)
export const copyFile: Call<'copyFile'> = (...args) => on().copyFile(...args)
export const access: Call<'access'> = (...args) => on().access(...args)
