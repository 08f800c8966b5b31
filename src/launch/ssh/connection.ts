/**
 * Running things on one SSH host: a command (ssh), a copy (rsync), a long-lived stream (ssh with its
 * stdout read as it comes). Never throws for a failure on the far side or of the link: callers get
 * `{ ok: false, ... }` and decide (a host that does not answer is a lost host, not a crash).
 */
import { execa, execaSync, type ResultPromise } from "execa";
import { rsyncArgs, sshArgs, type ConnectionOptions, type SshTarget } from "./commands.ts";

export type CallResult = { ok: boolean; exitCode: number | null; stdout: string; stderr: string };

/** ssh's own exit status for "could not connect or the connection broke". */
export const SSH_CONNECTION_FAILED = 255;
/** rsync's "some files vanished before they could be transferred" (checkpoint retention racing a pull). */
const RSYNC_VANISHED = 24;

export class SshConnection {
  constructor(
    readonly target: SshTarget,
    private readonly options: ConnectionOptions = {},
  ) {}

  /** Runs argv on the host (quoted for its shell). */
  async call(argv: readonly string[], timeoutMs = 60_000): Promise<CallResult> {
    const result = await execa("ssh", sshArgs(this.target, argv, this.options), { reject: false, timeout: timeoutMs, stdin: "ignore" });
    return {
      ok: result.exitCode === 0,
      exitCode: typeof result.exitCode === "number" ? result.exitCode : null,
      stdout: String(result.stdout ?? ""),
      stderr: String(result.stderr ?? "") || (result.timedOut ? `no answer within ${Math.round(timeoutMs / 1000)} s` : ""),
    };
  }

  /** call(), blocking: for the executor's synchronous methods (signalRecorded, recordedAlive) and the first inventory. */
  callSync(argv: readonly string[], timeoutMs = 30_000): CallResult {
    const result = execaSync("ssh", sshArgs(this.target, argv, this.options), { reject: false, timeout: timeoutMs, stdin: "ignore" });
    return {
      ok: result.exitCode === 0,
      exitCode: typeof result.exitCode === "number" ? result.exitCode : null,
      stdout: String(result.stdout ?? ""),
      stderr: String(result.stderr ?? "") || (result.timedOut ? `no answer within ${Math.round(timeoutMs / 1000)} s` : ""),
    };
  }

  /** A long-running remote command whose stdout the caller reads (events followed live). */
  stream(argv: readonly string[]): ResultPromise<{ reject: false; stdin: "ignore"; buffer: false; encoding: "buffer" }> {
    return execa("ssh", sshArgs(this.target, argv, this.options), { reject: false, stdin: "ignore", buffer: false, encoding: "buffer" });
  }

  /** rsync between this machine and the host; `remote:<path>` names a path there. */
  async rsync(
    sources: readonly string[],
    destination: string,
    options: { exclude?: readonly string[]; delete?: boolean; relative?: boolean; cwd?: string; timeoutMs?: number } = {},
  ): Promise<CallResult> {
    const args = rsyncArgs(this.target, sources, destination, { ...options, connection: this.options });
    const result = await execa("rsync", args, { reject: false, cwd: options.cwd, timeout: options.timeoutMs ?? 30 * 60_000, stdin: "ignore" });
    const exitCode = typeof result.exitCode === "number" ? result.exitCode : null;
    return { ok: exitCode === 0 || exitCode === RSYNC_VANISHED, exitCode, stdout: String(result.stdout ?? ""), stderr: String(result.stderr ?? "") };
  }
}
