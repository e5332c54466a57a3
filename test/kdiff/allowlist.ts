import type { Op, Outcome } from './ops.js'
import type { Mode } from './sides.js'

/**
 * Kernel behaviours Strata deliberately does not match, each one decided on its own and saying
 * why. An op whose outcomes differ in a way an entry matches is logged, not failed; only
 * differences that leave both trees alike belong here (a change on one side only would show up
 * again in every later comparison). Empty: no such decision has been made.
 */
export interface Allowed {
  why: string
  matches(d: { mode: Mode; op: Op; kernel: Outcome; strata: Outcome }): boolean
}

export const ALLOWED: Allowed[] = []
