/**
 * One `'abort'` listener per AbortSignal, however many operations share it: a listener
 * each would trip Node's MaxListenersExceededWarning at 11, and cost an add and a remove
 * per operation.
 */

interface Watched<T> {
  items: Set<T>
  listener: () => void
}

/** The operations waiting on each signal; `onAbort(item)` runs for each when it fires. */
export class AbortListeners<T> {
  readonly #watched = new WeakMap<AbortSignal, Watched<T>>()
  readonly #onAbort: (item: T) => void

  constructor(onAbort: (item: T) => void) {
    this.#onAbort = onAbort
  }

  /** Watches `signal` for `item`, which the caller checked is not aborted yet. */
  add(signal: AbortSignal, item: T): void {
    let watched = this.#watched.get(signal)
    if (watched === undefined) {
      const items = new Set<T>()
      const listener = (): void => {
        this.#watched.delete(signal)
        for (const waiting of items) this.#onAbort(waiting)
        items.clear()
      }
      signal.addEventListener('abort', listener, { once: true })
      watched = { items, listener }
      this.#watched.set(signal, watched)
    }
    watched.items.add(item)
  }

  /** `item` settled: stops watching for it, and removes the listener after the last one. */
  delete(signal: AbortSignal, item: T): void {
    const watched = this.#watched.get(signal)
    if (watched === undefined || !watched.items.delete(item) || watched.items.size > 0) return
    this.#watched.delete(signal)
    signal.removeEventListener('abort', watched.listener)
  }
}
