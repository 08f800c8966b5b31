import { existsSync, openAsBlob, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { UserError } from "../errors.ts";
import { findMetrics } from "../runs/eval-metrics.ts";
import { hasRun, readEvents, readJob, readStatus, runFile } from "../runs/store.ts";
import { hubEndpoint } from "./hub-endpoint.ts";
import { readBaseModelCard } from "./base-model-card.ts";
import { mergedModelDir } from "./merged-export.ts";
import { cardBaseModel, cardNotes, renderModelCard } from "./model-card.ts";
import { resolvePushTarget } from "./push-target.ts";
import { summarizeEvents } from "./summarize-events.ts";
import type { PushFile, PushOptions, PushPlan } from "./types.ts";

/** peft writes its own template card next to the adapter; ours replaces it. */
const REPLACED_BY_CARD = "README.md";
const BUNDLE_DIR = "peftctl";

function generated(repoPath: string, text: string): PushFile {
  const content = new Blob([text]);
  return { path: repoPath, size: content.size, content, source: "generated" };
}

const ADAPTER_CONFIG = "adapter_config.json";

/**
 * adapter_config.json with the base's Hub id in place of a local path (a base loaded from a directory),
 * so that AutoPeftModelForCausalLM on the Hub finds the base; null: nothing to change (no Hub id known,
 * the config already names a Hub id, or it is not a config peft wrote).
 */
function withHubBase(text: string, hubId: string | null): string | null {
  if (hubId === null) return null;
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof config !== "object" || config === null || Array.isArray(config)) return null;
  const base = (config as Record<string, unknown>).base_model_name_or_path;
  if (typeof base !== "string" || !path.isAbsolute(base)) return null;
  return `${JSON.stringify({ ...config, base_model_name_or_path: hubId }, null, 2)}\n`;
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/**
 * Everything a push of one run will send, and where, without a request: the adapter files the
 * shim saved (weights, config, tokenizer), or with `merged` the merged model's (exported into the
 * run dir first when missing: local work, no request), the model card, and the reproducibility bundle.
 */
export async function planPush(runDir: string, options: Pick<PushOptions, "repo" | "branch" | "private" | "env" | "merged"> = {}): Promise<PushPlan> {
  if (!hasRun(runDir)) throw new UserError("PEFTCTL_RUN_NOT_FOUND", `${runDir} is not a run directory (no job.json)`);
  const job = readJob(runDir);
  const status = readStatus(runDir);
  const merged = options.merged === true;
  const target = resolvePushTarget(job, { ...options, endpoint: hubEndpoint(options.env) });

  const finalAdapter = status.adapter_path && existsSync(status.adapter_path) ? status.adapter_path : runFile(runDir, "adapter");
  const finished = (names: string[]) =>
    names.some((name) => name.endsWith(".safetensors")) && (job.method.kind === "full" || names.includes("adapter_config.json"));
  if (!finished(existsSync(finalAdapter) ? readdirSync(finalAdapter) : [])) {
    throw new UserError("PEFTCTL_USAGE", `run ${job.experiment}/${job.run_id} has no finished adapter in ${finalAdapter} (state: ${status.state})`, [
      "only a run that trained to the end can be pushed; see `peftctl status` and `peftctl resume`",
    ]);
  }
  // --merged: the adapter merged into the base (exported once into the run dir), else the adapter as saved.
  const adapterDir = merged ? await mergedModelDir(runDir) : finalAdapter;
  const adapterFiles = readdirSync(adapterDir).filter((name) => !name.startsWith(".") && name !== REPLACED_BY_CARD && statSync(path.join(adapterDir, name)).isFile()).sort();

  const files: PushFile[] = [];
  for (const name of adapterFiles) {
    const local = path.join(adapterDir, name);
    const named = name === ADAPTER_CONFIG && !merged ? withHubBase(readFileSync(local, "utf8"), cardBaseModel(job)) : null;
    if (named !== null) {
      files.push(generated(name, named));
      continue;
    }
    const content = await openAsBlob(local);
    files.push({ path: name, size: content.size, content, source: local });
  }

  const summary = summarizeEvents(readEvents(runDir));
  const testMetrics = findMetrics({ dir: runDir }, "test")?.report ?? null;
  const baseCard = readBaseModelCard(job, options.env);
  files.push(generated("README.md", renderModelCard({ job, summary, target, testMetrics, baseCard, merged })));
  files.push(generated(`${BUNDLE_DIR}/job.json`, json(job)));
  const envFile = runFile(runDir, "env");
  if (existsSync(envFile)) files.push(generated(`${BUNDLE_DIR}/env.json`, readFileSync(envFile, "utf8")));
  const metricsFile = runFile(runDir, "metrics");
  if (existsSync(metricsFile)) files.push(generated(`${BUNDLE_DIR}/metrics.json`, readFileSync(metricsFile, "utf8")));
  files.push(
    generated(
      `${BUNDLE_DIR}/data-fingerprint.json`,
      json({
        data: { format: job.data.format, file: path.basename(job.data.path), split: job.data.split },
        fingerprint: summary.data?.fingerprint ?? null,
        job_fingerprint: job.fingerprints.job,
        examples: summary.data?.examples ?? null,
        train_tokens: summary.data?.train_tokens ?? null,
      }),
    ),
  );
  files.push(generated(`${BUNDLE_DIR}/events-summary.json`, json(summary)));
  return { runId: job.run_id, experiment: job.experiment, target, files, notes: cardNotes(job, baseCard) };
}
