/**
 * Round trip: push a run, download every file back from the emulator with @huggingface/hub's
 * downloadFile, and check that PeftModel.from_pretrained on the downloaded files generates the same
 * greedy tokens as the local adapter. Also `peftctl push` end to end as a process.
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { downloadFile, listFiles } from "@huggingface/hub";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { pushRun } from "../../src/hub/push-run.ts";
import { projectRoot } from "../../src/shim.ts";
import { HubEmulator } from "./emulator.ts";
import { generateWithAdapter, makeRunDir, saveAdapter, type SavedAdapter } from "./fixture.ts";

const run = promisify(execFile);
const TOKEN = "hf_roundTripSecretToken00000000qrst";
const CLI = path.join(projectRoot, "bin", "peftctl.js");

let root: string;
let adapter: SavedAdapter;
let hub: HubEmulator;

beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), "peftctl-roundtrip-"));
  adapter = saveAdapter(root);
}, 120_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));
beforeEach(async () => {
  hub = new HubEmulator([{ token: TOKEN, name: "alice", orgs: ["peft-org"] }]);
  await hub.start();
});
afterEach(() => hub.stop());

/** Every file of the branch, fetched the way a user's client fetches it, written under `dir`. */
async function downloadAll(repo: string, revision: string, dir: string): Promise<string[]> {
  const params = { repo, revision, hubUrl: hub.url, accessToken: TOKEN };
  const paths: string[] = [];
  for await (const entry of listFiles({ ...params, recursive: true })) if (entry.type === "file") paths.push(entry.path);
  for (const file of paths) {
    const blob = await downloadFile({ ...params, path: file });
    if (!blob) throw new Error(`${file} listed but not downloadable`);
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), Buffer.from(await blob.arrayBuffer()));
  }
  return paths.sort();
}

describe("round trip through the Hub", () => {
  it("the downloaded adapter generates the same greedy tokens as the local one", async () => {
    const { dir, job } = makeRunDir(path.join(root, "runs"), adapter, {
      hub: { repo: "peft-org/roundtrip", private: true, layout: "branch-per-run", auto_push: true, license: "apache-2.0", language: ["en"], datasets: [] },
    });
    const result = await pushRun(dir, { env: { HF_TOKEN: TOKEN, HF_ENDPOINT: hub.url }, log: pino({ level: "silent" }) });
    if (!result.ok) throw result.error;
    const downloaded = path.join(root, "downloaded");
    const files = await downloadAll(job.hub!.repo, result.branch, downloaded);
    expect(files).toEqual(expect.arrayContaining(["adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "README.md", "peftctl/job.json"]));
    for (const name of readdirSync(path.join(dir, "adapter")).filter((n) => n !== "README.md")) {
      expect(readFileSync(path.join(downloaded, name)).equals(readFileSync(path.join(dir, "adapter", name))), name).toBe(true);
    }
    const tokens = generateWithAdapter(adapter.baseDir, downloaded);
    expect(tokens).toEqual(adapter.tokens);
    expect(tokens).not.toEqual(adapter.baseTokens); // the adapter changes what the model says
  }, 120_000);
});

describe("peftctl push (the command)", () => {
  function env(extra: Record<string, string> = {}) {
    return { ...process.env, HF_TOKEN: TOKEN, HF_ENDPOINT: hub.url, HF_HOME: path.join(root, "hf-home"), PEFTCTL_RUNS_DIR: path.join(root, "cli-runs"), ...extra };
  }
  async function cli(args: string[], extraEnv: Record<string, string> = {}) {
    try {
      const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env: env(extraEnv), cwd: projectRoot });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  }

  it("--dry-run lists files with sizes and the target without a request; push, push again, bad token", async () => {
    const runsDir = path.join(root, "cli-runs");
    const { dir } = makeRunDir(runsDir, adapter, { experiment: "cli", run_id: "cli-9f9f9f" });
    const dry = await cli(["push", "cli", "--dry-run"]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`cli/cli-9f9f9f -> peft-org/smoke-lora branch main at ${hub.url} (private if created)`);
    const safetensorsSize = statSync(path.join(dir, "adapter", "adapter_model.safetensors")).size;
    expect(dry.stdout).toMatch(new RegExp(`${(safetensorsSize / 1024).toFixed(1)} KiB\\s+adapter_model\\.safetensors`));
    expect(dry.stdout).toContain("peftctl/events-summary.json");
    expect(hub.requests).toHaveLength(0);

    const first = await cli(["push", "cli/cli-9f9f9f"]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain(`-> ${hub.url}/peft-org/smoke-lora (`);
    const again = await cli(["push", "cli-9f9f9f", "--json"]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)[0]).toMatchObject({ ok: true, skipped: true });
    expect(hub.history("peft-org/smoke-lora")).toHaveLength(2);

    const denied = await cli(["push", "cli"], { HF_TOKEN: "hf_notTheRightToken000000000000zz99" });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain("the Hub rejected the token hf_****zz99 (from HF_TOKEN)");
    expect(denied.stderr).not.toMatch(/at .*\.ts:\d+/); // no stack trace
    for (const output of [dry, first, again, denied]) {
      expect(output.stdout + output.stderr).not.toContain(TOKEN);
      expect(output.stdout + output.stderr).not.toContain("hf_notTheRightToken000000000000zz99");
    }
  }, 120_000);
});
