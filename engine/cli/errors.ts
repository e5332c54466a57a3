/** A failure the CLI reports as one line and exit status 1, after any output already printed. */
export class CliError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'CliError'
  }
}

/**
 * The command's outcome was reported elsewhere (the store's server ran the command line and its
 * output was relayed, or a foreground daemon printed its own): the run ends with this exit
 * status and prints nothing more.
 */
export class ReportedExit extends Error {
  constructor(readonly exitCode: number) {
    super(`exit status ${exitCode}`)
    this.name = 'ReportedExit'
  }
}
