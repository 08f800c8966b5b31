/**
 * A real one-node Slurm cluster for the tests, started from the Debian packages (slurmctld, slurmd,
 * slurm-client, munge; scripts/install-test-servers.sh installs them) in a temp dir on loopback ports.
 * There is no systemd here, so the daemons are started directly: munged with its own socket (its
 * directory world-executable, the key 0400), slurmctld, and slurmd -N <node>.
 *
 * Settings that matter: DefMemPerCPU (else one job takes the whole node), cred_expire=10 (else a
 * requeued job waits 120 s to start again), RequeueExit=75 (the shim's "interrupted after a
 * checkpoint"), jobcomp/filetxt without slurmdbd (sacct -c reads it), two fake GPUs through
 * gres.conf File= entries that are device nodes made with mknod. slurmd runs in its own mount
 * namespace where `hiddenDir` is an empty tmpfs: a runs dir there is one the node cannot see.
 *
 * A daemon that does not start is an error, never a skip.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export type Cluster = {
  dir: string;
  /** The environment the Slurm tools (and peftctl) need: SLURM_CONF. */
  env: NodeJS.ProcessEnv;
  node: string;
  partition: string;
  /** A directory the node does not see (an empty tmpfs over it in slurmd's mount namespace). */
  hiddenDir: string;
  /** A directory everyone sees, for runs dirs. */
  sharedDir: string;
  logs(): string;
  stop(): Promise<void>;
};

const NODE = "peftnode";
const PARTITION = "debug";

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv): void {
  const result = spawnSync(file, args, { env, encoding: "utf8", timeout: 30_000 });
  if (result.status !== 0) throw new Error(`${file} ${args.join(" ")} failed (${result.status ?? result.signal}): ${result.stderr || result.error?.message}`);
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, "utf8").trim());
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, check: () => boolean, ms: number, logs: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`the test cluster did not come up: ${what}\n${logs()}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** `requeueExit: false`: a cluster without RequeueExit=75, where an exit 75 ends the job (peftctl resubmits). */
export async function startCluster(options: { requeueExit?: boolean } = {}): Promise<Cluster> {
  for (const tool of ["/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch"]) {
    if (!existsSync(tool)) throw new Error(`${tool} is missing: run scripts/install-test-servers.sh (make install does)`);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-slurm-"));
  const sub = (name: string) => {
    const p = path.join(dir, name);
    mkdirSync(p, { recursive: true });
    return p;
  };
  const mungeDir = sub("munge");
  chmodSync(mungeDir, 0o711); // clients must reach the socket
  const state = sub("state");
  const spool = sub("spool");
  const log = sub("log");
  const dev = sub("dev");
  const hiddenDir = sub("hidden");
  const sharedDir = sub("shared");
  const key = path.join(mungeDir, "munge.key");
  writeFileSync(key, randomBytes(1024));
  chmodSync(key, 0o400);
  const socket = path.join(mungeDir, "munge.socket");
  for (const n of [0, 1]) execFileSync("mknod", [path.join(dev, `nvidia${n}`), "c", "195", String(n)]);
  const [ctldPort, slurmdPort] = [await freePort(), await freePort()];
  const conf = path.join(dir, "slurm.conf");
  const host = os.hostname().split(".")[0]!;
  writeFileSync(
    conf,
    [
      `ClusterName=peftctl${randomBytes(3).toString("hex")}`,
      `SlurmctldHost=${host}(127.0.0.1)`,
      `SlurmctldPort=${ctldPort}`,
      `SlurmdPort=${slurmdPort}`,
      "SlurmUser=root",
      "SlurmdUser=root",
      "AuthType=auth/munge",
      "CredType=cred/munge",
      `AuthInfo=socket=${socket},cred_expire=10`,
      `StateSaveLocation=${state}`,
      `SlurmdSpoolDir=${spool}`,
      `SlurmctldPidFile=${path.join(dir, "slurmctld.pid")}`,
      `SlurmdPidFile=${path.join(dir, "slurmd.pid")}`,
      `SlurmctldLogFile=${path.join(log, "slurmctld.log")}`,
      `SlurmdLogFile=${path.join(log, "slurmd.log")}`,
      "ProctrackType=proctrack/linuxproc",
      "TaskPlugin=task/none",
      "JobAcctGatherType=jobacct_gather/none",
      "AccountingStorageType=accounting_storage/none",
      "JobCompType=jobcomp/filetxt",
      `JobCompLoc=${path.join(log, "jobcomp.txt")}`,
      "SchedulerType=sched/backfill",
      "SelectType=select/cons_tres",
      "SelectTypeParameters=CR_Core_Memory",
      "DefMemPerCPU=256",
      "ReturnToService=2",
      "MinJobAge=300",
      // Time for the shim to checkpoint after SIGTERM before SIGKILL (a loaded CI machine needs more than the usual 30 s).
      "KillWait=120",
      options.requeueExit === false ? "" : "RequeueExit=75",
      "SlurmctldParameters=preempt_send_user_signal",
      "SlurmdParameters=config_overrides",
      "MpiDefault=none",
      "MailProg=/bin/true",
      "GresTypes=gpu",
      `NodeName=${NODE} NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=8 RealMemory=4096 Gres=gpu:2 State=UNKNOWN`,
      `PartitionName=${PARTITION} Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP`,
      "",
    ].join("\n"),
  );
  writeFileSync(path.join(dir, "gres.conf"), `NodeName=${NODE} Name=gpu File=${path.join(dev, "nvidia")}[0-1]\n`);
  const env: NodeJS.ProcessEnv = { ...process.env, SLURM_CONF: conf };
  const logs = () =>
    ["slurmctld.log", "slurmd.log", "munged.log"]
      .map((name) => {
        const file = path.join(log, name);
        return existsSync(file) ? `== ${name}\n${readFileSync(file, "utf8").split("\n").slice(-15).join("\n")}` : `== ${name}: none`;
      })
      .join("\n");
  const pidFiles = [path.join(dir, "slurmd.pid"), path.join(dir, "slurmctld.pid"), path.join(mungeDir, "munged.pid")];
  const stop = async () => {
    // The jobs first (slurmd leaves its job steps running when it stops), then the daemons, by their pid files.
    spawnSync("scancel", ["--full", "--signal=KILL", "--user=root"], { env, timeout: 10_000 });
    const emptyBy = Date.now() + 15_000;
    while (Date.now() < emptyBy && (spawnSync("squeue", ["-h", "-o", "%i"], { env, encoding: "utf8", timeout: 10_000 }).stdout ?? "").trim() !== "") {
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    for (const file of pidFiles) {
      const pid = readPid(file);
      if (pid && alive(pid)) process.kill(pid, "SIGTERM");
      const deadline = Date.now() + 10_000;
      while (pid && alive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      if (pid && alive(pid)) process.kill(pid, "SIGKILL");
    }
    rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
  };
  try {
    run("/usr/sbin/munged", ["--force", `--socket=${socket}`, `--key-file=${key}`, `--log-file=${path.join(log, "munged.log")}`, `--pid-file=${path.join(mungeDir, "munged.pid")}`, `--seed-file=${path.join(mungeDir, "munged.seed")}`], env);
    run("/usr/sbin/slurmctld", ["-i"], env);
    // slurmd (and so every job) in a mount namespace where hiddenDir is an empty tmpfs.
    run("unshare", ["-m", "--propagation", "private", "sh", "-c", `mount -t tmpfs tmpfs '${hiddenDir}' && exec /usr/sbin/slurmd -N ${NODE}`], env);
    await until(
      `node ${NODE} idle in sinfo`,
      () => spawnSync("sinfo", ["-h", "-N", "-o", "%T"], { env, encoding: "utf8" }).stdout?.trim() === "idle",
      60_000,
      logs,
    );
  } catch (error) {
    const message = `${error instanceof Error ? error.message : String(error)}\n${logs()}`;
    await stop();
    throw new Error(message);
  }
  return { dir, env, node: NODE, partition: PARTITION, hiddenDir, sharedDir, logs, stop };
}
