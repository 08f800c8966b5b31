import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { renderModelCard } from "../../src/hub/model-card.ts";
import { summarizeEvents } from "../../src/hub/summarize-events.ts";
import { resolvePushTarget } from "../../src/hub/push-target.ts";
import { parseEventLine, type ShimEvent } from "../../src/runs/events.ts";
import { fixtureJob } from "./fixture.ts";

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
