/**
 * Running the shim inside a container image (resources.container): the command line an executor
 * already built (`shimCommand`) wrapped in `docker run` or `apptainer exec`. Pure: no I/O.
 *
 * Decisions, in one place for the three executors:
 * - Paths: every host path the shim reads or writes is mounted at the same absolute path inside (the
 *   run dir read-write and as the working directory; the data files' directories and a local
 *   model.base read-only; `container.mounts` as written), so job.json, events and checkpoints name
 *   the same paths on both sides and nothing is rewritten.
 * - The command: the image's Python (`container.python`) runs exactly the argv the executor built
 *   for the host's Python: `-m peftshim train ...`, or `-m torch.distributed.run --standalone
 *   --nproc_per_node N -m peftshim ...` for a multi-GPU job. docker's ENTRYPOINT is replaced for it.
 * - Files: docker runs as the invoking user (`--user "$(id -u):$(id -g)"`, taken by the shell where
 *   the job starts: this host, the SSH host, the Slurm node), so run dirs never fill with root's
 *   files; HOME=/tmp gives that user (unknown to the image's /etc/passwd) a writable home. Apptainer
 *   runs as the user by design.
 * - Environment: nothing of the host's passes but what is named. Values that are no secret go on the
 *   command line (`-e CUDA_VISIBLE_DEVICES=0,1`); secrets (HF_TOKEN) pass by name only: docker's
 *   `-e NAME` reads the value from its own environment, and for apptainer (`--cleanenv`) a `sh`
 *   prelude copies NAME to APPTAINERENV_NAME; so no token is ever in ps output, job.json, logs or a
 *   Slurm batch script.
 * - GPUs: docker gets `--gpus "device=<host ids>"` and the container sees them renumbered from 0, so
 *   CUDA_VISIBLE_DEVICES inside is 0..n-1; on Slurm (`gpus: { inherit }`) the ids are the node's
 *   CUDA_VISIBLE_DEVICES at run time, so docker gets `--gpus all` with that variable passed through.
 *   Apptainer's `--nv` shows every GPU in host order: the host ids stand as they are.
 * - Signals: `docker run` stays attached (no -d) with its default --sig-proxy, so a SIGTERM to its
 *   process group (`peftctl stop`, Ctrl-C, Slurm's --signal) reaches the container, where `--init`
 *   (tini) passes it on to the shim, which checkpoints and exits 75: the exit code docker run
 *   returns. A SIGKILL cannot be proxied: the container is killed by its name (`containerKillArgv`),
 *   `peftctl-<run id>` (one container per run: a second start of a run still running is refused by
 *   docker for the name clash rather than writing the same run dir twice). `--rm` removes it at the end.
 */

export type ContainerSettings = {
  image: string;
  runtime: "docker" | "apptainer";
  python: string;
  mounts: string[];
  extra_args: string[];
};

/** The job fields whose paths get mounted (a job.json's, with absolute paths). */
export type MountedJob = {
  run_id: string;
  run_dir: string;
  data: { path: string };
  eval?: { data?: { path: string } | null } | null;
  model: { base: string };
};

export type ContainerLaunch = {
  /** What `shimCommand` built for the host: its file (the host's Python) is replaced by the image's. */
  command: { file: string; args: string[] };
  container: ContainerSettings;
  /** The job as the shim reads it there (for SSH, the remote job.json's paths). */
  job: MountedJob;
  task?: "train" | "generate";
  /**
   * GPU ids of the host (`ids`, [] for a CPU job), or `inherit`: the node's CUDA_VISIBLE_DEVICES at
   * run time (Slurm's gres), with `count` GPUs asked for.
   */
  gpus: { ids: string[] } | { inherit: number };
  /** GPU ids that are simulated (PEFTCTL_FAKE_GPUS): no GPU is passed in, the shim runs on the CPU with these ids. */
  simulatedGpus?: boolean;
  /** Variables set inside with these values; no secret may be here (they are on the command line). */
  env: Record<string, string>;
  /** Variables passed by name from the environment the container starts in (their values never on a command line). */
  passEnv: readonly string[];
};

/**
 * What the shim reads from the environment and may be secret or host-specific: passed by name only.
 * PEFTCTL_VERSION lets the image's shim refuse a controller of another version.
 */
export const PASSED_BY_NAME = ["PEFTCTL_VERSION", "HF_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN"] as const;

/** PASSED_BY_NAME and every tracker variable set here (W&B and MLflow read dozens: project, entity, credentials, timeouts). */
export function passedByName(env: NodeJS.ProcessEnv): string[] {
  const trackers = Object.keys(env).filter((name) => /^(WANDB|MLFLOW)_/.test(name) && env[name] !== undefined);
  return [...new Set([...PASSED_BY_NAME, ...trackers.sort()])];
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** docker's container name of a run's task: found again by it for a SIGKILL. */
export function containerName(runId: string, task: "train" | "generate" = "train"): string {
  // Run ids are [a-z0-9._-], what docker allows ([a-zA-Z0-9][a-zA-Z0-9_.-]*).
  return `peftctl-${runId}${task === "generate" ? "-generate" : ""}`;
}

type Mount = { source: string; target: string; readOnly: boolean };

function parseMount(text: string): Mount {
  const [source, target, mode] = text.split(":") as [string, string, string | undefined];
  return { source, target, readOnly: mode === "ro" };
}

function dirname(file: string): string {
  const cut = file.replace(/\/+$/, "").lastIndexOf("/");
  return cut <= 0 ? "/" : file.slice(0, cut);
}

/**
 * What is mounted, in order: the read-only inputs first, then `container.mounts`, then the run dir,
 * so that a read-write run dir inside a read-only tree (runs/ under a mounted checkout) is mounted over it.
 * Duplicates are dropped (two data files in one directory are one mount).
 */
export function containerMounts(launch: Pick<ContainerLaunch, "container" | "job">): Mount[] {
  const { job } = launch;
  // Files on this host: an hf:// dataset is read from the Hub or its cache inside, not mounted.
  const onDisk = (file: string | undefined): file is string => file !== undefined && file.startsWith("/");
  const inputs = [job.data.path, job.eval?.data?.path].filter(onDisk).map(dirname);
  // A local model directory (an absolute path; Hub ids and builtin: names are not paths).
  if (job.model.base.startsWith("/")) inputs.push(job.model.base);
  const mounts: Mount[] = [];
  const seen = new Set<string>();
  const add = (mount: Mount) => {
    if (seen.has(mount.target)) return;
    seen.add(mount.target);
    mounts.push(mount);
  };
  for (const input of inputs) if (input !== job.run_dir) add({ source: input, target: input, readOnly: true });
  for (const text of launch.container.mounts) add(parseMount(text));
  // The run dir last and always: a user mount at the same target must not make it read-only.
  seen.delete(job.run_dir);
  const runDirAt = mounts.findIndex((m) => m.target === job.run_dir);
  if (runDirAt >= 0) mounts.splice(runDirAt, 1);
  mounts.push({ source: job.run_dir, target: job.run_dir, readOnly: false });
  return mounts;
}

/** A field of docker's --mount, which docker reads as CSV: quoted where it holds a comma or a quote. */
function csvField(field: string): string {
  return /[",]/.test(field) ? `"${field.replace(/"/g, '""')}"` : field;
}

function checkEnvNames(names: readonly string[]): void {
  for (const name of names) if (!ENV_NAME.test(name)) throw new Error(`internal: ${JSON.stringify(name)} is no environment variable name`);
}

/** CUDA_VISIBLE_DEVICES inside and the runtime's GPU options. */
function gpuPlan(launch: ContainerLaunch): { options: string[]; visible: string | undefined; passVisible: boolean } {
  const docker = launch.container.runtime === "docker";
  if ("inherit" in launch.gpus) {
    const wanted = launch.gpus.inherit > 0 && !launch.simulatedGpus;
    return { options: wanted ? (docker ? ["--gpus", "all"] : ["--nv"]) : [], visible: undefined, passVisible: true };
  }
  const ids = launch.gpus.ids;
  if (ids.length === 0) return { options: [], visible: "", passVisible: false };
  if (launch.simulatedGpus) return { options: [], visible: ids.join(","), passVisible: false };
  if (!docker) return { options: ["--nv"], visible: ids.join(","), passVisible: false };
  // The quotes are part of the value: docker splits --gpus at commas unless the device list is quoted.
  return { options: ["--gpus", `"device=${ids.join(",")}"`], visible: ids.map((_, index) => String(index)).join(","), passVisible: false };
}

/**
 * The wrapped command line: `sh -c <prelude> peftctl-container <runtime> ...`. The `sh` takes the
 * user's ids (docker) or copies the secrets' names (apptainer) and then `exec`s the runtime, so the
 * process an executor starts and signals is docker's or apptainer's own.
 */
export function containerCommand(launch: ContainerLaunch): { file: string; args: string[] } {
  const { container, command } = launch;
  const gpus = gpuPlan(launch);
  const env: Record<string, string> = { ...launch.env, PYTHONUNBUFFERED: "1" };
  if (gpus.visible !== undefined) env.CUDA_VISIBLE_DEVICES = gpus.visible;
  const passEnv = [...new Set([...launch.passEnv, ...(gpus.passVisible ? ["CUDA_VISIBLE_DEVICES"] : [])])].filter((name) => !(name in env));
  checkEnvNames([...Object.keys(env), ...passEnv]);
  const mounts = containerMounts(launch);
  const workdir = launch.job.run_dir;
  const shimArgs = [container.python, ...command.args];

  if (container.runtime === "docker") {
    const args = ["--rm", "--init", "--name", containerName(launch.job.run_id, launch.task)];
    args.push("--workdir", workdir, ...gpus.options);
    // torchrun's ranks (and NCCL) share memory through /dev/shm, 64 MB in a container by default.
    if (command.args.includes("torch.distributed.run")) args.push("--ipc", "host");
    for (const m of mounts) args.push("--mount", [`type=bind`, `source=${m.source}`, `target=${m.target}`, ...(m.readOnly ? ["readonly"] : [])].map(csvField).join(","));
    args.push("-e", "HOME=/tmp");
    for (const [name, value] of Object.entries(env)) args.push("-e", `${name}=${value}`);
    for (const name of passEnv) args.push("-e", name);
    args.push(...container.extra_args, "--entrypoint", shimArgs[0]!, container.image, ...shimArgs.slice(1));
    // --user comes from the shell where the job starts: the invoking user there.
    return { file: "sh", args: ["-c", 'exec docker run --user "$(id -u):$(id -g)" "$@"', "peftctl-container", ...args] };
  }

  const args = ["exec", "--cleanenv", ...gpus.options];
  for (const m of mounts) args.push("--bind", `${m.source}:${m.target}${m.readOnly ? ":ro" : ""}`);
  args.push("--pwd", workdir);
  for (const [name, value] of Object.entries(env)) args.push("--env", `${name}=${value}`);
  args.push(...container.extra_args, container.image, ...shimArgs);
  // --cleanenv keeps the host's PYTHONPATH and the rest out; APPTAINERENV_<NAME> is how a value still gets in.
  const prelude = passEnv.map((name) => `if [ -n "\${${name}+set}" ]; then export APPTAINERENV_${name}="$${name}"; fi; `).join("");
  return { file: "sh", args: ["-c", `${prelude}exec apptainer "$@"`, "peftctl-container", ...args] };
}

/** Stops a run's docker container by its name (a SIGKILL the attached `docker run` cannot pass on); null for apptainer, whose processes are the job's own. */
export function containerKillArgv(container: Pick<ContainerSettings, "runtime">, runId: string, signal: NodeJS.Signals, task: "train" | "generate" = "train"): string[] | null {
  if (container.runtime !== "docker") return null;
  return ["kill", "--signal", signal.replace(/^SIG/, ""), containerName(runId, task)];
}
