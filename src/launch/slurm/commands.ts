/**
 * Slurm's command-line tools (sbatch, squeue, scontrol, sacct, scancel), run through execa with the
 * controller's environment (SLURM_CONF and the like pass through) and parsed into typed values.
 *
 * The plain text formats (`squeue -o`, `scontrol -o`, `sacct -P`) rather than `--json`: Slurm 22.05's
 * JSON output needs the data_parser plugins that many installations lack, and these formats are the same
 * across versions.
 */
import { constants } from "node:os";
import { execa, execaSync } from "execa";
import { FailureError } from "../../errors.ts";

/** A Slurm tool that failed or is missing: exit 1 with its message, no stack trace. */
export class SlurmCommandError extends FailureError {
  constructor(
    readonly command: string,
    message: string,
  ) {
    super("PEFTCTL_SLURM", message, ["check the cluster with 'sinfo' and 'squeue'; SLURM_CONF names the slurm.conf the tools read"]);
  }
}

/** The environment Slurm's tools run with: the controller's, without the SLURM_* variables of an allocation it may itself run in. */
export function slurmToolEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env)) {
    if (name.startsWith("SLURM_") && name !== "SLURM_CONF") continue;
    out[name] = value;
  }
  return out;
}

type ToolResult = { ok: boolean; stdout: string; stderr: string; shortMessage: string };

function toolResult(command: string, result: { exitCode?: number; failed: boolean; message?: string; shortMessage?: string; stdout?: unknown; stderr?: unknown }): ToolResult {
  if (result.exitCode === undefined && result.failed && /ENOENT/.test(String(result.message))) {
    throw new SlurmCommandError(command, `${command} not found: is this a Slurm login node? (the Slurm client tools must be on PATH)`);
  }
  return { ok: result.exitCode === 0, stdout: String(result.stdout ?? ""), stderr: String(result.stderr ?? "").trim(), shortMessage: result.shortMessage ?? "" };
}

const TOOL_OPTIONS = { extendEnv: false, reject: false, timeout: 60_000 } as const;

async function slurmTool(command: string, args: string[], env: NodeJS.ProcessEnv, input?: string): Promise<ToolResult> {
  return toolResult(command, await execa(command, args, { ...TOOL_OPTIONS, env: slurmToolEnv(env), input }));
}

/** The same, blocking: for Executor.signalRecorded and recordedAlive, whose callers are synchronous. */
function slurmToolSync(command: string, args: string[], env: NodeJS.ProcessEnv): ToolResult {
  return toolResult(command, execaSync(command, args, { ...TOOL_OPTIONS, env: slurmToolEnv(env) }));
}

/** sbatch --parsable with the script on stdin; the new job's id. */
export async function submitJob(script: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<string> {
  const result = await slurmTool("sbatch", ["--parsable", ...args], env, script);
  const id = result.stdout.trim().split(";")[0]!;
  if (!result.ok || !/^\d+$/.test(id)) {
    throw new SlurmCommandError("sbatch", `sbatch refused the job: ${result.stderr || result.shortMessage}`);
  }
  return id;
}

/** A job as squeue lists it. */
export type QueueEntry = { jobId: string; state: string; reason: string | null; nodes: string | null };

/** States after which a job never runs again (a requeued job goes back to PENDING instead). */
const FINAL_STATES = new Set(["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY", "SPECIAL_EXIT", "REVOKED"]);

export function isFinalState(state: string): boolean {
  // sacct writes "CANCELLED by 0".
  return FINAL_STATES.has(state.split(" ")[0]!);
}

const QUEUE_FORMAT = "%i|%T|%r|%N";

export function parseQueue(stdout: string): QueueEntry[] {
  return stdout
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .map((line) => {
      const [jobId, state, reason, nodes] = line.split("|");
      return {
        jobId: jobId!,
        state: state!,
        reason: !reason || reason === "None" || state !== "PENDING" ? null : reason,
        nodes: nodes ? nodes : null,
      };
    });
}

/**
 * The queue entries of `jobIds`, finished ones included while slurmctld remembers them (MinJobAge);
 * an id missing from the map is gone from the controller's memory.
 */
export async function queueStates(jobIds: readonly string[], env: NodeJS.ProcessEnv): Promise<Map<string, QueueEntry>> {
  if (jobIds.length === 0) return new Map();
  return queueMap(await slurmTool("squeue", queueArgs(jobIds), env));
}

export function queueStatesSync(jobIds: readonly string[], env: NodeJS.ProcessEnv): Map<string, QueueEntry> {
  if (jobIds.length === 0) return new Map();
  return queueMap(slurmToolSync("squeue", queueArgs(jobIds), env));
}

function queueArgs(jobIds: readonly string[]): string[] {
  return ["-h", "-t", "all", "-j", jobIds.join(","), "-o", QUEUE_FORMAT];
}

function queueMap(result: ToolResult): Map<string, QueueEntry> {
  const found = new Map<string, QueueEntry>();
  if (!result.ok) {
    // One unknown id alone is an error; among known ones it is just left out.
    if (/Invalid job id/i.test(result.stderr)) return found;
    throw new SlurmCommandError("squeue", `squeue failed: ${result.stderr || result.shortMessage}`);
  }
  for (const entry of parseQueue(result.stdout)) found.set(entry.jobId, entry);
  return found;
}

/** Jobs not yet ended whose name is `name` (a submission a killed controller never recorded). */
export async function liveJobsNamed(name: string, env: NodeJS.ProcessEnv): Promise<QueueEntry[]> {
  const result = await slurmTool("squeue", ["-h", "-n", name, "-o", QUEUE_FORMAT], env);
  if (!result.ok) throw new SlurmCommandError("squeue", `squeue failed: ${result.stderr || result.shortMessage}`);
  return parseQueue(result.stdout).filter((entry) => !isFinalState(entry.state));
}

/** How a job ended: Slurm's `ExitCode=code:signal`, the signal as a name where Node knows it. */
export type JobEnd = { state: string; reason: string | null; exitCode: number | null; signal: string | null };

export function parseExitCode(value: string): { exitCode: number | null; signal: string | null } {
  const [code, signal] = value.split(":").map(Number);
  if (signal && signal > 0) {
    const name = Object.entries(constants.signals).find(([, number]) => number === signal)?.[0];
    return { exitCode: null, signal: name ?? `signal ${signal}` };
  }
  return { exitCode: Number.isFinite(code) ? code! : null, signal: null };
}

/** `scontrol show job -o` as key=value pairs (values without spaces but for the last few, which we do not read). */
export function parseScontrolJob(line: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const token of line.trim().split(/\s+/)) {
    const eq = token.indexOf("=");
    if (eq > 0) fields[token.slice(0, eq)] = token.slice(eq + 1);
  }
  return fields;
}

/**
 * The end of a job: from slurmctld's memory (scontrol), else accounting (sacct, where slurmdbd runs),
 * else the job completion log (sacct -c, jobcomp/filetxt); undefined when none knows it.
 */
export async function jobEnd(jobId: string, env: NodeJS.ProcessEnv): Promise<JobEnd | undefined> {
  const shown = await slurmTool("scontrol", ["show", "job", "-o", jobId], env);
  if (shown.ok && shown.stdout.trim()) {
    const fields = parseScontrolJob(shown.stdout.split("\n")[0]!);
    if (fields.JobState && isFinalState(fields.JobState)) {
      return { state: fields.JobState, reason: fields.Reason && fields.Reason !== "None" ? fields.Reason : null, ...parseExitCode(fields.ExitCode ?? "") };
    }
  }
  for (const extra of [[], ["-c"]]) {
    const result = await slurmTool("sacct", [...extra, "-n", "-P", "-X", "-j", jobId, "-o", "JobID,State,ExitCode"], env);
    if (!result.ok) continue;
    const rows = result.stdout
      .split("\n")
      .map((line) => line.split("|"))
      .filter((cols) => cols[0] === jobId && cols[1] && isFinalState(cols[1]));
    const last = rows.at(-1);
    if (last) return { state: last[1]!.split(" ")[0]!, reason: null, ...parseExitCode(last[2] ?? "") };
  }
  return undefined;
}

/**
 * Signals a job. A pending job is cancelled (nothing runs yet, and `scancel --signal` blocks on one);
 * SIGKILL cancels it; any other signal goes to the batch script and its children (`--full`), which
 * is the shim (the script execs it) or torchrun and its workers, as the local executor signals a process group.
 */
export async function signalJob(jobId: string, signal: NodeJS.Signals, pending: boolean, env: NodeJS.ProcessEnv): Promise<void> {
  const args = scancelArgs(jobId, signal, pending);
  checkScancel(args, await slurmTool("scancel", args, env));
}

export function signalJobSync(jobId: string, signal: NodeJS.Signals, pending: boolean, env: NodeJS.ProcessEnv): void {
  const args = scancelArgs(jobId, signal, pending);
  checkScancel(args, slurmToolSync("scancel", args, env));
}

function scancelArgs(jobId: string, signal: NodeJS.Signals, pending: boolean): string[] {
  return pending || signal === "SIGKILL" ? [jobId] : ["--full", `--signal=${signal.replace(/^SIG/, "")}`, jobId];
}

function checkScancel(args: string[], result: ToolResult): void {
  if (!result.ok && !/already completing or completed|Invalid job id/i.test(result.stderr)) {
    throw new SlurmCommandError("scancel", `scancel ${args.join(" ")} failed: ${result.stderr || result.shortMessage}`);
  }
}
