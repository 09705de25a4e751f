#!/usr/bin/env node
// Runs every test suite of the package and prints one closing line, `N passed, N failed`:
//   1. the Rust crates' own tests (`cargo test --workspace`), without Node;
//   2. the ava suite in __test__/, once per backend, with CAIO_IMPL set to that backend;
//      and once more on uring with its completions on the path Bun and Deno use
//      (`uring/threadsafe-function`: CAIO_COMPLETIONS=threadsafe-function);
//   3. scripts/runtime-test.mjs under Node, Bun and Deno (`deno run -A`), where they are on
//      PATH: the core behaviours on every backend, in each runtime.
// A backend that is not available here is reported and not run, except under CI=true on
// Linux, where every backend must be available: a CI that silently tested fewer backends
// would be worse than a red one.
//
// Flags: --backends uring,thread   run the ava suite for these backends only
//        --no-cargo                skip the Rust tests
//        --no-runtimes             skip the runtime test under Node, Bun and Deno
//        --match "<ava pattern>"   passed to ava
import { spawn, spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const args = process.argv.slice(2)
const flag = (name) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}

let passed = 0
let failed = 0
const summary = []

function run(command, commandArgs, env, onLine) {
  return new Promise((resolve) => {
    const child = spawn(command, commandArgs, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    for (const stream of [child.stdout, child.stderr]) {
      let pending = ''
      stream.on('data', (chunk) => {
        const text = pending + chunk.toString()
        const lines = text.split('\n')
        pending = lines.pop()
        for (const line of lines) {
          ;(stream === child.stdout ? process.stdout : process.stderr).write(line + '\n')
          onLine(line)
        }
      })
      stream.on('end', () => pending && onLine(pending))
    }
    child.on('close', (code, signal) => resolve(code ?? (signal ? 1 : 0)))
  })
}

/** Runs a suite that prints TAP, and counts its `ok`/`not ok` lines (a non-zero exit with none failing counts one). */
async function runTap(label, command, commandArgs, env) {
  let suitePassed = 0
  let suiteFailed = 0
  const code = await run(command, commandArgs, env, (line) => {
    if (/^ok \d+/.test(line)) suitePassed++
    else if (/^not ok \d+/.test(line)) suiteFailed++
  })
  if (code !== 0 && suiteFailed === 0) suiteFailed = 1
  passed += suitePassed
  failed += suiteFailed
  summary.push(`${label}: ${suitePassed} passed, ${suiteFailed} failed`)
}

if (!args.includes('--no-cargo')) {
  let cargoPassed = 0
  let cargoFailed = 0
  const code = await run('cargo', ['test', '--workspace', '--color', 'never'], {}, (line) => {
    const m = /^test result: \w+\. (\d+) passed; (\d+) failed/.exec(line)
    if (m) {
      cargoPassed += Number(m[1])
      cargoFailed += Number(m[2])
    }
  })
  if (code !== 0 && cargoFailed === 0) cargoFailed = 1 // a build failure is a failure
  passed += cargoPassed
  failed += cargoFailed
  summary.push(`cargo test: ${cargoPassed} passed, ${cargoFailed} failed`)
}

const { backends } = require(join(root, 'dist', 'index.js'))
const statuses = backends()
// A run is a backend, or `backend/path` for a completion path other than the runtime's own.
const wanted = flag('--backends')?.split(',') ?? [...statuses.map((s) => s.name), 'uring/threadsafe-function']
const strict = process.env.CI === 'true' && process.platform === 'linux'
const testFiles = readdirSync(join(root, 'dist', '__test__'))
  .filter((name) => name.endsWith('.test.js'))
  .map((name) => join('dist', '__test__', name))

for (const runName of wanted) {
  const [name, path] = runName.split('/')
  const status = statuses.find((s) => s.name === name)
  if (!status || (path !== undefined && (name === 'js' || !['libuv', 'threadsafe-function'].includes(path)))) {
    console.error(`no backend named ${runName}`)
    failed++
    continue
  }
  if (!status.available) {
    summary.push(`${runName}: not available here (${status.reason})${strict ? ' — counted as a failure under CI' : ''}`)
    if (strict) failed++
    continue
  }
  const avaArgs = [join(root, 'node_modules', 'ava', 'entrypoints', 'cli.mjs'), '--tap', ...testFiles]
  const match = flag('--match')
  if (match) avaArgs.push('--match', match)
  const env = path === undefined ? { CAIO_IMPL: name } : { CAIO_IMPL: name, CAIO_COMPLETIONS: path }
  console.log(`# ---- ava suite with ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')}`)
  await runTap(`ava (${runName})`, process.execPath, avaArgs, env)
}

if (!args.includes('--no-runtimes')) {
  const runtimes = [
    { name: 'node', command: process.execPath, prefix: [] },
    { name: 'bun', command: 'bun', prefix: [] },
    { name: 'deno', command: 'deno', prefix: ['run', '-A'] },
  ]
  for (const { name, command, prefix } of runtimes) {
    if (name !== 'node' && spawnSync(command, ['--version'], { stdio: 'ignore' }).status !== 0) {
      summary.push(`runtime test (${name}): ${name} is not on PATH${strict ? ' — counted as a failure under CI' : ''}`)
      if (strict) failed++
      continue
    }
    console.log(`# ---- runtime test under ${name}`)
    await runTap(`runtime test (${name})`, command, [...prefix, join('scripts', 'runtime-test.mjs')], {})
  }
}

console.log('')
for (const line of summary) console.log(`# ${line}`)
console.log(`${passed} passed, ${failed} failed`)
process.exitCode = failed === 0 && passed > 0 ? 0 : 1
