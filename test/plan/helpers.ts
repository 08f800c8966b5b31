import { ExperimentSchema, type Experiment, type ExperimentInput } from "../../src/config/schema.ts";

/** A small valid experiment, overridable per section; parsed so every default is filled in. */
export function experiment(overrides: Partial<ExperimentInput> = {}): Experiment {
  return ExperimentSchema.parse({
    name: "exp",
    model: { base: "builtin:tiny-llama", dtype: "float32" },
    method: { kind: "lora", r: 8 },
    data: { format: "extes", path: "/checkout/data/extes.json", max_length: 256 },
    train: { batch_size: 8, micro_batch_size: 4, max_steps: 40 },
    resources: { gpus: 0 },
    ...overrides,
  });
}
