#!/usr/bin/env node
// The package.json caio is packed and published with: the repository's, plus
// `optionalDependencies` on every platform package under npm/ at caio's own version, so that
// npm installs the one prebuilt addon that fits the user's machine (each has os/cpu/libc).
//
// The repository's package.json does not list them itself: until they are on the registry,
// `npm ci` would refuse a lock file without them, and once they are, every developer's
// install would fetch an addon the local build makes anyway. (napi-rs's `napi pre-publish`
// adds them at publish time for the same reason.)
//
//   node scripts/release-manifest.mjs <path of the package.json to write>
// publish.yml runs it on its checkout before `npm publish`; test-pack.mjs packs with it.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** The repository's package.json with the platform packages as optionalDependencies. */
export function releaseManifest() {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  const optionalDependencies = {}
  for (const dir of readdirSync(join(root, 'npm')).sort()) {
    const platform = JSON.parse(readFileSync(join(root, 'npm', dir, 'package.json'), 'utf8'))
    if (platform.version !== pkg.version) throw new Error(`npm/${dir} is at ${platform.version}, caio at ${pkg.version}`)
    optionalDependencies[platform.name] = pkg.version
  }
  const out = {}
  for (const [key, value] of Object.entries(pkg)) {
    out[key] = value
    if (key === 'napi') out.optionalDependencies = optionalDependencies
  }
  out.optionalDependencies = optionalDependencies
  return out
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const target = process.argv[2]
  if (!target) {
    console.error('usage: node scripts/release-manifest.mjs <package.json to write>')
    process.exit(2)
  }
  const manifest = releaseManifest()
  writeFileSync(target, JSON.stringify(manifest, null, 2) + '\n')
  console.log(`release-manifest: ${target} lists ${Object.keys(manifest.optionalDependencies).join(', ')} at ${manifest.version}`)
}
