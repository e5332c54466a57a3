/**
 * STRATA_FUSE_STATS=1: the daemon counts the requests of each opcode and the time from taking
 * each to its reply, and writes the table to its log when the session ends. That is where a
 * workload's time goes in the daemon, per operation, without the cost of tracing each request.
 */
export const STATS = process.env.STRATA_FUSE_STATS === '1'

interface OpcodeStats { count: number; totalMs: number; maxMs: number }

export class RequestStats {
  private readonly byName = new Map<string, OpcodeStats>()

  /** A request of `name` taken at `startMs` (performance.now()) was answered now. */
  answered(name: string, startMs: number): void {
    const ms = performance.now() - startMs
    let s = this.byName.get(name)
    if (!s) this.byName.set(name, (s = { count: 0, totalMs: 0, maxMs: 0 }))
    s.count++
    s.totalMs += ms
    if (ms > s.maxMs) s.maxMs = ms
  }

  /** One line per opcode, most total time first. */
  report(): string {
    const rows = [...this.byName].sort((a, b) => b[1].totalMs - a[1].totalMs)
    const lines = rows.map(([name, s]) => `${name.padEnd(14)} ${String(s.count).padStart(8)} ${s.totalMs.toFixed(1).padStart(10)} ms ${(1000 * s.totalMs / s.count).toFixed(1).padStart(9)} µs mean ${(1000 * s.maxMs).toFixed(0).padStart(8)} µs max`)
    return ['fuse: requests (opcode, count, total, mean, max from taken to answered):', ...lines].join('\n') + '\n'
  }
}
