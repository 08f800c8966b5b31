import { cpSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse } from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import type { MetricsReport } from "../../src/runs/eval-metrics.ts";
import { readBaseModelCard } from "../../src/hub/base-model-card.ts";
import { cardNotes, renderModelCard } from "../../src/hub/model-card.ts";
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
      hub: { repo: "org/extes-lora", private: true, layout: "repo-per-run", auto_push: true, license: "mit", language: ["en"], datasets: ["org/extes"] },
      sweep_values: { "train.lr": 0.009 },
    });
    const card = renderModelCard({ job, summary, target });
    const meta = frontMatter(card);
    // LLaMA's license wins over hub.license: an adapter of LLaMA is bound by Meta's terms
    expect(meta).toMatchObject({ base_model: "huggyllama/llama-7b", base_model_relation: "adapter", library_name: "peft", license: "other", license_name: "llama-license", language: ["en"], pipeline_tag: "text-generation", datasets: ["org/extes"] });
    expect(meta.license_link).toMatch(/^https:\/\/github\.com\/facebookresearch\/llama\//);
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
    const job = fixtureJob("/runs/exp/r", { hub: { repo: "org/extes-lora", private: true, layout: "repo-per-run", auto_push: true, license: "mit", language: ["en"], datasets: [] } });
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

describe("the model card's license, base model and language (issue 13)", () => {
  const target = { repo: "org/extes-lora", branch: "main", private: true, endpoint: "https://huggingface.co" };
  const summary = summarizeEvents([progress(10, 4)]);
  const hub = { repo: "org/extes-lora", private: true, layout: "repo-per-run" as const, auto_push: true, language: ["en"], datasets: [] };
  const roots: string[] = [];
  afterAll(() => {
    for (const root of roots) rmSync(root, { recursive: true, force: true });
  });
  function temp(): string {
    const root = mkdtempSync(path.join(os.tmpdir(), "peftctl-base-card-"));
    roots.push(root);
    return root;
  }
  const withBase = (base: string, hubFields: Record<string, unknown> = {}, revision?: string) =>
    fixtureJob("/runs/exp/r", { model: { base, dtype: "bfloat16", attn: "sdpa", trust_remote_code: false, ...(revision ? { revision } : {}) }, hub: { ...hub, ...hubFields } });
  const metaOf = (job: ReturnType<typeof fixtureJob>, options: Partial<Parameters<typeof renderModelCard>[0]> = {}) =>
    frontMatter(renderModelCard({ job, summary, target, ...options }));

  /** A HF cache holding `id` at refs/main with this README.md, as huggingface_hub lays it out. */
  function hfCache(id: string, readme: string): string {
    const cache = temp();
    const repo = path.join(cache, `models--${id.replace("/", "--")}`);
    const commit = "c".repeat(40);
    mkdirSync(path.join(repo, "refs"), { recursive: true });
    writeFileSync(path.join(repo, "refs", "main"), commit);
    mkdirSync(path.join(repo, "snapshots", commit), { recursive: true });
    writeFileSync(path.join(repo, "snapshots", commit, "README.md"), readme);
    return cache;
  }

  it("takes license, license_name and license_link from the base model's card in the HF cache (HF_HUB_CACHE)", () => {
    const job = withBase("acme/chat-7b", { license: "mit" });
    const cache = hfCache("acme/chat-7b", "---\nlicense: other\nlicense_name: acme-community\nlicense_link: https://acme.example/license\ntags: [x]\n---\n# Acme\n");
    const baseCard = readBaseModelCard(job, { HF_HUB_CACHE: cache });
    expect(baseCard?.metadata.license).toBe("other");
    const card = renderModelCard({ job, summary, target, baseCard });
    expect(frontMatter(card)).toMatchObject({ license: "other", license_name: "acme-community", license_link: "https://acme.example/license", base_model: "acme/chat-7b" });
    expect(card).not.toContain(cache); // where the card was read stays on this machine
    expect(cardNotes(job, baseCard)).toEqual([expect.stringContaining("not hub.license mit")]);
    // HF_HOME/hub is the cache when HF_HUB_CACHE is unset
    const home = temp();
    cpSync(cache, path.join(home, "hub"), { recursive: true });
    expect(readBaseModelCard(job, { HF_HOME: home })?.metadata.license_name).toBe("acme-community");
    // another revision than the cached one is another card: not read
    expect(readBaseModelCard(withBase("acme/chat-7b", {}, "v2"), { HF_HUB_CACHE: cache })).toBeNull();
  });

  it("reads a local base directory's README.md; a malformed front matter counts as none", () => {
    const dir = temp();
    writeFileSync(path.join(dir, "README.md"), "---\nlicense: cc-by-nc-4.0\n---\nhello\n");
    const job = withBase(dir, { base_model: "acme/small" });
    expect(metaOf(job, { baseCard: readBaseModelCard(job, {}) }).license).toBe("cc-by-nc-4.0");
    writeFileSync(path.join(dir, "README.md"), "---\nlicense: [unclosed\n---\n");
    expect(readBaseModelCard(job, {})).toBeNull();
  });

  it("knows the well-known families when no card is here, else uses hub.license, else names none and says so", () => {
    expect(metaOf(withBase("meta-llama/Llama-2-7b-hf"))).toMatchObject({ license: "other", license_name: "llama2", license_link: "https://ai.meta.com/llama/license/" });
    expect(metaOf(withBase("meta-llama/Meta-Llama-3-8B"))).toMatchObject({ license: "other", license_name: "llama3" });
    expect(metaOf(withBase("TinyLlama/TinyLlama-1.1B-Chat-v1.0")).license).toBe("apache-2.0");
    expect(metaOf(withBase("microsoft/DialoGPT-medium")).license).toBe("mit");
    expect(metaOf(withBase("openai-community/gpt2")).license).toBe("mit");
    expect(metaOf(withBase("acme/unknown", { license: "bsd-3-clause" })).license).toBe("bsd-3-clause");
    const unknown = withBase("acme/unknown");
    const card = renderModelCard({ job: unknown, summary, target });
    expect(frontMatter(card).license).toBeUndefined();
    expect(card).toContain("License: unknown.");
    expect(cardNotes(unknown, null)).toEqual([expect.stringContaining("set hub.license")]);
    // the built-in random-weight models have no upstream terms
    expect(metaOf(fixtureJob("/r", { hub: { ...hub } })).license).toBe("apache-2.0");
  });

  it("never puts a local base path in the card: hub.base_model names the Hub id, or base_model is left out with a note", () => {
    const local = "/models/private/llama-7b-converted";
    const named = withBase(local, { base_model: "huggyllama/llama-7b" });
    const card = renderModelCard({ job: named, summary, target });
    expect(frontMatter(card)).toMatchObject({ base_model: "huggyllama/llama-7b", base_model_relation: "adapter", license: "other" });
    expect(card).toContain('AutoModelForCausalLM.from_pretrained("huggyllama/llama-7b")');
    expect(card).not.toContain(local);
    expect(cardNotes(named, null)).toEqual([]);

    const anonymous = withBase(local);
    const bare = renderModelCard({ job: anonymous, summary, target });
    expect(frontMatter(bare).base_model).toBeUndefined();
    expect(bare).not.toContain(local);
    expect(bare).toContain('from_pretrained("BASE_MODEL")');
    expect(cardNotes(anonymous, null)).toEqual(expect.arrayContaining([expect.stringContaining("set hub.base_model")]));
  });

  it("the pushed adapter_config.json names hub.base_model instead of the local base path", async () => {
    const root = temp();
    const adapterDir = path.join(root, "adapter-files");
    mkdirSync(adapterDir);
    writeFileSync(path.join(adapterDir, "adapter_model.safetensors"), "weights");
    const local = path.join(root, "models", "llama-7b");
    writeFileSync(path.join(adapterDir, "adapter_config.json"), JSON.stringify({ peft_type: "LORA", r: 4, base_model_name_or_path: local }));
    const model = { base: local, dtype: "bfloat16" as const, attn: "sdpa" as const, trust_remote_code: false };
    const named = makeRunDir(path.join(root, "runs"), { adapterDir, baseDir: "", tokens: [], baseTokens: [] }, { model, hub: { ...hub, base_model: "huggyllama/llama-7b" } });
    const plan = await planPush(named.dir, { env: {} });
    const config = JSON.parse(await plan.files.find((file) => file.path === "adapter_config.json")!.content.text());
    expect(config).toEqual({ peft_type: "LORA", r: 4, base_model_name_or_path: "huggyllama/llama-7b" });
    for (const file of plan.files.filter((f) => f.path === "README.md" || f.path === "adapter_config.json")) expect(await file.content.text()).not.toContain(local);
    expect(plan.notes).toEqual([]);
    // without hub.base_model the config is pushed as saved, and the push says what to set
    const bare = makeRunDir(path.join(root, "runs2"), { adapterDir, baseDir: "", tokens: [], baseTokens: [] }, { model, hub });
    const barePlan = await planPush(bare.dir, { env: {} });
    expect(barePlan.files.find((file) => file.path === "adapter_config.json")!.source).toBe(path.join(bare.dir, "adapter", "adapter_config.json"));
    expect(barePlan.notes).toEqual(expect.arrayContaining([expect.stringContaining("set hub.base_model")]));
  });

  it("lists hub.language (default en) and the datasets", () => {
    expect(metaOf(withBase("acme/x", { language: ["de", "en"], datasets: ["org/extes"] }))).toMatchObject({ language: ["de", "en"], datasets: ["org/extes"] });
  });

  it("the merged card: a plain transformers model, its own load snippet, no peft", () => {
    const job = withBase("meta-llama/Llama-2-7b-hf");
    const card = renderModelCard({ job, summary, target: { ...target, repo: "org/extes-lora-merged" }, merged: true });
    const meta = frontMatter(card);
    expect(meta).toMatchObject({ base_model: "meta-llama/Llama-2-7b-hf", base_model_relation: "finetune", library_name: "transformers", license: "other", license_name: "llama2" });
    expect(meta.tags).not.toContain("peft");
    expect(card).toContain('model = AutoModelForCausalLM.from_pretrained("org/extes-lora-merged")');
    expect(card).toContain('tokenizer = AutoTokenizer.from_pretrained("org/extes-lora-merged")');
    expect(card).toContain("merged into its weights");
    expect(card).not.toContain("PeftModel");
    expect(card).not.toContain("from peft");
  });
});
