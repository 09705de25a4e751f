// caio/fs after a process drops root: a context made while root must not keep root's
// rights. A child process (fs-credentials-child.ts) makes a context on every backend as
// root, drops to nobody, and tries what nobody may not do; each context must be denied
// exactly as node:fs/promises is in the same child. Only as root, and only in the uring run
// of the suite (or with CAIO_IMPL unset): the child tests every backend itself.
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { backends } from '../index'
import { ALLOWED_CALL, CONTEXT_CONFIGS, DENIED_CALLS, NOBODY } from './fs-credentials-child'
import type { CredentialsReport } from './fs-credentials-child'
import { backendUnderTest, childEnv, describeChild, lastJsonLine, runChild } from './helpers'

const CHILD = join(__dirname, 'fs-credentials-child.js')

test('fs: the credentials child script is built beside this suite', (t) => {
  t.true(statSync(CHILD).isFile(), `${CHILD} is a file`)
})

const asRoot = process.getuid?.() === 0
const inThisRun = backendUnderTest() === undefined || backendUnderTest() === 'uring'

if (asRoot && inThisRun) {
  let report: Promise<CredentialsReport> | undefined
  const base = mkdtempSync(join(tmpdir(), 'caio-credentials-'))
  test.after.always(() => rmSync(base, { recursive: true, force: true }))

  /** The child's report, from one run shared by the tests below. */
  const childReport = (t: ExecutionContext): Promise<CredentialsReport> => {
    report ??= runChild(process.execPath, [CHILD, base], childEnv()).then((result) => {
      const parsed = lastJsonLine(result.stdout)
      if (result.code !== 0 || parsed === undefined) throw new Error(`the child failed: ${describeChild(result)}`)
      return parsed as unknown as CredentialsReport
    })
    return report.catch((error: unknown) => {
      t.fail(String(error))
      throw error
    })
  }

  test('fs: after dropping root, node:fs/promises is denied each call with EACCES', async (t) => {
    const { uid, gid, groups, results } = await childReport(t)
    t.deepEqual({ uid, gid }, { uid: NOBODY, gid: NOBODY }, 'the child runs as nobody')
    // Node's getgroups() always lists the effective group.
    t.true(groups.every((group) => group === NOBODY), `no supplementary group is left: ${groups.join(', ')}`)
    const node = results['node:fs/promises'] ?? {}
    for (const call of DENIED_CALLS) t.like(node[call], { error: { code: 'EACCES' } }, call)
    t.deepEqual(node[ALLOWED_CALL], { ok: 'mine' }, ALLOWED_CALL)
  })

  const available = new Map(backends().map((status) => [status.name, status.available]))
  for (const config of CONTEXT_CONFIGS) {
    test(`fs: after dropping root, a ${config.name} context made while root is denied as node:fs/promises is`, async (t) => {
      const { results, unavailable, contexts } = await childReport(t)
      if (available.get(config.backend) !== true) {
        t.true(config.name in unavailable, `${config.backend} is not available here, so the child could not make the context`)
        return
      }
      t.false(config.name in unavailable, `the child made the context: ${unavailable[config.name] ?? ''}`)
      t.is(contexts[config.name]?.backend, config.backend)
      if (config.options.sqpoll === true) t.true(contexts[config.name]?.sqpoll, 'the context polls its submission queue')
      const node = results['node:fs/promises'] ?? {}
      const mine = results[config.name] ?? {}
      for (const call of [...DENIED_CALLS, ALLOWED_CALL]) t.deepEqual(mine[call], node[call], call)
    })
  }
}
