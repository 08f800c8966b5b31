import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { planConfig } from "../../src/experiment.ts";
import { planExperiment } from "../../src/plan/index.ts";
import { CHARS_PER_TOKEN, estimateTrainTokens } from "../../src/plan/tokens.ts";
import { shimEnv, shimPython } from "../../src/shim.ts";
import { experiment } from "./helpers.ts";

const samples = path.join(import.meta.dirname, "../../data/samples");

describe("data summary: the shim's own count", () => {
  it("the plan's estimate is built from the shim's count of the sample data (data-summary)", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-tokens-"));
    const config = path.join(dir, "a.yaml");
    writeFileSync(config, `name: t\nmodel: { base: builtin:tiny-llama }\nmethod: { kind: lora }\ndata: { format: extes, path: ${path.join(samples, "extes-sample.json")}, max_length: 4096 }\ntrain: { epochs: 2, batch_size: 8, micro_batch_size: 4 }\nresources: { gpus: 0 }\n`);
    const { stdout } = await execa(shimPython(), ["-m", "peftshim", "data-summary", "--format", "extes", "--path", path.join(samples, "extes-sample.json")], { env: shimEnv() });
    const shim = JSON.parse(stdout) as { examples: number; mean_chars: number };
    expect(shim.examples).toBe(134); // 25 dialogues; one example per reply that follows a user turn
    const { plan, warnings } = await planConfig(config, { runsDir: path.join(dir, "runs") });
    expect(warnings).toEqual([]);
    const expected = estimateTrainTokens(plan.jobs[0]!.spec, { examples: shim.examples, meanChars: shim.mean_chars });
    expect(plan.jobs[0]!.estimate.trainTokens).toBe(expected.tokens);
    expect(expected.tokens).toBe(Math.round(2 * Math.floor(134 * 0.8) * (shim.mean_chars / CHARS_PER_TOKEN)));
  });

  it("a file that does not read as its format: tokens unknown, with the shim's reason", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-tokens-"));
    writeFileSync(path.join(dir, "d.json"), "{ not json");
    const config = path.join(dir, "a.yaml");
    writeFileSync(config, "name: t\nmodel: { base: builtin:tiny-llama }\nmethod: { kind: lora }\ndata: { format: extes, path: d.json }\ntrain: { batch_size: 8, micro_batch_size: 4 }\n");
    const { plan, warnings } = await planConfig(config, { runsDir: path.join(dir, "runs") });
    expect(plan.jobs[0]!.estimate.trainTokens).toBeNull();
    expect(warnings.join("\n")).toMatch(/d\.json.*train tokens shown as "\?"/);
  });
});

describe("train tokens", () => {
  const summary = { examples: 1000, meanChars: 400 };

  it("epochs x train split x mean tokens, capped at max_length", () => {
    const job = experiment({ train: { batch_size: 8, micro_batch_size: 4, epochs: 3 }, data: { format: "extes", path: "/d", max_length: 256 } });
    expect(estimateTrainTokens(job, summary)).toEqual({ tokens: 3 * 800 * (400 / CHARS_PER_TOKEN), kind: "estimate" });
    const long = estimateTrainTokens(job, { examples: 1000, meanChars: 4000 });
    expect(long.tokens).toBe(3 * 800 * 256);
    const capped = estimateTrainTokens({ ...job, data: { ...job.data, max_examples: 100 } }, summary);
    expect(capped.tokens).toBe(3 * 100 * 100);
  });

  it("with max_steps: steps x batch x max_length (packed rows), an upper bound without data", () => {
    const job = experiment(); // max_steps 40, batch 8, max_length 256, packing
    expect(estimateTrainTokens(job, summary)).toEqual({ tokens: 40 * 8 * 256, kind: "estimate" });
    expect(estimateTrainTokens(job, null)).toEqual({ tokens: 40 * 8 * 256, kind: "at-most" });
    const unpacked = { ...job, data: { ...job.data, packing: false } };
    expect(estimateTrainTokens(unpacked, summary).tokens).toBe(40 * 8 * 100);
  });

  it("unknown without data and without max_steps; the plan carries it per job", () => {
    const job = experiment({ train: { batch_size: 8, micro_batch_size: 4 } });
    expect(estimateTrainTokens(job, undefined)).toEqual({ tokens: null, kind: "unknown" });
    const plan = planExperiment(job, { runsDir: "/r", dataSummary: summary });
    expect(plan.jobs[0]!.estimate.trainTokens).toBe(3 * 800 * 100);
  });
});
