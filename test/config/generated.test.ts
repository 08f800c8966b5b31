/** Files derived from the schema must be fresh; the shipped configs must validate and point editors at the schema. */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { checkExperiment, formatDiagnostic } from "../../src/config/index.ts";
import { CONFIG_REFERENCE_PATH, JSON_SCHEMA_PATH, renderConfigReference, renderJsonSchema } from "../../src/config/json-schema.ts";
import { JOB_JSON_SCHEMA_PATH, renderJobJsonSchema } from "../../src/plan/jobspec.ts";

const root = path.resolve(import.meta.dirname, "../..");

function shippedConfigs(dir = path.join(root, "configs")): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? shippedConfigs(path.join(dir, entry.name)) : entry.name.endsWith(".yaml") ? [path.join(dir, entry.name)] : [],
  );
}

describe("generated from the schema", () => {
  test(`${JSON_SCHEMA_PATH} is fresh (else run: npm run schema)`, () => {
    expect(readFileSync(path.join(root, JSON_SCHEMA_PATH), "utf8")).toBe(renderJsonSchema());
  });

  test(`${CONFIG_REFERENCE_PATH} is fresh (else run: npm run schema)`, () => {
    expect(readFileSync(path.join(root, CONFIG_REFERENCE_PATH), "utf8")).toBe(renderConfigReference());
  });

  test(`${JOB_JSON_SCHEMA_PATH} is fresh (else run: npm run schema)`, () => {
    expect(readFileSync(path.join(root, JOB_JSON_SCHEMA_PATH), "utf8")).toBe(renderJobJsonSchema());
  });

  test("the JSON Schema carries the defaults and rejects unknown keys", () => {
    const schema = JSON.parse(renderJsonSchema());
    expect(schema.required).toEqual(["name", "model", "method", "data"]);
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.train.properties.batch_size.default).toBe(128);
    expect(schema.properties.method.oneOf.map((m: { properties: { kind: { const: string } } }) => m.properties.kind.const)).toEqual(["lora", "adapter", "ia3", "prefix", "prompt", "full"]);
  });
});

describe("shipped configs", () => {
  const configs = shippedConfigs();

  test("are all there", () => {
    expect(configs.map((file) => path.relative(root, file)).sort()).toEqual([
      "configs/extes/base.yaml",
      "configs/extes/dialogpt-medium-full.yaml",
      "configs/extes/llama-7b-adapter.yaml",
      "configs/extes/llama-7b-lora-no-strategy.yaml",
      "configs/extes/llama-7b-lora-test-esconv.yaml",
      "configs/extes/llama-7b-lora.yaml",
      "configs/extes/lora-rank-sweep.yaml",
      "configs/smoke.yaml",
    ]);
  });

  test.each(configs.map((file) => [path.relative(root, file), file]))("%s validates; its first line points at the schema", async (_, file) => {
    const firstLine = readFileSync(file, "utf8").split("\n")[0]!;
    const match = /^# yaml-language-server: \$schema=(\S+)$/.exec(firstLine);
    expect(match).not.toBeNull();
    expect(path.isAbsolute(match![1]!)).toBe(false);
    expect(path.resolve(path.dirname(file), match![1]!)).toBe(path.join(root, JSON_SCHEMA_PATH));
    const { diagnostics, experiment } = await checkExperiment(file, { env: {} });
    // The only acceptable warning: ExTES.json is not shipped.
    const unexpected = diagnostics.filter((d) => !(d.severity === "warning" && d.path === "data.path" && d.message.includes("ExTES.json")));
    expect(unexpected.map(formatDiagnostic)).toEqual([]);
    expect(experiment).toBeDefined();
  });

  test("the smoke config: tiny model, CPU, 2-run sweep, short", async () => {
    const { experiment } = await checkExperiment(path.join(root, "configs/smoke.yaml"), { env: {} });
    expect(experiment).toMatchObject({
      model: { base: "builtin:tiny-llama" },
      method: { kind: "lora" },
      data: { format: "extes", path: path.join(root, "data/samples/extes-sample.json"), max_length: 256 },
      train: { batch_size: 8, micro_batch_size: 4, warmup_steps: 5 },
      checkpoint: { every_steps: 10 },
      eval: { every_steps: 20 },
      resources: { gpus: 0 },
      sweep: { method: "grid", parameters: { "method.r": [4, 8] } },
    });
    expect(experiment!.train.max_steps).toBeLessThanOrEqual(50);
    expect(existsSync(experiment!.data.path)).toBe(true);
  });

  test("the ExTES reproduction settings", async () => {
    const load = async (name: string) => (await checkExperiment(path.join(root, "configs/extes", name), { env: {} })).experiment!;
    const lora = await load("llama-7b-lora.yaml");
    expect(lora).toMatchObject({
      model: { base: "huggyllama/llama-7b", dtype: "bfloat16" },
      method: { kind: "lora", r: 8, alpha: 16, dropout: 0.05, target_modules: ["q_proj", "v_proj"] },
      data: { path: path.join(root, "data/ExTES.json"), max_length: 256 },
      train: { lr: 3e-4, batch_size: 128, micro_batch_size: 4, warmup_steps: 100, weight_decay: 0, seed: 1337 },
    });
    const adapter = await load("llama-7b-adapter.yaml");
    expect(adapter.method).toEqual({ kind: "adapter", adapter_len: 10, adapter_layers: 30 });
    expect(adapter.train).toMatchObject({ lr: 9e-3, batch_size: 64, micro_batch_size: 4, weight_decay: 0.02, seed: 1337 });
    expect(adapter.data.max_length).toBe(256);
    const dialogpt = await load("dialogpt-medium-full.yaml");
    expect(dialogpt).toMatchObject({ model: { base: "microsoft/DialoGPT-medium" }, method: { kind: "full" } });
    const sweep = await load("lora-rank-sweep.yaml");
    expect(sweep.sweep?.parameters["method.r"]).toEqual([4, 8, 16, 32]);
  });
});
