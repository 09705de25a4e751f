/** Small statistics over measured figures. */

/** The median of `values` (the mean of the middle two for an even count); NaN if empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** The `p`-th percentile (0..100) of ascending `sorted`, nearest rank; NaN if empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!
}

export function mean(values: ArrayLike<number>): number {
  if (values.length === 0) return Number.NaN
  let sum = 0
  for (let i = 0; i < values.length; i++) sum += values[i]!
  return sum / values.length
}

/** (max − min) / median: how far the rounds disagree. */
export function spread(values: readonly number[]): number {
  if (values.length < 2) return Number.NaN
  return (Math.max(...values) - Math.min(...values)) / median(values)
}
