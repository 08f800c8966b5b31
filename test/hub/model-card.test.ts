import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse } from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import type { MetricsReport } from "../../src/runs/eval-metrics.ts";
import { renderModelCard } from "../../src/hub/model-card.ts";
import { planPush } from "../../src/hub/plan-push.ts";
import { summarizeEvents } from "../../src/hub/summarize-events.ts";
import { resolvePushTarget } from "../../src/hub/push-target.ts";
import { parseEventLine, type ShimEvent } from "../../src/runs/events.ts";
import { readEvents } from "../../src/runs/store.ts";
import { fixtureJob, makeRunDir } from "./fixture.ts";

function ev(type: string, fields: Record<string, unknown>): ShimEvent {
  const parsed = parseEventLine(JSON.stringify({ v: 1, t: "2026-01-01T00:00:00Z", run_id: "exp-r8-abc123", type, ...fields }));
  if (!parsed) throw new Error(`bad fixture event ${type}`);
  return parsed;
}

const progress = (step: number, loss: number) => ev("progress", { step, total_steps: 30, epoch: step / 10, loss, lr: 1e-4, tokens_per_s: 1, eta_s: 0 });

function frontMatter(card: string): Record<string, unknown> {
  const match = /^---\n([\s\S]*?)\n---\n/.exec(card);
  if (!match) throw new Error("no front matter");
  return parse(match[1]!) as Record<string, unknown>;
}

describe("summarizeEvents", () => {
  it("keeps the newest value of steps a resumed run repeated, and finds first, minimum and last loss", () => {
    const summary = summarizeEvents([
      ev("start", { attempt: 1, pid: 1, versions: { torch: "2" }, device: "cpu", params: { trainable: 5, total: 10 }, resumed_from_step: null }),
      progress(10, 5), progress(20, 3), ev("eval", { step: 20, loss: 3.5, perplexity: 33.1 }),
      ev("start", { attempt: 2, pid: 2, versions: { torch: "2" }, device: "cpu", params: { trainable: 5, total: 10 }, resumed_from_step: 10 }),
      progress(20, 2.5), ev("eval", { step: 20, loss: 3.2, perplexity: 24.5 }), progress(30, 2.8),
    ]);
    expect(summary.attempts).toBe(2);
    expect(summary.train_loss).toEqual({ first: { step: 10, loss: 5 }, min: { step: 20, loss: 2.5 }, last: { step: 30, loss: 2.8 } });
    expect(summary.eval).toEqual([{ step: 20, loss: 3.2, perplexity: 24.5 }]);
    expect(summary.last_step).toBe(30);
  });
});

describe("renderModelCard", () => {
  const target = { repo: "org/extes-lora", branch: "main", private: true, endpoint: "https://huggingface.co" };
  const summary = summarizeEvents([progress(10, 4), progress(20, 3), ev("eval", { step: 20, loss: 3.3, perplexity: 27.1 })]);

  it("declares a Hub base model, the method tag, datasets, license and the eval results", () => {
    const job = fixtureJob("/runs/exp/r", {
      model: { base: "huggyllama/llama-7b", dtype: "bfloat16", attn: "sdpa", trust_remote_code: false },
      method: { kind: "adapter", adapter_len: 10, adapter_layers: 30 },
      hub: { repo: "org/extes-lora", private: true, layout: "repo-per-run", auto_push: true, license: "mit", datasets: ["org/extes"] },
      sweep_values: { "train.lr": 0.009 },
    });
    const card = renderModelCard({ job, summary, target });
    const meta = frontMatter(card);
    expect(meta).toMatchObject({ base_model: "huggyllama/llama-7b", library_name: "peft", license: "mit", pipeline_tag: "text-generation", datasets: ["org/extes"] });
    expect(meta.tags).toEqual(expect.arrayContaining(["llama-adapter", "peftctl"]));
    const results = (meta["model-index"] as Array<{ name: string; results: Array<{ metrics: Array<{ type: string; value: number }> }> }>)[0]!;
    expect(results.name).toBe("extes-lora");
    expect(results.results[0]!.metrics).toEqual([
      { type: "loss", value: 3.3, name: "Eval loss" },
      { type: "perplexity", value: 27.1, name: "Eval perplexity" },
    ]);
    expect(card).toContain('AutoModelForCausalLM.from_pretrained("huggyllama/llama-7b")');
    expect(card).toContain('PeftModel.from_pretrained(base, "org/extes-lora")');
    expect(card).toContain("first 4 (step 10), minimum 3 (step 20), last 3 (step 20)");
    expect(card).toContain("| 20 | 3.3 | 27.1 |");
    expect(card).toContain("| train.lr | 0.009 |");
    expect(card).toContain("| method.adapter_len | 10 |");
  });

  it("omits base_model for a built-in base and says why; is deterministic", () => {
    const job = fixtureJob("/runs/exp/r");
    const card = renderModelCard({ job, summary, target: { ...target, branch: "r8-abc123" } });
    expect(frontMatter(card).base_model).toBeUndefined();
    expect(card).toContain("not on the Hub, so this card has no `base_model`");
    expect(card).toContain('snapshot_download("org/extes-lora", revision="r8-abc123")');
    expect(renderModelCard({ job, summary, target: { ...target, branch: "r8-abc123" } })).toBe(card);
  });

  it("has no model-index without eval results", () => {
    const card = renderModelCard({ job: fixtureJob("/r"), summary: summarizeEvents([progress(5, 2)]), target });
    expect(frontMatter(card)["model-index"]).toBeUndefined();
  });
});

/** A `peftmetrics score` report (fractions), as `peftctl eval` writes it into eval/test-<hash>/metrics.json. */
function report(overrides: Partial<MetricsReport["metrics"]> = {}): MetricsReport {
  return {
    metrics: {
      "bleu-1": 0.21234, "bleu-2": 0.10456, "bleu-3": 0.05, "bleu-4": 0.031249, "rouge-l": 0.18765, meteor: 0.0912,
      vector_extrema: null, embedding_average: null, greedy_matching: null,
      "dist-1": 0.04321, "dist-2": 0.2, "dist-3": 0.41119, "dist-1-standard": 0.05, "dist-2-standard": 0.21, "dist-3-standard": 0.42,
      strategy_accuracy: null, strategy_macro_f1: null, toxicity: null, toxicity_share: null,
      ...overrides,
    },
    pairs: 6,
    strategy_pairs: 0,
    tokenizer: "punkt",
    embeddings: null,
  };
}

type ModelIndex = Array<{ name: string; results: Array<{ task: { type: string }; dataset: { name: string; type: string; split: string }; metrics: Array<{ type: string; name: string; value: number }> }> }>;

describe("the model card's test metrics", () => {
  const target = { repo: "org/extes-lora", branch: "main", private: true, endpoint: "https://huggingface.co" };
  const summary = summarizeEvents([progress(10, 4), progress(20, 3), ev("eval", { step: 20, loss: 3.3, perplexity: 27.1 })]);
  const roots: string[] = [];
  afterAll(() => {
    for (const root of roots) rmSync(root, { recursive: true, force: true });
  });

  /** A succeeded run dir whose adapter is two placeholder files (planPush only lists them). */
  function runDir(): string {
    const root = mkdtempSync(path.join(os.tmpdir(), "peftctl-card-"));
    roots.push(root);
    const adapterDir = path.join(root, "adapter-files");
    mkdirSync(adapterDir);
    writeFileSync(path.join(adapterDir, "adapter_model.safetensors"), "weights");
    writeFileSync(path.join(adapterDir, "adapter_config.json"), "{}");
    return makeRunDir(path.join(root, "runs"), { adapterDir, baseDir: "", tokens: [], baseTokens: [] }).dir;
  }

  function writeMetrics(dir: string, evalName: string, value: MetricsReport, mtime: number): void {
    mkdirSync(path.join(dir, "eval", evalName), { recursive: true });
    const file = path.join(dir, "eval", evalName, "metrics.json");
    writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
    utimesSync(file, mtime, mtime);
  }

  async function pushedCard(dir: string): Promise<string> {
    const plan = await planPush(dir, { env: {} });
    return plan.files.find((file) => file.path === "README.md")!.content.text();
  }

  it("adds the test split's metrics x100 (2 digits) to the model-index and a table to the body", () => {
    const job = fixtureJob("/runs/exp/r", { hub: { repo: "org/extes-lora", private: true, layout: "repo-per-run", auto_push: true, license: "mit", datasets: [] } });
    const card = renderModelCard({ job, summary, target, testMetrics: report({ vector_extrema: 0.456789 }) });
    const index = frontMatter(card)["model-index"] as ModelIndex;
    expect(index).toHaveLength(1);
    expect(index[0]!.name).toBe("extes-lora");
    expect(index[0]!.results).toHaveLength(2);
    expect(index[0]!.results[0]!.dataset.split).toBe("validation");
    const test = index[0]!.results[1]!;
    expect(test.task.type).toBe("text-generation");
    expect(test.dataset).toEqual({ name: "extes-sample.json", type: "extes", split: "test" });
    expect(test.metrics).toEqual([
      { type: "bleu", name: "BLEU-1", value: 21.23 },
      { type: "bleu", name: "BLEU-2", value: 10.46 },
      { type: "bleu", name: "BLEU-3", value: 5 },
      { type: "bleu", name: "BLEU-4", value: 3.12 },
      { type: "rouge", name: "ROUGE-L", value: 18.77 },
      { type: "meteor", name: "METEOR", value: 9.12 },
      { type: "vector_extrema", name: "Vector Extrema", value: 45.68 },
      { type: "distinct-1", name: "Distinct-1", value: 4.32 },
      { type: "distinct-2", name: "Distinct-2", value: 20 },
      { type: "distinct-3", name: "Distinct-3", value: 41.12 },
    ]);
    expect(card).toContain("## Evaluation");
    expect(card).toContain("as fractions x100 rounded to 2 digits as papers print them");
    expect(card).toContain("| BLEU-1 | 21.23 |");
    expect(card).toContain("| BLEU-3 | 5.00 |");
    expect(card).toContain("| Vector Extrema | 45.68 |");
  });

  it("leaves Vector Extrema out when it was not computed (null)", () => {
    const card = renderModelCard({ job: fixtureJob("/r"), summary: summarizeEvents([progress(5, 2)]), target, testMetrics: report() });
    const index = frontMatter(card)["model-index"] as ModelIndex;
    // no eval loss here: the test split is the only result
    expect(index[0]!.results).toHaveLength(1);
    expect(index[0]!.results[0]!.metrics.map((metric) => metric.name)).toEqual(["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "METEOR", "Distinct-1", "Distinct-2", "Distinct-3"]);
    expect(card).not.toContain("Vector Extrema");
  });

  it("push reads the run's newest eval/test-*/metrics.json into the card", async () => {
    const dir = runDir();
    writeMetrics(dir, "test-aaaaaa", report({ "bleu-1": 0.9 }), 1_700_000_000);
    writeMetrics(dir, "test-bbbbbb", report({ "bleu-1": 0.3333 }), 1_700_000_100);
    writeMetrics(dir, "valid-cccccc", report({ "bleu-1": 0.7 }), 1_700_000_200);
    const card = await pushedCard(dir);
    const index = frontMatter(card)["model-index"] as ModelIndex;
    const test = index[0]!.results.find((result) => result.dataset.split === "test")!;
    expect(test.metrics[0]).toEqual({ type: "bleu", name: "BLEU-1", value: 33.33 });
    expect(card).toContain("| BLEU-1 | 33.33 |");
  });

  it("without metrics.json the pushed card is the card of today: no test results, no Evaluation section", async () => {
    const dir = runDir();
    const card = await pushedCard(dir);
    const index = frontMatter(card)["model-index"] as ModelIndex;
    expect(index[0]!.results.map((result) => result.dataset.split)).toEqual(["validation"]);
    expect(card).not.toContain("## Evaluation");
    const plan = await planPush(dir, { env: {} });
    const job = JSON.parse(await plan.files.find((file) => file.path === "peftctl/job.json")!.content.text());
    expect(card).toBe(renderModelCard({ job, summary: summarizeEvents(readEvents(dir)), target: plan.target }));
    expect(renderModelCard({ job, summary, target, testMetrics: null })).toBe(renderModelCard({ job, summary, target }));
  });
});

describe("resolvePushTarget", () => {
  const endpoint = "https://hub.example";
  it("follows the layout, the sweep and the overrides", () => {
    const single = fixtureJob("/r", { run_id: "smoke-1a2b3c" });
    expect(resolvePushTarget(single, { endpoint })).toMatchObject({ repo: "peft-org/smoke-lora", branch: "main", private: true });
    const sweep = fixtureJob("/r", { run_id: "smoke-r8-1a2b3c", sweep_values: { "method.r": 8 } });
    expect(resolvePushTarget(sweep, { endpoint }).repo).toBe("peft-org/smoke-lora-r8-1a2b3c");
    expect(resolvePushTarget(sweep, { endpoint, repo: "me/exact", private: false })).toMatchObject({ repo: "me/exact", private: false });
    const branched = { ...sweep, hub: { ...sweep.hub!, layout: "branch-per-run" as const } };
    expect(resolvePushTarget(branched, { endpoint })).toMatchObject({ repo: "peft-org/smoke-lora", branch: "r8-1a2b3c" });
    expect(resolvePushTarget(branched, { endpoint, branch: "v2" }).branch).toBe("v2");
  });
  it("rejects what the Hub would refuse, as user errors", () => {
    const job = fixtureJob("/r");
    expect(() => resolvePushTarget({ ...job, hub: undefined }, { endpoint })).toThrow(/no hub.repo.*/);
    expect(() => resolvePushTarget(job, { endpoint, repo: "no-slash" })).toThrow(/expected org\/name/);
    expect(() => resolvePushTarget(job, { endpoint, branch: "a..b" })).toThrow(/not a valid branch/);
  });
});
