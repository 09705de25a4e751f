#!/usr/bin/env node
// The packaging test: what `npm install caio` gives a user, checked on this machine.
//
//   1. npm/<platform>/ holds one package per napi target, at caio's version, each listed in
//      the optionalDependencies caio is published with (scripts/release-manifest.mjs) under
//      the name the generated loader (binding.js) requires;
//   2. builds the release addon and the TypeScript (`npm run build`; --no-build skips it);
//   3. packs caio (with its release package.json) and this platform's caio-<platform>
//      package into tarballs;
//   4. installs both tarballs into a fresh project with `npm install --offline`, an empty
//      cache and an unreachable registry (no network), and no cargo/rustc on PATH;
//   5. there, with no Rust on PATH: a CommonJS script, an ES module, and TypeScript (.cts and
//      .mts, type-checked by tsc against the installed .d.ts and .d.mts, then run) each do a
//      write/read round trip on the automatic backend and through the subpath exports;
//   6. a project with caio alone (its platform package left out), and one whose platform
//      package is broken: importing works, backends() says why the native backends are
//      unavailable, and I/O falls back to the js backend.
//
// Output is TAP-like (`ok N - …` / `not ok N - …`, details as `#` lines), which .ci/run
// counts; the exit code is non-zero if anything failed.
//
// Flags: --no-build   use the addon and dist/ as they are
//        --keep       keep the temporary directory and print where it is
import { spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

import { releaseManifest } from './release-manifest.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
const keep = args.includes('--keep')
const mainPackage = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

let count = 0
let failures = 0
function report(ok, description, details = '') {
  count++
  if (!ok) failures++
  console.log(`${ok ? 'ok' : 'not ok'} ${count} - ${description}`)
  if (details && (!ok || process.env.CAIO_PACK_VERBOSE)) {
    for (const line of String(details).trimEnd().split('\n')) console.log(`#   ${line}`)
  }
  return ok
}
function note(text) {
  for (const line of String(text).trimEnd().split('\n')) console.log(`# ${line}`)
}
/** Runs a step that throws on failure; reports it either way. */
function step(description, fn) {
  try {
    const details = fn()
    return report(true, typeof details === 'string' && details !== '' ? `${description}: ${details.split('\n')[0]}` : description)
  } catch (error) {
    return report(false, description, error instanceof Error ? (error.details ?? error.stack ?? error.message) : String(error))
  }
}
function fail(message, details) {
  const error = new Error(message)
  error.details = details === undefined ? message : `${message}\n${details}`
  throw error
}

// ---- the platform this machine needs, named as napi-rs names it ----------------------------

const TRIPLES = {
  'x86_64-unknown-linux-gnu': { platform: 'linux-x64-gnu', os: 'linux', cpu: 'x64', libc: 'glibc' },
  'aarch64-unknown-linux-gnu': { platform: 'linux-arm64-gnu', os: 'linux', cpu: 'arm64', libc: 'glibc' },
  'x86_64-unknown-linux-musl': { platform: 'linux-x64-musl', os: 'linux', cpu: 'x64', libc: 'musl' },
  'aarch64-unknown-linux-musl': { platform: 'linux-arm64-musl', os: 'linux', cpu: 'arm64', libc: 'musl' },
  'x86_64-apple-darwin': { platform: 'darwin-x64', os: 'darwin', cpu: 'x64' },
  'aarch64-apple-darwin': { platform: 'darwin-arm64', os: 'darwin', cpu: 'arm64' },
  'x86_64-pc-windows-msvc': { platform: 'win32-x64-msvc', os: 'win32', cpu: 'x64' },
}

function hostPlatform() {
  const base = `${process.platform}-${process.arch}`
  if (process.platform === 'linux') {
    const glibc = process.report?.getReport?.().header?.glibcVersionRuntime
    return `${base}-${glibc ? 'gnu' : 'musl'}`
  }
  return process.platform === 'win32' ? `${base}-msvc` : base
}
const platform = hostPlatform()
const platformPackage = `caio-${platform}`
const addonFile = `caio.${platform}.node`

// ---- running things -------------------------------------------------------------------------

function npmCli() {
  const candidates = [
    process.env.npm_execpath,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
    join(dirname(process.execPath), 'node_modules', 'npm', 'bin', 'npm-cli.js'),
  ]
  const found = candidates.find((path) => path && /npm-cli\.js$/.test(path) && existsSync(path))
  if (!found) throw new Error(`cannot find npm-cli.js (looked at ${candidates.filter(Boolean).join(', ')})`)
  return found
}

function run(command, commandArgs, options = {}) {
  const result = spawnSync(command, commandArgs, { encoding: 'utf8', maxBuffer: 64 << 20, ...options })
  const output = `$ ${[command, ...commandArgs].join(' ')}\n${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? String(result.error) : ''}`
  if (result.status !== 0) fail(`exit ${result.status ?? result.signal}: ${[command, ...commandArgs].join(' ')}`, output)
  return result.stdout ?? ''
}

const RUST_TOOLS = ['cargo', 'rustc', 'rustup'].flatMap((name) => (process.platform === 'win32' ? [`${name}.exe`, name] : [name]))
const hasRust = (dir) => RUST_TOOLS.some((tool) => existsSync(join(dir, tool)))

/** An environment for a user's machine without Rust, without network, without our npm config. */
function userEnvironment(work) {
  const bin = join(work, 'bin')
  mkdirSync(bin, { recursive: true })
  // node's own directory may hold cargo too (a shared /usr/local/bin); give node a clean one.
  const nodeName = process.platform === 'win32' ? 'node.exe' : 'node'
  try {
    symlinkSync(process.execPath, join(bin, nodeName))
  } catch {
    copyFileSync(process.execPath, join(bin, nodeName))
    chmodSync(join(bin, nodeName), 0o755)
  }
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((dir) => dir !== '' && !hasRust(dir))
  const env = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(npm_|CARGO|RUSTUP|RUSTC|RUSTFLAGS|NAPI_RS_|CAIO_)/i.test(key) || key.toUpperCase() === 'PATH') continue
    env[key] = value
  }
  const npmrc = join(work, 'npmrc')
  writeFileSync(npmrc, '')
  // The scripts' data files land under the work directory, which is removed at the end.
  const temp = join(work, 'tmp')
  mkdirSync(temp)
  return {
    ...env,
    TMPDIR: temp,
    TMP: temp,
    TEMP: temp,
    PATH: [bin, ...dirs].join(delimiter),
    npm_config_userconfig: npmrc,
    npm_config_cache: join(work, 'npm-cache'),
    // Nothing listens here: any attempt to reach a registry fails at once.
    npm_config_registry: 'http://127.0.0.1:9/',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
  }
}

// ---- the checks -----------------------------------------------------------------------------

console.log(`# caio ${mainPackage.version}: packaging test for ${platform} on Node ${process.version}`)
const work = mkdtempSync(join(tmpdir(), 'caio-pack-'))
const tarballs = join(work, 'tarballs')
mkdirSync(tarballs)

step(`npm/ holds one package per napi target, at caio ${mainPackage.version}, each an optional dependency the loader requires`, () => {
  const problems = []
  const targets = mainPackage.napi?.targets ?? []
  if (mainPackage.optionalDependencies !== undefined) {
    problems.push("package.json lists optionalDependencies: `npm ci` fails while they are unpublished; scripts/release-manifest.mjs adds them when packing")
  }
  const optional = releaseManifest().optionalDependencies
  const loader = existsSync(join(root, 'binding.js')) ? readFileSync(join(root, 'binding.js'), 'utf8') : undefined
  const expected = new Set()
  for (const triple of targets) {
    const want = TRIPLES[triple]
    if (!want) {
      problems.push(`napi.targets has ${triple}, which this test does not know`)
      continue
    }
    const name = `caio-${want.platform}`
    expected.add(name)
    const file = join(root, 'npm', want.platform, 'package.json')
    if (!existsSync(file)) {
      problems.push(`missing ${file}`)
      continue
    }
    const pkg = JSON.parse(readFileSync(file, 'utf8'))
    const check = (what, actual, wanted) => {
      if (JSON.stringify(actual) !== JSON.stringify(wanted)) problems.push(`${name}: ${what} is ${JSON.stringify(actual)}, expected ${JSON.stringify(wanted)}`)
    }
    check('name', pkg.name, name)
    check('version', pkg.version, mainPackage.version)
    check('os', pkg.os, [want.os])
    check('cpu', pkg.cpu, [want.cpu])
    check('libc', pkg.libc, want.libc ? [want.libc] : undefined)
    check('main', pkg.main, `caio.${want.platform}.node`)
    check('files', pkg.files, [`caio.${want.platform}.node`])
    check('license', pkg.license, mainPackage.license)
    check(`optionalDependencies[${name}]`, optional[name], mainPackage.version)
    if (loader !== undefined && !loader.includes(`require('${name}')`)) problems.push(`binding.js does not require('${name}')`)
  }
  for (const name of Object.keys(optional)) if (!expected.has(name)) problems.push(`optionalDependencies has ${name}, which is no napi target`)
  for (const dir of readdirSync(join(root, 'npm'))) if (!expected.has(`caio-${dir}`)) problems.push(`npm/${dir} is no napi target`)
  if (problems.length > 0) fail(`${problems.length} problem(s)`, problems.join('\n'))
  return `${targets.length} targets`
})

if (!args.includes('--no-build')) {
  step('npm run build (release addon, TypeScript, ES-module entry points)', () => {
    run(process.execPath, [npmCli(), 'run', 'build'], { cwd: root })
  })
}

const builtAddon = join(root, addonFile)
let mainTarball
let platformTarball
step(`npm pack caio (with the package.json it is published with)`, () => {
  // What `npm pack` takes from the repository, staged beside the release package.json.
  const [listed] = JSON.parse(run(process.execPath, [npmCli(), 'pack', '--dry-run', '--json'], { cwd: root }))
  const stage = join(work, 'stage', 'caio')
  for (const { path } of listed.files) {
    mkdirSync(dirname(join(stage, path)), { recursive: true })
    copyFileSync(join(root, path), join(stage, path))
  }
  const manifest = releaseManifest()
  writeFileSync(join(stage, 'package.json'), JSON.stringify(manifest, null, 2) + '\n')
  const [info] = JSON.parse(run(process.execPath, [npmCli(), 'pack', '--json', '--pack-destination', tarballs], { cwd: stage }))
  mainTarball = join(tarballs, info.filename)
  const files = info.files.map((file) => file.path)
  const required = ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'binding.js', 'dist/index.js', 'dist/index.d.ts', 'dist/index.mjs', 'dist/index.d.mts']
  for (const name of ['uring', 'linux', 'thread', 'js']) required.push(`dist/subpath/${name}.js`, `dist/subpath/${name}.d.ts`, `dist/subpath/${name}.mjs`, `dist/subpath/${name}.d.mts`)
  const missing = required.filter((file) => !files.includes(file))
  const unwanted = files.filter((file) => file.endsWith('.node') || /^(crates|target|__test__|bench|scripts|npm|src)\//.test(file) || /^dist\/(__test__|bench|examples|scripts)\//.test(file) || file.endsWith('.ts') && !file.endsWith('.d.ts') && !file.endsWith('.d.mts'))
  if (missing.length > 0 || unwanted.length > 0) fail('wrong tarball contents', `missing: ${missing.join(', ') || '-'}\nunwanted: ${unwanted.join(', ') || '-'}\nfiles: ${files.join(' ')}`)
  return `${info.filename}, ${files.length} files, ${info.size} bytes packed, ${info.unpackedSize} unpacked, no native addon inside, optionalDependencies ${Object.keys(manifest.optionalDependencies).join(' ')}`
})

step(`npm pack ${platformPackage} (with the release ${addonFile})`, () => {
  if (!existsSync(builtAddon)) fail(`${builtAddon} does not exist: build first`)
  const stage = join(work, 'stage', platform)
  mkdirSync(stage, { recursive: true })
  for (const file of readdirSync(join(root, 'npm', platform))) copyFileSync(join(root, 'npm', platform, file), join(stage, file))
  copyFileSync(builtAddon, join(stage, addonFile))
  const [info] = JSON.parse(run(process.execPath, [npmCli(), 'pack', '--json', '--pack-destination', tarballs], { cwd: stage }))
  platformTarball = join(tarballs, info.filename)
  const files = info.files.map((file) => file.path).sort()
  const wanted = [addonFile, 'README.md', 'package.json'].sort()
  if (JSON.stringify(files) !== JSON.stringify(wanted)) fail('wrong tarball contents', `files: ${files.join(' ')}`)
  return `${info.filename}, ${info.size} bytes packed, addon ${statSync(builtAddon).size} bytes`
})

const env = userEnvironment(work)
const npmArgs = (...rest) => [npmCli(), ...rest]

step('the user environment has no cargo, rustc or rustup on PATH', () => {
  const offenders = env.PATH.split(delimiter).filter(hasRust)
  if (offenders.length > 0) fail(`Rust found in ${offenders.join(', ')}`)
  const probe = spawnSync('cargo', ['--version'], { env, encoding: 'utf8' })
  if (probe.status === 0) fail('cargo --version ran', probe.stdout)
  return `PATH=${env.PATH}`
})

function makeProject(name) {
  const dir = join(work, name)
  mkdirSync(dir)
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `caio-pack-${name}`, version: '1.0.0', private: true }, null, 2) + '\n')
  return dir
}

function install(dir, tarballList) {
  run(process.execPath, npmArgs('install', '--offline', '--no-audit', '--no-fund', ...tarballList), { cwd: dir, env })
}

// A data file per script; each script checks its own round trip and prints a JSON report.
const roundTrip = {
  cjs: `'use strict'
const assert = require('node:assert/strict')
const { openSync, closeSync, mkdtempSync } = require('node:fs')
const { tmpdir } = require('node:os')
const { join } = require('node:path')
const caio = require('caio')
const { Context, backends } = caio

async function main() {
  const fd = openSync(join(mkdtempSync(join(tmpdir(), 'caio-cjs-')), 'data'), 'w+')
  const ctx = new Context()
  assert.equal(await ctx.write('Hello from CommonJS', fd, 0), 19)
  assert.equal((await ctx.read(64, fd, 0)).toString(), 'Hello from CommonJS')
  await ctx.fdsync(fd)
  await ctx.close()
  const subpaths = {}
  for (const name of ['uring', 'linux', 'thread', 'js']) {
    const sub = require('caio/' + name)
    const row = backends().find((status) => status.name === name)
    if (!row.available) {
      assert.throws(() => new sub.Context(), (error) => error.message.includes(row.reason))
      subpaths[name] = 'unavailable'
      continue
    }
    const bound = new sub.Context()
    assert.equal(bound.backend, name)
    await bound.write(name, fd, 100)
    assert.equal((await bound.read(name.length, fd, 100)).toString(), name)
    await bound.close()
    subpaths[name] = 'ok'
  }
  closeSync(fd)
  const addons = Object.keys(require.cache).filter((file) => file.endsWith('.node'))
  console.log(JSON.stringify({ backend: ctx.backend, backends: backends(), subpaths, addons }))
}
main().catch((error) => { console.error(error); process.exitCode = 1 })
`,
  esm: `import assert from 'node:assert/strict'
import { openSync, closeSync, mkdtempSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import caio, { Context, backends, alignedBuffer, AbortError, DEFAULT_MAX_REQUESTS } from 'caio'
import { Context as JsContext } from 'caio/js'
import * as threadApi from 'caio/thread'

const require = createRequire(import.meta.url)
assert.equal(require('caio').Context, Context, 'import and require give the same module instance')
assert.equal(caio.Context, Context, 'the default export is the CommonJS module')
assert.equal(typeof alignedBuffer, 'function')
assert.equal(typeof AbortError, 'function')
assert.equal(DEFAULT_MAX_REQUESTS, 512)
assert.equal(threadApi.backends, backends, 'caio/thread re-exports the same backends()')

const fd = openSync(join(mkdtempSync(join(tmpdir(), 'caio-esm-')), 'data'), 'w+')
const ctx = new Context()
assert.equal(await ctx.write('Hello from ESM', fd, 0), 14)
assert.equal((await ctx.read(64, fd, 0)).toString(), 'Hello from ESM')
await (Symbol.asyncDispose ? ctx[Symbol.asyncDispose]() : ctx.close())
const js = new JsContext()
assert.equal(js.backend, 'js')
assert.equal((await js.read(5, fd, 6)).toString(), 'from ')
await js.close()
closeSync(fd)
const addons = Object.keys(require.cache).filter((file) => file.endsWith('.node'))
console.log(JSON.stringify({ backend: ctx.backend, backends: backends(), addons }))
`,
  mts: `import assert from 'node:assert/strict'
import { openSync, closeSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Context, backends, type BackendName, type BackendStatus, type BatchOp, type ContextOptions } from 'caio'
import { Context as ThreadContext } from 'caio/thread'

const options: ContextOptions = { maxRequests: 64 }
// @ts-expect-error: no such backend; the installed types must say so
const wrong: ContextOptions = { backend: 'fast' }
void wrong
// @ts-expect-error: caio/thread's Context takes no backend
void (() => new ThreadContext({ backend: 'js' }))

const statuses: BackendStatus[] = backends()
const fd = openSync(join(mkdtempSync(join(tmpdir(), 'caio-mts-')), 'data'), 'w+')
const ctx = new Context(options)
const name: BackendName = ctx.backend
const written: number = await ctx.write(new TextEncoder().encode('typed ESM'), fd, 0n)
assert.equal(written, 9)
const back: Buffer = await ctx.read(9, fd, 0)
assert.equal(back.toString(), 'typed ESM')
const target = new Uint8Array(5)
const ops: BatchOp[] = [{ op: 'read', fd, offset: 6, buffer: target }, { op: 'fdsync', fd }]
const results: Array<number | Error> = await ctx.submit(ops)
assert.deepEqual(results, [3, 0])
await ctx.close()
closeSync(fd)
console.log(JSON.stringify({ backend: name, backends: statuses }))
`,
  cts: `import assert = require('node:assert/strict')
import fs = require('node:fs')
import os = require('node:os')
import path = require('node:path')
import caio = require('caio')
import js = require('caio/js')

async function main(): Promise<void> {
  const fd = fs.openSync(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'caio-cts-')), 'data'), 'w+')
  const ctx: caio.Context = new caio.Context()
  assert.equal(await ctx.write('typed CommonJS', fd, 0), 14)
  const bytes: Buffer = await ctx.read(64, fd, 0)
  assert.equal(bytes.toString(), 'typed CommonJS')
  // @ts-expect-error: read takes (nbytes, fd, offset)
  void (() => ctx.read(fd, 'x', 0))
  await ctx.close()
  const other = new js.Context()
  assert.equal(other.backend, 'js')
  await other.close()
  fs.closeSync(fd)
  const statuses: caio.BackendStatus[] = caio.backends()
  console.log(JSON.stringify({ backend: ctx.backend, backends: statuses }))
}
main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
`,
}

/** What the round trip must show here: a native backend, loaded from the platform package. */
function expectNative(report, what) {
  const native = report.backends.filter((status) => status.name !== 'js')
  if (process.platform === 'win32') {
    // No native backend on Windows yet: the addon loads, and says why each is unavailable.
    const thread = native.find((status) => status.name === 'thread')
    if (thread?.available !== false || !thread.reason) fail(`${what}: on Windows thread should be unavailable with a reason`, JSON.stringify(report))
    if (report.backend !== 'js') fail(`${what}: expected the js backend on Windows, got ${report.backend}`)
  } else if (report.backend === 'js') {
    fail(`${what}: the automatic backend is js, so no native backend loaded`, JSON.stringify(report.backends, null, 2))
  }
  if (report.addons !== undefined) {
    const fromPackage = report.addons.some((file) => file.replaceAll('\\', '/').endsWith(`node_modules/${platformPackage}/${addonFile}`))
    if (!fromPackage) fail(`${what}: the addon did not come from node_modules/${platformPackage}`, `loaded: ${report.addons.join(', ') || 'none'}`)
  }
  const unavailable = native.filter((status) => !status.available).map((status) => `${status.name}: ${status.reason}`)
  return `backend ${report.backend}${unavailable.length > 0 ? ` (unavailable: ${unavailable.join('; ')})` : ''}`
}

function runScript(dir, file) {
  const stdout = run(process.execPath, [file], { cwd: dir, env })
  const last = stdout.trim().split('\n').at(-1) ?? ''
  try {
    return JSON.parse(last)
  } catch {
    return fail(`${file} printed no report`, stdout)
  }
}

const project = makeProject('project')
const installed = step(`npm install --offline caio + ${platformPackage} tarballs into a fresh project`, () => {
  if (!mainTarball || !platformTarball) fail('no tarballs to install')
  install(project, [mainTarball, platformTarball])
  const caioDir = join(project, 'node_modules', 'caio')
  const nodeFiles = readdirSync(caioDir).filter((file) => file.endsWith('.node'))
  if (nodeFiles.length > 0) fail(`node_modules/caio holds ${nodeFiles.join(', ')}`)
  if (!existsSync(join(project, 'node_modules', platformPackage, addonFile))) fail(`node_modules/${platformPackage}/${addonFile} is missing`)
  const others = readdirSync(join(project, 'node_modules')).filter((name) => name.startsWith('caio-') && name !== platformPackage)
  return `node_modules: caio, ${platformPackage}${others.length > 0 ? `, ${others.join(', ')}` : ''}`
})

if (installed) {
  writeFileSync(join(project, 'check.cjs'), roundTrip.cjs)
  writeFileSync(join(project, 'check.mjs'), roundTrip.esm)
  step('CommonJS: require("caio") and require("caio/<backend>") round trips', () => {
    const report = runScript(project, 'check.cjs')
    return `${expectNative(report, 'check.cjs')}; subpaths ${JSON.stringify(report.subpaths)}`
  })
  step('ES module: import from "caio", "caio/js", "caio/thread" round trips, one instance with require()', () => {
    return expectNative(runScript(project, 'check.mjs'), 'check.mjs')
  })

  const tsDir = join(project, 'ts')
  mkdirSync(tsDir)
  writeFileSync(join(tsDir, 'check.mts'), roundTrip.mts)
  writeFileSync(join(tsDir, 'check.cts'), roundTrip.cts)
  writeFileSync(
    join(tsDir, 'tsconfig.json'),
    JSON.stringify(
      {
        compilerOptions: {
          target: 'es2022',
          lib: ['es2022'],
          module: 'nodenext',
          moduleResolution: 'nodenext',
          strict: true,
          outDir: 'out',
          // The repo's @types/node: a user has their own; nothing is fetched.
          typeRoots: [join(root, 'node_modules', '@types')],
          types: ['node'],
          skipLibCheck: false,
        },
        files: ['check.mts', 'check.cts'],
      },
      null,
      2,
    ) + '\n',
  )
  const typeChecked = step('TypeScript: tsc type-checks .mts and .cts against the installed .d.mts/.d.ts (strict, nodenext, skipLibCheck off)', () => {
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
    run(process.execPath, [tsc, '-p', tsDir], { cwd: tsDir, env })
    const version = run(process.execPath, [tsc, '--version'], { cwd: tsDir, env }).trim()
    return version
  })
  if (typeChecked) {
    step('TypeScript: the compiled ES module runs its round trip', () => expectNative(runScript(tsDir, join('out', 'check.mjs')), 'check.mjs'))
    step('TypeScript: the compiled CommonJS module runs its round trip', () => expectNative(runScript(tsDir, join('out', 'check.cjs')), 'check.cjs'))
  }
}

// Without the platform package, and with a broken one: importing works, I/O falls to js.
const fallbackScript = `'use strict'
const assert = require('node:assert/strict')
const { openSync, mkdtempSync } = require('node:fs')
const { tmpdir } = require('node:os')
const { join } = require('node:path')
import('caio').then(async ({ Context, backends }) => {
  const fd = openSync(join(mkdtempSync(join(tmpdir(), 'caio-fallback-')), 'data'), 'w+')
  const ctx = new Context()
  await ctx.write('still works', fd, 0)
  assert.equal((await ctx.read(64, fd, 0)).toString(), 'still works')
  await ctx.close()
  console.log(JSON.stringify({ backend: ctx.backend, backends: backends() }))
}).catch((error) => { console.error(error); process.exitCode = 1 })
`
function expectFallback(report, pattern) {
  if (report.backend !== 'js') fail(`expected the js backend, got ${report.backend}`)
  const problems = report.backends
    .filter((status) => status.name !== 'js')
    .filter((status) => status.available || !pattern.test(status.reason ?? ''))
    .map((status) => `${status.name}: available=${status.available} reason=${status.reason}`)
  if (problems.length > 0) fail(`reasons do not match ${pattern}`, problems.join('\n'))
  return report.backends.find((status) => status.name === 'thread')?.reason
}

const bare = makeProject('without-addon')
const bareInstalled = step(`npm install --offline caio alone (no ${platformPackage}: npm --omit=optional, or an unsupported platform)`, () => {
  if (!mainTarball) fail('no tarball to install')
  install(bare, [mainTarball])
  const others = readdirSync(join(bare, 'node_modules')).filter((name) => name.startsWith('caio-'))
  if (others.length > 0) fail(`unexpected ${others.join(', ')} in node_modules`)
})
if (bareInstalled) {
  writeFileSync(join(bare, 'check.cjs'), fallbackScript)
  step('without the platform package: import works, backends() names the missing package, I/O uses js', () => {
    return expectFallback(runScript(bare, 'check.cjs'), new RegExp(`not installed.*${platformPackage}`))
  })
  step('on a platform with no prebuilt addon (process.arch made s390x): import works, backends() says so, I/O uses js', () => {
    writeFileSync(join(bare, 'as-s390x.cjs'), "Object.defineProperty(process, 'arch', { value: 's390x' })\n")
    const stdout = run(process.execPath, ['--require', './as-s390x.cjs', 'check.cjs'], { cwd: bare, env })
    return expectFallback(JSON.parse(stdout.trim().split('\n').at(-1) ?? ''), /no prebuilt native addon for \w+-s390x/)
  })
  step('with a broken platform package: import works, backends() says the addon failed to load, I/O uses js', () => {
    const broken = join(bare, 'node_modules', platformPackage)
    mkdirSync(broken, { recursive: true })
    writeFileSync(join(broken, 'package.json'), JSON.stringify({ name: platformPackage, version: mainPackage.version, main: addonFile }))
    writeFileSync(join(broken, addonFile), 'this is not a shared library\n')
    try {
      return expectFallback(runScript(bare, 'check.cjs'), /failed to load/)
    } finally {
      rmSync(broken, { recursive: true, force: true })
    }
  })
}

if (keep) note(`kept ${work}`)
else rmSync(work, { recursive: true, force: true })
console.log(`1..${count}`)
console.log(`# test-pack: ${count - failures} passed, ${failures} failed`)
process.exitCode = failures === 0 ? 0 : 1
