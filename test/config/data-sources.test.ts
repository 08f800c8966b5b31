/**
 * data.path beyond JSON files (a save_to_disk directory, hf://datasets/...), the data fields that
 * came with them (source, columns, chat_template, system_prompt), and `validate`'s check of the data
 * file's first records through the shim's readers.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { checkExperiment } from "../../src/config/index.ts";
import { planConfig } from "../../src/experiment.ts";
import { shimPython } from "../../src/shim.ts";
import { fixture, MINIMAL, ONE_DIALOGUE, runCli, writeTree } from "./helpers.ts";

const dialogue = JSON.parse(ONE_DIALOGUE)[0] as unknown;

describe("validate reads the first records of a local data file", () => {
  test("invalid JSON in the data file is an error naming the data file's line, exit 2", async () => {
    const dir = await writeTree({ "a.yaml": MINIMAL, "data.json": `[\n${JSON.stringify(dialogue)},\n{"scene": "x", "content": [}\n]` });
    const result = await runCli(["validate", path.join(dir, "a.yaml")]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${dir}/a.yaml:8:9: data.path: ${dir}/data.json:3:28: not valid JSON: Expecting value`);
    expect(result.stdout).toBe("");
  });

  test("records of another format: the fields it read and the fields the format wants", async () => {
    const alpaca = JSON.stringify([{ instruction: "Say hi.", output: "Hi!" }]);
    const dir = await writeTree({ "a.yaml": MINIMAL, "data.json": alpaca });
    const result = await runCli(["validate", path.join(dir, "a.yaml")]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      `${dir}/a.yaml:8:9: data.path: ${dir}/data.json: no usable dialogue in 1 record(s) read as format 'extes' (skipped: no_content: 1; the first record's fields: instruction, output)`,
    );
    const right = await runCli(["validate", path.join(dir, "a.yaml"), "--set", "data.format=alpaca"]);
    expect(right.code).toBe(0);
    writeFileSync(path.join(dir, "renamed.json"), JSON.stringify([{ prompt: "Say hi.", answer: "Hi!" }]));
    const renamed = ["validate", path.join(dir, "a.yaml"), "--set", "data.format=alpaca", "--set", "data.path=" + path.join(dir, "renamed.json")];
    expect((await runCli(renamed)).code).toBe(2);
    expect((await runCli([...renamed, "--set", "data.columns={instruction: prompt, output: answer}"])).code).toBe(0);
    const unknown = await runCli(["validate", path.join(dir, "a.yaml"), "--set", "data.format=alpaca", "--set", "data.columns={prompt: instruction}"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("data.path: data.columns: 'prompt' is not a field of format 'alpaca', which reads instruction, input, output");
  });

  test("only the first 100 records are read: a bad record 101 is the run's to find", async () => {
    const records = Array.from({ length: 100 }, () => JSON.stringify(dialogue));
    const dir = await writeTree({ "a.yaml": MINIMAL, "data.json": `[${records.join(",\n")},\n{"scene": }]` });
    const result = await runCli(["validate", path.join(dir, "a.yaml")]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`ok ${path.join(dir, "a.yaml")}\n`);
  });
});

describe("data.path: a save_to_disk directory", () => {
  test("a directory written by datasets validates and plans with its examples counted", async () => {
    const dir = await fixture({ "a.yaml": MINIMAL.replace("path: data.json", "path: saved") });
    execFileSync(shimPython(), ["-c", `import datasets, json, sys; datasets.Dataset.from_list(json.loads(sys.argv[1]) * 3).save_to_disk(sys.argv[2])`, ONE_DIALOGUE, path.join(dir, "saved")]);
    const result = await runCli(["validate", path.join(dir, "a.yaml")]);
    expect(result.code).toBe(0);
    const { plan, loaded } = await planConfig(path.join(dir, "a.yaml"), { runsDir: "/runs" });
    expect(loaded.experiment.data.path).toBe(path.join(dir, "saved"));
    expect(plan.jobs[0]!.estimate.trainTokensKind).not.toBe("unknown"); // the shim counted the directory's records
  });

  test("a directory holding something other than regular files is refused before anything opens it", async () => {
    const dir = await fixture({ "a.yaml": MINIMAL.replace("path: data.json", "path: saved"), "saved/dataset_info.json": "{}", "saved/state.json": "{}" });
    execFileSync("mkfifo", [path.join(dir, "saved", "data-00000-of-00001.arrow")]);
    const result = await checkExperiment(path.join(dir, "a.yaml"), { env: {} });
    expect(result.errorCount).toBe(1);
    expect(result.diagnostics[0]!.message).toBe(`${path.join(dir, "saved")} holds data-00000-of-00001.arrow, which is a named pipe (FIFO), not a regular file: a data file must be a regular file`);
  });
});

describe("data.path: hf://datasets/<org>/<name>", () => {
  const hub = MINIMAL.replace("format: extes\n  path: data.json", "format: alpaca\n  path: hf://datasets/tatsu-lab/alpaca\n  source: { split: train, revision: main }");

  test("is left as written: not made absolute, not stat'ed, not read by validate", async () => {
    const dir = await writeTree({ "a.yaml": hub });
    const result = await runCli(["validate", path.join(dir, "a.yaml")]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("");
    const { plan } = await planConfig(path.join(dir, "a.yaml"), { runsDir: "/runs" });
    expect(plan.jobs[0]!.spec.data.path).toBe("hf://datasets/tatsu-lab/alpaca");
    expect(plan.jobs[0]!.spec.data.source).toEqual({ split: "train", revision: "main" });
  });

  test("anything else after hf:// is an error at the value", async () => {
    const dir = await writeTree({ "a.yaml": hub.replace("hf://datasets/tatsu-lab/alpaca", "hf://datasets/a/b/c") });
    const result = await runCli(["validate", path.join(dir, "a.yaml")]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${dir}/a.yaml:8:9: data.path: expected hf://datasets/<org>/<name>`);
  });
});

describe("the data fields added with data sources count in run ids only when set", () => {
  test("columns, chat_template, system_prompt and source each make another run; absent they change nothing", async () => {
    const dir = await fixture({ "a.yaml": MINIMAL });
    const idOf = async (set: string[]) => (await planConfig(path.join(dir, "a.yaml"), { set, runsDir: "/runs" })).plan.jobs[0]!.spec.run_id;
    const plain = await idOf([]);
    const others = await Promise.all([
      idOf(["data.columns={content: dialog}"]),
      idOf(["data.chat_template={% for m in messages %}{{ m.content }}{% endfor %}"]),
      idOf(["data.system_prompt=You are kind."]),
      idOf(["data.source={split: test}"]),
    ]);
    expect(new Set([plain, ...others]).size).toBe(5);
    const { plan } = await planConfig(path.join(dir, "a.yaml"), { runsDir: "/runs" });
    expect(Object.keys(plan.jobs[0]!.spec.data).sort()).toEqual(["format", "max_length", "packing", "path", "split", "strategy"]);
  });
});
