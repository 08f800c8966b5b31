/** The SSH executor's pure parts: ssh/rsync argv, the device pool across hosts, the job and events as they cross over. */
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { DevicePool, hostOfDevices, isCpuDevice, localDeviceId } from "../../src/launch/devices.ts";
import { remoteCommandLine, rsyncArgs, shellQuote, sshArgs } from "../../src/launch/ssh/commands.ts";
import { localizeEvent, remoteJob, shimCodeFiles } from "../../src/launch/ssh/layout.ts";
import { versionMismatches, type HostInventory } from "../../src/launch/ssh/inventory.ts";
import type { ShimEvent } from "../../src/runs/events.ts";
import type { JobSpec } from "../../src/plan/jobspec.ts";
import { SshHostSchema, SshSchema } from "../../src/config/schema.ts";

describe("ssh and rsync argv", () => {
  it("always passes -F and BatchMode, and never relaxes host key checking", () => {
    const args = sshArgs({ host: "gpu-a", configFile: "/etc/peftctl/ssh_config" }, ["sh", "-c", "echo 'hi'"]);
    expect(args.slice(0, 2)).toEqual(["-F", "/etc/peftctl/ssh_config"]);
    expect(args).toContain("BatchMode=yes");
    expect(args).toContain("ControlMaster=auto");
    expect(args.join(" ")).not.toMatch(/StrictHostKeyChecking|UserKnownHostsFile|KnownHosts/i);
    expect(args.slice(-3)).toEqual(["gpu-a", "--", `sh -c 'echo '\\''hi'\\'''`]);
    const rsync = rsyncArgs({ host: "gpu-a", configFile: "/c" }, ["/runs/r/"], "remote:/w/runs/r/", { exclude: ["job.json"] });
    expect(rsync.at(-1)).toBe("gpu-a:/w/runs/r/");
    expect(rsync.at(-2)).toBe("/runs/r/");
    expect(rsync[rsync.indexOf("-e") + 1]).toMatch(/^ssh -F \/c -o BatchMode=yes/);
    expect(rsync.join(" ")).not.toMatch(/StrictHostKeyChecking/i);
    // no -F when the config names no file: the user's own ~/.ssh/config applies
    expect(sshArgs({ host: "h" }, ["true"])).not.toContain("-F");
    // ssh does not expand ~ in -F: done here
    expect(sshArgs({ host: "h", configFile: "~/.ssh/peftctl" }, ["true"])[1]).toBe(path.join(os.homedir(), ".ssh/peftctl"));
  });

  it("quotes words for the remote shell so that it gets them back unchanged", async () => {
    const { execa } = await import("execa");
    const words = ["plain", "with space", "it's", "$HOME", "a;b", "", "*"];
    const echoed = await execa("sh", ["-c", `printf '%s\\n' ${remoteCommandLine(words)}`]);
    expect(echoed.stdout.split("\n")).toEqual(words);
    expect(shellQuote("/abs/path-1.2")).toBe("/abs/path-1.2");
  });
});

describe("the device pool across hosts", () => {
  it("places jobs on each host's slots, names them by host, and drops a lost host", () => {
    const pool = DevicePool.across([
      { host: "gpu-a", gpuIds: [], cpuSlots: 1 },
      { host: "gpu-b", gpuIds: [], cpuSlots: 2 },
    ]);
    expect(pool.cpuSlots).toBe(3);
    const first = pool.take(0)!;
    expect(first).toEqual(["gpu-a:cpu"]);
    expect([pool.take(0), pool.take(0), pool.take(0)]).toEqual([["gpu-b:cpu"], ["gpu-b:cpu"], undefined]);
    expect(isCpuDevice(first[0])).toBe(true);
    expect(hostOfDevices(first)).toBe("gpu-a");
    pool.markLost(first);
    pool.give(first);
    expect(pool.take(0)).toBeUndefined(); // gpu-a's slot is not handed out again
    pool.give(["gpu-b:cpu"]);
    expect(pool.take(0)).toEqual(["gpu-b:cpu"]);
    expect(pool.satisfiable(0)).toBe(true);
    pool.markLost(["gpu-b:cpu"]);
    expect(pool.satisfiable(0)).toBe(false);
  });

  it("gives GPUs of one host to a multi-GPU job, never a mix of hosts", () => {
    const pool = DevicePool.across([
      { host: "a", gpuIds: ["0"], cpuSlots: 1 },
      { host: "b", gpuIds: ["0", "1"], cpuSlots: 1 },
    ]);
    expect(pool.gpuCount).toBe(2);
    expect(pool.take(2)).toEqual(["b:0", "b:1"]);
    expect(pool.take(1)).toEqual(["a:0"]);
    expect(pool.take(1)).toBeUndefined();
    pool.give(["b:1", "b:0"]);
    expect(pool.take(1)).toEqual(["b:0"]);
    expect(localDeviceId("b:1")).toBe("1");
    // this host's pool keeps its plain ids
    expect(new DevicePool(["0", "1"], 1).take(1)).toEqual(["0"]);
    expect(hostOfDevices(["0"])).toBeNull();
  });
});

describe("what crosses over", () => {
  it("rewrites only the run dir and the data path of job.json, and localizes event paths", () => {
    const job = { run_id: "r", run_dir: "/home/me/runs/e/r", data: { format: "extes", path: "/home/me/data.json", strategy: "inline" }, fingerprints: { job: "f" } } as unknown as JobSpec;
    const there = remoteJob(job, { runDir: "/w/runs/e/r", dataPath: "/w/data/abc/data.json" });
    expect(there).toMatchObject({ run_dir: "/w/runs/e/r", data: { format: "extes", path: "/w/data/abc/data.json", strategy: "inline" }, fingerprints: { job: "f" } });
    expect(job.run_dir).toBe("/home/me/runs/e/r");
    const done = { v: 1, t: "x", run_id: "r", type: "done", step: 4, metrics: {}, adapter_path: "/w/runs/e/r/adapter" } as ShimEvent;
    expect(localizeEvent(done, "/w/runs/e/r", "/home/me/runs/e/r")).toMatchObject({ adapter_path: "/home/me/runs/e/r/adapter" });
    const elsewhere = { ...done, adapter_path: "/w/runs/e/r2/adapter" } as ShimEvent;
    expect(localizeEvent(elsewhere, "/w/runs/e/r", "/l")).toMatchObject({ adapter_path: "/w/runs/e/r2/adapter" });
  });

  it("ships the shim and the job schema, no caches", () => {
    const files = shimCodeFiles();
    expect(files).toContain("schema/job.schema.json");
    expect(files).toContain("python/peftshim/__main__.py");
    expect(files.some((f) => f.includes("__pycache__"))).toBe(false);
  });

  it("flags library versions that differ from python/requirements.txt, ignoring build labels", () => {
    const inventory = { host: "h", reachable: true, pythonError: null, versions: { torch: "2.13.0+cu128", transformers: "5.16.0", peft: null } } as unknown as HostInventory;
    expect(versionMismatches(inventory, { torch: "2.13.0", transformers: "5.17.0", peft: "0.21.0" })).toEqual([
      { library: "transformers", host: "5.16.0", required: "5.17.0" },
      { library: "peft", host: null, required: "0.21.0" },
    ]);
  });
});

describe("resources.ssh in the schema", () => {
  it("refuses a password in the host, unknown keys and duplicate hosts", () => {
    expect(SshHostSchema.safeParse({ host: "me:secret@gpu-a" }).success).toBe(false);
    expect(SshHostSchema.safeParse({ host: "gpu-a", password: "x" }).success).toBe(false);
    expect(SshHostSchema.parse({ host: "me@10.0.0.2" })).toEqual({ host: "me@10.0.0.2", cpu_slots: 1, python: "python3", workdir: "peftctl-work" });
    const twice = SshSchema.safeParse({ hosts: [{ host: "a" }, { host: "a" }] });
    expect(twice.success).toBe(false);
    expect(twice.error?.issues[0]?.path).toEqual(["hosts", 1, "host"]);
  });
});
