/**
 * The SSH executor (resources.executor: ssh): runs each attempt on one of resources.ssh.hosts.
 *
 * start: the shim's code (this checkout's, keyed by its hash), the data file (once per host, keyed
 * by its sha256) and the run dir go over with rsync; job.json there names the paths there; the
 * host's agent (remote.sh) starts the shim detached under setsid, so neither a dropped connection
 * nor a killed controller stops it; what it recorded (host, pid, start time, dir) goes into
 * status.json's `ssh`. RemoteJob follows it (events live, checkpoints pulled as they are written,
 * a host silent past lost_after_s lost); collect pulls the rest. A restarted controller reattaches
 * to a job still running there (reattach), `peftctl stop` signals it (signalRecorded).
 * Nothing of the controller's environment goes over: no token or key reaches a host's job.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { HUB_DATA_PREFIX, type Experiment } from "../../config/schema.ts";
import { UserError } from "../../errors.ts";
import { parseEventLine } from "../../runs/events.ts";
import { readJob, readStatus, runFile, updateStatus, type RunRef, type RunStatus, type SshRecord } from "../../runs/store.ts";
import { projectRoot } from "../../shim.ts";
import { containerCommand, PASSED_BY_NAME } from "../container.ts";
import { DevicePool, hostOfDevices, isCpuDevice, localDeviceId } from "../devices.ts";
import type { Executor, JobHandle, StartRequest } from "../executor.ts";
import { LocalExecutor, shimCommand } from "../local.ts";
import { SshConnection } from "./connection.ts";
import { probeHostSync, type HostInventory, type HostSettings } from "./inventory.ts";
import { agentArgv, dataSha256, remoteJob, remotePaths, SHIM_CODE, shimCodeHash } from "./layout.ts";
import { RemoteJob } from "./remote-job.ts";

export type SshSettings = NonNullable<Experiment["resources"]["ssh"]>;

export type SshExecutorOptions = {
  /** Heartbeat interval of a running job (default 1 s). */
  pollMs?: number;
  /** A script on the hosts run instead of `-m peftshim` (PEFTCTL_SHIM_SCRIPT's role here; the benchmark's fake trainer). */
  shimScript?: string;
};

type Host = { settings: HostSettings; connection: SshConnection; inventory?: HostInventory };

/** Run-dir files that stay the run store's: never copied over (job.json goes over rewritten), never pulled back. */
const STORE_ONLY = [".lock", ".status.lock", "job.json", "status.json", ".status.json.*"];
/** Files this side writes during an attempt, or that only describe the controller: not pulled back. */
const NOT_PULLED = [...STORE_ONLY, "events.jsonl", "env.json", "config.yaml", "checkpoints/", "eval/", "pid", "pid.tmp", "exit_code", ".exit_code.tmp"];

export class SshExecutor implements Executor {
  readonly kind = "ssh";
  private readonly hosts = new Map<string, Host>();
  private readonly codeHash = shimCodeHash();
  private readonly copies = new Map<string, Promise<void>>();
  private readonly pollMs: number;
  private readonly shimScript: string | undefined;
  private readonly local = new LocalExecutor();
  /** Hosts that did not answer when the device pool was built, with ssh's reason. */
  readonly unreachable: HostInventory[] = [];

  constructor(
    private readonly settings: SshSettings,
    options: SshExecutorOptions = {},
  ) {
    for (const host of settings.hosts) this.hosts.set(host.host, { settings: host, connection: new SshConnection({ host: host.host, configFile: settings.config_file }) });
    this.pollMs = options.pollMs ?? 1_000;
    this.shimScript = options.shimScript;
  }

  /** What the host offers (asked once): its absolute workdir, GPUs, libraries. */
  private inventory(host: Host): HostInventory {
    host.inventory ??= probeHostSync(host.settings, this.settings.config_file);
    return host.inventory;
  }

  /** The free GPUs and CPU slots of every host that answers; none answering is a user error. */
  devicePool(): DevicePool {
    const places = [];
    for (const host of this.hosts.values()) {
      const inventory = this.inventory(host);
      if (!inventory.reachable) {
        this.unreachable.push(inventory);
        continue;
      }
      places.push({ host: host.settings.host, gpuIds: inventory.gpus, cpuSlots: host.settings.cpu_slots });
    }
    if (places.length === 0) {
      throw new UserError("PEFTCTL_SSH", `no host of resources.ssh answers: ${this.unreachable.map((u) => `${u.host}: ${u.error}`).join("; ")}`, [
        "check that `ssh <host>` works without a prompt (keys, known_hosts), then `peftctl hosts check <config>`",
      ]);
    }
    return DevicePool.across(places);
  }

  async prepare(_run: RunRef): Promise<void> {
    // The host is known only once the scheduler has placed the job: start() copies what it needs.
  }

  private host(name: string | null | undefined): Host & { workdir: string } {
    const host = name ? this.hosts.get(name) : undefined;
    if (!host) throw new Error(`internal: no SSH host ${name ?? "(none)"} in this executor`);
    const { workdir, error } = this.inventory(host);
    if (!workdir) throw new Error(`${host.settings.host}: ${error ?? "no workdir"}`);
    return { ...host, workdir };
  }

  /** Once per host and thing: concurrent starts on one host share the copy. */
  private once(key: string, copy: () => Promise<void>): Promise<void> {
    let pending = this.copies.get(key);
    if (!pending) {
      pending = copy();
      pending.catch(() => this.copies.delete(key));
      this.copies.set(key, pending);
    }
    return pending;
  }

  private async mustCall(host: Host, argv: string[], what: string, timeoutMs = 60_000): Promise<string> {
    const result = await host.connection.call(argv, timeoutMs);
    if (!result.ok) throw new Error(`${host.settings.host}: ${what} failed: ${result.stderr.trim() || `exit ${result.exitCode}`}`);
    return result.stdout;
  }

  private async mustRsync(host: Host, sources: string[], destination: string, what: string, options: Parameters<SshConnection["rsync"]>[2] = {}): Promise<void> {
    const result = await host.connection.rsync(sources, destination, options);
    if (!result.ok) throw new Error(`${host.settings.host}: ${what} failed (rsync exit ${result.exitCode}): ${result.stderr.trim()}`);
  }

  private shipCode(host: Host & { workdir: string }): Promise<void> {
    const codeDir = remotePaths.code(host.workdir, this.codeHash);
    return this.once(`${host.settings.host}\0code`, async () => {
      await this.mustCall(host, ["mkdir", "-p", codeDir], "creating the shim's directory");
      await this.mustRsync(host, [...SHIM_CODE], `remote:${codeDir}/`, "copying the shim's code", { relative: true, cwd: projectRoot, exclude: ["__pycache__", "*.pyc"] });
    });
  }

  private async shipData(host: Host & { workdir: string }, localPath: string): Promise<string> {
    if (localPath.startsWith(HUB_DATA_PREFIX)) return localPath; // the host loads a Hub data set itself (its own datasets cache)
    const sha256 = await dataSha256(localPath);
    const target = remotePaths.data(host.workdir, sha256, localPath);
    const directory = statSync(localPath).isDirectory(); // a save_to_disk directory: copied whole, by its contents
    await this.once(`${host.settings.host}\0data\0${sha256}`, async () => {
      const present = await host.connection.call(["test", "-e", target], 30_000);
      if (present.ok) return;
      await this.mustCall(host, ["mkdir", "-p", path.posix.dirname(target)], "creating the data directory");
      // Under a temporary name first: a file at `target` is always whole.
      await this.mustRsync(host, [directory ? `${localPath}/` : localPath], `remote:${target}.partial${directory ? "/" : ""}`, "copying the data file");
      await this.mustCall(host, ["mv", `${target}.partial`, target], "placing the data file");
    });
    return target;
  }

  async start(request: StartRequest): Promise<JobHandle> {
    if (request.task?.kind === "generate") {
      // `peftctl eval` of a run trained over SSH: its adapter came back, generation runs here, on the CPU.
      return this.local.start({ ...request, devices: ["cpu"], processes: 1 });
    }
    const host = this.host(hostOfDevices(request.devices));
    const { run } = request;
    const job = readJob(run.dir);
    const remoteDir = remotePaths.runDir(host.workdir, run.experiment, run.runId);
    // Independent copies run side by side: each is a round trip or more over the same connection.
    const [, dataPath] = await Promise.all([this.shipCode(host), this.shipData(host, job.data.path), this.mustCall(host, ["mkdir", "-p", remoteDir], "creating the run dir")]);
    const hostJob = remoteJob(job, { runDir: remoteDir, dataPath });
    const staging = mkdtempSync(path.join(os.tmpdir(), "peftctl-job-"));
    try {
      const file = path.join(staging, "job.json");
      writeFileSync(file, `${JSON.stringify(hostJob, null, 2)}\n`);
      await Promise.all([
        this.mustRsync(host, [`${run.dir}/`], `remote:${remoteDir}/`, "copying the run dir", { exclude: [...STORE_ONLY, "eval/"] }),
        this.mustRsync(host, [file], `remote:${runFile(remoteDir, "job")}`, "copying job.json"),
      ]);
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }

    const shim = shimCommand({ ...request, run: { ...run, dir: remoteDir } }, job.train.micro_batch_size, {
      PEFTCTL_PYTHON: host.settings.python,
      ...(this.shimScript ? { PEFTCTL_SHIM_SCRIPT: this.shimScript } : {}),
    });
    const onGpu = !isCpuDevice(request.devices[0]);
    // In a container the image brings the shim and its Python (hosts[].python is not used); the paths
    // mounted are the host's (container.ts). The code shipped to the host stays unused then.
    const container = job.resources.container;
    const { file, args } = container
      ? containerCommand({
          command: shim,
          container,
          job: hostJob,
          gpus: { ids: onGpu ? request.devices.map(localDeviceId) : [] },
          env: { PEFTCTL_NPROC: String(request.processes) },
          passEnv: PASSED_BY_NAME,
        })
      : shim;
    const env = [
      `PYTHONPATH=${path.posix.join(remotePaths.code(host.workdir, this.codeHash), "python")}`,
      "PYTHONUNBUFFERED=1",
      `CUDA_VISIBLE_DEVICES=${onGpu ? request.devices.map(localDeviceId).join(",") : ""}`,
      `PEFTCTL_NPROC=${request.processes}`,
    ];
    const answer = await this.mustCall(host, agentArgv("start", remoteDir, "--", "env", ...env, file, ...args), "starting the shim");
    const [word, pid, startTime, size] = answer.trim().split("\n").at(-1)!.split(" ");
    if (word !== "started" || !Number(pid)) throw new Error(`${host.settings.host}: the agent did not start the shim: ${answer.trim()}`);
    const record: SshRecord = {
      host: host.settings.host,
      pid: Number(pid),
      pid_start_time: startTime ? Number(startTime) : null,
      dir: remoteDir,
      task_dir: remoteDir,
      events_offset: Number(size) || 0,
    };
    updateStatus(run.dir, () => ({ ssh: record }));
    return this.follow(host, run, record, 0);
  }

  private follow(host: Host, run: RunRef, record: SshRecord, skipEvents: number): RemoteJob {
    return new RemoteJob({
      connection: host.connection,
      record,
      localTaskDir: run.dir,
      localRunDir: run.dir,
      skipEvents,
      pollMs: this.pollMs,
      lostAfterMs: this.settings.lost_after_s * 1000,
      onCheckpoint: () => this.pullCheckpoints(host, record.dir, run.dir),
    });
  }

  /**
   * Checkpoints back as they are written, in two passes: everything but the manifests, then the
   * manifests, so a checkpoint counts as complete here (MANIFEST.json present) only once its files are.
   * --delete mirrors the shim's retention.
   */
  private async pullCheckpoints(host: Host, remoteDir: string, localDir: string): Promise<void> {
    const from = `remote:${path.posix.join(remoteDir, "checkpoints")}/`;
    const to = `${runFile(localDir, "checkpoints")}/`;
    const present = await host.connection.call(["test", "-d", path.posix.join(remoteDir, "checkpoints")], 30_000);
    if (!present.ok) return;
    const first = await host.connection.rsync([from], to, { delete: true, exclude: ["MANIFEST.json", ".tmp-*", "*.tmp"] });
    if (!first.ok) return;
    await host.connection.rsync([from], to, { delete: true, exclude: [".tmp-*", "*.tmp"] });
  }

  async collect(run: RunRef): Promise<void> {
    const record = readStatus(run.dir).ssh;
    const host = record ? this.hosts.get(record.host) : undefined;
    if (!record || !host) return;
    await this.pullCheckpoints(host, record.dir, run.dir);
    // A lost host answers nothing: what was pulled so far is what there is.
    await host.connection.rsync([`remote:${record.dir}/`], `${run.dir}/`, { exclude: NOT_PULLED, timeoutMs: 30 * 60_000 });
    // Followed to its end and collected: nothing left to reattach to.
    updateStatus(run.dir, () => ({ ssh: null }));
  }

  /** The agent's answer, synchronously (stop and orphan handling call this outside any event loop work). */
  private agentSync(record: SshRecord, argv: ReturnType<typeof agentArgv>): string | null {
    const host = this.hosts.get(record.host);
    if (!host) return null;
    const result = host.connection.callSync(argv);
    return result.ok ? result.stdout.trim() : null;
  }

  signalRecorded(run: RunRef, status: RunStatus, signal: NodeJS.Signals): boolean {
    const record = status.ssh;
    if (!record) return false;
    return this.agentSync(record, agentArgv("signal", String(record.pid), String(record.pid_start_time ?? ""), signal.replace(/^SIG/, ""))) === "sent";
  }

  /** A host that does not answer cannot say its job ended: it counts as alive until it does. */
  recordedAlive(run: RunRef, status: RunStatus): boolean {
    const record = status.ssh;
    if (!record) return false;
    const answer = this.agentSync(record, agentArgv("status", String(record.pid), String(record.pid_start_time ?? ""), record.task_dir));
    return answer === null || answer === "running";
  }

  /**
   * Follows the job an earlier controller started there (killed before it collected the attempt),
   * from the first event the run store lacks; one that ended meanwhile is settled from its exit code.
   * A host that does not answer now gets no reattach: the run starts again on the devices it was given.
   */
  async reattach(run: RunRef, status: RunStatus): Promise<JobHandle | undefined> {
    const record = status.ssh;
    const host = record ? this.hosts.get(record.host) : undefined;
    if (!record || !host) return undefined;
    const answer = await host.connection.call(agentArgv("status", String(record.pid), String(record.pid_start_time ?? ""), record.task_dir), 30_000);
    if (!answer.ok) return undefined;
    return this.follow(host, run, record, eventsSince(run.dir, record.events_offset));
  }
}

/** Events the run store's events.jsonl holds after byte `offset`: the part of an attempt already streamed. */
function eventsSince(dir: string, offset: number): number {
  try {
    const text = readFileSync(runFile(dir, "events")).subarray(offset).toString("utf8");
    return text.split("\n").filter((line) => parseEventLine(line) !== undefined).length;
  } catch {
    return 0;
  }
}
