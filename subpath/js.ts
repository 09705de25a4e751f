/**
 * `caio/js`: the whole caio API, with a {@link Context} bound to the `js` backend.
 * Constructing one throws, with the reason, where that backend is not available.
 */
import { Context as AnyContext } from '../index'
import type { ContextOptions } from '../index'

export * from '../index'

/** A {@link AnyContext | Context} on the `js` backend. */
export class Context extends AnyContext {
  constructor(options?: Omit<ContextOptions, 'backend'>) {
    super({ ...options, backend: 'js' })
  }
}
