/** Summary statistics for repeated timings: the median is reported, min–max shows the spread. */
export interface Summary {
  n: number
  median: number
  min: number
  max: number
  q1: number
  q3: number
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN
  const pos = (sorted.length - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo)
}

export function summarize(samples: number[]): Summary {
  const s = [...samples].sort((a, b) => a - b)
  return { n: s.length, median: quantile(s, 0.5), min: s[0] ?? NaN, max: s[s.length - 1] ?? NaN, q1: quantile(s, 0.25), q3: quantile(s, 0.75) }
}

/** Milliseconds taken by `fn`, measured with the monotonic clock. */
export async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint()
  await fn()
  return Number(process.hrtime.bigint() - t0) / 1e6
}

/** A number with a sensible count of significant digits for a table cell. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x)
  const a = Math.abs(x)
  if (a >= 1000) return x.toFixed(0)
  if (a >= 100) return x.toFixed(1)
  if (a >= 10) return x.toFixed(2)
  return x.toFixed(3)
}

/** "median (min–max)" */
export function fmtSummary(s: Summary): string {
  return s.n > 1 ? `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})` : fmt(s.median)
}

/** "median [q1–q3]": for noisy samples where a few outliers would make min–max say little. */
export function fmtIqr(s: Summary): string {
  return s.n > 1 ? `${fmt(s.median)} [${fmt(s.q1)}–${fmt(s.q3)}]` : fmt(s.median)
}
