/**
 * The sbatch job of one attempt, as pure functions of the job and its resources: the options and the
 * batch script. The script runs the same command line as the local executor (`shimCommand`), with two
 * things left to the node: the attempt number grows with SLURM_RESTART_COUNT and a restarted job
 * resumes, since a requeued job runs this same script again. It `exec`s the shim, so Slurm's signals
 * (--signal=B:TERM@grace before the time limit, preemption, scancel) reach the shim itself.
 */
import path from "node:path";
import type { JobSpec } from "../../plan/jobspec.ts";

/** The script's exit code when the run dir it was given is not the controller's (not on a shared filesystem). */
export const RUN_DIR_NOT_VISIBLE_EXIT = 86;

/** The file in the run dir whose content the job checks: the same path on a node can be another directory. */
export const VISIBILITY_TOKEN_FILE = ".slurm-token";

export type SlurmJobFiles = { stdout: string; stderr: string };

export type BatchScriptInput = {
  runDir: string;
  /** What `shimCommand` returns for this attempt. */
  command: { file: string; args: string[] };
  /** Written to VISIBILITY_TOKEN_FILE in the run dir just before submitting. */
  token: string;
  /** Processes of the job (PEFTCTL_NPROC, as the local executor sets it). */
  processes: number;
  gpus: number;
};

/** The job name: a killed controller's unrecorded submission is found by it. */
export function slurmJobName(job: Pick<JobSpec, "experiment" | "run_id">, task: "train" | "generate" = "train"): string {
  return `peftctl:${job.experiment}/${job.run_id}${task === "generate" ? ":generate" : ""}`;
}

/** sbatch's options for one attempt (sbatch --parsable is added by the submitter). */
export function sbatchArgs(job: Pick<JobSpec, "experiment" | "run_id" | "run_dir" | "resources">, files: SlurmJobFiles, task: "train" | "generate" = "train"): string[] {
  const slurm = job.resources.slurm;
  if (!slurm) throw new Error(`job ${job.run_id} has no resources.slurm`); // the config rule requires it with executor slurm
  const gpus = task === "generate" ? Math.min(1, job.resources.gpus) : job.resources.gpus;
  const args = [
    `--job-name=${slurmJobName(job, task)}`,
    `--partition=${slurm.partition}`,
    `--time=${slurm.time}`,
    "--nodes=1",
    "--ntasks=1",
    `--output=${files.stdout}`,
    `--error=${files.stderr}`,
    "--open-mode=append",
    "--requeue",
    `--signal=B:TERM@${slurm.signal_grace_s}`,
    `--chdir=${path.dirname(job.run_dir)}`,
    // The controller's environment, as the local executor gives it to the shim; secrets stay in the
    // environment Slurm carries and are never written into the script, job.json or status.json.
    "--export=ALL",
  ];
  if (slurm.account) args.push(`--account=${slurm.account}`);
  if (slurm.qos) args.push(`--qos=${slurm.qos}`);
  if (slurm.constraint) args.push(`--constraint=${slurm.constraint}`);
  if (slurm.gres) args.push(`--gres=${slurm.gres}`);
  else if (gpus > 0) args.push(`--gres=gpu:${gpus}`);
  if (slurm.cpus_per_task) args.push(`--cpus-per-task=${slurm.cpus_per_task}`);
  if (slurm.mem) args.push(`--mem=${slurm.mem}`);
  return [...args, ...slurm.extra_args];
}

/** One word for bash: single-quoted, a single quote inside closed, escaped and reopened. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export function batchScript(input: BatchScriptInput): string {
  const args = [...input.command.args];
  const attemptAt = args.indexOf("--attempt");
  const firstAttempt = attemptAt >= 0 ? Number(args[attemptAt + 1]) : undefined;
  const resumeAt = args.indexOf("--resume");
  const resumeAlways = resumeAt >= 0;
  if (resumeAlways) args.splice(resumeAt, 1);
  const words = [input.command.file, ...args].map(shellQuote);
  if (attemptAt >= 0) words[attemptAt + 2] = '"$attempt"'; // +1 for the file, +1 for the value
  const runDir = shellQuote(input.runDir);
  const lines = [
    "#!/bin/bash",
    "# Written by peftctl (src/launch/slurm/script.ts): one attempt of a run; a requeued job runs it again.",
    "set -u",
    `run_dir=${runDir}`,
    `if [ "$(cat "$run_dir/${VISIBILITY_TOKEN_FILE}" 2>/dev/null)" != ${shellQuote(input.token)} ]; then`,
    `  echo "peftctl: the run dir $run_dir is not the controller's on $(hostname): the runs dir must be on a filesystem the nodes share" >&2`,
    `  exit ${RUN_DIR_NOT_VISIBLE_EXIT}`,
    "fi",
  ];
  if (firstAttempt !== undefined) {
    lines.push(`attempt=$(( ${firstAttempt} + \${SLURM_RESTART_COUNT:-0} ))`);
    // A requeued job continues from its newest checkpoint (the first run only if the controller said so).
    lines.push(resumeAlways ? "resume=(--resume)" : 'resume=(); if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then resume=(--resume); fi');
  } else {
    lines.push("resume=()");
  }
  // A GPU job sees the GPUs Slurm gave it (gres sets CUDA_VISIBLE_DEVICES); a CPU job sees none.
  if (input.gpus === 0) lines.push("export CUDA_VISIBLE_DEVICES=");
  lines.push(`export PEFTCTL_NPROC=${input.processes}`);
  lines.push(`exec ${words.join(" ")} \${resume[@]+"\${resume[@]}"}`);
  return `${lines.join("\n")}\n`;
}
