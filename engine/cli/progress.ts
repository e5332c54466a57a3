import cliProgress from 'cli-progress'
import type { ProgressFn } from '../types.js'
import { cliIo } from './io.js'

/** Work that finishes within this long shows no bar: a flash of a bar is noise. */
const SHOW_AFTER_MS = 1000
const BAR_WIDTH = 30

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
 * `amount` writes the done and total figures (bytes, counts…).
 */
export function progressBar(json: boolean, amount: (n: number) => string = String): Progress {
  const io = cliIo()
  if (json || !io.stderrIsTTY) return silent
  const started = Date.now()
  let bar: cliProgress.SingleBar | undefined
  let totalKnown = false

  const report: ProgressFn = (done, total, what) => {
    const payload = { what }
    if (!bar) {
      if (Date.now() - started < SHOW_AFTER_MS) return
      // no hidden cursor or disabled wrapping: Ctrl-C ends the process without a chance to restore them
      bar = new cliProgress.SingleBar({ format: render, stream: io.stderr, clearOnComplete: true, linewrap: true, barsize: BAR_WIDTH })
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

  // without a total there is nothing to fill, so the line shows the amount alone; the path
  // being worked on comes last and gives up its start when the terminal is narrow
  const render: cliProgress.GenericFormatter = (options, params, payload: { what: string }) => {
    const percent = `${Math.floor(params.progress * 100)}%`.padStart(4)
    const head = totalKnown ? `[${cliProgress.Format.BarFormat(params.progress, options)}] ${percent} ${amount(params.value)}/${amount(params.total)}` : amount(params.value)
    return `${head} ${shorten(payload.what, (io.columns || 80) - head.length - 2)}`
  }

  return {
    report,
    stop: () => {
      bar?.stop()
      bar = undefined
    },
  }
}

/** The end of `what` (a path's most telling part) in at most `width` characters. */
function shorten(what: string, width: number): string {
  if (what.length <= width) return what
  return width < 2 ? '' : `…${what.slice(what.length - width + 1)}`
}
