/**
 * Following one job on an SSH host to its end: the JobHandle of the SSH executor, for a job it
 * started and for one an earlier controller started (reattach).
 *
 * Events stream back live through one long-running `ssh host tail --pid=PID -F events.jsonl` (over
 * the ControlMaster connection): each event arrives as the shim appends it, where a periodic rsync
 * pull would add its interval to every event and copy the file again each time. `--pid` ends the
 * tail once the job has ended and its last lines are out, so no tail outlives its job on the host.
 * Beside it a heartbeat asks the host's agent (remote.sh status) every pollMs: the answer "exited N"
 * (the exit_code file) ends the attempt; a dropped stream is restarted at the byte it had reached;
 * no answer for lostAfterMs means the host is lost (JobResult.placementLost), whatever the job
 * there still does. Each event is appended to the run store's events.jsonl with its paths made
 * local, and a checkpoint event pulls the checkpoints right away, so a lost host's job resumes
 * elsewhere from its newest checkpoint.
 */
import path from "node:path";
import { parseEventLine, type ShimEvent } from "../../runs/events.ts";
import { appendEvent, type SshRecord } from "../../runs/store.ts";
import type { JobHandle, JobResult } from "../executor.ts";
import type { SshConnection } from "./connection.ts";
import { agentArgv, localizeEvent } from "./layout.ts";

export type RemoteJobOptions = {
  connection: SshConnection;
  record: SshRecord;
  /** The local directory whose events.jsonl mirrors the task dir there. */
  localTaskDir: string;
  localRunDir: string;
  /** Events of this attempt the run store has already (a reattach): not appended again. */
  skipEvents: number;
  pollMs: number;
  lostAfterMs: number;
  /** Called (and awaited, one at a time) after each checkpoint event. */
  onCheckpoint(): Promise<void>;
};

type Agent = { kind: "running" } | { kind: "exited"; code: number } | { kind: "gone" } | { kind: "no-answer"; why: string };

export class RemoteJob implements JobHandle {
  readonly pid = null;
  readonly pidStartTime = null;
  private readonly listeners: Array<(event: ShimEvent) => void> = [];
  private readonly options: RemoteJobOptions;
  private readonly startedAt = Date.now();
  private offset: number;
  private skip: number;
  private partial = "";
  private stream: ReturnType<SshConnection["stream"]> | undefined;
  private streamEnded: Promise<void> = Promise.resolve();
  private syncs: Promise<void> = Promise.resolve();
  private lastEvent: ShimEvent | undefined;
  private errorEvent: Extract<ShimEvent, { type: "error" }> | undefined;
  private readonly done: Promise<JobResult>;

  constructor(options: RemoteJobOptions) {
    this.options = options;
    this.offset = options.record.events_offset;
    this.skip = options.skipEvents;
    // The stream from the start: the first events need not wait for the first heartbeat.
    this.startStream();
    this.done = this.watch();
  }

  onEvent(listener: (event: ShimEvent) => void): void {
    this.listeners.push(listener);
  }

  signal(signal: NodeJS.Signals): void {
    const { pid, pid_start_time } = this.options.record;
    void this.options.connection.call(agentArgv("signal", String(pid), String(pid_start_time ?? ""), signal.replace(/^SIG/, "")), 20_000);
  }

  wait(): Promise<JobResult> {
    return this.done;
  }

  private get remoteEvents(): string {
    return path.posix.join(this.options.record.task_dir, "events.jsonl");
  }

  private consume(chunk: Buffer): void {
    const text = this.partial + chunk.toString("utf8");
    const lines = text.split("\n");
    this.partial = lines.pop() ?? "";
    for (const line of lines) {
      this.offset += Buffer.byteLength(line, "utf8") + 1;
      const parsed = parseEventLine(line);
      if (!parsed) continue;
      if (this.skip > 0) {
        this.skip -= 1;
        continue;
      }
      const event = localizeEvent(parsed, this.options.record.dir, this.options.localRunDir);
      appendEvent(this.options.localTaskDir, event);
      this.lastEvent = event;
      if (event.type === "error") this.errorEvent = event;
      if (event.type === "checkpoint") this.syncs = this.syncs.then(() => this.options.onCheckpoint()).catch(() => undefined);
      for (const listener of this.listeners) listener(event);
    }
  }

  private startStream(): void {
    // A restart begins at the first byte not yet consumed as a whole line.
    this.partial = "";
    const { pid } = this.options.record;
    const stream = this.options.connection.stream(["tail", `--pid=${pid}`, "-s", "0.2", "-c", `+${this.offset + 1}`, "-F", this.remoteEvents]);
    this.stream = stream;
    stream.stdout?.on("data", (chunk: Buffer) => this.consume(chunk));
    this.streamEnded = stream.then(
      () => undefined,
      () => undefined,
    );
    void this.streamEnded.then(() => {
      if (this.stream === stream) this.stream = undefined;
    });
  }

  /** Stops reading the stream: chunks still in flight are dropped (the offset counts only what was consumed). */
  private stopStream(): void {
    this.stream?.stdout?.removeAllListeners("data");
    this.stream?.kill("SIGKILL");
    this.stream = undefined;
  }

  private async agent(): Promise<Agent> {
    const { pid, pid_start_time, task_dir } = this.options.record;
    const timeout = Math.max(2_000, Math.min(this.options.lostAfterMs, 15_000));
    const answer = await this.options.connection.call(agentArgv("status", String(pid), String(pid_start_time ?? ""), task_dir), timeout);
    if (!answer.ok) return { kind: "no-answer", why: answer.stderr.trim().split("\n").at(-1) ?? `ssh exit ${answer.exitCode}` };
    const [word, code] = answer.stdout.trim().split(/\s+/);
    if (word === "running") return { kind: "running" };
    if (word === "exited") return { kind: "exited", code: Number(code) };
    return { kind: "gone" };
  }

  /** The heartbeat loop: until the agent reports the end, or the host stays silent past lostAfterMs. */
  private async watch(): Promise<JobResult> {
    let lastContact = Date.now();
    let lastWhy = "";
    for (;;) {
      const state = await this.agent();
      if (state.kind === "no-answer") {
        lastWhy = state.why;
        if (Date.now() - lastContact > this.options.lostAfterMs) return this.lost(lastWhy);
      } else {
        lastContact = Date.now();
        if (state.kind !== "running") return this.end(state);
        if (!this.stream) this.startStream();
      }
      await new Promise((resolve) => setTimeout(resolve, this.options.pollMs));
    }
  }

  /** The job ended there: the rest of its events, its pending checkpoint pulls, then the result. */
  private async end(state: Extract<Agent, { kind: "exited" | "gone" }>): Promise<JobResult> {
    // tail --pid ends by itself once the job is gone; a stream that was down or hangs is cut off.
    await Promise.race([this.streamEnded, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    this.stopStream();
    // Whatever the stream had not delivered, read once from the first byte not consumed.
    const rest = await this.options.connection.call(["tail", "-c", `+${this.offset + 1}`, this.remoteEvents], 60_000);
    if (rest.ok && rest.stdout.length > 0) {
      this.partial = "";
      this.consume(Buffer.from(rest.stdout.endsWith("\n") ? rest.stdout : `${rest.stdout}\n`));
    }
    await this.syncs;
    const exitCode = state.kind === "exited" ? state.code : null;
    // The wrapper traps TERM and INT and ignores HUP, so a job gone without an exit code was SIGKILLed.
    const signal = state.kind === "gone" ? "SIGKILL" : null;
    let error: string | undefined;
    if (exitCode !== 0) {
      error = this.errorEvent?.message;
      if (!error) {
        const tail = await this.options.connection.call(["tail", "-n", "15", path.posix.join(this.options.record.task_dir, "stderr.log")], 20_000);
        error = (tail.ok && tail.stdout.trim()) || (signal ? `killed by ${signal} on ${this.options.connection.target.host}` : undefined);
      }
    }
    return { failed: exitCode !== 0, exitCode, signal, durationMs: Date.now() - this.startedAt, lastEvent: this.lastEvent, error };
  }

  private async lost(why: string): Promise<JobResult> {
    this.stopStream();
    await this.syncs;
    const host = this.options.connection.target.host;
    return {
      failed: true,
      exitCode: null,
      signal: null,
      durationMs: Date.now() - this.startedAt,
      lastEvent: this.lastEvent,
      error: `host ${host} has not answered for ${Math.round(this.options.lostAfterMs / 1000)} s (resources.ssh.lost_after_s)${why ? `: ${why}` : ""}`,
      placementLost: true,
    };
  }
}
