/** extends, --set, ${env:NAME}, and the loadExperiment API built on them. */
import path from "node:path";
import { parse } from "yaml";
import { describe, expect, test } from "vitest";
import { checkExperiment, loadExperiment } from "../../src/config/index.ts";
import { UserError } from "../../src/errors.ts";
import { diagnosticsOf, fixture, MINIMAL } from "./helpers.ts";

const BASE = `name: base
model:
  base: builtin:tiny-llama
  dtype: float32
method:
  kind: lora
  r: 8
  target_modules: [q_proj, v_proj]
data:
  format: extes
  path: data.json
train:
  lr: 1.0e-3
  batch_size: 8
`;

describe("extends", () => {
  test("relative to the extending file; deep merge, child wins, lists replace", async () => {
    const dir = await fixture({ "base/common.yaml": BASE, "base/data.json": "[]", "exp/child.yaml": "extends: ../base/common.yaml\nname: child\nmethod:\n  r: 16\n  target_modules: [k_proj]\ntrain:\n  lr: 2.0e-4\n" });
    const { experiment, sources } = await loadExperiment(path.join(dir, "exp/child.yaml"), { env: {} });
    expect(experiment.name).toBe("child");
    expect(experiment.method).toMatchObject({ kind: "lora", r: 16, target_modules: ["k_proj"] });
    expect(experiment.model.dtype).toBe("float32");
    expect(experiment.train).toMatchObject({ lr: 2.0e-4, batch_size: 8, micro_batch_size: 4 });
    // data.path was set in base/common.yaml, so it resolves against base/.
    expect(experiment.data.path).toBe(path.join(dir, "base/data.json"));
    expect(sources.sort()).toEqual([path.join(dir, "base/common.yaml"), path.join(dir, "exp/child.yaml")]);
    expect(experiment).not.toHaveProperty("extends");
  });

  test("absolute paths, lists of parents (later wins), diamonds are not cycles", async () => {
    const dir = await fixture({ "root.yaml": BASE, "a.yaml": "extends: root.yaml\ntrain: { lr: 1.0 }\n", "b.yaml": "extends: root.yaml\ntrain: { lr: 2.0, seed: 7 }\n" });
    const child = await fixture({ "c.yaml": `extends: [${path.join(dir, "b.yaml")}, ${path.join(dir, "a.yaml")}]\nname: c\n` });
    const { experiment } = await loadExperiment(path.join(child, "c.yaml"), { env: {} });
    expect(experiment.train).toMatchObject({ lr: 1.0, seed: 7 });
  });

  test("changing method.kind replaces the parent's method", async () => {
    const dir = await fixture({ "base.yaml": BASE, "c.yaml": "extends: base.yaml\nmethod:\n  kind: adapter\n  adapter_len: 4\n" });
    const { experiment } = await loadExperiment(path.join(dir, "c.yaml"), { env: {} });
    expect(experiment.method).toEqual({ kind: "adapter", adapter_len: 4, adapter_layers: 30 });
  });

  test("cycles are reported at the extends entry that closes them", async () => {
    const dir = await fixture({ "a.yaml": "extends: b.yaml\nname: a\n", "b.yaml": "extends: [c.yaml]\n", "c.yaml": "extends: a.yaml\n" });
    expect(await diagnosticsOf(dir, "a.yaml")).toContain("<dir>/c.yaml:1:10: extends: extends cycle: <dir>/a.yaml -> <dir>/b.yaml -> <dir>/c.yaml -> <dir>/a.yaml");
    const self = await fixture({ "s.yaml": `extends: s.yaml\n${MINIMAL.replace("name: t\n", "name: s\n")}` });
    expect(await diagnosticsOf(self, "s.yaml")).toEqual(["<dir>/s.yaml:1:10: extends: extends cycle: <dir>/s.yaml -> <dir>/s.yaml"]);
  });

  test("errors inside an extended file name that file; a missing parent is positioned in the child", async () => {
    const dir = await fixture({ "base.yaml": BASE.replace("r: 8", "r: -2"), "c.yaml": "extends: [base.yaml, nope.yaml]\nname: c\n" });
    expect(await diagnosticsOf(dir, "c.yaml")).toEqual([
      "<dir>/base.yaml:7:6: method.r: must be > 0, got number -2",
      "<dir>/c.yaml:1:22: extends[1]: extended file not found: <dir>/nope.yaml",
    ]);
  });
});

describe("--set", () => {
  const load = async (set: string[]) => {
    const dir = await fixture({ "a.yaml": MINIMAL });
    return checkExperiment(path.join(dir, "a.yaml"), { set, env: {} });
  };

  test("values take the schema's type: number, boolean, list, string", async () => {
    const { experiment, diagnostics } = await load([
      "method.r=16",
      "method.use_dora=true",
      "method.target_modules=[q_proj, k_proj]",
      "model.revision=1234",
      "name=123",
      "train.lr=3e-4",
      "sweep.parameters.method.r=[4,8]",
    ]);
    expect(diagnostics).toEqual([]);
    expect(experiment?.method).toMatchObject({ r: 16, use_dora: true, target_modules: ["q_proj", "k_proj"] });
    expect(experiment?.model.revision).toBe("1234");
    expect(experiment?.name).toBe("123");
    expect(experiment?.train.lr).toBe(3e-4);
    expect(experiment?.sweep?.parameters).toEqual({ "method.r": [4, 8] });
  });

  test("errors name <--set> and the position of the n-th override", async () => {
    const { diagnostics } = await load(["method.r=8", "method.rr=16", "train.lr=fast", "oops", "extends=x.yaml"]);
    expect(diagnostics.map((d) => `${d.file}:${d.line}:${d.col}: ${d.path}: ${d.message}`)).toEqual([
      "<--set>:2:8: method.rr: unknown key `rr` (did you mean `r`?)",
      '<--set>:3:10: train.lr: expected a number, got the text "fast"',
      "<--set>:4:1: : expected key.path=value, got \"oops\"",
      "<--set>:5:1: extends: extends cannot be overridden with --set: files are merged before overrides",
    ]);
  });

  test("--set method.kind starts the method afresh, as a kind change in extends does", async () => {
    const { experiment, diagnostics } = await load(["method.kind=adapter", "method.adapter_len=4"]);
    expect(diagnostics).toEqual([]);
    expect(experiment?.method).toEqual({ kind: "adapter", adapter_len: 4, adapter_layers: 30 });
  });

  test("a --set data.path resolves against the working directory", async () => {
    const { experiment } = await load([`data.path=${path.relative(process.cwd(), "/tmp/x.json")}`]);
    expect(experiment?.data.path).toBe("/tmp/x.json");
  });
});

describe("${env:NAME}", () => {
  const text = MINIMAL.replace("base: builtin:tiny-llama", "base: ${env:BASE_MODEL}\n  revision: rev-${env:REV}") + "train:\n  lr: ${env:LR}\n";

  test("present variables are substituted, whole values typed by the schema", async () => {
    const dir = await fixture({ "a.yaml": text });
    const loaded = await loadExperiment(path.join(dir, "a.yaml"), { env: { BASE_MODEL: "builtin:tiny-llama", REV: "7", LR: "2e-4" } });
    expect(loaded.experiment.model).toMatchObject({ base: "builtin:tiny-llama", revision: "rev-7" });
    expect(loaded.experiment.train.lr).toBe(2e-4);
    expect(parse(loaded.snapshotYaml)).toMatchObject({ model: { base: "builtin:tiny-llama" }, train: { lr: 2e-4 }, data: { path: path.join(dir, "data.json") } });
  });

  test("a missing variable is an error naming it, at the value", async () => {
    const dir = await fixture({ "a.yaml": text });
    expect(await diagnosticsOf(dir, "a.yaml", { env: { REV: "1" } })).toEqual([
      "<dir>/a.yaml:3:9: model.base: environment variable BASE_MODEL is not set (referenced as ${env:BASE_MODEL})",
      "<dir>/a.yaml:11:7: train.lr: environment variable LR is not set (referenced as ${env:LR})",
    ]);
  });

  test("values of secret-looking variables are never echoed in messages", async () => {
    const dir = await fixture({ "a.yaml": MINIMAL.replace("name: t", "name: ${env:HF_TOKEN}") });
    const errors = await diagnosticsOf(dir, "a.yaml", { env: { HF_TOKEN: "hf_SECRETsecretSECRET" } });
    expect(errors).toEqual([
      "<dir>/a.yaml:1:7: name: must be lower-case letters, digits, '.', '_' and '-', starting with a letter or digit, got the text \"<${env:HF_TOKEN}>\"",
    ]);
  });

  test("$${...} is literal text; other ${...} forms are errors", async () => {
    const dir = await fixture({ "a.yaml": `${MINIMAL}description: "cost $\${env:X} and \${HOME}"\n` });
    expect(await diagnosticsOf(dir, "a.yaml")).toEqual([
      "<dir>/a.yaml:9:14: description: cannot interpolate ${HOME}: only ${env:NAME} is supported (write $${...} for a literal)",
    ]);
  });
});

describe("loadExperiment", () => {
  test("returns the experiment with defaults, an absolute data.path, warnings, the snapshot", async () => {
    const dir = await fixture({ "a.yaml": `# yaml-language-server: $schema=schema.json\n$schema: ./schema.json\n${MINIMAL}` });
    const loaded = await loadExperiment(path.join(dir, "a.yaml"), { env: {} });
    expect(loaded.configPath).toBe(path.join(dir, "a.yaml"));
    expect(loaded.experiment.data.path).toBe(path.join(dir, "data.json"));
    expect(loaded.experiment.train.batch_size).toBe(128);
    expect(loaded.experiment).not.toHaveProperty("$schema");
    expect(loaded.warnings).toEqual([]);
    const snapshot = parse(loaded.snapshotYaml) as Record<string, unknown>;
    expect(snapshot).not.toHaveProperty("$schema");
    expect(snapshot).not.toHaveProperty("train"); // before defaults
  });

  test("throws UserError PEFTCTL_CONFIG_INVALID with every formatted diagnostic", async () => {
    const dir = await fixture({ "a.yaml": MINIMAL.replace("kind: lora", "kind: lora\n  r: 0\n  alfa: 1") });
    const error = await loadExperiment(path.join(dir, "a.yaml"), { env: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect(error).toMatchObject({ code: "PEFTCTL_CONFIG_INVALID", exitCode: 2, message: `${path.join(dir, "a.yaml")}: 2 errors` });
    expect((error as UserError).details).toEqual([
      `${dir}/a.yaml:6:6: method.r: must be > 0, got number 0`,
      `${dir}/a.yaml:7:3: method.alfa: unknown key \`alfa\` (did you mean \`alpha\`?)`,
    ]);
  });

  test("a missing file is PEFTCTL_CONFIG_NOT_FOUND", async () => {
    await expect(loadExperiment("/nonexistent/x.yaml")).rejects.toMatchObject({ code: "PEFTCTL_CONFIG_NOT_FOUND", exitCode: 2 });
  });
});
