/**
 * Memory estimates for any model: its config.json parsed (src/plan/model-config.ts) and found where
 * transformers would find it (src/models/read-model-config.ts: a local directory, the HF cache, the
 * Hub), then planned. The config.json files are the published ones (test/plan/model-configs.ts).
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ExperimentSchema } from "../../src/config/schema.ts";
import { planConfig } from "../../src/experiment.ts";
import { readModelArchitecture } from "../../src/models/read-model-config.ts";
import { totalParameters } from "../../src/plan/architectures.ts";
import { modelKey, planExperiment } from "../../src/plan/index.ts";
import { GIB } from "../../src/plan/memory.ts";
import { parseModelConfig } from "../../src/plan/model-config.ts";
import { DIALOGPT_MEDIUM_CONFIG, LLAMA_7B_CONFIG, MISTRAL_7B_CONFIG, QWEN25_7B_CONFIG } from "./model-configs.ts";

const root = path.join(import.meta.dirname, "../..");

function architectureOf(config: unknown) {
  const parsed = parseModelConfig(config);
  if (parsed.architecture === null) throw new Error(parsed.reason);
  return parsed.architecture;
}

describe("parseModelConfig: published config.json files", () => {
  it("counts each model's parameters as its model card does", () => {
    // The totals transformers reports for each (model.num_parameters()).
    expect(totalParameters(architectureOf(LLAMA_7B_CONFIG))).toBe(6_738_415_616);
    expect(totalParameters(architectureOf(MISTRAL_7B_CONFIG))).toBe(7_241_732_096);
    expect(totalParameters(architectureOf(QWEN25_7B_CONFIG))).toBe(7_615_616_512); // q/k/v biases included
    expect(totalParameters(architectureOf(DIALOGPT_MEDIUM_CONFIG))).toBe(354_823_168);
  });

  it("reads grouped-query attention, tied embeddings and gpt2's field names", () => {
    expect(architectureOf(MISTRAL_7B_CONFIG)).toMatchObject({ family: "llama", heads: 32, kvHeads: 8, headDim: 128, qkvBias: false, tiedEmbeddings: false });
    expect(architectureOf(QWEN25_7B_CONFIG)).toMatchObject({ kvHeads: 4, headDim: 128, qkvBias: true, vocab: 152064 });
    expect(architectureOf(LLAMA_7B_CONFIG)).toMatchObject({ kvHeads: 32 }); // absent num_key_value_heads: = heads
    expect(architectureOf(DIALOGPT_MEDIUM_CONFIG)).toMatchObject({ family: "gpt2", hidden: 1024, intermediate: 4096, layers: 24, positions: 1024, tiedEmbeddings: true });
  });

  it("refuses what it does not model, saying why", () => {
    expect(parseModelConfig({ ...LLAMA_7B_CONFIG, model_type: "phi3" })).toEqual({
      architecture: null,
      reason: "model_type phi3 is not one the memory estimate models (it knows llama, mistral, qwen2, gemma, gpt2)",
    });
    expect(parseModelConfig({ model_type: "llama", hidden_size: 4096 })).toMatchObject({ architecture: null, reason: expect.stringMatching(/lacks a positive integer num_attention_heads, .*intermediate_size/) });
    expect(parseModelConfig({ hidden_size: 4096 })).toEqual({ architecture: null, reason: "config.json has no model_type" });
    expect(parseModelConfig([1, 2])).toEqual({ architecture: null, reason: "config.json is not a JSON object" });
    expect(parseModelConfig({ ...MISTRAL_7B_CONFIG, num_key_value_heads: 7 })).toMatchObject({ architecture: null, reason: expect.stringContaining("inconsistent attention sizes") });
  });
});

describe("a plan figure for a model known only by its config.json", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "peftctl-model-config-"));
  });
  afterEach(() => {
    vi.unstubAllEnvs();
    rmSync(dir, { recursive: true, force: true });
  });
  const offline = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ HOME: dir, HF_HUB_OFFLINE: "1", ...extra });

  function writeHfCache(home: string, id: string, config: unknown, { ref = "main", commit = "0123456789abcdef0123456789abcdef01234567" } = {}) {
    const repo = path.join(home, "hub", `models--${id.replace("/", "--")}`);
    mkdirSync(path.join(repo, "refs"), { recursive: true });
    writeFileSync(path.join(repo, "refs", ref), commit);
    mkdirSync(path.join(repo, "snapshots", commit), { recursive: true });
    writeFileSync(path.join(repo, "snapshots", commit, "config.json"), JSON.stringify(config));
  }

  it("plan shows a figure for a local checkpoint directory (model.base a path), through planConfig", async () => {
    mkdirSync(path.join(dir, "my-mistral"));
    writeFileSync(path.join(dir, "my-mistral", "config.json"), JSON.stringify(MISTRAL_7B_CONFIG));
    writeFileSync(path.join(dir, "extes.json"), "[]");
    writeFileSync(
      path.join(dir, "exp.yaml"),
      `name: local
model: { base: ./my-mistral, dtype: bfloat16 }
method: { kind: lora, r: 8, target_modules: [q_proj, v_proj] }
data: { format: extes, path: missing.json, max_length: 1024 }
train: { batch_size: 8, micro_batch_size: 8 }
resources: { gpus: 1, gpu_memory_gb: 80 }
`,
    );
    vi.stubEnv("HF_HUB_OFFLINE", "1");
    const { plan, warnings } = await planConfig(path.join(dir, "exp.yaml"), { runsDir: path.join(dir, "runs") });
    const [job] = plan.jobs;
    expect(job!.estimate.params!.total).toBe(7_241_732_096);
    // Mistral-7B with LLaMA-7B's shapes but a wider MLP and grouped k/v: a figure near the LLaMA anchor's 58.2 GiB.
    expect(job!.estimate.peakBytes! / GIB).toBeGreaterThan(50);
    expect(job!.estimate.peakBytes! / GIB).toBeLessThan(75);
    expect(warnings.join("\n")).not.toMatch(/shown as "\?"/);
  });

  it("finds a Hub id in the HF cache under HF_HOME (refs/main, or model.revision), offline", async () => {
    const home = path.join(dir, "hf");
    writeHfCache(home, "Qwen/Qwen2.5-7B", QWEN25_7B_CONFIG);
    writeHfCache(home, "Qwen/Qwen2.5-7B", { ...QWEN25_7B_CONFIG, num_hidden_layers: 14 }, { ref: "half", commit: "f".repeat(40) });
    const options = { configDir: dir, env: offline({ HF_HOME: home }) };
    const main = await readModelArchitecture({ base: "Qwen/Qwen2.5-7B" }, options);
    expect(main).toMatchObject({ architecture: { layers: 28, qkvBias: true }, source: expect.stringContaining(path.join("snapshots", "0123456789abcdef0123456789abcdef01234567", "config.json")) });
    expect(await readModelArchitecture({ base: "Qwen/Qwen2.5-7B", revision: "half" }, options)).toMatchObject({ architecture: { layers: 14 } });
    expect(await readModelArchitecture({ base: "Qwen/Qwen2.5-7B", revision: "f".repeat(40) }, options)).toMatchObject({ architecture: { layers: 14 } });
    // HF_HUB_CACHE wins over HF_HOME, as in huggingface_hub.
    expect(await readModelArchitecture({ base: "Qwen/Qwen2.5-7B" }, { configDir: dir, env: offline({ HF_HOME: dir, HF_HUB_CACHE: path.join(home, "hub") }) })).toMatchObject({ architecture: { layers: 28 } });

    const experiment = ExperimentSchema.parse({
      name: "qwen",
      model: { base: "Qwen/Qwen2.5-7B", dtype: "bfloat16" },
      method: { kind: "lora", r: 8, target_modules: ["q_proj", "v_proj"] },
      data: { format: "extes", path: "/d.json", max_length: 1024 },
      train: { batch_size: 8, micro_batch_size: 8, gradient_checkpointing: true },
      resources: { gpus: 1 },
    });
    const plan = planExperiment(experiment, { runsDir: "/r", architectures: new Map([[modelKey(experiment.model), main]]) });
    expect(plan.jobs[0]!.estimate.params!.total).toBe(7_615_616_512);
    expect(plan.jobs[0]!.estimate.peakBytes! / GIB).toBeGreaterThan(14); // 14.2 GiB of bf16 weights alone
  });

  it("shows '?' only when no config can be read, saying why", async () => {
    const lookup = await readModelArchitecture({ base: "mistralai/Mistral-7B-v0.1" }, { configDir: dir, env: offline({ HF_HOME: path.join(dir, "hf") }) });
    expect(lookup).toEqual({
      architecture: null,
      reason: `no config.json for mistralai/Mistral-7B-v0.1: not a local directory, not in the HF cache (${path.join(dir, "hf", "hub")}), and the Hub is offline (HF_HUB_OFFLINE)`,
    });
    mkdirSync(path.join(dir, "broken"));
    writeFileSync(path.join(dir, "broken", "config.json"), "{ not json");
    expect(await readModelArchitecture({ base: path.join(dir, "broken") }, { configDir: dir, env: offline() })).toMatchObject({ architecture: null, reason: expect.stringMatching(/broken.config\.json is not valid JSON/) });
    mkdirSync(path.join(dir, "empty"));
    expect(await readModelArchitecture({ base: "./empty" }, { configDir: dir, env: offline() })).toMatchObject({ architecture: null, reason: expect.stringMatching(/cannot read .*empty.config\.json \(ENOENT\)/) });

    const experiment = ExperimentSchema.parse({ name: "m", model: { base: "mistralai/Mistral-7B-v0.1" }, method: { kind: "lora" }, data: { format: "extes", path: "/d.json" } });
    const plan = planExperiment(experiment, { runsDir: "/r", architectures: new Map([[modelKey(experiment.model), lookup]]) });
    expect(plan.jobs[0]!.estimate.peakBytes).toBeNull();
    expect(plan.warnings).toContainEqual({ path: ["model", "base"], message: `memory estimate of mistralai/Mistral-7B-v0.1 shown as "?": ${lookup.architecture === null ? lookup.reason : ""}` });
  });

  describe("the Hub, when reachable", () => {
    let server: Server;
    let requests: { url: string; authorization: string | undefined }[];
    let endpoint: string;
    beforeEach(async () => {
      requests = [];
      server = createServer((request, response) => {
        requests.push({ url: request.url ?? "", authorization: request.headers.authorization });
        if (request.url === "/mistralai/Mistral-7B-v0.1/resolve/main/config.json") {
          response.writeHead(200, { "content-type": "application/json" });
          response.end(JSON.stringify(MISTRAL_7B_CONFIG));
        } else if (request.url?.startsWith("/slow/")) {
          // never answers: the reader's timeout must end the wait
        } else {
          response.writeHead(404, { "x-error-code": "EntryNotFound" });
          response.end("Entry not found");
        }
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterEach(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    it("fetches config.json once with HF_TOKEN, then reads its own copy; the token appears in no reason", async () => {
      const env = { HOME: dir, HF_ENDPOINT: endpoint, HF_TOKEN: "hf_secret_token_value", PEFTCTL_CACHE_DIR: path.join(dir, "cache") };
      const first = await readModelArchitecture({ base: "mistralai/Mistral-7B-v0.1" }, { configDir: dir, env });
      expect(first).toMatchObject({ architecture: { kvHeads: 8, intermediate: 14336 } });
      expect(requests).toEqual([{ url: "/mistralai/Mistral-7B-v0.1/resolve/main/config.json", authorization: "Bearer hf_secret_token_value" }]);
      expect(readdirSync(path.join(dir, "cache", "model-configs"))).toHaveLength(1);
      const second = await readModelArchitecture({ base: "mistralai/Mistral-7B-v0.1" }, { configDir: dir, env });
      expect(second).toMatchObject({ architecture: { kvHeads: 8 } });
      expect(requests).toHaveLength(1);

      const missing = await readModelArchitecture({ base: "someone/missing" }, { configDir: dir, env });
      expect(missing).toMatchObject({ architecture: null, reason: expect.stringContaining(`the Hub (${endpoint}) has no config.json in someone/missing`) });
      const slow = await readModelArchitecture({ base: "slow/model" }, { configDir: dir, env, timeoutMs: 300 });
      expect(slow).toMatchObject({ architecture: null, reason: expect.stringContaining("could not be asked") });
      for (const lookup of [missing, slow]) expect(JSON.stringify(lookup)).not.toContain("hf_secret_token_value");
    });
  });
});
