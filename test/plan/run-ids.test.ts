/**
 * Run ids and job fingerprints of the shipped configs, as the first releases issued them. They must
 * never change: a run resumes only under its own id, and a checkpoint only with its own fingerprint.
 */
import path from "node:path";
import { describe, expect, test } from "vitest";
import { planConfig } from "../../src/experiment.ts";
import { DERIVED_FIELDS, LATER_FIELDS, RUN_ID_SECTIONS, UNHASHED_FIELDS } from "../../src/plan/identity.ts";
import { JobSpecSchema } from "../../src/plan/jobspec.ts";

const root = path.resolve(import.meta.dirname, "../..");

const ISSUED: Array<[config: string, set: string[], ids: Array<[runId: string, fingerprint: string]>]> = [
  ["configs/smoke.yaml", [], [["smoke-r4-ed76bd", "5a0a560ecbc5"], ["smoke-r8-ca8cb1", "6259429668ae"]]],
  ["configs/smoke.yaml", ["train.compile=true"], [["smoke-r4-33cf3e", "4e459611554c"], ["smoke-r8-06a459", "564459a6b6b5"]]],
  ["configs/smoke.yaml", ["resources.gpus=2"], [["smoke-r4-6f8e67", "c041a9a1816f"], ["smoke-r8-180789", "8ada14c3ea98"]]],
  ["configs/extes/base.yaml", [], [["extes-base-9d10c1", "bdb1a6736db8"]]],
  ["configs/extes/dialogpt-medium-full.yaml", [], [["extes-dialogpt-medium-full-4bdb9d", "2ee72f51c9b5"]]],
  ["configs/extes/llama-7b-adapter.yaml", [], [["extes-llama7b-adapter-2fe36c", "bcfcd0a80604"]]],
  ["configs/extes/llama-7b-lora.yaml", [], [["extes-llama7b-lora-0ede96", "bdb1a6736db8"]]],
  ["configs/extes/llama-7b-lora-no-strategy.yaml", [], [["extes-llama7b-lora-no-strategy-a19283", "edb5c6eb3be4"]]],
  // trained as llama-7b-lora.yaml (its fingerprint), tested on ESConv (eval.data)
  ["configs/extes/llama-7b-lora-test-esconv.yaml", [], [["extes-llama7b-lora-test-esconv-9f562c", "bdb1a6736db8"]]],
  [
    "configs/extes/lora-rank-sweep.yaml",
    [],
    [
      ["extes-llama7b-lora-rank-alpha8-r4-4586f9", "34e38eeea7ef"],
      ["extes-llama7b-lora-rank-alpha16-r8-4e821a", "bdb1a6736db8"],
      ["extes-llama7b-lora-rank-alpha32-r16-8ea0c9", "72aacfd14aa7"],
      ["extes-llama7b-lora-rank-alpha64-r32-d5148b", "f562b7566dedb"],
    ],
  ],
];

describe("run ids of the shipped configs never change", () => {
  test.each(ISSUED)("%s %j", async (config, set, expected) => {
    const { plan } = await planConfig(path.join(root, config), { set, runsDir: "/runs" });
    const got = plan.jobs.map((job): [string, string] => [job.spec.run_id, job.spec.fingerprints.job]);
    expect(got.map(([id]) => id)).toEqual(expected.map(([id]) => id));
    got.forEach(([, fingerprint], index) => expect(fingerprint.startsWith(expected[index]![1])).toBe(true));
  });
});

describe("what the run id hashes is declared for every job spec field", () => {
  test("each top-level field is a hashed section or declared unhashed", () => {
    const fields = Object.keys(JobSpecSchema.shape).sort();
    expect(fields).toEqual([...RUN_ID_SECTIONS.filter((s) => s !== "experiment"), ...UNHASHED_FIELDS, "experiment"].sort());
  });

  test("derived and later train fields exist in the job spec", () => {
    const train = Object.keys(JobSpecSchema.shape.train.shape);
    for (const field of [...(DERIVED_FIELDS.train ?? []), ...Object.keys(LATER_FIELDS.train ?? {})]) expect(train).toContain(field);
  });
});
