/**
 * data.path a save_to_disk directory on SSH hosts: the directory is copied whole, under the sha256 of
 * its files, and the run trains on the host from that copy (real sshd from hosts.ts, real training).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dataSha256 } from "../../src/launch/ssh/layout.ts";
import { listRuns, readEvents, readStatus } from "../../src/runs/store.ts";
import { bin, controllerEnv, hostPython, root, writeExperiment } from "./fixture.ts";
import { startTestHosts, type TestHosts } from "./hosts.ts";

let hosts: TestHosts;

beforeAll(async () => {
  hosts = await startTestHosts();
});
afterAll(() => hosts?.stop());

describe("a save_to_disk directory as data.path on SSH hosts", () => {
  it("is copied to the host by its content and trained on there", { timeout: 15 * 60_000 }, async () => {
    const work = mkdtempSync(path.join(os.tmpdir(), "peftctl-ssh-datadir-"));
    const saved = path.join(work, "extes-saved");
    await execa(hostPython, ["-c", "import datasets, json, sys; datasets.Dataset.from_list(json.load(open(sys.argv[1]))).save_to_disk(sys.argv[2])",
      path.join(root, "data/samples/extes-sample.json"), saved]);
    const config = writeExperiment(path.join(work, "ssh.yaml"), { name: "ssh-datadir", rValues: [4], steps: 2, executor: "ssh", hosts });
    writeFileSync(config, readFileSync(config, "utf8").replace("data:\n  max_length: 128\n", `data:\n  max_length: 128\n  path: ${saved}\n`));

    const result = await execa(bin, ["--runs-dir", path.join(work, "runs"), "run", config], { reject: false, cwd: root, env: controllerEnv() });
    expect(result.exitCode, result.stderr).toBe(0);
    const [run] = listRuns(path.join(work, "runs"), "ssh-datadir");
    expect(readStatus(run!.dir).state).toBe("succeeded");
    const data = readEvents(run!.dir).find((event) => event.type === "data") as { dialogues: number } | undefined;
    expect(data?.dialogues).toBe(25); // the sample's dialogues, read from the copied directory

    const host = hosts.hosts.find((h) => h.alias === readStatus(run!.dir).host)!;
    const copy = path.join(host.workdir, "data", await dataSha256(saved), "extes-saved");
    expect(readdirSync(copy).sort()).toEqual(readdirSync(saved).sort());
    expect(existsSync(`${copy}.partial`)).toBe(false);
  });
});
