/** model.quantization (QLoRA): its schema, its cross-field rule, and what it does to run ids. */
import { describe, expect, it } from "vitest";
import { ExperimentSchema } from "../../src/config/schema.ts";
import { LATER_FIELDS } from "../../src/plan/identity.ts";
import { planExperiment } from "../../src/plan/index.ts";
import { JobSpecSchema } from "../../src/plan/jobspec.ts";
import { diagnosticsOf, fixture } from "./helpers.ts";

const BASE = `name: q
model: { base: builtin:tiny-llama, quantization: { bits: 4 } }
method: { kind: lora, r: 4 }
data: { format: extes, path: data.json }
`;

describe("model.quantization", () => {
  it("fills QLoRA's defaults: 4-bit NF4 with double quantization, bfloat16 compute", () => {
    const parsed = ExperimentSchema.parse({ name: "q", model: { base: "m", quantization: {} }, method: { kind: "lora" }, data: { format: "extes", path: "/d" } });
    expect(parsed.model.quantization).toEqual({ bits: 4, type: "nf4", double_quant: true, compute_dtype: "bfloat16" });
    expect(ExperimentSchema.parse({ name: "q", model: { base: "m" }, method: { kind: "lora" }, data: { format: "extes", path: "/d" } }).model.quantization).toBeUndefined();
  });

  it("refuses bits other than 4 and 8, unknown types and keys, positioned", async () => {
    const dir = await fixture({ "a.yaml": BASE.replace("{ bits: 4 }", "{ bits: 3, type: int4, double: true }") });
    const diagnostics = (await diagnosticsOf(dir, "a.yaml")).join("\n");
    expect(diagnostics).toMatch(/a\.yaml:2:\d+: model\.quantization\.bits: must be one of 4, 8; got number 3/);
    expect(diagnostics).toMatch(/a\.yaml:2:\d+: model\.quantization\.type: must be one of nf4, fp4/);
    expect(diagnostics).toMatch(/a\.yaml:2:\d+: model\.quantization\.double: unknown key `double`/);
  });

  it("full fine-tuning of a quantized model is an error at validate, also from a sweep point", async () => {
    const dir = await fixture({
      "full.yaml": BASE.replace("method: { kind: lora, r: 4 }", "method: { kind: full }"),
      "swept.yaml": `${BASE}sweep: { parameters: { method.kind: [lora, full] } }\n`,
    });
    expect((await diagnosticsOf(dir, "full.yaml")).filter((line) => !line.includes("warning:"))).toEqual([
      "<dir>/full.yaml:2:50: model.quantization: full fine-tuning cannot train a 4-bit quantized model: its quantized weights take no gradient; use lora (QLoRA) or another adapter method, or remove model.quantization",
    ]);
    expect((await diagnosticsOf(dir, "swept.yaml")).join("\n")).toMatch(/sweep\.parameters\["method\.kind"\]\[1\]: full fine-tuning cannot train a 4-bit quantized model.*\(sweep point method\.kind="full"\)/);
  });

  it("counts in the run id only when set, so earlier ids hold", () => {
    const experiment = (quantization?: object) =>
      ExperimentSchema.parse({ name: "q", model: { base: "builtin:tiny-llama", ...(quantization ? { quantization } : {}) }, method: { kind: "lora" }, data: { format: "extes", path: "/d.json" } });
    const id = (quantization?: object) => planExperiment(experiment(quantization), { runsDir: "/r" }).jobs[0]!.spec;
    expect(id().model).not.toHaveProperty("quantization");
    expect(id({ bits: 4 }).run_id).not.toBe(id().run_id);
    expect(id({ bits: 4 }).fingerprints.job).not.toBe(id().fingerprints.job);
    expect(id({ bits: 4, type: "fp4" }).run_id).not.toBe(id({ bits: 4 }).run_id);
    expect(id({ bits: 4, type: "nf4" }).run_id).toBe(id({}).run_id);
    expect(Object.keys(LATER_FIELDS.model ?? {})).toContain("quantization");
    expect(Object.keys(JobSpecSchema.shape.model.shape)).toContain("quantization");
  });
});
