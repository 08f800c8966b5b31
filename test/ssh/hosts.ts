/**
 * Two real SSH hosts on loopback for the SSH executor's tests: OpenSSH's sshd (Debian's
 * openssh-server, installed by scripts/install-test-servers.sh) listening on 127.0.0.2 and 127.0.0.3,
 * each with its own work directory, so a job's files reach a host only through rsync.
 *
 * Host keys are really checked: the client config names a known_hosts holding the two host keys and
 * says StrictHostKeyChecking yes, so a host with another key is refused. No systemd here: the sshd
 * processes are started directly (-D, in the foreground as our children), with /run/sshd (its
 * privilege-separation directory), `StrictModes no` (the keys live under /tmp) and `UsePAM no`.
 * A server that cannot start throws: the tests fail rather than skip.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync, existsSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { controlPath } from "../../src/launch/ssh/commands.ts";

export type TestHost = { alias: string; address: string; workdir: string; sshd: ChildProcess | null; pidFile: string; sshdConfig: string };

export type TestHosts = {
  dir: string;
  /** The ssh client config (-F): Host aliases gpu-a and gpu-b with keys, known_hosts and ControlMaster. */
  configFile: string;
  hosts: TestHost[];
  port: number;
  /** Makes a host unreachable: its sshd and every session it serves are killed, the client's ControlMaster closed. */
  cut(alias: string): void;
  /** Closes the client's ControlMaster connections (a new connection then checks the host key again). */
  closeMasters(): void;
  stop(): void;
};

const SSHD = "/usr/sbin/sshd";

function canConnect(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: address, port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, address, () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** Descendants of a process, found through /proc (ppid, field 4 of /proc/<pid>/stat). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      // exited while we looked
    }
  }
  const found: number[] = [];
  const walk = (p: number) => {
    for (const child of children.get(p) ?? []) {
      found.push(child);
      walk(child);
    }
  };
  walk(pid);
  return found;
}

function killQuietly(pid: number, signal: NodeJS.Signals = "SIGKILL"): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

function keygen(file: string, comment: string): void {
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file]);
}

export async function startTestHosts(): Promise<TestHosts> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is missing: run scripts/install-test-servers.sh (make install does)`);
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-ssh-"));
  const clientKey = path.join(dir, "client_ed25519");
  keygen(clientKey, "peftctl-test-client");
  const authorizedKeys = path.join(dir, "authorized_keys");
  writeFileSync(authorizedKeys, readFileSync(`${clientKey}.pub`), { mode: 0o600 });
  const port = await freePort("127.0.0.2");
  const controlDir = path.join(dir, "cm");
  mkdirSync(controlDir, { mode: 0o700 });

  const specs = [
    { alias: "gpu-a", address: "127.0.0.2" },
    { alias: "gpu-b", address: "127.0.0.3" },
  ];
  const knownHosts: string[] = [];
  const hosts: TestHost[] = [];
  for (const spec of specs) {
    const hostDir = path.join(dir, spec.alias);
    mkdirSync(hostDir);
    const hostKey = path.join(hostDir, "ssh_host_ed25519_key");
    keygen(hostKey, spec.alias);
    knownHosts.push(`[${spec.address}]:${port} ${readFileSync(`${hostKey}.pub`, "utf8").split(" ").slice(0, 2).join(" ")}`);
    const workdir = path.join(hostDir, "work");
    mkdirSync(workdir);
    const pidFile = path.join(hostDir, "sshd.pid");
    const sshdConfig = path.join(hostDir, "sshd_config");
    writeFileSync(
      sshdConfig,
      [
        `ListenAddress ${spec.address}`,
        `Port ${port}`,
        `HostKey ${hostKey}`,
        `PidFile ${pidFile}`,
        `AuthorizedKeysFile ${authorizedKeys}`,
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "StrictModes no",
        "UsePAM no",
        "MaxSessions 64",
        "MaxStartups 64:30:128",
        "Subsystem sftp internal-sftp",
        "",
      ].join("\n"),
    );
    hosts.push({ alias: spec.alias, address: spec.address, workdir, sshd: null, pidFile, sshdConfig });
  }
  const knownHostsFile = path.join(dir, "known_hosts");
  writeFileSync(knownHostsFile, `${knownHosts.join("\n")}\n`);
  const configFile = path.join(dir, "ssh_config");
  writeFileSync(
    configFile,
    [
      ...specs.flatMap((spec) => [
        `Host ${spec.alias}`,
        `  HostName ${spec.address}`,
        `  Port ${port}`,
        "  User root",
        `  IdentityFile ${clientKey}`,
        "  IdentitiesOnly yes",
        `  UserKnownHostsFile ${knownHostsFile}`,
        "  StrictHostKeyChecking yes",
        "  ControlMaster auto",
        `  ControlPath ${controlDir}/%C`,
        "  ControlPersist 60",
        "  ConnectTimeout 5",
        "",
      ]),
    ].join("\n"),
  );

  const startSshd = async (host: TestHost) => {
    const child = spawn(SSHD, ["-D", "-e", "-f", host.sshdConfig], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    host.sshd = child;
    const deadline = Date.now() + 10_000;
    while (!(await canConnect(host.address, port))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`sshd for ${host.alias} (${host.address}:${port}) did not start: ${stderr.trim() || `exit ${child.exitCode}`}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  for (const host of hosts) await startSshd(host);

  const cut = (alias: string) => {
    const host = hosts.find((h) => h.alias === alias)!;
    const pid = host.sshd?.pid;
    if (!pid) return;
    // The listener and the per-connection sshd processes (ControlMaster sessions included); the
    // shims they started left the session (setsid) and keep running, as on a host cut off the network.
    const serving = descendants(pid).filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").startsWith("sshd");
      } catch {
        return false;
      }
    });
    killQuietly(pid);
    for (const p of serving) killQuietly(p);
    host.sshd = null;
    try {
      execFileSync("ssh", ["-F", configFile, "-o", `ControlPath=${controlPath()}`, "-O", "exit", alias], { stdio: "ignore" });
    } catch {
      // no master, or it died with the server
    }
  };

  const closeMasters = () => {
    for (const host of hosts) {
      try {
        execFileSync("ssh", ["-F", configFile, "-o", `ControlPath=${controlPath()}`, "-O", "exit", host.alias], { stdio: "ignore" });
      } catch {
        // no master running
      }
    }
  };

  const stop = () => {
    closeMasters();
    for (const host of hosts) {
      if (host.sshd?.pid) {
        for (const p of descendants(host.sshd.pid)) killQuietly(p);
        killQuietly(host.sshd.pid);
      }
    }
  };

  return { dir, configFile, hosts, port, cut, closeMasters, stop };
}
