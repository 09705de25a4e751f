// caio/fs against node:fs/promises, side by side: every case runs the same calls on Node's
// own fs/promises, on a caio Context of the backend under test and on the caio/fs module
// functions, each in a fresh temp dir prepared the same way (or, for Stats, on one file),
// and asserts that what the calls resolved or rejected, and the files they left, agree.
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { createHash } from 'node:crypto'
import { chmodSync, constants, linkSync, lutimesSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import type { Stats } from 'node:fs'
import * as nodeFs from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { inspect } from 'node:util'

import * as caioFs from '../subpath/fs'
import { backendUnderTest, openContext, pattern, tempDir } from './helpers'

/** The calls a scenario makes, typed as `node:fs/promises` declares them. */
type Fs = Pick<
  typeof nodeFs,
  'open' | 'readFile' | 'writeFile' | 'appendFile' | 'stat' | 'lstat' | 'truncate' | 'unlink' | 'rename' | 'mkdir' | 'rm' | 'copyFile' | 'access'
>

/** What temp-dir prefixes become, so that runs in different directories compare equal. */
const DIR = '<dir>'

/** An error, as far as a caller can tell two errors apart. */
interface ErrorShape {
  /** The constructor's name (`Error`, `TypeError`, `SystemError`, `AbortError`, …). */
  class: string | undefined
  name: unknown
  message: unknown
  code: unknown
  errno: unknown
  syscall: unknown
  path: unknown
  dest: unknown
  /** The own enumerable properties, sorted: none missing, none added. */
  fields: string[]
}

/** How a call settled: its value, or the shape of its error; temp dirs replaced by {@link DIR}. */
type Outcome = { ok: unknown } | { error: ErrorShape }

/** `value` with `dir` replaced by {@link DIR} in its strings, plain objects and arrays (prototypes kept). */
function scrub(value: unknown, dir: string): unknown {
  if (typeof value === 'string') return value.split(dir).join(DIR)
  if (Array.isArray(value)) return value.map((item: unknown) => scrub(item, dir))
  if (typeof value === 'object' && value !== null) {
    const prototype: unknown = Object.getPrototypeOf(value)
    if (prototype === Object.prototype || prototype === null) {
      const copy = Object.create(prototype as object | null) as Record<string, unknown>
      for (const [key, item] of Object.entries(value)) copy[key] = scrub(item, dir)
      return copy
    }
  }
  return value
}

function shapeOf(error: unknown, dir: string): ErrorShape {
  const fields = (typeof error === 'object' && error !== null ? error : {}) as Record<string, unknown>
  return scrub(
    {
      class: (fields.constructor as { name?: string } | undefined)?.name,
      name: fields.name,
      message: fields.message,
      code: fields.code,
      errno: fields.errno,
      syscall: fields.syscall,
      path: fields.path,
      dest: fields.dest,
      fields: Object.keys(fields).sort(),
    },
    dir,
  ) as ErrorShape
}

/** Runs `call` and reports how it settled, comparable between runs in different dirs. */
async function outcome(call: () => Promise<unknown>, dir: string): Promise<Outcome> {
  try {
    return { ok: scrub(await call(), dir) }
  } catch (error) {
    return { error: shapeOf(error, dir) }
  }
}

/** One run of a scenario: the calls to use, its directory, and a way to record steps. */
interface Run {
  readonly fs: Fs
  readonly dir: string
  /** `name` inside the run's directory. */
  at(name: string): string
  /** How `call` settles, as {@link outcome} reports it: for scenarios of several steps. */
  settle(call: () => Promise<unknown>): Promise<Outcome>
}

/** Prepares a run's directory, with `node:fs`, before the calls. */
type Setup = (dir: string) => void

interface Scenario {
  setup?: Setup
  /** The calls; what they resolve or reject is compared between the runs. */
  run(r: Run): Promise<unknown>
}

/** A file or directory as it was left: type, permission bits, and content. */
interface Entry {
  path: string
  type: 'file' | 'directory' | 'symlink' | 'other'
  mode: number
  size?: number
  sha256?: string
  /** The content of a small file, for a readable difference. */
  text?: string
  target?: string
}

/** A file name as text, or as `hex:…` when its bytes are no UTF-8. */
function nameOf(bytes: Buffer): string {
  const text = bytes.toString('utf8')
  return Buffer.from(text, 'utf8').equals(bytes) ? text : `hex:${bytes.toString('hex')}`
}

/** Everything under `dir`, sorted by path (names taken as bytes, so that any name shows). */
function tree(dir: Buffer | string, prefix = ''): Entry[] {
  const entries: Entry[] = []
  const base = Buffer.from(dir)
  for (const name of readdirSync(base, { encoding: 'buffer' }).sort(Buffer.compare)) {
    const relative = join(prefix, nameOf(name))
    const path = Buffer.concat([base, Buffer.from('/'), name])
    const stats = lstatSync(path)
    const mode = stats.mode & 0o7777
    if (stats.isSymbolicLink()) entries.push({ path: relative, type: 'symlink', mode, target: readlinkSync(path, 'utf8') })
    else if (stats.isDirectory()) entries.push({ path: relative, type: 'directory', mode }, ...tree(path, relative))
    else if (stats.isFile()) {
      const content = readFileSync(path)
      const entry: Entry = { path: relative, type: 'file', mode, size: content.length, sha256: createHash('sha256').update(content).digest('hex') }
      if (content.length <= 256) entry.text = content.toString('latin1')
      entries.push(entry)
    } else entries.push({ path: relative, type: 'other', mode })
  }
  return entries
}

/**
 * In flight at once per context: the scenarios make one call at a time, and this file's
 * hundreds of tests all run at once, each with its own context, so a `linux` context of the
 * default size would soon exhaust fs.aio-max-nr.
 */
const MAX_REQUESTS = 16

/** The implementations compared: Node's first (the reference), then caio's two faces. */
function implementations(t: ExecutionContext): Array<{ name: string; fs: Fs }> {
  return [
    { name: 'node:fs/promises', fs: nodeFs },
    { name: `Context (${backendUnderTest() ?? 'default'})`, fs: openContext(t, { maxRequests: MAX_REQUESTS }) as unknown as Fs },
    { name: 'caio/fs', fs: caioFs as unknown as Fs },
  ]
}

function runIn(fs: Fs, dir: string): Run {
  return { fs, dir, at: (name) => join(dir, name), settle: (call) => outcome(call, dir) }
}

/** Runs `scenario` once per implementation, each in a fresh dir, and compares the outcomes and the files. */
async function differential(t: ExecutionContext, scenario: Scenario): Promise<void> {
  const results: Array<{ name: string; outcome: Outcome; files: Entry[] }> = []
  for (const { name, fs } of implementations(t)) {
    const dir = tempDir(t)
    scenario.setup?.(dir)
    const result = await outcome(() => scenario.run(runIn(fs, dir)), dir)
    results.push({ name, outcome: result, files: tree(dir) })
  }
  const [reference, ...others] = results
  if (reference === undefined) return
  for (const other of others) {
    t.deepEqual(other.outcome, reference.outcome, `${other.name}: what the calls gave, against node:fs/promises`)
    t.deepEqual(other.files, reference.files, `${other.name}: the files afterwards, against node:fs/promises`)
  }
}

/**
 * Runs `scenario` once per implementation on one directory, prepared once, for calls that
 * change nothing (Stats): the same file, with no change in between.
 */
async function onSameFiles(t: ExecutionContext, scenario: Scenario): Promise<void> {
  const dir = tempDir(t)
  scenario.setup?.(dir)
  const results: Array<{ name: string; outcome: Outcome }> = []
  for (const { name, fs } of implementations(t)) results.push({ name, outcome: await outcome(() => scenario.run(runIn(fs, dir)), dir) })
  const [reference, ...others] = results
  if (reference === undefined) return
  if (!('ok' in reference.outcome)) t.fail(`node:fs/promises itself failed: ${inspect(reference.outcome)}`)
  for (const other of others) t.deepEqual(other.outcome, reference.outcome, `${other.name}: what the calls gave, against node:fs/promises`)
}

type Register = (title: string, implementation: (t: ExecutionContext) => Promise<void>) => void

/** A differential case, titled `fs: …`. */
function fsTest(title: string, scenario: Scenario, register: Register = test): void {
  register(`fs: ${title}`, (t) => differential(t, scenario))
}

/** A case on files left unchanged, compared on the very same files (Stats). */
function sameFilesTest(title: string, scenario: Scenario): void {
  test(`fs: ${title}`, (t) => onSameFiles(t, scenario))
}

// ---- Setups

const TEXT = 'The quick brown fox jumps over the lazy dog\n'

function file(name: string, content: string | Uint8Array = TEXT, mode?: number): Setup {
  return (dir) => {
    writeFileSync(join(dir, name), content)
    if (mode !== undefined) chmodSync(join(dir, name), mode)
  }
}

function directory(name: string, mode?: number): Setup {
  return (dir) => {
    mkdirSync(join(dir, name), { recursive: true })
    if (mode !== undefined) chmodSync(join(dir, name), mode)
  }
}

function symlink(target: string, name: string): Setup {
  return (dir) => symlinkSync(target, join(dir, name))
}

/**
 * Sets the link's access time a day ahead: following a link touches its atime when that is
 * not past its mtime (relatime), so the first run's stat would change what the next sees.
 */
function unfollowedAtime(name: string): Setup {
  return (dir) => {
    const now = Date.now() / 1000
    lutimesSync(join(dir, name), now + 86_400, now - 60)
  }
}

function all(...setups: Setup[]): Setup {
  return (dir) => {
    for (const setup of setups) setup(dir)
  }
}

/** Opens `name` with `flags`, runs `body` on the handle and closes it whatever happened. */
async function withHandle<T>(r: Run, name: string, flags: string | number | undefined, body: (fh: FileHandle) => Promise<T>): Promise<T> {
  const fh = await r.fs.open(r.at(name), flags)
  try {
    return await body(fh)
  } finally {
    await fh.close()
  }
}

/** A FileHandle with the call forms and methods Node has but `@types/node` leaves out. */
interface AllForms {
  write(...args: unknown[]): Promise<unknown>
  readv(...args: unknown[]): Promise<unknown>
  writev(...args: unknown[]): Promise<unknown>
  on(event: 'close', listener: () => void): unknown
}

function forms(fh: FileHandle): AllForms {
  return fh as unknown as AllForms
}

/** Several calls in turn, each with its own outcome. */
async function steps(r: Run, calls: ReadonlyArray<() => Promise<unknown>>): Promise<Outcome[]> {
  const outcomes: Outcome[] = []
  for (const call of calls) outcomes.push(await r.settle(call))
  return outcomes
}

// ---- The caio/fs module itself

test('fs: the caio/fs default context runs on the backend under test', (t) => {
  const expected = backendUnderTest()
  if (expected === undefined) t.is(typeof caioFs.getDefaultContext().backend, 'string')
  else t.is(caioFs.getDefaultContext().backend, expected)
})

test('fs: caio/fs exports the constants of node:fs', (t) => {
  t.is(caioFs.constants, constants)
})

fsTest('open resolves a FileHandle of caio/fs whose fd is a descriptor', {
  setup: file('a'),
  run: (r) => withHandle(r, 'a', 'r', async (fh) => ({ fd: Number.isInteger(fh.fd) && fh.fd > 2, emitter: typeof forms(fh).on, close: typeof fh.close })),
})

test('fs: a FileHandle from caio/fs is an instance of its FileHandle', async (t) => {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'a'), TEXT)
  const fh = await caioFs.open(join(dir, 'a'))
  t.true(fh instanceof caioFs.FileHandle)
  await fh.close()
})

// ---- readFile

fsTest('readFile resolves a Buffer of the whole file', { setup: file('a'), run: (r) => r.fs.readFile(r.at('a')) })

fsTest("readFile with 'utf8' resolves a string", { setup: file('a', 'héllo wörld ✓'), run: (r) => r.fs.readFile(r.at('a'), 'utf8') })

fsTest('readFile with { encoding } decodes in that encoding', {
  setup: file('a', 'héllo wörld ✓'),
  run: (r) =>
    steps(
      r,
      (['utf8', 'UTF-8', 'latin1', 'binary', 'base64', 'base64url', 'hex', 'ucs2', 'utf16le', 'ascii'] as const).map(
        (encoding) => () => r.fs.readFile(r.at('a'), { encoding: encoding as BufferEncoding }),
      ),
    ),
})

fsTest("readFile with encoding 'buffer' rejects as Node's StringDecoder does, after opening", {
  setup: file('a'),
  run: (r) =>
    steps(r, [
      () => r.fs.readFile(r.at('a'), { encoding: 'buffer' as BufferEncoding }),
      () => r.fs.readFile(r.at('missing'), 'buffer' as BufferEncoding),
      () => withHandle(r, 'a', 'r', (fh) => fh.readFile('buffer' as BufferEncoding)),
    ]),
})

fsTest('readFile with a falsy encoding resolves a Buffer', {
  setup: file('a'),
  run: (r) => steps(r, [() => r.fs.readFile(r.at('a'), { encoding: '' as BufferEncoding }), () => r.fs.readFile(r.at('a'), { encoding: 0 as unknown as BufferEncoding })]),
})

fsTest('readFile with { encoding: null } resolves a Buffer', { setup: file('a'), run: (r) => r.fs.readFile(r.at('a'), { encoding: null }) })

fsTest("readFile with flag 'a+' reads an existing file and creates a missing one", {
  setup: file('a'),
  run: (r) => steps(r, [() => r.fs.readFile(r.at('a'), { flag: 'a+' }), () => r.fs.readFile(r.at('new'), { flag: 'a+', encoding: 'utf8' })]),
})

fsTest("readFile with flag 'w+' truncates the file and resolves it empty", { setup: file('a'), run: (r) => r.fs.readFile(r.at('a'), { flag: 'w+' }) })

fsTest('readFile with numeric flags', { setup: file('a'), run: (r) => r.fs.readFile(r.at('a'), { flag: constants.O_RDONLY, encoding: 'utf8' }) })

fsTest("readFile with an empty flag opens as 'r'", { setup: file('a'), run: (r) => r.fs.readFile(r.at('a'), { flag: '' }) })

fsTest('readFile with an unknown flag rejects ERR_INVALID_ARG_VALUE', { setup: file('a'), run: (r) => r.fs.readFile(r.at('a'), { flag: 'bogus' }) })

fsTest('readFile of a missing file rejects ENOENT', { run: (r) => r.fs.readFile(r.at('missing')) })

fsTest('readFile of a path through a file rejects ENOTDIR', { setup: file('a'), run: (r) => r.fs.readFile(r.at('a/b')) })

fsTest('readFile of a directory rejects EISDIR', { setup: directory('d'), run: (r) => r.fs.readFile(r.at('d')) })

fsTest('readFile of a directory with an encoding rejects EISDIR', { setup: directory('d'), run: (r) => r.fs.readFile(r.at('d'), 'utf8') })

fsTest('readFile of an empty file resolves an empty Buffer', {
  setup: file('empty', ''),
  run: (r) => steps(r, [() => r.fs.readFile(r.at('empty')), () => r.fs.readFile(r.at('empty'), 'utf8')]),
})

// procfs files say they are empty and are not: a read that trusted fstat would miss them.
fsTest('readFile of a procfs file resolves what reading it gives', {
  run: (r) => steps(r, [() => r.fs.readFile('/proc/version', 'utf8'), () => r.fs.readFile('/proc/self/cmdline')]),
})

// The first read of a whole file names its path in the same step: one as long as Linux allows.
fsTest('readFile of a path too long for one step rejects ENAMETOOLONG', {
  run: (r) => r.fs.readFile(r.at(`${'x'.repeat(250)}/`.repeat(17))),
})

fsTest('readFile of a 300 KB file resolves all of it', { setup: file('big', pattern(300 * 1024, 5)), run: (r) => r.fs.readFile(r.at('big')) })

fsTest('readFile of files around 64 KiB resolves each whole', {
  setup: (dir) => {
    for (const size of [65535, 65536, 65537, 131072, 131073]) writeFileSync(join(dir, `f${size}`), pattern(size, size))
  },
  run: (r) => steps(r, [65535, 65536, 65537, 131072, 131073].map((size) => () => r.fs.readFile(r.at(`f${size}`)))),
})

fsTest('readFile of a 300 KB UTF-8 text decodes characters split across reads', {
  setup: file('text', '€'.repeat(100_000) + 'end'),
  run: (r) => r.fs.readFile(r.at('text'), 'utf8'),
})

fsTest('readFile of a file of unknown size reads to end of file', { run: (r) => r.fs.readFile('/proc/self/limits', 'utf8') })

fsTest('readFile of a FileHandle reads from its file position after a partial read', {
  setup: file('a'),
  run: (r) =>
    withHandle(r, 'a', 'r', async (fh) => {
      const first = await fh.read(Buffer.alloc(10), 0, 10, null)
      const rest = await r.fs.readFile(fh, 'utf8')
      const again = await r.fs.readFile(fh)
      return { first, rest, again }
    }),
})

fsTest('readFile of a FileHandle ignores the flag', {
  setup: file('a'),
  run: (r) => withHandle(r, 'a', 'r', (fh) => r.fs.readFile(fh, { flag: 'w', encoding: 'utf8' })),
})

fsTest('readFile with an invalid encoding rejects ERR_INVALID_ARG_VALUE', {
  setup: file('a'),
  run: (r) => steps(r, [() => r.fs.readFile(r.at('a'), 'bogus' as BufferEncoding), () => r.fs.readFile(r.at('a'), { encoding: 'bogus' as BufferEncoding })]),
})

fsTest('readFile of a path with a NUL byte rejects ERR_INVALID_ARG_VALUE', {
  setup: file('a'),
  run: (r) => steps(r, [() => r.fs.readFile(`${r.at('a')}\0b`), () => r.fs.readFile(Buffer.from('a\0b')), () => r.fs.readFile(new Uint8Array([97, 0]) as Buffer)]),
})

fsTest('readFile of a path of the wrong type rejects ERR_INVALID_ARG_TYPE', {
  run: (r) => steps(r, [() => r.fs.readFile(42 as unknown as string), () => r.fs.readFile({} as unknown as string), () => r.fs.readFile(undefined as unknown as string)]),
})

fsTest('readFile takes a file: URL', { setup: file('a'), run: (r) => r.fs.readFile(pathToFileURL(r.at('a')), 'utf8') })

fsTest('readFile of a URL of another scheme rejects ERR_INVALID_URL_SCHEME', { run: (r) => r.fs.readFile(new URL('http://example.com/a')) })

fsTest('readFile takes a Buffer path', { setup: file('a'), run: (r) => r.fs.readFile(Buffer.from(r.at('a')), 'utf8') })

fsTest('readFile of a missing Buffer path rejects ENOENT naming it', { run: (r) => r.fs.readFile(Buffer.from(r.at('missing'))) })

fsTest('readFile with an aborted signal rejects AbortError and opens nothing', {
  setup: file('a'),
  run: (r) =>
    steps(r, [
      () => r.fs.readFile(r.at('a'), { signal: AbortSignal.abort() }),
      () => r.fs.readFile(r.at('created'), { signal: AbortSignal.abort(), flag: 'a+' }),
      () => r.fs.readFile(`${r.at('a')}\0`, { signal: AbortSignal.abort() }),
    ]),
})

fsTest('readFile with a signal that is no AbortSignal rejects ERR_INVALID_ARG_TYPE', {
  setup: file('a'),
  run: (r) => r.fs.readFile(r.at('a'), { signal: {} as AbortSignal }),
})

fsTest('readFile with options of the wrong type rejects ERR_INVALID_ARG_TYPE', {
  setup: file('a'),
  run: (r) => steps(r, [() => r.fs.readFile(r.at('a'), 5 as unknown as BufferEncoding), () => r.fs.readFile(r.at('a'), true as unknown as BufferEncoding)]),
})

fsTest('readFile with a function for options reads as without options', {
  setup: file('a'),
  run: (r) => r.fs.readFile(r.at('a'), (() => undefined) as unknown as BufferEncoding),
})

// ---- writeFile

fsTest('writeFile of a string writes it as UTF-8', { run: (r) => r.fs.writeFile(r.at('f'), 'héllo ✓') })

fsTest('writeFile of a Buffer', { run: (r) => r.fs.writeFile(r.at('f'), Buffer.from(TEXT)) })

fsTest('writeFile of a Uint8Array view writes only the bytes it covers', {
  run: (r) => r.fs.writeFile(r.at('f'), new Uint8Array(Uint8Array.from(Buffer.from(TEXT)).buffer, 4, 11)),
})

fsTest('writeFile of a DataView writes only the bytes it covers', {
  run: (r) => r.fs.writeFile(r.at('f'), new DataView(Uint8Array.from(Buffer.from(TEXT)).buffer, 10, 5)),
})

fsTest('writeFile of a Float64Array writes its bytes, not its elements', { run: (r) => r.fs.writeFile(r.at('f'), new Float64Array([1.5, -2, Math.PI])) })

fsTest('writeFile of an empty string empties the file', { setup: file('f'), run: (r) => r.fs.writeFile(r.at('f'), '') })

fsTest('writeFile replaces a longer content', { setup: file('f', 'x'.repeat(1000)), run: (r) => r.fs.writeFile(r.at('f'), 'short') })

fsTest('writeFile of an array of strings and buffers writes them in turn', {
  run: (r) => r.fs.writeFile(r.at('f'), ['one ', Buffer.from('two '), new Uint8Array([116, 104, 114, 101, 101]), ''], { encoding: 'utf8' }),
})

fsTest('writeFile of an iterable writes each chunk in its encoding', {
  run: (r) =>
    r.fs.writeFile(
      r.at('f'),
      (function* () {
        yield '68656c6c6f'
        yield Buffer.from(' world')
      })(),
      'hex',
    ),
})

fsTest('writeFile of an async iterable writes each chunk', {
  run: (r) =>
    r.fs.writeFile(
      r.at('f'),
      (async function* () {
        yield 'async '
        await new Promise((resolve) => setImmediate(resolve))
        yield Buffer.from('chunks')
      })(),
    ),
})

fsTest('writeFile of an iterable of byte arrays writes them', { run: (r) => r.fs.writeFile(r.at('f'), [[104, 105]] as unknown as string[]) })

fsTest('writeFile of an iterable holding a number rejects as Buffer.from does', {
  setup: file('f'),
  run: (r) => r.fs.writeFile(r.at('f'), ['ok', 5] as unknown as string[]),
})

fsTest('writeFile with mode creates the file with that mode', {
  run: async (r) => {
    await r.fs.writeFile(r.at('f'), 'x', { mode: 0o600 })
    await r.fs.writeFile(r.at('g'), 'x', { mode: '640' })
    return [(await r.fs.stat(r.at('f'))).mode & 0o777, (await r.fs.stat(r.at('g'))).mode & 0o777]
  },
})

fsTest('writeFile with a mode that is no octal string rejects ERR_INVALID_ARG_VALUE and creates nothing', {
  run: (r) => steps(r, [() => r.fs.writeFile(r.at('f'), 'x', { mode: '9' }), () => r.fs.writeFile(r.at('g'), 'x', { mode: -1 }), () => r.fs.writeFile(r.at('h'), 'x', { mode: 1.5 })]),
})

fsTest("writeFile with flag 'wx' on an existing file rejects EEXIST and leaves it", { setup: file('f'), run: (r) => r.fs.writeFile(r.at('f'), 'new', { flag: 'wx' }) })

fsTest("writeFile with flag 'wx' creates a missing file", { run: (r) => r.fs.writeFile(r.at('f'), 'new', { flag: 'wx' }) })

fsTest("writeFile with flag 'a' appends", { setup: file('f'), run: (r) => r.fs.writeFile(r.at('f'), 'appended', { flag: 'a' }) })

fsTest("writeFile with flag 'r+' on a missing file rejects ENOENT", { run: (r) => r.fs.writeFile(r.at('f'), 'x', { flag: 'r+' }) })

fsTest("writeFile with flag 'r+' overwrites in place without truncating", { setup: file('f'), run: (r) => r.fs.writeFile(r.at('f'), 'XXX', { flag: 'r+' }) })

fsTest("writeFile with encoding 'hex' decodes the string", {
  run: (r) => steps(r, [() => r.fs.writeFile(r.at('f'), '68656c6c6f', { encoding: 'hex' }), () => r.fs.writeFile(r.at('g'), 'aGk=', 'base64')]),
})

fsTest('writeFile ignores the encoding for bytes', { run: (r) => r.fs.writeFile(r.at('f'), Buffer.from('bytes'), 'hex') })

fsTest("writeFile with encoding 'buffer' rejects as Buffer.from does", { run: (r) => r.fs.writeFile(r.at('f'), 'x', { encoding: 'buffer' as BufferEncoding }) })

fsTest('writeFile with flush: true writes and resolves undefined', { run: (r) => r.fs.writeFile(r.at('f'), TEXT, { flush: true }) })

fsTest('writeFile with a flush that is no boolean rejects ERR_INVALID_ARG_TYPE', {
  run: (r) => r.fs.writeFile(r.at('f'), 'x', { flush: 'yes' as unknown as boolean }),
})

fsTest('writeFile of data of the wrong type rejects ERR_INVALID_ARG_TYPE and creates nothing', {
  run: (r) =>
    steps(r, [
      () => r.fs.writeFile(r.at('a'), 42 as unknown as string),
      () => r.fs.writeFile(r.at('b'), {} as unknown as string),
      () => r.fs.writeFile(r.at('c'), null as unknown as string),
      () => r.fs.writeFile(r.at('d'), undefined as unknown as string),
      () => r.fs.writeFile(r.at('e'), new ArrayBuffer(4) as unknown as string),
    ]),
})

fsTest('writeFile onto a directory rejects EISDIR', { setup: directory('d'), run: (r) => r.fs.writeFile(r.at('d'), 'x') })

fsTest('writeFile in a missing directory rejects ENOENT', { run: (r) => r.fs.writeFile(r.at('missing/f'), 'x') })

fsTest('writeFile of 1.5 MB writes all of it', { run: (r) => r.fs.writeFile(r.at('f'), pattern(1536 * 1024, 9)) })

fsTest('writeFile to a FileHandle writes at its file position', {
  setup: file('f', 'abcdefgh'),
  run: (r) =>
    withHandle(r, 'f', 'r+', async (fh) => {
      const read = await fh.read(Buffer.alloc(2), 0, 2, null)
      await r.fs.writeFile(fh, 'XY')
      await fh.writeFile('Z', { encoding: 'utf8' })
      return read
    }),
})

fsTest('writeFile with an aborted signal rejects AbortError and creates nothing', {
  run: (r) => r.fs.writeFile(r.at('f'), 'x', { signal: AbortSignal.abort() }),
})

fsTest('writeFile with options of the wrong type rejects ERR_INVALID_ARG_TYPE', { run: (r) => r.fs.writeFile(r.at('f'), 'x', 7 as unknown as BufferEncoding) })

// ---- appendFile

fsTest('appendFile adds to an existing file', { setup: file('f'), run: (r) => r.fs.appendFile(r.at('f'), 'more\n') })

fsTest('appendFile creates a missing file', { run: (r) => r.fs.appendFile(r.at('f'), Buffer.from('first')) })

fsTest('appendFile takes an encoding', { setup: file('f', 'a'), run: (r) => r.fs.appendFile(r.at('f'), '6263', 'hex') })

fsTest('appendFile with mode creates the file with that mode', { run: (r) => r.fs.appendFile(r.at('f'), 'x', { mode: 0o640 }) })

fsTest("appendFile with flag 'w' truncates", { setup: file('f'), run: (r) => r.fs.appendFile(r.at('f'), 'only', { flag: 'w' }) })

fsTest("appendFile with flag 'ax' on an existing file rejects EEXIST", { setup: file('f'), run: (r) => r.fs.appendFile(r.at('f'), 'x', { flag: 'ax' }) })

fsTest('appendFile of an iterable appends each chunk', { setup: file('f'), run: (r) => r.fs.appendFile(r.at('f'), ['a', 'b', Buffer.from('c')] as unknown as string) })

fsTest('appendFile to a FileHandle writes at its file position', {
  setup: file('f', 'abcdef'),
  run: (r) =>
    withHandle(r, 'f', 'r+', async (fh) => {
      await fh.read(Buffer.alloc(1), 0, 1, null)
      await r.fs.appendFile(fh, 'X')
      await fh.appendFile('Y')
    }),
})

// ---- open, with every flags string

const FLAG_STRINGS = ['r', 'rs', 'r+', 'rs+', 'w', 'wx', 'w+', 'wx+', 'a', 'ax', 'a+', 'ax+', 'as', 'as+'] as const

for (const flags of FLAG_STRINGS) {
  for (const exists of [true, false]) {
    fsTest(`open '${flags}' of ${exists ? 'an existing' : 'a missing'} file writes and reads as Node's`, {
      setup: exists ? file('f', 'abcdef') : undefined,
      run: (r) =>
        withHandle(r, 'f', flags, async (fh) => ({
          write: await r.settle(() => fh.write('XY')),
          readAtStart: await r.settle(() => fh.read(Buffer.alloc(8), 0, 8, 0)),
          readOn: await r.settle(() => fh.read(Buffer.alloc(8), 0, 8, null)),
        })),
    })
  }
}

const NUMERIC_FLAGS = {
  'O_RDONLY': constants.O_RDONLY,
  'O_RDWR': constants.O_RDWR,
  'O_WRONLY | O_CREAT': constants.O_WRONLY | constants.O_CREAT,
  'O_RDWR | O_CREAT | O_EXCL': constants.O_RDWR | constants.O_CREAT | constants.O_EXCL,
  'O_RDWR | O_APPEND': constants.O_RDWR | constants.O_APPEND,
  'O_RDONLY | O_TRUNC': constants.O_RDONLY | constants.O_TRUNC,
} as const

for (const [name, flags] of Object.entries(NUMERIC_FLAGS)) {
  for (const exists of [true, false]) {
    fsTest(`open with ${name} of ${exists ? 'an existing' : 'a missing'} file writes and reads as Node's`, {
      setup: exists ? file('f', 'abcdef') : undefined,
      run: (r) =>
        withHandle(r, 'f', flags, async (fh) => ({
          write: await r.settle(() => fh.write(Buffer.from('XY'))),
          read: await r.settle(() => fh.read(Buffer.alloc(8), 0, 8, 0)),
        })),
    })
  }
}

fsTest('open without flags opens for reading', { setup: file('f'), run: (r) => withHandle(r, 'f', undefined, (fh) => r.settle(() => fh.write('x'))) })

fsTest('open of a missing file rejects ENOENT', { run: (r) => r.fs.open(r.at('missing')) })

fsTest('open with an unknown flags string rejects ERR_INVALID_ARG_VALUE', { setup: file('f'), run: (r) => r.fs.open(r.at('f'), 'rw') })

fsTest('open with mode creates the file with that mode', {
  run: async (r) => {
    await (await r.fs.open(r.at('f'), 'w', 0o640)).close()
    await (await r.fs.open(r.at('g'), 'w', '600')).close()
  },
})

fsTest('open of a directory for reading succeeds and reading it rejects EISDIR', {
  setup: directory('d'),
  run: (r) => withHandle(r, 'd', 'r', (fh) => fh.read(Buffer.alloc(8), 0, 8, 0)),
})

fsTest('open of a directory for writing rejects EISDIR', { setup: directory('d'), run: (r) => r.fs.open(r.at('d'), 'r+') })

// ---- FileHandle.read

fsTest('FileHandle.read(buffer, offset, length, position) reads at the position into the buffer at the offset', {
  setup: file('f'),
  run: (r) => withHandle(r, 'f', 'r', (fh) => steps(r, [() => fh.read(Buffer.alloc(12, 0xee), 2, 5, 4), () => fh.read(Buffer.alloc(12, 0xee), 0, 12, 0)])),
})

fsTest('FileHandle.read with position null reads on from the file position, twice', {
  setup: file('f'),
  run: (r) =>
    withHandle(r, 'f', 'r', (fh) =>
      steps(r, [
        () => fh.read(Buffer.alloc(5), 0, 5, null),
        () => fh.read(Buffer.alloc(5), 0, 5, null),
        () => fh.read(Buffer.alloc(5), 0, 5, 0),
        () => fh.read(Buffer.alloc(5), 0, 5, undefined),
        () => fh.read(Buffer.alloc(5), 0, 5, -1),
        () => fh.read(Buffer.alloc(5), 0, 5),
      ]),
    ),
})

fsTest('FileHandle.read(buffer, options) reads as its options say', {
  setup: file('f'),
  run: (r) =>
    withHandle(r, 'f', 'r', (fh) =>
      steps(r, [
        () => fh.read(Buffer.alloc(8, 0xee), { offset: 1, length: 3, position: 2 }),
        () => fh.read(Buffer.alloc(8, 0xee), { position: 4 }),
        () => fh.read(Buffer.alloc(8, 0xee), {}),
        () => fh.read(Buffer.alloc(8, 0xee), { offset: 2 }),
        () => fh.read(Buffer.alloc(8, 0xee), { length: 2, position: null }),
      ]),
    ),
})

fsTest('FileHandle.read(options) reads into the buffer of the options, or a new 16 KiB one', {
  setup: file('f'),
  run: (r) =>
    withHandle(r, 'f', 'r', (fh) =>
      steps(r, [
        () => fh.read({ buffer: Buffer.alloc(10, 0xee), offset: 3, length: 4, position: 1 }),
        () => fh.read({ buffer: Buffer.alloc(10, 0xee) }),
        () => fh.read({ position: 0 }),
        () => fh.read(),
        () => fh.read(null as unknown as undefined),
      ]),
    ),
})

fsTest('FileHandle.read with length 0 resolves 0 bytes read', {
  setup: file('f'),
  run: (r) =>
    withHandle(r, 'f', 'r', (fh) =>
      steps(r, [() => fh.read(Buffer.alloc(4, 0xee), 0, 0, 0), () => fh.read(Buffer.alloc(0)), () => fh.read({ buffer: Buffer.alloc(4), length: 0 }), () => fh.read(Buffer.alloc(4), 4)]),
    ),
})

fsTest('FileHandle.read at or past end of file resolves 0 bytes read', {
  setup: file('f', 'abc'),
  run: (r) => withHandle(r, 'f', 'r', (fh) => steps(r, [() => fh.read(Buffer.alloc(4), 0, 4, 3), () => fh.read(Buffer.alloc(4), 0, 4, 1_000_000)])),
})

fsTest('FileHandle.read into typed arrays and DataViews counts in bytes', {
  setup: file('f'),
  run: (r) =>
    withHandle(r, 'f', 'r', (fh) =>
      steps(r, [() => fh.read(new Uint16Array(4), 2, 4, 0), () => fh.read(new DataView(new ArrayBuffer(8), 2, 4)), () => fh.read(new Float32Array(2), { position: 3 })]),
    ),
})

fsTest('FileHandle.read with bad offset or length rejects as Node does', {
  setup: file('f'),
  run: (r) =>
    withHandle(r, 'f', 'r', (fh) =>
      steps(r, [
        () => fh.read(Buffer.alloc(4), 0, 10, 0),
        () => fh.read(Buffer.alloc(4), 2, 3, 0),
        () => fh.read(Buffer.alloc(4), -1, 2, 0),
        () => fh.read(Buffer.alloc(4), 1.5, 2, 0),
        () => fh.read(Buffer.alloc(4), '1' as unknown as number, 2, 0),
        () => fh.read(Buffer.alloc(4), 5, 1, 0),
        () => fh.read(Buffer.alloc(4), 0, -1, 0),
        () => fh.read(Buffer.alloc(4), { offset: 3, length: 2 }),
        () => fh.read(Buffer.alloc(0), 0, 1, 0),
      ]),
    ),
})

fsTest('FileHandle.read with arguments of the wrong type rejects ERR_INVALID_ARG_TYPE', {
  setup: file('f'),
  run: (r) => withHandle(r, 'f', 'r', (fh) => steps(r, [() => fh.read(5 as unknown as Buffer), () => fh.read({ buffer: 'x' as unknown as Buffer }), () => fh.read('x' as unknown as Buffer)])),
})

// ---- FileHandle.write

fsTest('FileHandle.write(buffer, offset, length, position) writes that part at the position', {
  setup: file('f', 'abcdefgh'),
  run: (r) => withHandle(r, 'f', 'r+', (fh) => steps(r, [() => fh.write(Buffer.from('0123456789'), 2, 3, 1), () => fh.write(Buffer.from('XY'), 0, 2, 10)])),
})

fsTest('FileHandle.write of a buffer at position null writes on from the file position, twice', {
  setup: file('f', 'abcdefgh'),
  run: (r) =>
    withHandle(r, 'f', 'r+', (fh) =>
      steps(r, [
        () => fh.write(Buffer.from('12'), 0, 2, null),
        () => fh.write(Buffer.from('34'), 0, 2, null),
        () => fh.write(Buffer.from('5')),
        () => fh.write(Buffer.from('6'), 0, 1, -1),
        () => fh.write(Buffer.from('77'), 1),
        () => fh.write(Buffer.from('@'), 0, 1, 0),
        () => fh.write(Buffer.from('8'), null, null, null),
      ]),
    ),
})

fsTest('FileHandle.write(buffer, options) writes as its options say', {
  setup: file('f', 'abcdefgh'),
  run: (r) =>
    withHandle(r, 'f', 'r+', (fh) =>
      steps(r, [
        () => forms(fh).write(Buffer.from('0123'), { offset: 1, length: 2, position: 5 }),
        () => forms(fh).write(Buffer.from('XY'), {}),
        () => forms(fh).write(Buffer.from('Z'), { position: 0 }),
        () => fh.write(Buffer.from('Q'), null as unknown as undefined),
      ]),
    ),
})

fsTest('FileHandle.write of a string at a position and at null', {
  setup: file('f', 'abcdefgh'),
  run: (r) =>
    withHandle(r, 'f', 'r+', (fh) =>
      steps(r, [() => fh.write('XY', 3), () => fh.write('12'), () => fh.write('34', null), () => fh.write('✓', 0, 'utf8'), () => fh.write('', 0), () => fh.write('5', undefined, undefined)]),
    ),
})

fsTest('FileHandle.write of a string in an encoding', {
  setup: file('f', 'abcdefgh'),
  run: (r) => withHandle(r, 'f', 'r+', (fh) => steps(r, [() => fh.write('6869', 0, 'hex'), () => fh.write('aGk=', null, 'base64'), () => fh.write('é', 6, 'latin1')])),
})

fsTest('FileHandle.write of a string of odd length in hex rejects ERR_INVALID_ARG_VALUE', {
  setup: file('f', 'abcdefgh'),
  run: (r) => withHandle(r, 'f', 'r+', (fh) => fh.write('abc', 0, 'hex')),
})

fsTest('FileHandle.write of a string in an unknown encoding writes UTF-8', {
  setup: file('f', 'abcdefgh'),
  run: (r) => withHandle(r, 'f', 'r+', (fh) => fh.write('ü', 0, 'bogus' as BufferEncoding)),
})

fsTest("FileHandle.write in 'a' mode appends whatever the position", {
  setup: file('f', 'abc'),
  run: (r) => withHandle(r, 'f', 'a', (fh) => steps(r, [() => fh.write('X', 0), () => fh.write(Buffer.from('Y'), 0, 1, 0), () => fh.write('Z')])),
})

fsTest('FileHandle.write of nothing resolves 0 bytes written', {
  setup: file('f', 'abc'),
  run: (r) => withHandle(r, 'f', 'r+', (fh) => steps(r, [() => fh.write(Buffer.alloc(0)), () => fh.write(new Uint8Array(0), 0, 0, 0), () => fh.write(Buffer.from('ab'), 1, 0, 0)])),
})

fsTest('FileHandle.write of typed arrays counts in bytes', {
  setup: file('f', 'abcdefgh'),
  run: (r) => withHandle(r, 'f', 'r+', (fh) => steps(r, [() => fh.write(new Uint16Array([0x4142, 0x4344]), 1, 2, 0), () => fh.write(new DataView(new ArrayBuffer(4)), 0, 4, 4)])),
})

fsTest('FileHandle.write with bad offset or length rejects as Node does', {
  setup: file('f', 'abcdefgh'),
  run: (r) =>
    withHandle(r, 'f', 'r+', (fh) =>
      steps(r, [
        () => fh.write(Buffer.from('abcd'), 0, 10, 0),
        () => fh.write(Buffer.from('abcd'), 5, 1, 0),
        () => fh.write(Buffer.from('abcd'), 2, 3, 0),
        () => fh.write(Buffer.from('abcd'), -1, 1, 0),
        () => fh.write(Buffer.from('abcd'), 0, -1, 0),
        () => fh.write(Buffer.from('abcd'), 1.5, 1, 0),
      ]),
    ),
})

fsTest('FileHandle.write of data of the wrong type rejects ERR_INVALID_ARG_TYPE', {
  setup: file('f'),
  run: (r) => withHandle(r, 'f', 'r+', (fh) => steps(r, [() => fh.write(5 as unknown as string), () => fh.write({} as unknown as string), () => fh.write(null as unknown as string)])),
})

// ---- readv and writev

fsTest('FileHandle.writev writes the buffers in turn, at a position and at the file position', {
  setup: file('f', 'abcdefghij'),
  run: (r) =>
    withHandle(r, 'f', 'r+', (fh) =>
      steps(r, [
        () => fh.writev([Buffer.from('12'), new Uint8Array([51, 52])], 2),
        () => fh.writev([Buffer.from('X')]),
        () => forms(fh).writev([Buffer.from('Y'), Buffer.alloc(0), Buffer.from('Z')], null),
        () => fh.writev([]),
        () => fh.writev([Buffer.from('E')], 20),
        // Past IOV_MAX (1024) buffers Node writes them all.
        () => fh.writev(Array.from({ length: 1500 }, (_, i) => Buffer.from([i & 255, 1, 2])), 30),
      ]),
    ),
})

fsTest('FileHandle.readv fills the buffers in turn, at a position and at the file position', {
  setup: file('f'),
  run: (r) =>
    withHandle(r, 'f', 'r', (fh) =>
      steps(r, [
        () => fh.readv([Buffer.alloc(3), Buffer.alloc(4)], 4),
        () => fh.readv([Buffer.alloc(5)]),
        () => forms(fh).readv([Buffer.alloc(2), Buffer.alloc(0), Buffer.alloc(3)], null),
        () => fh.readv([Buffer.alloc(40), Buffer.alloc(10)], 10),
        () => fh.readv([Buffer.alloc(4)], 1000),
        () => fh.readv([]),
      ]),
    ),
})

fsTest('FileHandle.readv of more buffers than IOV_MAX fills the first 1024 only, as Node does', {
  setup: file('f', Buffer.from(Array.from({ length: 6000 }, (_, i) => (i * 7) & 255))),
  run: (r) =>
    withHandle(r, 'f', 'r', (fh) =>
      steps(r, [
        () => fh.readv(Array.from({ length: 1500 }, () => Buffer.alloc(3)), 0),
        () => forms(fh).readv(Array.from({ length: 1025 }, () => Buffer.alloc(2)), null),
        () => fh.readv(Array.from({ length: 1024 }, () => Buffer.alloc(5)), 100),
      ]),
    ),
})

fsTest('FileHandle.readv and writev of something that is no array of buffers reject ERR_INVALID_ARG_TYPE', {
  setup: file('f'),
  run: (r) =>
    withHandle(r, 'f', 'r+', (fh) =>
      steps(r, [
        () => fh.readv(Buffer.alloc(4) as unknown as Buffer[]),
        () => fh.readv([Buffer.alloc(4), 'x'] as unknown as Buffer[]),
        () => fh.writev('x' as unknown as Buffer[]),
        () => fh.writev([1] as unknown as Buffer[]),
      ]),
    ),
})

// ---- FileHandle: stat, truncate, sync, close

sameFilesTest('FileHandle.stat resolves the Stats that stat of the path does', {
  setup: file('f'),
  run: (r) =>
    withHandle(r, 'f', 'r', async (fh) => ({
      stats: await fh.stat(),
      bigint: await fh.stat({ bigint: true }),
      explicit: await fh.stat({ bigint: false }),
      byPath: await r.fs.stat(r.at('f')),
    })),
})

fsTest('FileHandle.stat of a file being written follows its size', {
  run: async (r) => {
    const fh = await r.fs.open(r.at('f'), 'w+')
    try {
      const sizes = [(await fh.stat()).size]
      await fh.write('hello')
      sizes.push((await fh.stat()).size, Number((await fh.stat({ bigint: true })).size))
      return sizes
    } finally {
      await fh.close()
    }
  },
})

fsTest('FileHandle.truncate cuts, extends, and treats a negative length as 0', {
  setup: all(file('a'), file('b', 'abc'), file('c'), file('d')),
  run: async (r) => [
    await withHandle(r, 'a', 'r+', (fh) => fh.truncate(3)),
    await withHandle(r, 'b', 'r+', (fh) => fh.truncate(10)),
    await withHandle(r, 'c', 'r+', (fh) => fh.truncate()),
    await withHandle(r, 'd', 'r+', (fh) => fh.truncate(-5)),
  ],
})

fsTest('FileHandle.truncate of a read-only handle rejects EINVAL, and a bad length ERR_INVALID_ARG_TYPE', {
  setup: file('a'),
  run: (r) => withHandle(r, 'a', 'r', (fh) => steps(r, [() => fh.truncate(1), () => fh.truncate('1' as unknown as number), () => fh.truncate(1.5)])),
})

fsTest('FileHandle.sync and datasync resolve undefined', {
  setup: file('a'),
  run: (r) =>
    withHandle(r, 'a', 'r+', async (fh) => {
      await fh.write('changed', 0)
      return [await fh.sync(), await fh.datasync()]
    }),
})

fsTest('FileHandle.close twice resolves both times and leaves fd -1', {
  setup: file('a'),
  run: async (r) => {
    const fh = await r.fs.open(r.at('a'))
    const closes: string[] = []
    forms(fh).on('close', () => closes.push('close'))
    const first = fh.close()
    const second = fh.close()
    const results = [await first, await second, await fh.close()]
    return { results, fd: fh.fd, closes }
  },
})

fsTest('FileHandle[Symbol.asyncDispose] closes it', {
  setup: file('a'),
  run: async (r) => {
    const fh = await r.fs.open(r.at('a'))
    const disposed = await fh[Symbol.asyncDispose]()
    return { disposed, fd: fh.fd, again: await fh.close() }
  },
})

fsTest('FileHandle.close waits for a read in progress', {
  setup: file('a'),
  run: async (r) => {
    const fh = await r.fs.open(r.at('a'))
    const read = fh.read(Buffer.alloc(9), 0, 9, 0)
    const closed = fh.close()
    return { read: await r.settle(() => read), closed: await closed, fd: fh.fd }
  },
})

fsTest("FileHandle calls after close reject 'file closed' EBADF naming the call", {
  setup: file('a'),
  run: async (r) => {
    const fh = await r.fs.open(r.at('a'), 'r+')
    await fh.close()
    return steps(r, [
      () => fh.read(Buffer.alloc(4), 0, 4, 0),
      () => fh.read(),
      () => fh.write('x'),
      () => fh.write(Buffer.from('x'), 0, 1, 0),
      () => fh.readv([Buffer.alloc(1)]),
      () => fh.writev([Buffer.from('x')]),
      () => fh.stat(),
      () => fh.truncate(),
      () => fh.sync(),
      () => fh.datasync(),
      () => fh.readFile(),
      () => fh.writeFile('x'),
      () => fh.appendFile('x'),
    ])
  },
})

// Node's readFile and writeFile given a closed FileHandle skip its closed check and hand
// fd -1 to their binding: readFile rejects ERR_OUT_OF_RANGE for "fd", writeFile an EBADF
// from write(2) (and resolves when there is nothing to write); caio's do the same.
fsTest("readFile and writeFile of a closed FileHandle reject as Node's do", {
  setup: file('a'),
  run: async (r) => {
    const fh = await r.fs.open(r.at('a'), 'r+')
    await fh.close()
    return steps(r, [
      () => r.fs.readFile(fh),
      () => r.fs.readFile(fh, { encoding: 'utf8', signal: AbortSignal.abort() }),
      () => r.fs.writeFile(fh, 'x'),
      () => r.fs.writeFile(fh, ''),
      () => r.fs.writeFile(fh, ['', 'y']),
      () => r.fs.appendFile(fh, Buffer.from('z')),
    ])
  },
})

fsTest('FileHandle.readFile reads the rest in an encoding', {
  setup: file('a'),
  run: (r) =>
    withHandle(r, 'a', 'r', async (fh) => {
      await fh.read(Buffer.alloc(4), 0, 4, null)
      return steps(r, [() => fh.readFile('utf8'), () => fh.readFile({ encoding: 'hex' }), () => fh.readFile('bogus' as BufferEncoding)])
    }),
})

// ---- stat and lstat

sameFilesTest('stat of a file resolves the Stats of Node, with numbers and with bigints', {
  setup: file('f', pattern(5000, 2)),
  run: async (r) => [await r.fs.stat(r.at('f')), await r.fs.stat(r.at('f'), { bigint: true }), await r.fs.stat(r.at('f'), { bigint: false })],
})

sameFilesTest('stat of a directory resolves the Stats of Node', {
  setup: directory('d', 0o751),
  run: async (r) => [await r.fs.stat(r.at('d')), await r.fs.lstat(r.at('d'), { bigint: true })],
})

sameFilesTest('stat follows a symbolic link and lstat shows the link itself', {
  setup: all(file('target', 'target content'), symlink('target', 'link'), unfollowedAtime('link')),
  run: async (r) => {
    const followed = await r.fs.stat(r.at('link'))
    const own = await r.fs.lstat(r.at('link'))
    return {
      followed,
      own,
      ownBigint: await r.fs.lstat(r.at('link'), { bigint: true }),
      followedBigint: await r.fs.stat(r.at('link'), { bigint: true }),
      kinds: [followed.isFile(), followed.isSymbolicLink(), own.isFile(), own.isSymbolicLink()],
    }
  },
})

sameFilesTest('stat of a hard-linked file counts its links', {
  setup: all(file('f'), (dir) => linkSync(join(dir, 'f'), join(dir, 'g'))),
  run: async (r) => [await r.fs.stat(r.at('g')), await r.fs.lstat(r.at('f'), { bigint: true })],
})

sameFilesTest('stat of a character device gives its rdev', {
  run: async (r) => {
    const stats = await r.fs.stat('/dev/null', { bigint: true })
    return { rdev: stats.rdev, mode: stats.mode, device: stats.isCharacterDevice(), ino: stats.ino, dev: stats.dev }
  },
})

sameFilesTest('stat takes a file: URL and a Buffer path', {
  setup: file('f'),
  run: async (r) => [await r.fs.stat(pathToFileURL(r.at('f'))), await r.fs.lstat(Buffer.from(r.at('f')))],
})

sameFilesTest('Stats of caio have the prototype of Node\'s Stats and BigIntStats', {
  setup: file('f'),
  run: async (r) => {
    const numbers = await r.fs.stat(r.at('f'))
    const bigints = await r.fs.stat(r.at('f'), { bigint: true })
    const model = statSync(r.at('f'), { bigint: true })
    return [Object.getPrototypeOf(numbers) === (statSync(r.at('f')) as Stats).constructor.prototype, Object.getPrototypeOf(bigints) === Object.getPrototypeOf(model), Object.keys(numbers), Object.keys(bigints)]
  },
})

fsTest('stat of a missing file rejects ENOENT', { run: (r) => steps(r, [() => r.fs.stat(r.at('missing')), () => r.fs.lstat(r.at('missing')), () => r.fs.stat(r.at('missing'), { bigint: true })]) })

fsTest('stat of a path through a file rejects ENOTDIR', { setup: file('f'), run: (r) => steps(r, [() => r.fs.stat(r.at('f/x')), () => r.fs.lstat(r.at('f/x'))]) })

fsTest('stat of a dangling symbolic link rejects ENOENT and lstat resolves', {
  setup: symlink('nowhere', 'link'),
  run: (r) => steps(r, [() => r.fs.stat(r.at('link')), async () => (await r.fs.lstat(r.at('link'))).isSymbolicLink()]),
})

fsTest('stat of a path with a NUL byte rejects ERR_INVALID_ARG_VALUE', { run: (r) => steps(r, [() => r.fs.stat(`${r.dir}\0`), () => r.fs.lstat(`${r.dir}\0`)]) })

// ---- truncate

fsTest('truncate cuts a file shorter', { setup: file('f'), run: (r) => r.fs.truncate(r.at('f'), 5) })

fsTest('truncate extends a file with zeros', { setup: file('f', 'abc'), run: (r) => r.fs.truncate(r.at('f'), 10) })

fsTest('truncate without a length empties the file', { setup: file('f'), run: (r) => r.fs.truncate(r.at('f')) })

fsTest('truncate with a negative length empties the file', { setup: file('f'), run: (r) => r.fs.truncate(r.at('f'), -3) })

fsTest('truncate of a missing file rejects ENOENT', { run: (r) => r.fs.truncate(r.at('missing'), 1) })

fsTest('truncate of a directory rejects EISDIR', { setup: directory('d'), run: (r) => r.fs.truncate(r.at('d')) })

fsTest('truncate with a length that is no integer rejects as Node does', {
  setup: file('f'),
  run: (r) => steps(r, [() => r.fs.truncate(r.at('f'), '1' as unknown as number), () => r.fs.truncate(r.at('f'), 1.5), () => r.fs.truncate(r.at('missing'), '1' as unknown as number)]),
})

// ---- unlink

fsTest('unlink removes a file', { setup: all(file('f'), file('g')), run: (r) => r.fs.unlink(r.at('f')) })

fsTest('unlink of a missing file rejects ENOENT', { run: (r) => r.fs.unlink(r.at('missing')) })

fsTest('unlink of a directory rejects EISDIR', { setup: directory('d'), run: (r) => r.fs.unlink(r.at('d')) })

fsTest('unlink of a symbolic link removes the link, not its target', { setup: all(file('target'), symlink('target', 'link')), run: (r) => r.fs.unlink(r.at('link')) })

fsTest('unlink of a path through a file rejects ENOTDIR', { setup: file('f'), run: (r) => r.fs.unlink(r.at('f/x')) })

// ---- rename

fsTest('rename moves a file', { setup: file('a'), run: (r) => r.fs.rename(r.at('a'), r.at('b')) })

fsTest('rename of a missing file rejects ENOENT naming both paths', { run: (r) => r.fs.rename(r.at('missing'), r.at('b')) })

fsTest('rename onto an existing file replaces it', { setup: all(file('a', 'new'), file('b', 'old')), run: (r) => r.fs.rename(r.at('a'), r.at('b')) })

fsTest('rename of a directory onto a non-empty one rejects ENOTEMPTY', {
  setup: all(directory('a'), directory('b'), file('b/x')),
  run: (r) => r.fs.rename(r.at('a'), r.at('b')),
})

fsTest('rename of a file onto a directory rejects EISDIR', { setup: all(file('a'), directory('d')), run: (r) => r.fs.rename(r.at('a'), r.at('d')) })

fsTest('rename of a directory into itself rejects EINVAL', { setup: directory('d'), run: (r) => r.fs.rename(r.at('d'), r.at('d/sub')) })

fsTest('rename into a missing directory rejects ENOENT', { setup: file('a'), run: (r) => r.fs.rename(r.at('a'), r.at('missing/b')) })

fsTest('rename takes URLs and Buffers', {
  setup: all(file('a'), file('c')),
  run: async (r) => {
    await r.fs.rename(pathToFileURL(r.at('a')), Buffer.from(r.at('b')))
    await r.fs.rename(Buffer.from(r.at('c')), pathToFileURL(r.at('d')))
  },
})

fsTest('rename with a NUL byte in either path rejects ERR_INVALID_ARG_VALUE naming it', {
  setup: file('a'),
  run: (r) => steps(r, [() => r.fs.rename(`${r.at('a')}\0`, r.at('b')), () => r.fs.rename(r.at('a'), `${r.at('b')}\0`)]),
})

// ---- mkdir

fsTest('mkdir makes a directory and resolves undefined', { run: (r) => r.fs.mkdir(r.at('d')) })

fsTest('mkdir of an existing directory rejects EEXIST', { setup: directory('d'), run: (r) => r.fs.mkdir(r.at('d')) })

fsTest('mkdir of an existing file rejects EEXIST', { setup: file('f'), run: (r) => r.fs.mkdir(r.at('f')) })

fsTest('mkdir with a missing parent rejects ENOENT', { run: (r) => r.fs.mkdir(r.at('a/b')) })

fsTest('mkdir recursive resolves the first directory it made', {
  setup: directory('have'),
  run: (r) => steps(r, [() => r.fs.mkdir(r.at('a/b/c'), { recursive: true }), () => r.fs.mkdir(r.at('have/x/y'), { recursive: true }), () => r.fs.mkdir(r.at('t/u/'), { recursive: true })]),
})

fsTest('mkdir recursive of an existing directory resolves undefined', {
  setup: directory('d/e'),
  run: (r) => steps(r, [() => r.fs.mkdir(r.at('d/e'), { recursive: true }), () => r.fs.mkdir(r.at('d'), { recursive: true }), () => r.fs.mkdir(r.dir, { recursive: true })]),
})

fsTest('mkdir recursive through a file rejects ENOTDIR', { setup: file('f'), run: (r) => r.fs.mkdir(r.at('f/a/b'), { recursive: true }) })

fsTest('mkdir recursive of an existing file rejects EEXIST', { setup: file('f'), run: (r) => r.fs.mkdir(r.at('f'), { recursive: true }) })

fsTest('mkdir recursive through a dangling symbolic link rejects as Node does', { setup: symlink('nowhere', 'link'), run: (r) => r.fs.mkdir(r.at('link/a'), { recursive: true }) })

fsTest('mkdir recursive of a directory through a symbolic link to one', {
  setup: all(directory('real'), symlink('real', 'link')),
  run: (r) => steps(r, [() => r.fs.mkdir(r.at('link'), { recursive: true }), () => r.fs.mkdir(r.at('link/a/b'), { recursive: true })]),
})

fsTest('mkdir takes a mode, as a number, an options field or an octal string', {
  run: (r) =>
    steps(r, [
      () => r.fs.mkdir(r.at('a'), 0o700),
      () => r.fs.mkdir(r.at('b'), { mode: 0o750 }),
      () => r.fs.mkdir(r.at('c'), '711'),
      () => r.fs.mkdir(r.at('d/e/f'), { recursive: true, mode: 0o751 }),
    ]),
})

fsTest('mkdir with a bad option rejects as Node does', {
  run: (r) =>
    steps(r, [
      () => r.fs.mkdir(r.at('a'), { recursive: 'yes' as unknown as boolean }),
      () => r.fs.mkdir(r.at('b'), { mode: '8' }),
      () => r.fs.mkdir(r.at('c'), { mode: -1 }),
      () => r.fs.mkdir(`${r.at('d')}\0`, { recursive: 'yes' as unknown as boolean }),
      () => r.fs.mkdir(`${r.at('e')}\0`, { mode: 'x' }),
    ]),
})

fsTest('mkdir recursive takes a Buffer and a URL and resolves a string', {
  run: (r) => steps(r, [() => r.fs.mkdir(Buffer.from(r.at('a/b')), { recursive: true }), () => r.fs.mkdir(pathToFileURL(r.at('c/d')), { recursive: true })]),
})

fsTest('mkdir recursive of a Buffer path that is no UTF-8 makes the directories of its bytes', {
  run: async (r) => {
    const path = Buffer.concat([Buffer.from(`${r.dir}/`), Buffer.from([0xff, 0xfe]), Buffer.from('/sub')])
    const made = await r.settle(() => r.fs.mkdir(path, { recursive: true }))
    return { made, names: readdirSync(r.dir, { encoding: 'buffer' }).map((name) => name.toString('hex')) }
  },
})

// ---- rm

fsTest('rm removes a file', { setup: all(file('f'), file('g')), run: (r) => r.fs.rm(r.at('f')) })

fsTest('rm of a missing file rejects ENOENT', { run: (r) => r.fs.rm(r.at('missing')) })

fsTest('rm of a missing file with force resolves', { run: (r) => steps(r, [() => r.fs.rm(r.at('missing'), { force: true }), () => r.fs.rm(r.at('missing'), { force: true, recursive: true })]) })

fsTest('rm of a directory without recursive rejects ERR_FS_EISDIR', {
  setup: all(directory('d'), file('d/x'), directory('empty')),
  run: (r) => steps(r, [() => r.fs.rm(r.at('d')), () => r.fs.rm(r.at('empty')), () => r.fs.rm(r.at('d'), { force: true })]),
})

fsTest('rm of a directory with recursive removes it all', {
  setup: all(directory('d/e/f'), file('d/x'), file('d/e/y'), file('keep')),
  run: (r) => r.fs.rm(r.at('d'), { recursive: true }),
})

fsTest('rm of a symbolic link to a directory removes the link only', {
  setup: all(directory('real'), file('real/x'), symlink('real', 'link')),
  run: (r) => r.fs.rm(r.at('link')),
})

fsTest('rm of a path through a file rejects ENOTDIR', { setup: file('f'), run: (r) => steps(r, [() => r.fs.rm(r.at('f/x')), () => r.fs.rm(r.at('f/x'), { force: true })]) })

fsTest('rm with bad options rejects as Node does', {
  setup: file('f'),
  run: (r) =>
    steps(r, [
      () => r.fs.rm(r.at('f'), null as unknown as undefined),
      () => r.fs.rm(r.at('f'), 'x' as unknown as undefined),
      () => r.fs.rm(r.at('f'), { force: 'yes' as unknown as boolean }),
      () => r.fs.rm(r.at('f'), { recursive: 1 as unknown as boolean }),
    ]),
})

// ---- copyFile

fsTest('copyFile copies content and mode', { setup: file('a', TEXT, 0o640), run: (r) => r.fs.copyFile(r.at('a'), r.at('b')) })

fsTest('copyFile onto an existing file replaces its content', { setup: all(file('a', 'new'), file('b', 'old and longer')), run: (r) => r.fs.copyFile(r.at('a'), r.at('b')) })

fsTest('copyFile with COPYFILE_EXCL onto an existing file rejects EEXIST', {
  setup: all(file('a', 'new'), file('b', 'old')),
  run: (r) => steps(r, [() => r.fs.copyFile(r.at('a'), r.at('b'), constants.COPYFILE_EXCL), () => r.fs.copyFile(r.at('a'), r.at('c'), constants.COPYFILE_EXCL)]),
})

fsTest("copyFile of a missing source rejects ENOENT naming 'src' -> 'dest'", { run: (r) => r.fs.copyFile(r.at('missing'), r.at('b')) })

fsTest('copyFile into a missing directory rejects ENOENT', { setup: file('a'), run: (r) => r.fs.copyFile(r.at('a'), r.at('missing/b')) })

fsTest('copyFile of a directory rejects EISDIR', { setup: directory('d'), run: (r) => r.fs.copyFile(r.at('d'), r.at('b')) })

fsTest('copyFile of a file onto itself leaves it whole', { setup: file('a'), run: (r) => r.fs.copyFile(r.at('a'), r.at('a')) })

fsTest('copyFile of 300 KB copies all of it', { setup: file('a', pattern(300 * 1024, 4)), run: (r) => r.fs.copyFile(r.at('a'), r.at('b')) })

fsTest('copyFile with COPYFILE_FICLONE copies, and with COPYFILE_FICLONE_FORCE does as Node does', {
  setup: file('a'),
  run: (r) => steps(r, [() => r.fs.copyFile(r.at('a'), r.at('b'), constants.COPYFILE_FICLONE), () => r.fs.copyFile(r.at('a'), r.at('c'), constants.COPYFILE_FICLONE_FORCE)]),
})

fsTest('copyFile with a null mode copies as with none', { setup: file('a'), run: (r) => r.fs.copyFile(r.at('a'), r.at('b'), null as unknown as number) })

// ---- access

fsTest('access of an existing file resolves undefined', {
  setup: all(file('f'), directory('d')),
  run: (r) =>
    steps(r, [
      () => r.fs.access(r.at('f')),
      () => r.fs.access(r.at('f'), constants.R_OK | constants.W_OK),
      () => r.fs.access(r.at('d'), constants.X_OK),
      () => r.fs.access(r.at('f'), null as unknown as number),
    ]),
})

fsTest('access of a missing file rejects ENOENT', { run: (r) => steps(r, [() => r.fs.access(r.at('missing')), () => r.fs.access(r.at('missing'), constants.R_OK)]) })

fsTest('access X_OK of a file without execute bits rejects EACCES, with them resolves', {
  setup: all(file('plain', TEXT, 0o644), file('tool', TEXT, 0o755)),
  run: (r) => steps(r, [() => r.fs.access(r.at('plain'), constants.X_OK), () => r.fs.access(r.at('tool'), constants.X_OK)]),
})

fsTest('access through a file rejects ENOTDIR', { setup: file('f'), run: (r) => r.fs.access(r.at('f/x')) })
