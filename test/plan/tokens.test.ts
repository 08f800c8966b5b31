import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { planExperiment } from "../../src/plan/index.ts";
import { CHARS_PER_TOKEN, estimateTrainTokens, summarizeData } from "../../src/plan/tokens.ts";
import { experiment } from "./helpers.ts";

const samples = path.join(import.meta.dirname, "../../data/samples");

describe("data summary (cheap scan)", () => {
  it("counts one example per supporter turn that follows a seeker turn", () => {
    const text = JSON.stringify([
      { scene: "S", description: "D", content: [{ AI: "hello" }, { User: "u1" }, { AI: "a1", "AI Strategy": "Others" }, { User: "u2" }, { AI: "a2" }] },
    ]);
    const summary = summarizeData("extes", text)!;
    expect(summary.examples).toBe(2);
    // context grows turn by turn; each turn carries the template's 12 characters
    const first = 2 + (5 + 12) + (2 + 12) + (2 + 12);
    const second = first + (2 + 12) + (2 + 12);
    expect(summary.meanChars).toBeCloseTo((first + second) / 2, 6);
  });

  it("reads the shipped ExTES and ESConv samples, and the irregular one without throwing", () => {
    const extes = summarizeData("extes", readFileSync(path.join(samples, "extes-sample.json"), "utf8"))!;
    expect(extes.examples).toBeGreaterThan(25); // 25 dialogues, several supporter turns each
    expect(extes.meanChars).toBeGreaterThan(100);
    const esconv = summarizeData("esconv", readFileSync(path.join(samples, "esconv-sample.json"), "utf8"))!;
    expect(esconv.examples).toBeGreaterThan(0);
    expect(summarizeData("extes", readFileSync(path.join(samples, "extes-irregular.json"), "utf8"))).not.toBeNull();
  });

  it("text that is not the format gives null, not an exception", () => {
    expect(summarizeData("extes", "{ not json")).toBeNull();
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
