/**
 * The full round trip on a real training run: `peftctl run configs/smoke.yaml` (one sweep point, a
 * few steps, the real shim) into a temporary runs dir, `peftctl push` to the emulator, every file
 * downloaded with @huggingface/hub's downloadFile, and the downloaded adapter on the rebuilt built-in
 * base generates the same greedy tokens as the run's own adapter.
 */
import { execFile, execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { downloadFile, listFiles } from "@huggingface/hub";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readStatus } from "../../src/runs/store.ts";
import { projectRoot, shimEnv, shimPython } from "../../src/shim.ts";
import { HubEmulator } from "./emulator.ts";
import { FIXTURE_SCRIPT } from "./fixture.ts";

const run = promisify(execFile);
const TOKEN = "hf_realRunRoundTripToken000000000wxyz";
const CLI = path.join(projectRoot, "bin", "peftctl.js");

let root: string;
let hub: HubEmulator;

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), "peftctl-real-push-"));
  hub = new HubEmulator([{ token: TOKEN, name: "alice", orgs: ["peft-org"] }]);
  await hub.start();
});
afterAll(async () => {
  await hub.stop();
  rmSync(root, { recursive: true, force: true });
});

function greedyTokens(jobFile: string, adapterDir: string): { tokens: number[]; base_tokens: number[] } {
  const out = execFileSync(shimPython(), [FIXTURE_SCRIPT, "generate-job", jobFile, adapterDir], { env: shimEnv(), encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return JSON.parse(out.trim().split("\n").pop()!);
}

describe("a trained run through the Hub and back", () => {
  it("peftctl run, peftctl push, downloadFile, PeftModel.from_pretrained: same greedy tokens", async () => {
    const runsDir = path.join(root, "runs");
    const env = { ...process.env, HF_TOKEN: TOKEN, HF_ENDPOINT: hub.url, HF_HOME: path.join(root, "hf-home"), PEFTCTL_RUNS_DIR: runsDir };
    const sets = ["sweep.parameters.method.r=[4]", "train.max_steps=4", "eval.every_steps=2", "checkpoint.every_steps=2", "eval.generate.samples=0", "hub.repo=peft-org/smoke-e2e"];
    const trained = await run(process.execPath, [CLI, "run", "configs/smoke.yaml", ...sets.flatMap((s) => ["--set", s])], { env, cwd: projectRoot, maxBuffer: 16 << 20 });
    const [runId] = readdirSync(path.join(runsDir, "smoke"));
    const runDir = path.join(runsDir, "smoke", runId!);
    expect(readStatus(runDir).state, trained.stdout + trained.stderr).toBe("succeeded");

    // hub: is set (auto_push defaults to true), so `run` pushed the run when it succeeded
    const autoPushed = readStatus(runDir).push!;
    expect(autoPushed).toMatchObject({ state: "pushed", repo: expect.stringMatching(/^peft-org\/smoke-e2e-r4-/) });
    const repo = autoPushed.repo;
    const commitsAfterRun = hub.history(repo).length;
    expect(hub.files(repo).has("adapter_model.safetensors")).toBe(true);

    // pushing the unchanged run again by hand makes no new commit
    const pushed = await run(process.execPath, [CLI, "push", "smoke"], { env, cwd: projectRoot });
    expect(pushed.stdout).toContain(`smoke/${runId} -> ${hub.url}/${repo} (unchanged`);
    expect(hub.history(repo)).toHaveLength(commitsAfterRun);

    const downloaded = path.join(root, "downloaded");
    const params = { repo, hubUrl: hub.url, accessToken: TOKEN };
    for await (const entry of listFiles({ ...params, recursive: true })) {
      if (entry.type !== "file") continue;
      const blob = await downloadFile({ ...params, path: entry.path });
      mkdirSync(path.dirname(path.join(downloaded, entry.path)), { recursive: true });
      writeFileSync(path.join(downloaded, entry.path), Buffer.from(await blob!.arrayBuffer()));
    }
    for (const name of readdirSync(path.join(runDir, "adapter")).filter((n) => n !== "README.md")) {
      expect(readFileSync(path.join(downloaded, name)).equals(readFileSync(path.join(runDir, "adapter", name))), name).toBe(true);
    }
    expect(JSON.parse(readFileSync(path.join(downloaded, "peftctl", "job.json"), "utf8"))).toEqual(JSON.parse(readFileSync(path.join(runDir, "job.json"), "utf8")));
    const card = readFileSync(path.join(downloaded, "README.md"), "utf8");
    expect(card).toContain("library_name: peft");
    expect(card).toMatch(/- type: loss\n\s+value: \d/);

    const local = greedyTokens(path.join(runDir, "job.json"), path.join(runDir, "adapter"));
    const remote = greedyTokens(path.join(downloaded, "peftctl", "job.json"), downloaded);
    expect(remote.tokens).toEqual(local.tokens);
    expect(remote.tokens).not.toEqual(remote.base_tokens); // the pushed adapter is what changes the output

    const runFiles = readdirSync(runDir, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => readFileSync(path.join(entry.parentPath, entry.name), "latin1"));
    expect(runFiles.length).toBeGreaterThan(5);
    for (const text of [trained.stdout, trained.stderr, pushed.stdout, pushed.stderr, hub.allStoredBytes(repo).toString("latin1"), ...runFiles]) {
      expect(text.includes(TOKEN)).toBe(false);
    }
  }, 600_000);
});
