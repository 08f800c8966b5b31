/**
 * resources.container with a real Docker daemon (docker-daemon.ts): `peftctl run` as a non-root user
 * starts the real shim inside a container, a stop (stop.ts) reaches it through docker run's signal proxy
 * and --init (the shim checkpoints and exits 75), `peftctl resume` finishes it inside a fresh
 * container to success, and every file in the run dir belongs to the invoking user, not to root.
 *
 * The controller runs as TEST_UID through setpriv with one capability, CAP_DAC_READ_SEARCH: the
 * checkout's .venv points into root's pyenv under /root (mode 0700), which the controller's own
 * Python calls (the data summary) must read; the capability lets it read without changing the
 * machine's permissions, and files it creates are still TEST_UID's. Inside the container the process
 * has no capability at all: there the Python is reached through the read-only mounts.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopRuns } from "../../src/launch/stop.ts";
import { listRuns, readEvents, readStatus } from "../../src/runs/store.ts";
import { shimPython } from "../../src/shim.ts";
import { startCluster, type Cluster } from "../slurm/cluster.ts";
import { importShimImage, startDockerDaemon, type DockerDaemon } from "./docker-daemon.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const bin = path.join(root, "bin/peftctl.js");
const TEST_UID = 23456;
const IMAGE = "peftctl-test-shim:1";

let daemon: DockerDaemon;
let home: string;
let config: string;

/** A peftctl command as TEST_UID (see the header for the one capability). */
function asTestUser(args: string[]) {
  const setpriv = ["--reuid", String(TEST_UID), "--regid", String(TEST_UID), "--clear-groups", "--inh-caps", "+dac_read_search", "--ambient-caps", "+dac_read_search"];
  return execa("setpriv", [...setpriv, process.execPath, bin, "--runs-dir", path.join(home, "runs"), ...args], {
    reject: false,
    cwd: home,
    env: { ...daemon.env, HOME: home },
    all: true,
  });
}

/** What the image's Python needs from the host, read-only: the system libraries and the interpreter the venv points at. */
function runtimeMounts(): string[] {
  const basePrefix = execFileSync(shimPython(), ["-c", "import sys; print(sys.base_prefix)"], { encoding: "utf8" }).trim();
  const dirs = ["/usr", "/lib", "/lib64", "/bin", basePrefix, root].filter((dir) => existsSync(dir));
  return [...new Set(dirs)].map((dir) => `${dir}:${dir}:ro`);
}

/** The daemon's events of the run's container so far: "start", "kill signal=15", "die exitCode=75", ... */
function containerEvents(runId: string): string[] {
  const until = String(Math.ceil(Date.now() / 1000) + 1);
  const answer = daemon.docker(["events", "--since", "0", "--until", until, "--filter", `container=peftctl-${runId}`, "--format", "{{.Action}} {{json .Actor.Attributes}}"]);
  return answer.stdout
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [action, json] = [line.slice(0, line.indexOf(" ")), line.slice(line.indexOf(" ") + 1)];
      const attributes = JSON.parse(json) as Record<string, string>;
      const detail = "signal" in attributes ? ` signal=${attributes.signal}` : "exitCode" in attributes ? ` exitCode=${attributes.exitCode}` : "";
      return `${action}${detail}`;
    });
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).map((name) => path.join(dir, name));
}

/** The checkout's own mode, restored after the tests (see makeCheckoutTraversable). */
let checkoutMode: number | undefined;

/**
 * TEST_UID must reach the checkout's files, inside the container too, where no capability helps. A
 * clone into `mktemp -d` has a root of mode 0700: it gains o+x (search, not read) for these tests.
 * Directories above it are not the project's to change: one that TEST_UID cannot pass is an error.
 */
function makeCheckoutTraversable(): void {
  for (let dir = path.dirname(root); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) throw new Error(`${dir} (above the checkout) is not searchable by others: TEST_UID ${TEST_UID} cannot reach the checkout; clone it elsewhere`);
  }
  const mode = statSync(root).mode & 0o7777;
  if ((mode & 0o001) === 0) {
    checkoutMode = mode;
    chmodSync(root, mode | 0o001);
  }
}

beforeAll(async () => {
  makeCheckoutTraversable();
  daemon = await startDockerDaemon();
  importShimImage(daemon, IMAGE, root);
  home = mkdtempSync(path.join(os.tmpdir(), "peftctl-container-"));
  chownSync(home, TEST_UID, TEST_UID);
  config = path.join(home, "container.yaml");
  const container = { image: IMAGE, python: shimPython(), mounts: runtimeMounts(), extra_args: ["--network", "none"] };
  writeFileSync(
    config,
    [
      "name: incontainer",
      "model: { base: 'builtin:tiny-llama', dtype: float32 }",
      "method: { kind: lora, r: 4, alpha: 8, target_modules: [q_proj, v_proj] }",
      `data: { format: extes, path: ${JSON.stringify(path.join(root, "data/samples/extes-sample.json"))}, max_length: 64 }`,
      "train: { max_steps: 20, batch_size: 4, micro_batch_size: 4, log_every_steps: 1, warmup_steps: 0 }",
      "eval: { every_steps: 20, generate: { samples: 0 } }",
      "checkpoint: { every_steps: 20, keep_last: 2 }",
      `resources: { gpus: 0, retries: 0, container: ${JSON.stringify(container)} }`,
      "",
    ].join("\n"),
  );
  chownSync(config, TEST_UID, TEST_UID);
}, 120_000);

afterAll(async () => {
  await daemon?.stop();
  if (checkoutMode !== undefined) chmodSync(root, checkoutMode);
});

describe("Dockerfile.gpu's build context (its base image cannot be pulled here, so the build itself is not run)", () => {
  it("carries exactly the files Dockerfile.gpu COPYs: no .venv, node_modules, runs or caches", () => {
    // COPY <source>... <destination>: every word but the last is a source.
    const sources = [...readFileSync(path.join(root, "Dockerfile.gpu"), "utf8").matchAll(/^COPY\s+(.+)$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/).slice(0, -1));
    expect(sources).toEqual(expect.arrayContaining(["python/requirements.txt", "python/requirements-trackers.txt", "python/peftshim", "schema/job.schema.json"]));
    const build = spawnSync("docker", ["build", "-q", "-f", "-", "-t", "peftctl-test-context:1", root], { input: `FROM ${IMAGE}\nCOPY . /context\n`, env: { ...daemon.env, DOCKER_BUILDKIT: "0" }, encoding: "utf8" });
    expect(build.status, build.stderr).toBe(0);
    const created = daemon.docker(["create", "--name", "peftctl-test-context", "peftctl-test-context:1", "none"]);
    expect(created.status, created.stderr).toBe(0);
    const listing = execFileSync("sh", ["-c", "docker export peftctl-test-context | tar -t"], { env: daemon.env, encoding: "utf8", maxBuffer: 64 << 20 });
    daemon.docker(["rm", "peftctl-test-context"]);
    const carried = listing.split("\n").filter((name) => name.startsWith("context/") && !name.endsWith("/")).map((name) => name.slice("context/".length)).sort();
    const expected = sources.flatMap((source) => (lstatSync(path.join(root, source)).isDirectory() ? filesUnder(path.join(root, source)).filter((file) => lstatSync(file).isFile() && !file.includes("__pycache__")).map((file) => path.relative(root, file)) : [source])).sort();
    expect(carried).toEqual(expected);
  });
});

describe("resources.container with docker", () => {
  it("runs the shim in the container as the invoking user; stop checkpoints through the signal proxy; resume finishes it", { timeout: 300_000 }, async () => {
    const first = asTestUser(["run", config]);
    let runDir = "";
    const deadline = Date.now() + 120_000;
    while (!runDir || !readEvents(runDir).some((event) => event.type === "progress")) {
      if (Date.now() > deadline || first.exitCode !== null) throw new Error(`no progress from the container: ${(await first).all}\n${daemon.logs()}`);
      runDir = listRuns(path.join(home, "runs"), "incontainer")[0]?.dir ?? "";
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const runId = path.basename(runDir);
    // Right after the controller mirrored that event into status.json: its next write is 2 s away
    // (progressWriteMs), and a status write between stop's read and write of status.json would drop
    // stop_requested_at (updateStatus is an unlocked read-modify-write; reported, not fixed here).
    while ((readStatus(runDir).step ?? 0) < 1) await new Promise((resolve) => setTimeout(resolve, 20));
    // stopRuns is what `peftctl stop` calls (SIGTERM through the executor's signalRecorded); called
    // here directly, the moment training shows, since an idle machine trains these 20 steps in a second or two.
    const [stopped1] = await stopRuns([{ experiment: "incontainer", runId, dir: runDir }], { env: daemon.env, waitMs: 120_000 });
    expect(stopped1?.outcome).toBe("stopped");
    const stopped = await first;
    expect(stopped.exitCode, stopped.all).toBe(130);
    const interrupted = readEvents(runDir).find((event) => event.type === "interrupted");
    expect(interrupted, "the shim saw SIGTERM inside the container").toMatchObject({ type: "interrupted", signal: "SIGTERM" });
    const checkpoint = (interrupted as { checkpoint: string | null; step: number }).checkpoint;
    expect(checkpoint).toBeTruthy();
    expect(existsSync(path.join(checkpoint!, "MANIFEST.json"))).toBe(true);
    expect(readStatus(runDir).state).toBe("interrupted");
    // It ran in the run's container: docker run's proxy passed SIGTERM (15) on as a kill, and the
    // container ended with the shim's exit 75; the shim's pid was one of the container's namespace (tini, --init, is 1 there).
    expect(containerEvents(runId)).toEqual(expect.arrayContaining(["start", "kill signal=15", "die exitCode=75", "destroy"]));
    expect((readEvents(runDir).find((event) => event.type === "start") as { pid: number }).pid).toBeLessThan(100);
    // --rm: the stopped container is gone, so the resumed attempt can take the run's name again.
    expect(daemon.docker(["ps", "-aq"]).stdout.trim()).toBe("");

    const second = await asTestUser(["resume", "incontainer"]);
    expect(second.exitCode, second.all).toBe(0);
    expect(readStatus(runDir).state).toBe("succeeded");
    const starts = readEvents(runDir).filter((event) => event.type === "start");
    expect(starts.at(-1)).toMatchObject({ resumed_from_step: (interrupted as { step: number }).step });
    expect(readEvents(runDir).at(-1)).toMatchObject({ type: "done", step: 20 });

    // Everything in the run dir, the shim's checkpoints and adapter included, is the invoking user's.
    const files = filesUnder(runDir);
    expect(files.some((file) => file.includes(`${path.sep}adapter${path.sep}`))).toBe(true);
    const notOurs = files.filter((file) => lstatSync(file).uid !== TEST_UID || lstatSync(file).gid !== TEST_UID);
    expect(notOurs).toEqual([]);
  });
});

describe("resources.container on Slurm", () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster();
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it("the batch script runs the shim in the run's container on the node (DOCKER_HOST reaches it through --export=ALL)", { timeout: 300_000 }, async () => {
    const runsDir = mkdtempSync(path.join(cluster.sharedDir, "container-"));
    const slurmConfig = path.join(runsDir, "slurm.yaml");
    writeFileSync(
      slurmConfig,
      [
        `extends: ${config}`,
        "train: { max_steps: 4 }",
        "eval: { every_steps: 4 }",
        "checkpoint: { every_steps: 4 }",
        "resources:",
        "  executor: slurm",
        `  slurm: { partition: ${cluster.partition}, time: "30:00", signal_grace_s: 60 }`,
        "",
      ].join("\n"),
    );
    const result = await execa(process.execPath, [bin, "--runs-dir", runsDir, "run", slurmConfig], { reject: false, cwd: root, env: { ...daemon.env, SLURM_CONF: cluster.env.SLURM_CONF }, all: true });
    expect(result.exitCode, `${result.all}\n${cluster.logs()}`).toBe(0);
    const [run] = listRuns(runsDir, "incontainer");
    expect(readStatus(run!.dir).state).toBe("succeeded");
    expect(readEvents(run!.dir).at(-1)).toMatchObject({ type: "done", step: 4 });
    expect(containerEvents(run!.runId)).toEqual(expect.arrayContaining(["start", "die exitCode=0", "destroy"]));
  });
});
