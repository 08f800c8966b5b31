/**
 * Output streams whose reader went away (`peftctl logs <run> | head`, `peftctl run ... | head`): EPIPE
 * means nobody reads any more, not that anything failed. Node emits it as an 'error' event on
 * process.stdout/stderr, which without a listener kills the process with a stack trace; `run` would
 * then leave its trainers orphaned. With the listener a closed stream is only remembered (later
 * writes to it are dropped by Node), so `run` keeps driving its jobs and still writes status.json,
 * and `logs -f` stops following. Installed once, by main().
 */

let stdoutGone = false;
let installed = false;

export function watchOutputStreams(): void {
  if (installed) return;
  installed = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code !== "EPIPE") throw error; // any other write error stays as loud as before
      if (stream === process.stdout) stdoutGone = true;
    });
  }
}

/** True once the reader of stdout has closed it: printing more only costs time. */
export function stdoutClosed(): boolean {
  return stdoutGone;
}
