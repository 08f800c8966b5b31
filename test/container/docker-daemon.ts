/**
 * A real Docker daemon for the container tests, from the Debian packages (docker.io: dockerd,
 * containerd, runc, docker-init; scripts/install-test-servers.sh installs them), started directly
 * (there is no systemd here) on its own socket, data root and exec root in a temp dir, so it touches
 * nothing of a daemon the machine may run. This VM has no netfilter for docker's bridge, hence
 * --iptables=false --bridge=none (containers run with --network none), and vfs as the storage driver
 * (overlayfs over the VM's root filesystem is not available everywhere).
 *
 * No image can be pulled (no network): `shimImage` imports one from a tarball holding only /tmp,
 * with Dockerfile.gpu's environment (the shim on PYTHONPATH, its cache under a writable dir); the
 * host's Python runtime and the checkout are bind-mounted read-only through resources.container.mounts,
 * so the container runs the real shim with the real torch/transformers/peft of .venv.
 *
 * A daemon that does not start is an error, never a skip.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export type DockerDaemon = {
  dir: string;
  /** DOCKER_HOST for the docker CLI (and so for peftctl's executors). */
  env: NodeJS.ProcessEnv;
  logs(): string;
  docker(args: string[]): { status: number | null; stdout: string; stderr: string };
  stop(): Promise<void>;
};

function dockerCli(env: NodeJS.ProcessEnv, args: string[]) {
  const result = spawnSync("docker", args, { env, encoding: "utf8", timeout: 60_000 });
  return { status: result.status, stdout: result.stdout ?? "", stderr: result.stderr ?? result.error?.message ?? "" };
}

export async function startDockerDaemon(): Promise<DockerDaemon> {
  for (const tool of ["/usr/sbin/dockerd", "/usr/bin/containerd", "/usr/sbin/runc", "/usr/bin/docker-init"]) {
    if (!existsSync(tool)) throw new Error(`${tool} is missing: run scripts/install-test-servers.sh (make install does)`);
  }
  if (process.getuid?.() !== 0) throw new Error("the container tests start their own dockerd and need root");
  const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-docker-"));
  const socket = path.join(dir, "docker.sock");
  const logFile = path.join(dir, "dockerd.log");
  mkdirSync(path.join(dir, "root"));
  const log = () => (existsSync(logFile) ? readFileSync(logFile, "utf8").split("\n").slice(-40).join("\n") : "");
  const out = openSync(logFile, "a");
  const daemon: ChildProcess = spawn(
    "/usr/sbin/dockerd",
    [
      "--data-root", path.join(dir, "root"),
      "--exec-root", path.join(dir, "exec"),
      "--pidfile", path.join(dir, "dockerd.pid"),
      "-H", `unix://${socket}`,
      "--storage-driver", "vfs",
      "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--bridge=none",
    ],
    { stdio: ["ignore", out, out], detached: true },
  );
  const env = { ...process.env, DOCKER_HOST: `unix://${socket}` };
  const deadline = Date.now() + 60_000;
  while (dockerCli(env, ["info", "--format", "{{.ServerVersion}}"]).status !== 0) {
    if (daemon.exitCode !== null || Date.now() > deadline) throw new Error(`dockerd did not start (exit ${daemon.exitCode}):\n${log()}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  // The tests' controller runs as a non-root user: this daemon's socket is the tests' alone (a temp dir).
  chmodSync(socket, 0o666);
  return {
    dir,
    env,
    logs: log,
    docker: (args) => dockerCli(env, args),
    stop: async () => {
      const running = dockerCli(env, ["ps", "-aq"]).stdout.split("\n").filter(Boolean);
      if (running.length > 0) dockerCli(env, ["rm", "-f", ...running]);
      daemon.kill("SIGTERM");
      const until = Date.now() + 20_000;
      while (daemon.exitCode === null && daemon.signalCode === null && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 200));
      if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill("SIGKILL");
      // vfs layers are plain directories; containerd's state may hold mounts until the daemon is gone.
      spawnSync("umount", ["-R", path.join(dir, "exec")], { stdio: "ignore" });
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    },
  };
}

/**
 * An image like Dockerfile.gpu's, without its base (which cannot be pulled here): an empty root but a
 * world-writable /tmp, PYTHONPATH at the checkout's python/ and the shim's cache under /tmp.
 */
export function importShimImage(daemon: DockerDaemon, tag: string, projectRoot: string): void {
  const tree = path.join(daemon.dir, "image");
  mkdirSync(path.join(tree, "tmp"), { recursive: true });
  chmodSync(path.join(tree, "tmp"), 0o1777);
  const tarball = path.join(daemon.dir, "image.tar");
  execFileSync("tar", ["-C", tree, "-cf", tarball, "."]);
  const result = daemon.docker([
    "import",
    "--change", `ENV PYTHONPATH=${path.join(projectRoot, "python")}`,
    "--change", "ENV PEFTSHIM_CACHE_DIR=/tmp/peftshim-cache",
    tarball,
    tag,
  ]);
  if (result.status !== 0) throw new Error(`docker import failed: ${result.stderr}`);
}
