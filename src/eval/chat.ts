/**
 * `peftctl chat`: the controller's side of `python -m peftshim chat` (python/peftshim/chat.py, which
 * documents the JSON lines both sides speak; `ChatLineSchema` reads them here).
 *
 * The run and its adapter are resolved as `peftctl eval` resolves them (`adapterOf`: the final adapter,
 * a checkpoint's, or the base model). The shim is spawned directly rather than through the executor:
 * the executor's jobs are detached batch processes writing their output to log files so they outlive
 * the controller, while a chat is a conversation over pipes that must end with the controller. It gets
 * the executor's Python and environment (`shimPython`, `shimEnv`) and one GPU that no running run of
 * the store holds (or the CPU).
 */
import { createInterface } from "node:readline";
import { execa, type ResultPromise } from "execa";
import { z } from "zod";
import { FailureError, UserError } from "../errors.ts";
import { detectGpus } from "../launch/devices.ts";
import type { JobSpec } from "../plan/jobspec.ts";
import { ShimExit } from "../runs/events.ts";
import { allRuns, readJob, readStatus, requireOneRun, runFile, type RunRef } from "../runs/store.ts";
import { shimEnv, shimPython } from "../shim.ts";
import { adapterOf } from "./run-eval.ts";

export type ChatRequest = { checkpoint: string | null; base: boolean; scene: string };

export type ChatTarget = { run: RunRef; job: JobSpec; adapter: string | null; label: string; scene: string };

export type Reply = { text: string; strategy: string | null };

const ChatLineSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("ready"), device: z.string() }),
  z.object({ type: z.literal("token"), text: z.string() }),
  z.object({ type: z.literal("reply"), text: z.string(), strategy: z.string().nullable() }),
  z.object({ type: z.literal("reset") }),
  z.object({ type: z.literal("error"), kind: z.string(), message: z.string() }),
]);
type ChatLine = z.infer<typeof ChatLineSchema>;

/** The one run `target` names and the adapter to talk to; a UserError (exit 2) when there is none. */
export function planChat(runsDir: string, target: string, request: ChatRequest): ChatTarget {
  if (request.base && request.checkpoint !== null) throw new UserError("PEFTCTL_USAGE", "--base and --checkpoint exclude each other");
  const run = requireOneRun(runsDir, target);
  const found = adapterOf(run, request);
  if ("problem" in found) throw new UserError("PEFTCTL_USAGE", `cannot chat with '${target}'`, [found.problem]);
  return { run, job: readJob(run.dir), adapter: found.adapter, label: found.label, scene: request.scene };
}

/** The shim's argv for a chat with `target`. */
export function chatArgs(target: ChatTarget): string[] {
  const args = ["-m", "peftshim", "chat", "--job", runFile(target.run.dir, "job")];
  args.push(...(target.adapter === null ? ["--base"] : ["--adapter", target.adapter]));
  if (target.scene !== "") args.push("--scene", target.scene);
  return args;
}

/** A GPU id for a job that asks for GPUs: the first one no running run of the store lists; null: the CPU. */
export async function chatDevice(runsDir: string, job: JobSpec, env: NodeJS.ProcessEnv): Promise<string | null> {
  if (job.resources.gpus === 0) return null;
  const { gpus } = await detectGpus(env);
  const busy = new Set(allRuns(runsDir).flatMap((run) => {
    const status = readStatus(run.dir);
    return status.state === "running" ? status.devices : [];
  }));
  return gpus.find((gpu) => !busy.has(gpu.id))?.id ?? null;
}

/**
 * One `peftshim chat` process: `spawn` starts it, `ready` waits until the model is loaded, `send`
 * streams one reply, `close` ends stdin so the shim exits after what it is doing; `stop` ends it at once.
 */
export class ChatProcess {
  private readonly lines: AsyncIterator<string>;
  private stderrTail: string[] = [];
  /** The exit code, or why there is none (killed, or never started: no such Python). */
  private readonly exited: Promise<{ code: number | null; why: string }>;

  private constructor(private readonly child: ResultPromise<{ stdin: "pipe"; stdout: "pipe"; stderr: "pipe"; buffer: false; reject: false }>) {
    this.lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    createInterface({ input: child.stderr! }).on("line", (line) => {
      this.stderrTail = [...this.stderrTail.slice(-19), line];
    });
    child.stdin!.on("error", () => {}); // a shim that died mid-write is reported by its exit, not by EPIPE
    this.exited = child.then((result) =>
      typeof result.exitCode === "number" ? { code: result.exitCode, why: `exit ${result.exitCode}` } : { code: null, why: result.shortMessage ?? "no exit code" });
  }

  static spawn(target: ChatTarget, options: { gpu: string | null; env?: NodeJS.ProcessEnv }): ChatProcess {
    const env = options.env ?? process.env;
    const child = execa(shimPython(env), chatArgs(target), {
      cwd: target.run.dir,
      env: { ...shimEnv(env), CUDA_VISIBLE_DEVICES: options.gpu ?? "" },
      extendEnv: false,
      // Its own process group: a terminal's Ctrl-C reaches the controller, which ends the chat itself.
      detached: true,
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
      buffer: false,
      reject: false,
    });
    return new ChatProcess(child);
  }

  /** Resolves with the shim's device once the model is loaded. */
  async ready(): Promise<string> {
    const line = await this.next();
    if (line.type !== "ready") throw await this.failure(`expected the shim's ready line, got ${line.type}`);
    return line.device;
  }

  /** The reply to `text`, each streamed piece handed to `onToken` as it arrives. */
  async send(text: string, onToken: (piece: string) => void): Promise<Reply> {
    this.write({ text });
    for (;;) {
      const line = await this.next();
      if (line.type === "token") onToken(line.text);
      else if (line.type === "reply") return { text: line.text, strategy: line.strategy };
      else throw await this.failure(`unexpected ${line.type} line from the shim`);
    }
  }

  async reset(): Promise<void> {
    this.write({ reset: true });
    const line = await this.next();
    if (line.type !== "reset") throw await this.failure(`unexpected ${line.type} line from the shim`);
  }

  /** Ends the conversation; resolves with the shim's exit code. */
  async close(): Promise<number | null> {
    this.child.stdin!.end();
    return (await this.exited).code;
  }

  /** SIGTERM to the shim's group (Ctrl-C): it dies without finishing its reply. */
  stop(): void {
    if (this.child.pid) {
      try {
        process.kill(-this.child.pid, "SIGTERM");
      } catch {
        // already gone
      }
    }
  }

  private write(message: Record<string, unknown>): void {
    this.child.stdin!.write(`${JSON.stringify(message)}\n`);
  }

  /** The shim's next line; its error line or its end becomes the error it stands for. */
  private async next(): Promise<Exclude<ChatLine, { type: "error" }>> {
    const { value, done } = await this.lines.next();
    if (done) throw await this.failure("the shim ended the chat");
    let parsed: ChatLine;
    try {
      parsed = ChatLineSchema.parse(JSON.parse(value));
    } catch {
      throw await this.failure(`the shim wrote a line that is not part of the chat protocol: ${value.slice(0, 200)}`);
    }
    if (parsed.type === "error") throw await this.failure(parsed.message);
    return parsed;
  }

  /** A UserError when the shim exits 2 (bad job, adapter or input), else a FailureError with its stderr's last lines. */
  private async failure(message: string): Promise<Error> {
    this.child.stdin!.end();
    const { code, why } = await this.exited;
    if (code === ShimExit.badInput) return new UserError("PEFTCTL_USAGE", message);
    return new FailureError("PEFTCTL_JOB_FAILED", `chat: ${message} (${why})`, this.stderrTail);
  }
}
