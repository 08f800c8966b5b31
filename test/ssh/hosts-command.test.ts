/**
 * `peftctl hosts [check]` against the real sshd pair: GPUs (none here: nvidia-smi is absent), free
 * slots, the libraries of each host's Python against python/requirements.txt; a host whose key is
 * not the known one is refused (host keys are checked as the ssh config says), and a config that
 * sets executor ssh without hosts, or a password in a host, is a positioned config error.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requiredVersions } from "../../src/launch/ssh/inventory.ts";
import { bin, root, writeExperiment } from "./fixture.ts";
import { startTestHosts, type TestHosts } from "./hosts.ts";

let hosts: TestHosts;
let work: string;

beforeAll(async () => {
  hosts = await startTestHosts();
  work = mkdtempSync(path.join(os.tmpdir(), "peftctl-ssh-hosts-"));
});
afterAll(() => hosts?.stop());

const peftctl = (...args: string[]) => execa(bin, ["--runs-dir", path.join(work, "runs"), ...args], { reject: false, cwd: root });

describe("peftctl hosts", () => {
  it("lists both hosts with their slots and versions; check passes when they match the requirements", async () => {
    const config = writeExperiment(path.join(work, "ok.yaml"), { name: "hosts-ok", rValues: [4], steps: 2, executor: "ssh", hosts });
    const listed = await peftctl("hosts", config);
    expect(listed.exitCode, listed.stderr).toBe(0);
    const required = requiredVersions();
    for (const alias of ["gpu-a", "gpu-b"]) expect(listed.stdout).toMatch(new RegExp(`${alias}\\s+yes\\s+0\\s+1/1 cpu slots\\s+${required.torch}\\S*\\s+${required.transformers}\\s+${required.peft}`));
    const checked = await peftctl("--json", "hosts", "check", config);
    expect(checked.exitCode, checked.stderr).toBe(0);
    const report = JSON.parse(checked.stdout);
    expect(report.problems).toEqual([]);
    expect(report.hosts.map((h: { inventory: { workdir: string } }) => h.inventory.workdir)).toEqual(hosts.hosts.map((h) => h.workdir));
  });

  it("check fails, naming the library, for a host whose Python lacks them", async () => {
    const config = writeExperiment(path.join(work, "bare.yaml"), { name: "hosts-bare", rValues: [4], steps: 2, executor: "ssh", hosts, pythonFor: { "gpu-b": "/usr/bin/python3" } });
    const checked = await peftctl("hosts", "check", config);
    expect(checked.exitCode).toBe(1);
    expect(checked.stdout).toMatch(/gpu-b: torch missing, python\/requirements.txt pins/);
    expect(checked.stderr).toMatch(/hosts check: \d problem/);
  });

  it("refuses a host whose key is not the known one", async () => {
    const configFile = path.join(work, "wrong_known_hosts_config");
    const wrongKnownHosts = path.join(work, "known_hosts");
    // gpu-b's key recorded for gpu-a's address: a man in the middle, as ssh sees it.
    const lines = readFileSync(path.join(hosts.dir, "known_hosts"), "utf8").trim().split("\n");
    writeFileSync(wrongKnownHosts, `${lines[0]!.split(" ")[0]} ${lines[1]!.split(" ").slice(1).join(" ")}\n`);
    writeFileSync(configFile, readFileSync(hosts.configFile, "utf8").replaceAll(path.join(hosts.dir, "known_hosts"), wrongKnownHosts));
    const config = writeExperiment(path.join(work, "mitm.yaml"), { name: "hosts-mitm", rValues: [4], steps: 2, executor: "ssh", hosts: { ...hosts, configFile } });
    hosts.closeMasters(); // a new connection: an open master would carry on with the key it checked
    const checked = await peftctl("hosts", "check", config);
    expect(checked.exitCode).toBe(1);
    expect(checked.stdout).toMatch(/gpu-a\s+NO/);
    expect(checked.stdout).toMatch(/gpu-a: .*(Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED)/);
  });

  it("reports config mistakes with positions and exit 2", async () => {
    const file = path.join(work, "bad.yaml");
    writeFileSync(file, `extends: ${path.join(root, "configs/smoke.yaml")}\nresources:\n  executor: ssh\n  ssh:\n    hosts:\n      - host: "me:hunter2@gpu-a"\n        pyton: /usr/bin/python3\n`);
    const result = await peftctl("validate", file);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/bad\.yaml:6:\d+: resources\.ssh\.hosts\.0\.host|bad\.yaml:6:\d+: resources\.ssh\.hosts\[0\]\.host/);
    expect(result.stderr).toMatch(/bad\.yaml:7:\d+: .*pyton.*did you mean `python`/);
    expect(result.stderr).not.toContain("hunter2");
    const missing = path.join(work, "missing.yaml");
    writeFileSync(missing, `extends: ${path.join(root, "configs/smoke.yaml")}\nresources:\n  executor: ssh\n`);
    const noHosts = await peftctl("validate", missing);
    expect(noHosts.exitCode).toBe(2);
    expect(noHosts.stderr).toMatch(/missing\.yaml:3:\d+: resources\.executor: executor ssh needs resources\.ssh/);
  });
});
