/**
 * Which backends work in this process, and which one a context gets.
 *
 * Availability is probed once per process and the reason kept. The automatic order is
 * `uring` → `linux` → `thread` → `js`, the first that can really open a context here;
 * `CAIO_IMPL` and a `default_implementation` file beside the entry point override it as
 * in the Python caio, with a warning (never a crash) for a value that is unknown or
 * unavailable.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import type { BackendName } from './engine'
import { completionPath, loadBinding } from './native'
import type { CompletionPath } from './native'

/** Every backend, in the order automatic selection tries them. */
export const BACKEND_NAMES: readonly BackendName[] = ['uring', 'linux', 'thread', 'js']

/** One row of {@link backends}. */
export interface BackendStatus {
  name: BackendName
  available: boolean
  /** Why the backend cannot be used here; present only when it is not available. */
  reason?: string
  /**
   * How an available native backend's completions reach the JS thread: `libuv` under
   * Node, `threadsafe-function` under Bun and Deno (see {@link CompletionPath}).
   */
  completions?: CompletionPath
}

let statuses: BackendStatus[] | undefined

/** Each backend, whether it works in this process, and if not, why. */
export function backends(): BackendStatus[] {
  statuses ??= BACKEND_NAMES.map(probe)
  return statuses.map((status) => ({ ...status }))
}

function probe(name: BackendName): BackendStatus {
  if (name === 'js') return { name, available: true }
  const loaded = loadBinding()
  if (!loaded.binding) return { name, available: false, reason: loaded.reason }
  const reason = loaded.binding.probe(name)
  return reason === null ? { name, available: true, completions: completionPath(loaded.binding) } : { name, available: false, reason }
}

/** The reason `name` is unavailable, or undefined if it is available. */
export function unavailableReason(name: BackendName): string | undefined {
  return backends().find((status) => status.name === name)?.reason
}

export function isBackendName(value: unknown): value is BackendName {
  return typeof value === 'string' && (BACKEND_NAMES as readonly string[]).includes(value)
}

const warned = new Set<string>()

function warnOnce(message: string): void {
  if (warned.has(message)) return
  warned.add(message)
  process.emitWarning(message, { code: 'CAIO_BACKEND' })
}

/** The backend named in `default_implementation` beside the package entry point, if any. */
function defaultImplementationFile(): string | undefined {
  let text: string
  try {
    text = readFileSync(join(__dirname, '..', 'default_implementation'), 'utf8')
  } catch {
    return undefined
  }
  for (const line of text.split('\n')) {
    const trimmed = line.trim()
    if (trimmed !== '' && !trimmed.startsWith('#')) return trimmed
  }
  return undefined
}

/**
 * The backends to try, best first, for a context that did not name one: the override
 * from `CAIO_IMPL` or `default_implementation` (if known and available) and then the
 * automatic order.
 */
export function candidates(): BackendName[] {
  const available = backends().filter((status) => status.available).map((status) => status.name)
  const override = overrideFromEnvironment()
  if (override === undefined) return available
  return [override, ...available.filter((name) => name !== override)]
}

function overrideFromEnvironment(): BackendName | undefined {
  const fromEnv = process.env.CAIO_IMPL
  const [source, value] = fromEnv !== undefined && fromEnv !== '' ? ['CAIO_IMPL', fromEnv] : ['default_implementation', defaultImplementationFile()]
  if (value === undefined) return undefined
  if (!isBackendName(value)) {
    warnOnce(`caio: ${source}=${JSON.stringify(value)} names no backend; valid ones are ${BACKEND_NAMES.join(', ')}. Choosing automatically.`)
    return undefined
  }
  const reason = unavailableReason(value)
  if (reason !== undefined) {
    warnOnce(`caio: ${source} asks for the ${value} backend, which is not available here: ${reason}. Choosing automatically.`)
    return undefined
  }
  return value
}

/** Warns that an automatically chosen backend failed to open, before the next is tried. */
export function warnFallback(name: BackendName, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error)
  warnOnce(`caio: the ${name} backend could not open a context (${message}); trying the next one.`)
}
