import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ExperimentSchema } from "../../src/config/schema.ts";
import { canonicalJson, sha256Hex } from "../../src/config/canonical.ts";
import { planConfig } from "../../src/experiment.ts";
import { planExperiment } from "../../src/plan/index.ts";
import { formatSweepNumber, sweepSlug } from "../../src/plan/runid.ts";
import { experiment } from "./helpers.ts";

const ID = /^[a-z0-9][a-z0-9._-]*-[0-9a-f]{6}$/;

describe("run ids", () => {
  it("no sweep: <name>-<6 hex>", () => {
    const plan = planExperiment(experiment(), { runsDir: "/runs" });
    expect(plan.jobs).toHaveLength(1);
    expect(plan.jobs[0]!.spec.run_id).toMatch(/^exp-[0-9a-f]{6}$/);
  });

  it("sweep: <name>-<slug of swept values>-<6 hex>, slug keys sorted", () => {
    const plan = planExperiment(
      experiment({ sweep: { method: "grid", parameters: { "train.lr": [3e-4, 0.001], "method.r": [4, 8] } } }),
      { runsDir: "/runs" },
    );
    const ids = plan.jobs.map((job) => job.spec.run_id);
    // Jobs follow the grid order as written (train.lr outer); the slug lists keys sorted.
    expect(ids.map((id) => id.slice(0, -7))).toEqual(["exp-r4-lr3e-4", "exp-r8-lr3e-4", "exp-r4-lr1e-3", "exp-r8-lr1e-3"]);
    for (const id of ids) expect(id).toMatch(ID);
    expect(new Set(ids).size).toBe(4);
  });

  it("slugs: numbers compact, other values after an underscore, clashing labels spelled out", () => {
    expect(sweepSlug({ "method.r": 16, "train.lr": 3e-5 })).toBe("r16-lr3e-5");
    expect(sweepSlug({ "train.gradient_checkpointing": true, "method.target_modules": ["q_proj", "v_proj"] })).toBe(
      "target_modules_q_proj_v_proj-gradient_checkpointing_true",
    );
    expect(sweepSlug({ "train.seed": 1, "data.split.seed": 2 })).toBe("data.split.seed2-train.seed1");
    expect(formatSweepNumber(0.0003)).toBe("3e-4");
    expect(formatSweepNumber(0.05)).toBe("0.05");
    expect(formatSweepNumber(1024)).toBe("1024");
  });

  it("get more hex digits where two jobs share a slug and their first 6 hex digits", () => {
    // Both values slug to the same cut text, and these two job hashes both start 65456b.
    const revisions = ["1816", "3288"].map((n) => `${"a".repeat(40)}${n}`);
    const plan = planExperiment(experiment({ sweep: { parameters: { "model.revision": revisions } } }), { runsDir: "/r" });
    const ids = plan.jobs.map((job) => job.spec.run_id);
    expect(ids).toEqual([`exp-revision_${"a".repeat(32)}-65456bbe`, `exp-revision_${"a".repeat(32)}-65456b2a`]);
  });

  it("do not depend on key order, the runs dir or where the checkout lives", () => {
    const a = planExperiment(
      experiment({
        data: { format: "extes", path: "/home/ann/peft/data/extes.json", max_length: 256 },
        sweep: { parameters: { "method.r": [4, 8], "train.lr": [1e-4] } },
      }),
      { runsDir: "/home/ann/runs", pathRoot: "/home/ann/peft/configs" },
    );
    // Same config, keys written in another order everywhere, checkout and runs dir elsewhere.
    const b = planExperiment(
      ExperimentSchema.parse({
        sweep: { parameters: { "train.lr": [1e-4], "method.r": [4, 8] } },
        resources: { gpus: 0 },
        train: { max_steps: 40, micro_batch_size: 4, batch_size: 8 },
        data: { max_length: 256, path: "/srv/ci/checkout/data/extes.json", format: "extes" },
        method: { r: 8, kind: "lora" },
        model: { dtype: "float32", base: "builtin:tiny-llama" },
        name: "exp",
      }),
      { runsDir: "/tmp/other-runs", pathRoot: "/srv/ci/checkout/configs" },
    );
    const sortedIds = (plan: typeof a) => plan.jobs.map((job) => job.spec.run_id).sort();
    expect(sortedIds(b)).toEqual(sortedIds(a));
    expect(b.jobs.map((j) => j.spec.fingerprints.job).sort()).toEqual(a.jobs.map((j) => j.spec.fingerprints.job).sort());
  });

  it("change when anything in the job changes, even outside the swept keys", () => {
    const base = planExperiment(experiment(), { runsDir: "/runs" }).jobs[0]!.spec.run_id;
    const otherLr = planExperiment(experiment({ train: { batch_size: 8, micro_batch_size: 4, max_steps: 40, lr: 1e-3 } }), { runsDir: "/runs" });
    const otherEval = planExperiment(experiment({ eval: { every_steps: 7 } }), { runsDir: "/runs" });
    expect(otherLr.jobs[0]!.spec.run_id).not.toBe(base);
    expect(otherEval.jobs[0]!.spec.run_id).not.toBe(base);
  });

  it("stay those of earlier releases while train.compile is false; compiled runs are new runs", async () => {
    const smoke = path.join(import.meta.dirname, "../../configs/smoke.yaml");
    const ids = async (set: string[]) => (await planConfig(smoke, { set, runsDir: "/runs" })).plan.jobs.map((j) => j.spec.run_id);
    // the ids the smoke sweep had before train.compile existed (README's demo output shows the first)
    expect(await ids([])).toEqual(["smoke-r4-ed76bd", "smoke-r8-ca8cb1"]);
    expect(await ids(["train.compile=false"])).toEqual(["smoke-r4-ed76bd", "smoke-r8-ca8cb1"]);
    const compiled = await ids(["train.compile=true"]);
    expect(compiled).toHaveLength(2);
    expect(compiled.filter((id) => id.endsWith("-ed76bd") || id.endsWith("-ca8cb1"))).toEqual([]);
  });

  it("are unique over a large sweep, and a value listed twice plans one job with a warning", () => {
    const big = planExperiment(
      experiment({ sweep: { parameters: { "method.r": [1, 2, 3, 4, 5, 6, 7, 8], "train.lr": [1e-5, 2e-5, 5e-5, 1e-4, 2e-4], "train.seed": [1, 2, 3, 4, 5] } } }),
      { runsDir: "/runs" },
    );
    expect(new Set(big.jobs.map((j) => j.spec.run_id)).size).toBe(200);
    const twice = planExperiment(experiment({ sweep: { parameters: { "method.r": [4, 8, 4] } } }), { runsDir: "/runs" });
    expect(twice.jobs).toHaveLength(2);
    expect(twice.warnings).toEqual([
      { path: ["sweep", "parameters", "method.r", 2], message: "`method.r` lists 4 twice (items 0 and 2): 1 sweep point(s) resolve to a job already planned; planned 2 distinct job(s)" },
    ]);
  });
});

describe("job specs", () => {
  it("resolve every field: run dir, sweep values, accumulation, fingerprint", () => {
    const plan = planExperiment(
      experiment({
        resources: { gpus: 2 },
        train: { batch_size: 64, micro_batch_size: 4 },
        sweep: { method: "zip", parameters: { "method.r": [4, 16], "method.alpha": [8, 32] } },
      }),
      { runsDir: "/abs/runs", pathRoot: "/checkout/configs" },
    );
    expect(plan.experiment).toBe("exp");
    const [first, second] = plan.jobs.map((job) => job.spec);
    expect(first!.schema_version).toBe(2);
    expect(first!.experiment).toBe("exp");
    expect(first!.run_dir).toBe(path.join("/abs/runs", "exp", first!.run_id));
    expect(first!.sweep_values).toEqual({ "method.r": 4, "method.alpha": 8 });
    expect(first!.method).toMatchObject({ kind: "lora", r: 4, alpha: 8, dropout: 0.05, target_modules: ["q_proj", "v_proj"] });
    expect(second!.method).toMatchObject({ r: 16, alpha: 32 });
    // 64 / (4 x 2 GPUs) per device, 64 / 4 over both
    expect(first!.train.gradient_accumulation_steps).toBe(8);
    expect(first!.train.micro_batches_per_step).toBe(16);
    expect(first!.data.path).toBe("/checkout/data/extes.json");
    expect(first).not.toHaveProperty("sweep");
    expect(first).not.toHaveProperty("extends");
    // sha256 of model, method, data, train, with the data path as seen from the config's directory
    // (train.compile left out while false: see "stay those of earlier releases"; the micro-batches per
    // step follow from batch_size and micro_batch_size).
    expect(first!.train.compile).toBe(false);
    const { compile: _compile, micro_batches_per_step: _derived, ...train } = first!.train;
    const expected = sha256Hex(
      canonicalJson({ model: first!.model, method: first!.method, data: { ...first!.data, path: "../data/extes.json" }, train }),
    );
    expect(first!.fingerprints.job).toBe(expected);
    expect(second!.fingerprints.job).not.toBe(expected);
  });

  it("the fingerprint ignores what does not change the weights (eval, checkpoint, hub)", () => {
    const a = planExperiment(experiment(), { runsDir: "/r" }).jobs[0]!.spec;
    const b = planExperiment(experiment({ checkpoint: { every_steps: 3 }, hub: { repo: "org/x" } }), { runsDir: "/r" }).jobs[0]!.spec;
    expect(b.fingerprints.job).toBe(a.fingerprints.job);
    expect(b.hub).toMatchObject({ repo: "org/x", private: true });
  });

  it("CPU jobs count as one device for accumulation", () => {
    const spec = planExperiment(experiment({ train: { batch_size: 12, micro_batch_size: 3 } }), { runsDir: "/r" }).jobs[0]!.spec;
    expect(spec.train.gradient_accumulation_steps).toBe(4);
  });

  it("takes the validated experiment as it is: the rules live in src/config", () => {
    const source = readFileSync(path.join(import.meta.dirname, "../../src/plan/index.ts"), "utf8");
    expect(source).not.toMatch(/UserError|safeParse|\.parse\(/);
  });
});

describe("purity", () => {
  it("src/plan does no I/O and reads no clock or environment", () => {
    const dir = path.join(import.meta.dirname, "../../src/plan");
    for (const file of readdirSync(dir)) {
      const source = readFileSync(path.join(dir, file), "utf8");
      expect(source, file).not.toMatch(/node:fs|from "fs"|process\.|Date\.now|new Date|Math\.random\(|performance\./);
    }
  });
});
