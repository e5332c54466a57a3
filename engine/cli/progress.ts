import cliProgress from 'cli-progress'
import type { ProgressFn } from '../types.js'

/** Work that finishes within this long shows no bar: a flash of a bar is noise. */
const SHOW_AFTER_MS = 1000
const WHAT_WIDTH = 40

export interface Progress {
  /** Handed to the store operation; cheap to call often. */
  readonly report: ProgressFn
  /** Removes the bar if one was shown; call when the operation ends, however it ends. */
  stop(): void
}

const silent: Progress = { report: () => {}, stop: () => {} }

/**
 * A progress bar on stderr that appears only once the work has lasted a second, and only when
 * stderr is a terminal and the output is not JSON, so scripts and pipes never see it.
 */
export function progressBar(json: boolean): Progress {
  if (json || !process.stderr.isTTY) return silent
  const started = Date.now()
  let bar: cliProgress.SingleBar | undefined
  let totalKnown = false

  const report: ProgressFn = (done, total, what) => {
    const payload = { what: shorten(what) }
    if (!bar) {
      if (Date.now() - started < SHOW_AFTER_MS) return
      bar = new cliProgress.SingleBar({ format: render, stream: process.stderr, clearOnComplete: true, hideCursor: true })
      totalKnown = total !== undefined
      bar.start(total ?? 0, done, payload)
      return
    }
    if (total !== undefined) {
      totalKnown = true
      bar.setTotal(total)
    }
    bar.update(done, payload)
  }

  // without a total there is nothing to fill, so the line shows the count alone
  const render: cliProgress.GenericFormatter = (options, params, payload: { what: string }) => {
    if (!totalKnown) return `${payload.what} ${params.value}`
    const percent = Math.floor(params.progress * 100)
    return `${payload.what} [${cliProgress.Format.BarFormat(params.progress, options)}] ${percent}% ${params.value}/${params.total}`
  }

  return {
    report,
    stop: () => {
      bar?.stop()
      bar = undefined
    },
  }
}

function shorten(what: string): string {
  return what.length <= WHAT_WIDTH ? what.padEnd(WHAT_WIDTH) : `…${what.slice(what.length - WHAT_WIDTH + 1)}`
}
