/**
 * The after-success hook of `run` and `resume` (src/hub/after-run.ts): it pushes through the Hub
 * emulator and reports what happened as a notice for the command layer, in the words users know.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { afterRunSucceeded } from "../../src/hub/after-run.ts";
import type { PushOptions } from "../../src/hub/types.ts";
import type { JobSpec } from "../../src/plan/jobspec.ts";
import { readStatus } from "../../src/runs/store.ts";
import { HubEmulator } from "./emulator.ts";
import { makeRunDir, type SavedAdapter } from "./fixture.ts";

const TOKEN = "hf_peftctlTestWriteToken0123456789abcd";
const HUB: Omit<NonNullable<JobSpec["hub"]>, "repo"> = { private: true, layout: "repo-per-run", auto_push: true, license: "apache-2.0", language: ["en"], datasets: [] };

let root: string;
let hub: HubEmulator;
let adapter: SavedAdapter;

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), "peftctl-after-run-"));
  // Bytes that look like an adapter to the publisher; nothing here loads them.
  const adapterDir = path.join(root, "adapter");
  mkdirSync(adapterDir);
  writeFileSync(path.join(adapterDir, "adapter_config.json"), JSON.stringify({ peft_type: "LORA", r: 4 }));
  writeFileSync(path.join(adapterDir, "adapter_model.safetensors"), Buffer.alloc(64, 7));
  adapter = { adapterDir, baseDir: root, tokens: [], baseTokens: [] };
  hub = new HubEmulator([{ token: TOKEN, name: "alice", orgs: ["peft-org"] }]);
  await hub.start();
});

afterAll(() => hub.stop());

function options(token: string | undefined): PushOptions {
  return {
    env: { ...(token ? { HF_TOKEN: token } : {}), HF_ENDPOINT: hub.url, HF_HOME: path.join(root, "hf-home") },
    retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 50, requestTimeoutMs: 2000, totalTimeMs: 10_000 },
    log: pino({ level: "silent" }),
  };
}

describe("after a run succeeded", () => {
  it("says nothing without hub: or with auto_push off", async () => {
    const { dir, job } = makeRunDir(path.join(root, "runs-none"), adapter, { run_id: "quiet", hub: { repo: "peft-org/quiet", ...HUB, auto_push: false } });
    const run = { experiment: job.experiment, runId: job.run_id, dir };
    expect(await afterRunSucceeded(run, { hub: undefined }, options(TOKEN))).toBeUndefined();
    expect(await afterRunSucceeded(run, job, options(TOKEN))).toBeUndefined();
    expect(readStatus(dir).push).toBeNull();
  });

  it("an info notice with the URL after a push; a warning that keeps the run succeeded after a failed one", async () => {
    const { dir, job } = makeRunDir(path.join(root, "runs-push"), adapter, { run_id: "pushed-run", hub: { repo: "peft-org/pushed", ...HUB } });
    const run = { experiment: job.experiment, runId: job.run_id, dir };
    const pushed = await afterRunSucceeded(run, job, options(TOKEN));
    expect(pushed).toEqual({ level: "info", message: `pushed-run: pushed to ${readStatus(dir).push!.url}` });

    const failed = await afterRunSucceeded(run, job, options(undefined));
    expect(failed?.level).toBe("warn");
    expect(failed?.message).toMatch(/^pushed-run: push to the Hub failed \(the run stays succeeded\): no Hugging Face token to push /);
    expect(readStatus(dir)).toMatchObject({ state: "succeeded", push: { state: "failed" } });
  });
});
