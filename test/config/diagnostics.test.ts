/** Every kind of config error, with its exact message and position (golden). */
import { describe, expect, test } from "vitest";
import { diagnosticsOf, fixture, MINIMAL } from "./helpers.ts";

async function errorsOf(text: string): Promise<string[]> {
  return diagnosticsOf(await fixture({ "a.yaml": text }), "a.yaml");
}

describe("schema errors", () => {
  test("unknown keys are reported at the key, with the nearest valid key", async () => {
    expect(await errorsOf(MINIMAL.replace("kind: lora", "kind: lora\n  alfa: 16\n  dropuot: 0.1\n  xyzzy: 1"))).toEqual([
      "<dir>/a.yaml:6:3: method.alfa: unknown key `alfa` (did you mean `alpha`?)",
      "<dir>/a.yaml:7:3: method.dropuot: unknown key `dropuot` (did you mean `dropout`?)",
      "<dir>/a.yaml:8:3: method.xyzzy: unknown key `xyzzy`",
    ]);
    expect(await errorsOf(`${MINIMAL}trian:\n  lr: 1\n`)).toEqual(["<dir>/a.yaml:9:1: trian: unknown key `trian` (did you mean `train`?)"]);
    expect(await errorsOf(`${MINIMAL}train.lr: 1\n`)).toEqual([
      "<dir>/a.yaml:9:1: [\"train.lr\"]: `train.lr` is a key path, and keys are not split at dots here: nest it (train: { lr: ... })",
    ]);
  });

  test("names from peft, the HF Trainer and lit-llama point to ours", async () => {
    expect(await errorsOf(MINIMAL.replace("kind: lora", "kind: lora\n  lora_alpha: 16\n  rank: 8"))).toEqual([
      "<dir>/a.yaml:6:3: method.lora_alpha: unknown key `lora_alpha` (did you mean `alpha`?)",
      "<dir>/a.yaml:7:3: method.rank: unknown key `rank` (did you mean `r`?)",
    ]);
    expect(await errorsOf(`${MINIMAL}train:\n  learning_rate: 1.0e-4\n`)).toEqual([
      "<dir>/a.yaml:10:3: train.learning_rate: unknown key `learning_rate` (did you mean `lr`?)",
    ]);
  });

  test("a missing required key points at its parent mapping", async () => {
    expect(await errorsOf("name: t\nmodel:\n  dtype: auto\nmethod:\n  kind: lora\n")).toEqual([
      "<dir>/a.yaml:1:1: data: missing required key `data` (training data)",
      expect.stringMatching(/^<dir>\/a\.yaml:2:1: model\.base: missing required key `base` \(base model: a Hub id/),
    ]);
  });

  test("wrong types and out-of-range numbers are reported at the value", async () => {
    expect(await errorsOf(`${MINIMAL}train:\n  lr: fast\n  batch_size: 2.5\n  epochs: -1\n  seed: 1.0e+400\nresources:\n  gpus: yes\n`)).toEqual([
      '<dir>/a.yaml:10:7: train.lr: expected a number, got the text "fast"',
      "<dir>/a.yaml:11:15: train.batch_size: expected an integer, got number 2.5",
      "<dir>/a.yaml:12:11: train.epochs: must be > 0, got number -1",
      "<dir>/a.yaml:13:9: train.seed: expected a number, got a number out of range (Infinity)",
      '<dir>/a.yaml:15:9: resources.gpus: expected a number, got the text "yes"',
    ]);
  });

  test("enum values and the method kind suggest the nearest option", async () => {
    expect(await errorsOf(MINIMAL.replace("base: builtin:tiny-llama", "base: builtin:tiny-llama\n  dtype: bfloat61"))).toEqual([
      '<dir>/a.yaml:4:10: model.dtype: must be one of auto, bfloat16, float16, float32; got the text "bfloat61" (did you mean `bfloat16`?)',
    ]);
    expect(await errorsOf(MINIMAL.replace("kind: lora", "kind: loora"))).toEqual([
      '<dir>/a.yaml:5:9: method.kind: must be one of lora, adapter, ia3, prefix, prompt, full; got the text "loora" (did you mean `lora`?)',
    ]);
    expect(await errorsOf(MINIMAL.replace("kind: lora", "r: 4"))).toEqual([
      "<dir>/a.yaml:4:1: method.kind: missing required key `kind`: one of lora, adapter, ia3, prefix, prompt, full",
    ]);
  });

  test("an option of another method is named as such", async () => {
    expect(await errorsOf(MINIMAL.replace("kind: lora", "kind: adapter\n  target_modules: [q_proj]"))).toEqual([
      "<dir>/a.yaml:6:3: method.target_modules: `target_modules` is not an option of method adapter (it belongs to lora, ia3); remove it or change method.kind",
    ]);
  });

  test("hub.repo must be org/name", async () => {
    expect(await errorsOf(`${MINIMAL}hub:\n  repo: no-slash\n`)).toEqual(['<dir>/a.yaml:10:9: hub.repo: expected org/name, got the text "no-slash"']);
  });

  test("all errors of a file come at once, in file order", async () => {
    const errors = await errorsOf("name: Bad\nmodel:\n  bas: x\nmethod:\n  kind: lora\n  r: 0\ndata:\n  format: txt\n  path: data.json\n");
    expect(errors).toEqual([
      "<dir>/a.yaml:1:7: name: must be lower-case letters, digits, '.', '_' and '-', starting with a letter or digit, got the text \"Bad\"",
      expect.stringMatching(/^<dir>\/a\.yaml:2:1: model\.base: missing required key `base`/),
      "<dir>/a.yaml:3:3: model.bas: unknown key `bas` (did you mean `base`?)",
      "<dir>/a.yaml:6:6: method.r: must be > 0, got number 0",
      '<dir>/a.yaml:8:11: data.format: must be one of extes, esconv, chat, alpaca, sharegpt; got the text "txt"',
    ]);
  });
});

describe("cross-field rules", () => {
  test("batch_size must be a multiple of micro_batch_size (x gpus when gpus > 1)", async () => {
    expect(await errorsOf(`${MINIMAL}train:\n  batch_size: 10\n`)).toEqual([
      "<dir>/a.yaml:10:15: train.batch_size: batch_size 10 is not a multiple of micro_batch_size 4: gradient accumulation needs a whole number of micro-batches (try batch_size 8)",
    ]);
    expect(await errorsOf(`${MINIMAL}train:\n  batch_size: 12\n  micro_batch_size: 4\nresources:\n  gpus: 2\n`)).toEqual([
      "<dir>/a.yaml:10:15: train.batch_size: batch_size 12 is not a multiple of micro_batch_size x gpus = 4 x 2 = 8: gradient accumulation needs a whole number of micro-batches (try batch_size 8)",
    ]);
    expect(await errorsOf(`${MINIMAL}train:\n  batch_size: 16\n  micro_batch_size: 4\nresources:\n  gpus: 2\n`)).toEqual([]);
    // The rule still runs when another key of the section is wrong.
    expect(await errorsOf(`${MINIMAL}train:\n  batch_size: 6\n  lr: x\n`)).toHaveLength(2);
  });

  test("prefix tuning refuses gradient checkpointing and compile, other methods take both", async () => {
    const prefix = MINIMAL.replace("kind: lora", "kind: prefix");
    expect(await errorsOf(`${prefix}train:\n  gradient_checkpointing: true\n  compile: true\n`)).toEqual([
      "<dir>/a.yaml:10:27: train.gradient_checkpointing: prefix tuning does not work with gradient checkpointing: its prefix is a per-layer key/value cache; turn it off or use lora",
      "<dir>/a.yaml:11:12: train.compile: prefix tuning cannot be compiled: its per-layer key/value cache recompiles every layer; turn compile off or use lora",
    ]);
    expect(await errorsOf(`${prefix}train:\n  compile: false\n`)).toEqual([]);
    expect(await errorsOf(`${MINIMAL}train:\n  gradient_checkpointing: true\n  compile: true\n`)).toEqual([]);
  });

  test("full fine-tuning in half precision is a warning; float32 and CPU auto are quiet", async () => {
    const full = MINIMAL.replace("kind: lora", "kind: full");
    expect(await errorsOf(full.replace("base: builtin:tiny-llama", "base: builtin:tiny-llama\n  dtype: bfloat16"))).toEqual([
      "<dir>/a.yaml:4:10: warning: model.dtype: full fine-tuning in bfloat16 updates bfloat16 weights directly, and AdamW steps smaller than about 0.4% of a weight are rounded away; set model.dtype: float32 for a faithful baseline",
    ]);
    expect(await errorsOf(`${full}resources:\n  gpus: 1\n`)).toEqual([
      "<dir>/a.yaml:5:9: warning: method.kind: full fine-tuning in bfloat16 (auto on a GPU) updates bfloat16 weights directly, and AdamW steps smaller than about 0.4% of a weight are rounded away; set model.dtype: float32 for a faithful baseline",
    ]);
    expect(await errorsOf(`${full}resources:\n  gpus: 0\n`)).toEqual([]);
    expect(await errorsOf(full.replace("base: builtin:tiny-llama", "base: builtin:tiny-llama\n  dtype: float32"))).toEqual([]);
  });

  test("split fractions must sum to 1", async () => {
    expect(await errorsOf(`${MINIMAL}  split: { train: 0.7, valid: 0.1, test: 0.1 }\n`)).toEqual([
      "<dir>/a.yaml:9:10: data.split: train + valid + test must sum to 1, got 0.7 + 0.1 + 0.1 = 0.9",
    ]);
    expect(await errorsOf(`${MINIMAL}  split: { train: 0.9, valid: 0.05, test: 0.05 }\n`)).toEqual([]);
  });
});

describe("sweep rules", () => {
  const withSweep = (sweep: string) => errorsOf(`${MINIMAL}sweep:\n${sweep}`);

  test("a sweep over a key that does not exist, at the key", async () => {
    expect(await withSweep("  parameters:\n    method.rr: [4, 8]\n    model.base: [a, b]\n")).toEqual([
      '<dir>/a.yaml:11:5: sweep.parameters["method.rr"]: sweep over unknown key `method.rr` (did you mean `method.r`?)',
    ]);
    expect(await withSweep("  parameters:\n    method.adapter_len: [4, 8]\n")).toEqual([
      '<dir>/a.yaml:11:5: sweep.parameters["method.adapter_len"]: sweep over `method.adapter_len`, which method lora does not have',
    ]);
    expect(await withSweep("  parameters:\n    name: [a, b]\n")).toEqual([
      '<dir>/a.yaml:11:5: sweep.parameters.name: cannot sweep over `name`: it names or shapes the experiment itself',
    ]);
  });

  test("sweep values of the wrong type, at the value", async () => {
    expect(await withSweep("  parameters:\n    method.r: [4, eight, 0]\n    method.use_dora: [true, 1]\n")).toEqual([
      '<dir>/a.yaml:11:19: sweep.parameters["method.r"][1]: sweep value for `method.r`: expected a number, got "eight"',
      '<dir>/a.yaml:11:26: sweep.parameters["method.r"][2]: sweep value for `method.r`: must be > 0, got 0',
      '<dir>/a.yaml:12:29: sweep.parameters["method.use_dora"][1]: sweep value for `method.use_dora`: expected true or false, got 1',
    ]);
  });

  test("random without n; ranges only with random; integer ranges", async () => {
    expect(await withSweep("  method: random\n  parameters:\n    train.lr: { min: 1.0e-5, max: 1.0e-3, distribution: log_uniform }\n")).toEqual([
      "<dir>/a.yaml:9:1: sweep.n: a random sweep needs `n`, the number of runs to sample",
    ]);
    expect(await withSweep("  parameters:\n    train.lr: { min: 1.0e-5, max: 1.0e-3 }\n")).toEqual([
      '<dir>/a.yaml:11:5: sweep.parameters["train.lr"]: a range (min/max) needs sweep.method: random; a grid sweep takes a list of values',
    ]);
    expect(await withSweep("  method: random\n  n: 4\n  parameters:\n    method.r: { min: 4, max: 2 }\n")).toEqual([
      '<dir>/a.yaml:13:15: sweep.parameters["method.r"]: min 4 is greater than max 2',
      '<dir>/a.yaml:13:15: sweep.parameters["method.r"]: `method.r` takes integers: use distribution: int_uniform',
    ]);
    expect(await withSweep("  method: random\n  n: 4\n  parameters:\n    method.r: { min: 2, max: 16, distribution: int_uniform }\n    train.lr: [1.0e-4, 3.0e-4]\n")).toEqual([]);
  });

  test("zip lists of unequal length", async () => {
    expect(await withSweep("  method: zip\n  parameters:\n    method.r: [4, 8, 16]\n    method.alpha: [8, 16]\n")).toEqual([
      '<dir>/a.yaml:13:5: sweep.parameters["method.alpha"]: zip lists must have equal lengths: `method.alpha` has 2 values, `method.r` has 3',
    ]);
  });
});

describe("every sweep point is checked by the same rules as the config", () => {
  const withSweep = (sweep: string, extra = "") => errorsOf(`${MINIMAL}${extra}sweep:\n${sweep}`);

  test("int_uniform bounds must be integers, at the bound (not a plan-time failure)", async () => {
    expect(await withSweep("  method: random\n  n: 4\n  parameters:\n    method.r: { min: 0.5, max: 2.5, distribution: int_uniform }\n")).toEqual([
      '<dir>/a.yaml:13:22: sweep.parameters["method.r"].min: an int_uniform range needs integer bounds, got min 0.5',
      '<dir>/a.yaml:13:22: sweep.parameters["method.r"].min: sweep value for `method.r`: expected an integer, got 0.5',
      '<dir>/a.yaml:13:32: sweep.parameters["method.r"].max: an int_uniform range needs integer bounds, got max 2.5',
      '<dir>/a.yaml:13:32: sweep.parameters["method.r"].max: sweep value for `method.r`: expected an integer, got 2.5',
    ]);
  });

  test("a sweep larger than sweep.max_runs is refused without expanding it", async () => {
    const tenValues = "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]";
    const keys = ["train.seed", "train.warmup_steps", "data.split.seed", "train.log_every_steps", "eval.generate.samples", "checkpoint.keep_last", "train.epochs", "method.r"];
    const grid = `  parameters:\n${keys.map((key) => `    ${key}: ${key === "method.r" || key === "train.epochs" || key === "train.log_every_steps" || key === "checkpoint.keep_last" ? "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]" : tenValues}`).join("\n")}\n`;
    expect(await withSweep(grid)).toEqual([
      "<dir>/a.yaml:11:5: sweep.parameters: this sweep plans a grid of 10 x 10 x 10 x 10 x 10 x 10 x 10 x 10 = 100,000,000 runs, more than sweep.max_runs 10,000; sweep fewer values, or raise sweep.max_runs if you mean it",
    ]);
    expect(await withSweep("  method: random\n  n: 2147483648\n  parameters:\n    method.r: [4, 8]\n")).toEqual([
      "<dir>/a.yaml:11:6: sweep.n: this sweep plans 2,147,483,648 runs, more than sweep.max_runs 10,000; sweep fewer values, or raise sweep.max_runs if you mean it",
    ]);
    expect(await withSweep("  max_runs: 3\n  parameters:\n    method.r: [4, 8, 16, 32]\n")).toEqual([
      "<dir>/a.yaml:10:13: sweep.max_runs: this sweep plans a grid of 4 = 4 runs, more than sweep.max_runs 3; sweep fewer values, or raise sweep.max_runs if you mean it",
    ]);
    expect(await withSweep("  max_runs: 4\n  parameters:\n    method.r: [4, 8, 16, 32]\n")).toEqual([]);
  });

  test("a swept value that breaks the batch rule, at the sweep key, naming the point", async () => {
    expect(await withSweep("  parameters:\n    train.micro_batch_size: [4, 3, 5]\n    method.r: [4, 8]\n", "train:\n  batch_size: 8\n")).toEqual([
      '<dir>/a.yaml:13:33: sweep.parameters["train.micro_batch_size"][1]: batch_size 8 is not a multiple of micro_batch_size 3: gradient accumulation needs a whole number of micro-batches (try batch_size 6) (sweep point train.micro_batch_size=3)',
      '<dir>/a.yaml:13:36: sweep.parameters["train.micro_batch_size"][2]: batch_size 8 is not a multiple of micro_batch_size 5: gradient accumulation needs a whole number of micro-batches (try batch_size 5) (sweep point train.micro_batch_size=5)',
    ]);
    expect(await withSweep("  method: zip\n  parameters:\n    train.batch_size: [6, 8]\n    train.micro_batch_size: [3, 4]\n")).toEqual([]);
  });

  test("rules across sections and combinations of swept values", async () => {
    expect(await withSweep("  parameters:\n    method.kind: [lora, prefix]\n", "train:\n  compile: true\n")).toEqual([
      '<dir>/a.yaml:13:25: sweep.parameters["method.kind"][1]: prefix tuning cannot be compiled: its per-layer key/value cache recompiles every layer; turn compile off or use lora (sweep point method.kind="prefix")',
    ]);
    expect(await withSweep("  parameters:\n    method.kind: [lora, adapter]\n    method.r: [4, 8]\n")).toEqual([
      '<dir>/a.yaml:11:25: sweep.parameters["method.kind"][1]: these swept values make an invalid method: method: unknown key `r` (sweep point method.kind="adapter", method.r=4)',
      '<dir>/a.yaml:11:25: sweep.parameters["method.kind"][1]: these swept values make an invalid method: method: unknown key `r` (sweep point method.kind="adapter", method.r=8)',
    ]);
  });

  test("ia3 feed-forward modules must be adapted modules", async () => {
    expect(await errorsOf(MINIMAL.replace("kind: lora", "kind: ia3\n  target_modules: [k_proj, v_proj]\n  feedforward_modules: [down_proj]"))).toEqual([
      "<dir>/a.yaml:7:24: method.feedforward_modules: `down_proj` must also be in method.target_modules",
    ]);
  });
});

describe("files that are not a config", () => {
  test("YAML syntax errors are positioned", async () => {
    expect(await errorsOf("name: t\nmodel: { base: x\nmethod:\n  kind: lora\n")).toEqual([
      "<dir>/a.yaml:3:1: YAML syntax error: Flow map in block collection must be sufficiently indented and end with a }",
    ]);
    expect(await errorsOf(`${MINIMAL}name: u\n`)).toEqual(["<dir>/a.yaml:9:1: YAML syntax error: Map keys must be unique"]);
    expect(await errorsOf("name: t\nmodel:\n\tbase: x\n")).toEqual(["<dir>/a.yaml:3:1: YAML syntax error: Tabs are not allowed as indentation"]);
  });

  test("empty files, scalars, binary junk", async () => {
    const hint = "a config is a mapping with name, model, method and data (see docs/config-reference.md)";
    expect(await errorsOf("")).toEqual([`<dir>/a.yaml:1:1: the file is empty: ${hint}`]);
    expect(await errorsOf("# only a comment\n")).toEqual([`<dir>/a.yaml:1:1: the file is empty: ${hint}`]);
    expect(await errorsOf("just text\n")).toEqual([`<dir>/a.yaml:1:1: the top level is not a mapping: ${hint}`]);
    const dir = await fixture({ "bin.yaml": new Uint8Array([0x6e, 0x61, 0x6d, 0x65, 0x3a, 0x0a, 0x20, 0xff, 0xfe, 0x00]) });
    expect(await diagnosticsOf(dir, "bin.yaml")).toEqual(["<dir>/bin.yaml:2:2: the file is not UTF-8 text; save it as UTF-8"]);
    const nul = await fixture({ "nul.yaml": "name: t\x00\x01\n" });
    expect(await diagnosticsOf(nul, "nul.yaml")).toEqual(["<dir>/nul.yaml:1:8: the file contains a control character (binary data?); a config is plain text"]);
  });

  test("a missing data file is a warning, not an error", async () => {
    const dir = await fixture({ "a.yaml": MINIMAL.replace("path: data.json", "path: nowhere/ExTES.json") });
    expect(await diagnosticsOf(dir, "a.yaml")).toEqual([
      "<dir>/a.yaml:8:9: warning: data.path: data file not found: <dir>/nowhere/ExTES.json (validation goes on; a run needs it)",
    ]);
  });
});
