// The child of fs-credentials.test.ts, run as root with a fresh directory as its argument.
// It prepares a root-only directory and files for each implementation, opens a caio context
// on every backend while still root, drops to nobody (uid and gid 65534, no groups), then
// tries with each context and with node:fs/promises what nobody may not do, and prints
// what each call did as one JSON line on stdout.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs'
import * as nodeFs from 'node:fs/promises'
import { join } from 'node:path'

import { Context } from '../index'
import type { BackendName, ContextOptions } from '../index'

/** The contexts the child makes before dropping privileges, by the name it reports them under. */
export const CONTEXT_CONFIGS: ReadonlyArray<{ name: string; backend: BackendName; options: ContextOptions }> = [
  { name: 'uring', backend: 'uring', options: { backend: 'uring' } },
  { name: 'uring with sqpoll', backend: 'uring', options: { backend: 'uring', sqpoll: true } },
  { name: 'linux', backend: 'linux', options: { backend: 'linux' } },
  { name: 'thread', backend: 'thread', options: { backend: 'thread' } },
  { name: 'js', backend: 'js', options: { backend: 'js' } },
]

/** Who the child is once it has dropped root. */
export const NOBODY = 65534

/** The calls tried, each on an implementation's own copy of the tree (see {@link prepare}). */
export const DENIED_CALLS = [
  'readFile of a file in the root-only directory',
  'readFile of a root-only file',
  "open 'r+' of a root-only file",
  "open 'r' of the root-only directory",
  'writeFile of a new file in the root-only directory',
  'writeFile over a root-only file',
  'appendFile to a root-only file',
  'truncate of a root-only file',
  'unlink of a file in the root-only directory',
  'unlink of a file in a directory nobody may write',
  'rename of a file out of the root-only directory',
  'rename of a file in a directory nobody may write',
  'mkdir in the root-only directory',
  'mkdir recursive under the root-only directory',
  'mkdir recursive in a directory nobody may write',
  'stat of a file in the root-only directory',
  'lstat of a file in the root-only directory',
  'copyFile out of the root-only directory',
  'copyFile of a root-only file',
  'access of a file in the root-only directory',
  'access R_OK of a root-only file',
  'access W_OK of a root-only file',
  'rm of a file in the root-only directory',
  'rm of a file in a directory nobody may write',
] as const

/** A call nobody is allowed, to show the implementation still works after the drop. */
export const ALLOWED_CALL = 'writeFile, readFile and unlink in a directory anybody may write'

type Fs = Pick<typeof nodeFs, 'open' | 'readFile' | 'writeFile' | 'appendFile' | 'stat' | 'lstat' | 'truncate' | 'unlink' | 'rename' | 'mkdir' | 'rm' | 'copyFile' | 'access'>

/** How a call settled, with the implementation's directory shown as `<dir>`. */
export type CallOutcome = { ok: unknown } | { error: { code: unknown; errno: unknown; syscall: unknown; message: unknown; path: unknown; dest: unknown } }

/** What the child prints. */
export interface CredentialsReport {
  uid: number
  gid: number
  groups: number[]
  /** By implementation name (`node:fs/promises` and each of {@link CONTEXT_CONFIGS}): call → outcome. */
  results: Record<string, Record<string, CallOutcome>>
  /** By config name: why its context could not be made. */
  unavailable: Record<string, string>
  /** By config name: the backend the context runs on, and whether submission polling is on. */
  contexts: Record<string, { backend: string; sqpoll: boolean }>
}

/**
 * `dir` (0o755) holding `locked` (0o700) with `secret` (0o600) in it, `exposed` (0o600)
 * beside it, and `shared` (0o777): all root's.
 */
function prepare(dir: string): void {
  mkdirSync(join(dir, 'locked'), { recursive: true })
  chmodSync(dir, 0o755)
  chmodSync(join(dir, 'locked'), 0o700)
  writeFileSync(join(dir, 'locked', 'secret'), 'secret')
  chmodSync(join(dir, 'locked', 'secret'), 0o600)
  writeFileSync(join(dir, 'exposed'), 'exposed')
  chmodSync(join(dir, 'exposed'), 0o600)
  mkdirSync(join(dir, 'shared'))
  chmodSync(join(dir, 'shared'), 0o777)
}

function calls(fs: Fs, dir: string): Record<string, () => Promise<unknown>> {
  const at = (name: string): string => join(dir, name)
  const openAndClose = async (name: string, flags: string): Promise<void> => (await fs.open(at(name), flags)).close()
  const denied: Record<(typeof DENIED_CALLS)[number], () => Promise<unknown>> = {
    'readFile of a file in the root-only directory': () => fs.readFile(at('locked/secret'), 'utf8'),
    'readFile of a root-only file': () => fs.readFile(at('exposed'), 'utf8'),
    "open 'r+' of a root-only file": () => openAndClose('exposed', 'r+'),
    "open 'r' of the root-only directory": () => openAndClose('locked', 'r'),
    'writeFile of a new file in the root-only directory': () => fs.writeFile(at('locked/new'), 'x'),
    'writeFile over a root-only file': () => fs.writeFile(at('exposed'), 'x'),
    'appendFile to a root-only file': () => fs.appendFile(at('exposed'), 'x'),
    'truncate of a root-only file': () => fs.truncate(at('exposed')),
    'unlink of a file in the root-only directory': () => fs.unlink(at('locked/secret')),
    'unlink of a file in a directory nobody may write': () => fs.unlink(at('exposed')),
    'rename of a file out of the root-only directory': () => fs.rename(at('locked/secret'), at('shared/moved')),
    'rename of a file in a directory nobody may write': () => fs.rename(at('exposed'), at('shared/moved')),
    'mkdir in the root-only directory': () => fs.mkdir(at('locked/sub')),
    'mkdir recursive under the root-only directory': () => fs.mkdir(at('locked/sub/deeper'), { recursive: true }),
    'mkdir recursive in a directory nobody may write': () => fs.mkdir(at('new/deeper'), { recursive: true }),
    'stat of a file in the root-only directory': () => fs.stat(at('locked/secret')),
    'lstat of a file in the root-only directory': () => fs.lstat(at('locked/secret')),
    'copyFile out of the root-only directory': () => fs.copyFile(at('locked/secret'), at('shared/copy')),
    'copyFile of a root-only file': () => fs.copyFile(at('exposed'), at('shared/copy')),
    'access of a file in the root-only directory': () => fs.access(at('locked/secret')),
    'access R_OK of a root-only file': () => fs.access(at('exposed'), nodeFs.constants.R_OK),
    'access W_OK of a root-only file': () => fs.access(at('exposed'), nodeFs.constants.W_OK),
    'rm of a file in the root-only directory': () => fs.rm(at('locked/secret')),
    'rm of a file in a directory nobody may write': () => fs.rm(at('exposed')),
  }
  return {
    ...denied,
    [ALLOWED_CALL]: async () => {
      await fs.writeFile(at('shared/mine'), 'mine')
      const text = await fs.readFile(at('shared/mine'), 'utf8')
      await fs.unlink(at('shared/mine'))
      return text
    },
  }
}

async function outcome(call: () => Promise<unknown>, dir: string): Promise<CallOutcome> {
  const scrub = (value: unknown): unknown => (typeof value === 'string' ? value.split(dir).join('<dir>') : value)
  try {
    const value = await call()
    // Stats and Buffers are not what is compared here: only that the call went through.
    return { ok: typeof value === 'string' || value === undefined ? scrub(value) : typeof value }
  } catch (error) {
    const e = error as Record<string, unknown>
    return { error: { code: e.code, errno: e.errno, syscall: e.syscall, message: scrub(e.message), path: scrub(e.path), dest: scrub(e.dest) } }
  }
}

async function main(base: string): Promise<void> {
  const contexts: Array<{ name: string; fs: Fs; context?: Context }> = [{ name: 'node:fs/promises', fs: nodeFs }]
  const report: CredentialsReport = { uid: -1, gid: -1, groups: [], results: {}, unavailable: {}, contexts: {} }
  for (const config of CONTEXT_CONFIGS) {
    try {
      const context = new Context(config.options)
      report.contexts[config.name] = { backend: context.backend, sqpoll: context.sqpoll }
      contexts.push({ name: config.name, fs: context as unknown as Fs, context })
    } catch (error) {
      report.unavailable[config.name] = error instanceof Error ? error.message : String(error)
    }
  }
  const dirs = contexts.map((_, i) => join(base, `impl-${i}`))
  for (const dir of dirs) prepare(dir)
  chmodSync(base, 0o755)
  // One call each while still root, so that whatever a backend starts lazily (rings,
  // threads) exists before the drop.
  for (const [i, { fs }] of contexts.entries()) await fs.readFile(join(dirs[i] as string, 'exposed'))

  if (process.setgroups === undefined || process.setgid === undefined || process.setuid === undefined) throw new Error('no POSIX credentials here')
  process.setgroups([])
  process.setgid(NOBODY)
  process.setuid(NOBODY)
  report.uid = process.getuid?.() ?? -1
  report.gid = process.getgid?.() ?? -1
  report.groups = process.getgroups?.() ?? []

  for (const [i, { name, fs }] of contexts.entries()) {
    const dir = dirs[i] as string
    const results: Record<string, CallOutcome> = {}
    for (const [call, run] of Object.entries(calls(fs, dir))) results[call] = await outcome(run, dir)
    report.results[name] = results
  }
  for (const { context } of contexts) await context?.close()
  process.stdout.write(`${JSON.stringify(report)}\n`)
}

if (require.main === module) {
  const base = process.argv[2]
  if (base === undefined || process.getuid?.() !== 0) {
    process.stderr.write('usage, as root: node fs-credentials-child.js <fresh directory>\n')
    process.exitCode = 2
  } else {
    main(base).catch((error: unknown) => {
      process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
      process.exitCode = 1
    })
  }
}
