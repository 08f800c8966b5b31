/**
 * Live progress of a sweep.
 * - terminal (stdout is a TTY): one line per running job (run, step/total, loss, tokens/s, ETA) and a
 *   sweep summary line, redrawn in place with ANSI cursor movement; state changes print above them.
 * - anything else (CI, pipes): plain lines, on state changes and at most every `plainEveryMs` per
 *   run for progress.
 * - --json: every event and state change as a pino JSON line.
 * Outside --json, evals, errors and resumed starts print as `<run>: ` and the words `peftctl logs`
 * uses (event-text.ts).
 */
import type { Writable } from "node:stream";
import { log } from "../log.ts";
import type { ShimEvent } from "../runs/events.ts";
import type { RunRef, RunState, RunStatus } from "../runs/store.ts";
import { eventText } from "./event-text.ts";
import { formatDuration, formatRate } from "./format.ts";

export type ProgressMode = "tty" | "plain" | "json";

type Line = { step: number; total: number; loss: number; tokensPerS: number; etaS: number };

export type ProgressOptions = { mode: ProgressMode; out?: Writable; plainEveryMs?: number; redrawMs?: number };

export class ProgressView {
  private readonly mode: ProgressMode;
  private readonly out: Writable;
  private readonly plainEveryMs: number;
  private readonly states = new Map<string, { run: RunRef; state: RunState }>();
  private readonly lines = new Map<string, Line>();
  private readonly lastPlain = new Map<string, number>();
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(runs: readonly RunRef[], options: ProgressOptions) {
    this.mode = options.mode;
    this.out = options.out ?? process.stdout;
    this.plainEveryMs = options.plainEveryMs ?? 5_000;
    for (const run of runs) this.states.set(run.dir, { run, state: "queued" });
    if (this.mode === "tty") {
      this.timer = setInterval(() => this.redraw(), options.redrawMs ?? 500);
      this.timer.unref();
    }
  }

  static modeFor(json: boolean, stream: { isTTY?: boolean } = process.stdout): ProgressMode {
    return json ? "json" : stream.isTTY ? "tty" : "plain";
  }

  onEvent(run: RunRef, event: ShimEvent): void {
    if (this.mode === "json") {
      log().info({ run: `${run.experiment}/${run.runId}`, event }, event.type);
      return;
    }
    if (event.type === "progress") {
      this.lines.set(run.dir, { step: event.step, total: event.total_steps, loss: event.loss, tokensPerS: event.tokens_per_s, etaS: event.eta_s });
      if (this.mode === "plain") {
        const now = Date.now();
        if (now - (this.lastPlain.get(run.dir) ?? 0) >= this.plainEveryMs || event.step === event.total_steps) {
          this.lastPlain.set(run.dir, now);
          this.print(this.jobLine(run));
        }
      }
    } else if (event.type === "eval" || event.type === "error" || event.type === "warning" || (event.type === "start" && event.resumed_from_step !== null)) {
      // A fresh start needs no line of its own: the state change to running says it.
      this.print(`${run.runId}: ${eventText(event)}`);
    }
  }

  onStatus(run: RunRef, status: RunStatus): void {
    const previous = this.states.get(run.dir)?.state;
    this.states.set(run.dir, { run, state: status.state });
    if (previous === status.state) return;
    if (this.mode === "json") {
      log().info({ run: `${run.experiment}/${run.runId}`, state: status.state, attempt: status.attempts, devices: status.devices, error: status.error ?? undefined }, "state");
      return;
    }
    if (status.state !== "running") this.lines.delete(run.dir);
    const where = status.state === "running" ? ` on ${status.devices.join(",")} (attempt ${status.attempts})` : "";
    const why = status.error ? `: ${status.error.message}` : "";
    this.print(`${run.runId}: ${status.state}${where}${why}`);
    if (this.mode === "plain") this.print(this.summaryLine());
  }

  /** Clears the live block (before the final table). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.mode === "tty") this.clearBlock();
  }

  summaryLine(): string {
    const count = (state: RunState) => [...this.states.values()].filter((s) => s.state === state).length;
    const parts = [`${count("succeeded")} done`, `${count("running")} running`, `${count("queued")} queued`, `${count("failed")} failed`];
    const interrupted = count("interrupted");
    if (interrupted > 0) parts.push(`${interrupted} interrupted`);
    return `sweep: ${parts.join(", ")} of ${this.states.size}`;
  }

  private jobLine(run: RunRef): string {
    const line = this.lines.get(run.dir);
    if (!line) return `${run.runId}  starting`;
    return `${run.runId}  step ${line.step}/${line.total}  loss ${line.loss.toFixed(4)}  ${formatRate(line.tokensPerS)} tok/s  ETA ${formatDuration(line.etaS)}`;
  }

  private print(text: string): void {
    if (this.mode === "tty") {
      this.clearBlock();
      this.out.write(`${text}\n`);
      this.redraw();
    } else {
      this.out.write(`${text}\n`);
    }
  }

  private clearBlock(): void {
    if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}A\x1b[0J`);
    this.drawn = 0;
  }

  private redraw(): void {
    if (this.mode !== "tty") return;
    const running = [...this.states.values()].filter((s) => s.state === "running").map((s) => this.jobLine(s.run));
    const block = [...running, this.summaryLine()];
    const reported = (this.out as { columns?: number }).columns;
    const columns = reported && reported > 1 ? reported : 200; // 0 when the terminal size is unknown
    this.clearBlock();
    this.out.write(block.map((l) => `${l.slice(0, columns - 1)}\n`).join(""));
    this.drawn = block.length;
  }
}
