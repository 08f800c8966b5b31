/**
 * `peftctl score` end to end: the real CLI, the controller's Python and python/peftmetrics (nltk,
 * the METEOR 1.5 jar). Each scoring run starts a JVM (several seconds), so the file scores twice:
 * once with --json, once as a table.
 */
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { METRIC_NAMES, type MetricsReport } from "../../src/runs/eval-metrics.ts";
import { renderMetricsTable } from "../../src/report/metrics-table.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const bin = path.join(root, "bin/peftctl.js");
const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-score-"));

const PAIRS = [
  { response: "I'm sorry to hear that. How are you feeling?", reference: "I am sorry. How do you feel now?", reference_strategy: "Question", predicted_strategy: "Question" },
  { response: "That sounds really hard.", reference: "That must be hard for you.", reference_strategy: "Reflection of feelings", predicted_strategy: "Question" },
  { response: "", reference: "Do you want to talk about it?", reference_strategy: "Question", predicted_strategy: "Question" },
  { response: "Have you tried a short walk?", reference: ["Maybe a walk could help.", "Try going for a walk."], reference_strategy: "Providing Suggestions", predicted_strategy: "Providing Suggestions" },
  { response: "You are not alone, café friend 😀", reference: "You're not alone.", reference_strategy: "Affirmation and Reassurance", predicted_strategy: "Affirmation and Reassurance" },
];
const pairsFile = path.join(dir, "pairs.jsonl");
writeFileSync(pairsFile, PAIRS.map((p) => `${JSON.stringify(p)}\n`).join(""));

// a tiny GloVe-format file: positive components, so every cosine is in [0, 1]
const words = ["i", "am", "sorry", "to", "hear", "that", ".", "how", "are", "you", "feeling", "?", "do", "feel", "now", "sounds", "hard", "must", "be", "for", "walk", "a", "try", "you", "not", "alone"];
const gloveFile = path.join(dir, "tiny.txt");
writeFileSync(gloveFile, words.map((w, i) => `${w} ${[1, 2, 3, 4].map((d) => (((i * 7 + d * 3) % 11) + 1) / 11).join(" ")}\n`).join(""));

async function peftctl(args: string[]) {
  return execa(bin, args, { reject: false, cwd: dir });
}

describe("peftctl score", () => {
  it("prints every metric as a fraction in [0, 1] with --json", { timeout: 120_000 }, async () => {
    const scorer = `${path.join(root, ".venv/bin/python")} ${path.join(root, "test/fixtures/word-list-toxicity.py")} --constant 0.625`;
    const result = await peftctl(["--json", "score", "--pairs", pairsFile, "--embeddings", gloveFile, "--toxicity-command", scorer]);
    expect(result.exitCode, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as MetricsReport;
    expect(report.pairs).toBe(PAIRS.length);
    expect(report.strategy_pairs).toBe(PAIRS.length);
    expect(Object.keys(report.metrics)).toEqual([...METRIC_NAMES]);
    for (const name of METRIC_NAMES) {
      const value = report.metrics[name];
      expect(value, name).not.toBeNull();
      expect(value!, name).toBeGreaterThanOrEqual(0);
      expect(value!, name).toBeLessThanOrEqual(1);
    }
    expect(report.metrics["strategy_accuracy"]).toBeCloseTo(4 / 5, 10);
    expect(report.metrics["bleu-1"]!).toBeGreaterThan(report.metrics["bleu-4"]!);
    expect(report.metrics.toxicity).toBe(0.625);
    expect(report.metrics.toxicity_share).toBe(1);
  });

  it("renders a table, the embedding metrics n/a without vectors", { timeout: 120_000 }, async () => {
    const result = await peftctl(["score", "--pairs", "pairs.jsonl"]); // relative to the current directory
    expect(result.exitCode, result.stderr).toBe(0);
    const lines = result.stdout.split("\n");
    expect(lines[0]).toMatch(/^METRIC\s+VALUE\s+NOTE$/);
    expect(lines.find((l) => l.startsWith("bleu-1 "))).toMatch(/^bleu-1\s+0\.\d{4}/);
    expect(lines.find((l) => l.startsWith("vector_extrema "))).toMatch(/n\/a\s+no word vectors/);
    expect(result.stdout).toContain(`${PAIRS.length} pairs (${PAIRS.length} with strategies)`);
  });

  it.each([
    ["not JSON", '{"response": "a", "reference": "b"}\n{"response": oops}\n', ":2: not JSON"],
    ["a missing field", '{"response": "a", "reference": "b"}\n\n{"response": "a"}\n', ":3: no 'reference' field"],
  ])("exits 2 naming file and line for %s", { timeout: 60_000 }, async (_what, content, message) => {
    const file = path.join(dir, `bad-${content.length}.jsonl`);
    writeFileSync(file, content);
    const result = await peftctl(["score", "--pairs", file]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`${file}${message}`);
    expect(result.stderr).not.toContain("Traceback");
    expect(result.stdout).toBe("");
  });

  it("exits 2 for a missing file and for a missing --pairs", { timeout: 60_000 }, async () => {
    const missing = await peftctl(["score", "--pairs", path.join(dir, "nope.jsonl")]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain("nope.jsonl: no such file");
    const usage = await peftctl(["score"]);
    expect(usage.exitCode).toBe(2);
    expect(usage.stderr).toContain("--pairs");
  });

  it("exits 2 when the controller's Python cannot start, 1 when METEOR cannot (no java)", { timeout: 60_000 }, async () => {
    const noPython = await execa(bin, ["score", "--pairs", pairsFile], { reject: false, env: { PEFTCTL_PYTHON: path.join(dir, "no-python") } });
    expect(noPython.exitCode).toBe(2);
    expect(noPython.stderr).toContain("cannot run the controller's Python");
    const onlyNode = path.join(dir, "only-node");
    mkdirSync(onlyNode);
    symlinkSync(process.execPath, path.join(onlyNode, "node"));
    const noJava = await execa(bin, ["score", "--pairs", pairsFile], { reject: false, env: { PATH: onlyNode }, extendEnv: true });
    expect(noJava.exitCode, noJava.stderr).toBe(1);
    expect(noJava.stderr).toContain("java is not on PATH");
  });

  it("renders nulls as n/a and says why", () => {
    const metrics = Object.fromEntries(METRIC_NAMES.map((name) => [name, 0.5])) as MetricsReport["metrics"];
    for (const name of ["vector_extrema", "embedding_average", "greedy_matching", "strategy_accuracy", "strategy_macro_f1"] as const) metrics[name] = null;
    const table = renderMetricsTable({ metrics, pairs: 1, strategy_pairs: 0, tokenizer: "punkt-untrained", embeddings: null });
    const lines = table.split("\n");
    expect(lines).toHaveLength(METRIC_NAMES.length + 2);
    expect(lines[1]).toMatch(/^bleu-1\s+0\.5000$/);
    expect(table).toMatch(/strategy_macro_f1\s+n\/a\s+no pair has reference_strategy/);
    expect(lines.at(-1)).toBe("1 pair; tokens: punkt-untrained; vectors: none");
    for (const line of lines) expect(line).toBe(line.trimEnd());
  });
});
