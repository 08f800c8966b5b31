/**
 * `peftctl eval` end to end with the real shim: a 4-step tiny-llama LoRA run trained by `peftctl run`,
 * then generations for its test split (the fields, settings.json, the hashed directory), a second eval
 * that changes nothing, --base on a run that has not succeeded, and the targets refused with exit 2.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { checkpointDirName, evalDirName, generateArgs, type EvalSettings, type EvalTarget } from "../../src/eval/run-eval.ts";
import { shimCommand } from "../../src/launch/local.ts";
import { shimEnv, shimPython } from "../../src/shim.ts";
import { listRuns, readJob, updateStatus, type RunRef } from "../../src/runs/store.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const bin = path.join(root, "bin/peftctl.js");

const CONFIG = `
name: evaltiny
model: { base: builtin:tiny-llama, dtype: float32 }
method: { kind: lora, r: 4, alpha: 8, target_modules: [q_proj, v_proj] }
data: { format: extes, path: ${path.join(root, "data/samples/extes-sample.json")}, strategy: inline, max_length: 128 }
train: { max_steps: 4, lr: 1.0e-2, batch_size: 4, micro_batch_size: 4, warmup_steps: 0, log_every_steps: 2 }
eval: { every_steps: 4, generate: { max_new_tokens: 6, samples: 0, batch_size: 4 } }
checkpoint: { every_steps: 4, keep_last: 1 }
resources: { gpus: 0 }
`;

let runsDir: string;
let run: RunRef;

const peftctl = (...args: string[]) => execa(bin, ["--runs-dir", runsDir, ...args], { reject: false, cwd: root });

function readRows(file: string): Array<Record<string, unknown>> {
  return readFileSync(file, "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe("peftctl eval", () => {
  beforeAll(async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-eval-"));
    runsDir = path.join(dir, "runs");
    writeFileSync(path.join(dir, "tiny.yaml"), CONFIG);
    const trained = await execa(bin, ["--runs-dir", runsDir, "run", path.join(dir, "tiny.yaml")], { reject: false, cwd: root });
    expect(trained.exitCode, trained.stderr).toBe(0);
    [run] = listRuns(runsDir, "evaltiny") as [RunRef];
  }, 300_000);

  it("writes one row per test example with the contract's fields, in the directory its settings hash to; again, changes nothing", { timeout: 180_000 }, async () => {
    const first = await peftctl("eval", "evaltiny");
    expect(first.exitCode, first.stderr).toBe(0);
    const generate = { ...readJob(run.dir).eval.generate } as Record<string, unknown>;
    delete generate.samples;
    const settings = { generate, split: "test", limit: null, adapter: "adapter" } as EvalSettings;
    const outDir = path.join(run.dir, "eval", evalDirName(settings));
    expect(evalDirName(settings)).toMatch(/^test-[0-9a-f]{8}$/);
    expect(JSON.parse(readFileSync(path.join(outDir, "settings.json"), "utf8"))).toEqual(settings);
    const file = path.join(outDir, "generations.jsonl");
    const rows = readRows(file);
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(Object.keys(row).sort()).toEqual(["context", "id", "predicted_strategy", "reference", "reference_strategy", "response"]);
      expect(row.id).toMatch(/^\d+:\d+$/);
      expect(typeof row.response).toBe("string");
      expect((row.context as Array<{ role: string }>).at(-1)!.role).toBe("user");
    }
    const data = readFileSync(path.join(run.dir, "events.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)).find((e) => e.type === "data");
    expect(rows).toHaveLength(data.examples.test);
    expect(first.stdout).toContain(`rows ${rows.length}/${rows.length}`);
    expect(first.stdout).toContain(`${rows.length} rows in`);
    // Scored beside them by the reference metric code (python/peftmetrics), for `peftctl table`.
    expect(first.stdout).toContain("metrics in");
    const metrics = JSON.parse(readFileSync(path.join(outDir, "metrics.json"), "utf8")) as { pairs: number; metrics: Record<string, number | null> };
    expect(metrics.pairs).toBe(rows.length);
    for (const name of ["bleu-1", "bleu-4", "rouge-l", "meteor", "dist-1", "dist-2", "dist-3"]) {
      expect(metrics.metrics[name], name).toBeGreaterThanOrEqual(0);
      expect(metrics.metrics[name], name).toBeLessThanOrEqual(1);
    }
    expect(metrics.metrics.vector_extrema).toBeNull(); // no word vectors named

    const before = readFileSync(file, "utf8");
    const events = readFileSync(path.join(outDir, "events.jsonl"), "utf8");
    const scored = readFileSync(path.join(outDir, "metrics.json"), "utf8");
    const second = await peftctl("eval", `evaltiny/${run.runId}`);
    expect(second.exitCode, second.stderr).toBe(0);
    expect(second.stdout).toContain("already complete");
    expect(second.stdout).toContain("nothing changed");
    expect(readFileSync(file, "utf8")).toBe(before);
    expect(readFileSync(path.join(outDir, "events.jsonl"), "utf8")).toBe(events);
    expect(readFileSync(path.join(outDir, "metrics.json"), "utf8")).toBe(scored);

    // train -> eval -> table, end to end
    const table = await peftctl("table", "evaltiny", "--format", "json", "--scale", "1");
    expect(table.exitCode, table.stderr).toBe(0);
    const parsed = JSON.parse(table.stdout) as { rows: Array<{ cells: Record<string, { mean: number | null }> }> };
    expect(parsed.rows).toHaveLength(1);
    expect(parsed.rows[0]!.cells["bleu-1"]!.mean).toBeCloseTo(metrics.metrics["bleu-1"]!, 10);
  });

  it("Ctrl-C stops the shim (exit 130) with its rows kept; the same command then finishes the rest, as if never stopped", { timeout: 180_000 }, async () => {
    const child = execa(bin, ["--runs-dir", runsDir, "eval", run.runId, "--split", "valid"], { reject: false, cwd: root });
    child.stdout!.on("data", (chunk: Buffer) => {
      if (chunk.toString().includes("generating on")) child.kill("SIGINT");
    });
    const stopped = await child;
    expect(stopped.exitCode, stopped.stderr).toBe(130);
    // (a stop that reaches the shim before its signal handlers is a plain death by SIGTERM: no rows, same exit)
    const again = await peftctl("eval", run.runId, "--split", "valid");
    expect(again.exitCode, again.stderr).toBe(0);
    const [line] = again.stdout.split("\n").filter((l) => l.includes(" rows in "));
    const file = line!.slice(line!.indexOf(" rows in ") + " rows in ".length).split("; ")[0]!;
    const resumed = readRows(path.isAbsolute(file) ? file : path.join(root, file));
    const ids = resumed.map((row) => row.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBeGreaterThan(0);
    // the same rows as a generation never interrupted
    const whole = mkdtempSync(path.join(os.tmpdir(), "peftctl-eval-whole-"));
    const uninterrupted = await execa(shimPython(process.env), ["-m", "peftshim", "generate", "--job", path.join(run.dir, "job.json"), "--out", whole, "--split", "valid"], { env: shimEnv(process.env), reject: false });
    expect(uninterrupted.exitCode, uninterrupted.stderr).toBe(0);
    expect(resumed).toEqual(readRows(path.join(whole, "generations.jsonl")));
  });

  it("--set moves eval onto another data set and adds a toxicity scorer, without touching the run; scoring settings rescore", { timeout: 300_000 }, async () => {
    const planned = readFileSync(path.join(run.dir, "job.json"), "utf8");
    const scorer = `${path.join(root, ".venv/bin/python")} ${path.join(root, "test/fixtures/word-list-toxicity.py")}`;
    const esconv = path.join(root, "data/samples/esconv-sample.json");
    const sets = ["--set", "eval.data.format=esconv", "--set", `eval.data.path=${path.relative(root, esconv)}`, "--set", "eval.data.dialogues=all"];
    const first = await peftctl("eval", "evaltiny", "--limit", "3", ...sets, "--set", `eval.toxicity.command=${scorer}`, "--json");
    expect(first.exitCode, first.stderr).toBe(0);
    const [outcome] = JSON.parse(first.stdout) as Array<{ dir: string; settings: EvalSettings }>;
    expect(outcome!.settings.data).toEqual({ format: "esconv", path: esconv, dialogues: "all" });
    expect(JSON.parse(readFileSync(path.join(outcome!.dir, "settings.json"), "utf8"))).toEqual(outcome!.settings);
    expect(readFileSync(path.join(run.dir, "job.json"), "utf8")).toBe(planned); // the run's job is as planned
    expect(readJob(outcome!.dir).eval.toxicity).toEqual({ command: scorer }); // the one the shim read

    // the rows are the ESConv file's first dialogue's supporter turns after a seeker turn
    const [dialogue] = JSON.parse(readFileSync(esconv, "utf8")) as Array<{ dialog: Array<{ speaker: string; content: string }> }>;
    const afterSeeker = dialogue!.dialog.filter((turn, k) => turn.speaker === "supporter" && dialogue!.dialog.slice(0, k).some((t) => t.speaker === "seeker"));
    const rows = readRows(path.join(outcome!.dir, "generations.jsonl"));
    expect(rows.map((row) => row.reference)).toEqual(afterSeeker.slice(0, 3).map((turn) => turn.content));
    expect(rows.map((row) => row.id)).toEqual(rows.map((row) => `0:${String(row.id).split(":")[1]}`));

    // toxicity: the scorer's mean and share above 0.5, its score recomputed here
    const words = new Set(["hate", "stupid", "idiot", "awful", "feel"]);
    const scores = rows.map((row) => {
      const tokens = String(row.response).toLowerCase().split(/\s+/).filter(Boolean);
      return tokens.length === 0 ? 0 : tokens.filter((t) => words.has(t.replace(/[.,!?]+$/, ""))).length / tokens.length;
    });
    const metricsFile = path.join(outcome!.dir, "metrics.json");
    const scored = JSON.parse(readFileSync(metricsFile, "utf8")) as { metrics: Record<string, number | null> };
    expect(scored.metrics.toxicity).toBeCloseTo(scores.reduce((a, b) => a + b, 0) / scores.length, 12);
    expect(scored.metrics.toxicity_share).toBeCloseTo(scores.filter((v) => v > 0.5).length / scores.length, 12);

    // another scorer: the same generations (toxicity is not a generation setting), scored again
    const again = await peftctl("eval", "evaltiny", "--limit", "3", ...sets, "--set", `eval.toxicity.command=${scorer} --constant 0.75`, "--json");
    expect(again.exitCode, again.stderr).toBe(0);
    expect((JSON.parse(again.stdout) as Array<{ outcome: string; dir: string }>)[0]).toMatchObject({ outcome: "already-complete", dir: outcome!.dir });
    const rescored = JSON.parse(readFileSync(metricsFile, "utf8")) as { metrics: Record<string, number | null> };
    expect(rescored.metrics.toxicity).toBe(0.75);
    expect(rescored.metrics.toxicity_share).toBe(1);
    expect(rescored.metrics["bleu-1"]).toBe(scored.metrics["bleu-1"]);

    // the table's toxicity column reads it; lower is better
    const table = await peftctl("table", `evaltiny/${run.runId}`, "--format", "json", "--scale", "1");
    expect(table.exitCode, table.stderr).toBe(0);
    expect((JSON.parse(table.stdout) as { rows: Array<{ cells: Record<string, { mean: number | null }> }> }).rows[0]!.cells.toxicity!.mean).toBe(0.75);

    // what --set cannot change, and bad values: exit 2, every problem named
    const refused = await peftctl("eval", "evaltiny", "--set", "train.lr=1", "--set", "eval.generate.num_beam=2", "--set", "eval.generate.top_p=3");
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toContain("--set 1 (train.lr=1): only eval.* settings can change after training");
    expect(refused.stderr).toContain("did you mean `num_beams`?");
    const badValue = await peftctl("eval", "evaltiny", "--set", "eval.generate.top_p=3");
    expect(badValue.exitCode).toBe(2);
    expect(badValue.stderr).toContain("eval.generate.top_p");
  });

  it("refuses what it cannot evaluate with exit 2 naming it; --base needs no adapter", { timeout: 180_000 }, async () => {
    const unknown = await peftctl("eval", "no-such-run");
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain("no-such-run");
    const checkpoint = await peftctl("eval", run.runId, "--checkpoint", "step-999");
    expect(checkpoint.exitCode).toBe(2);
    expect(checkpoint.stderr).toContain("step-000999");
    expect(checkpoint.stderr).toContain(run.runId);

    const copy = path.join(runsDir, "failedexp", run.runId);
    cpSync(run.dir, copy, { recursive: true });
    updateStatus(copy, () => ({ state: "failed" }));
    const failed = await peftctl("eval", "failedexp");
    expect(failed.exitCode).toBe(2);
    expect(failed.stderr).toContain(`failedexp/${run.runId}: has not succeeded (state: failed)`);

    const base = await peftctl("eval", "failedexp", "--base", "--limit", "2", "--split", "valid");
    expect(base.exitCode, base.stderr).toBe(0);
    const generate = { ...readJob(copy).eval.generate } as Record<string, unknown>;
    delete generate.samples;
    const outDir = path.join(copy, "eval", evalDirName({ generate, split: "valid", limit: 2, adapter: "base" } as EvalSettings));
    expect(readRows(path.join(outDir, "generations.jsonl"))).toHaveLength(2);
    expect(JSON.parse(readFileSync(path.join(outDir, "settings.json"), "utf8")).adapter).toBe("base");
    expect(existsSync(path.join(outDir, "stderr.log"))).toBe(true);
  });
});

describe("eval's pieces", () => {
  const generate = { max_new_tokens: 6, do_sample: false, temperature: 1, top_p: 1, top_k: 50, num_beams: 1, min_new_tokens: 0, no_repeat_ngram_size: 0, repetition_penalty: 1, seed: 0, batch_size: 4 };

  it("names the output directory after the settings, key order aside", () => {
    const settings: EvalSettings = { generate, split: "test", limit: null, adapter: "adapter" };
    const reordered = { adapter: "adapter", limit: null, split: "test", generate: Object.fromEntries(Object.entries(generate).reverse()) } as EvalSettings;
    expect(evalDirName(reordered)).toBe(evalDirName(settings));
    expect(evalDirName({ ...settings, limit: 5 })).not.toBe(evalDirName(settings));
    expect(evalDirName({ ...settings, adapter: "base" })).not.toBe(evalDirName(settings));
    expect(evalDirName({ ...settings, generate: { ...generate, top_k: 10 } })).not.toBe(evalDirName(settings));
  });

  it("reads --checkpoint as the checkpoint directory's name", () => {
    expect(checkpointDirName("step-40")).toBe("step-000040");
    expect(checkpointDirName("step-000040")).toBe("step-000040");
    expect(checkpointDirName("40")).toBe("step-000040");
    expect(() => checkpointDirName("best")).toThrow(/step-N/);
  });

  it("starts the shim's generate subcommand through the executor's command", () => {
    const run = { experiment: "e", runId: "r", dir: "/runs/e/r" };
    const target = { run, adapter: "/runs/e/r/adapter", settings: { generate, split: "valid", limit: 3, adapter: "adapter" }, outDir: "/runs/e/r/eval/valid-x" } as unknown as EvalTarget;
    const request = { run, attempt: 1, resume: false, devices: ["0"], processes: 1, microBatchSize: 4, task: { kind: "generate" as const, outDir: target.outDir, args: generateArgs(target) } };
    const { args } = shimCommand(request, 4, { PEFTCTL_PYTHON: "python" });
    expect(args).toEqual(["-m", "peftshim", "generate", "--job", "/runs/e/r/job.json", "--out", "/runs/e/r/eval/valid-x", "--split", "valid", "--limit", "3", "--adapter", "/runs/e/r/adapter"]);
    const base = { ...target, adapter: null, settings: { ...target.settings, limit: null } } as EvalTarget;
    expect(generateArgs(base)).toEqual(["--split", "valid", "--base"]);
  });
});
