/**
 * Where a base model's config.json is found, for the plan's memory estimate (src/plan stays pure:
 * planConfig reads the configs here and hands the parsed shapes to planExperiment). In order:
 * 1. a local directory: model.base an absolute path, or relative to the config's directory or the cwd;
 * 2. the Hugging Face cache as huggingface_hub lays it out: $HF_HUB_CACHE, else $HF_HOME/hub, else
 *    ~/.cache/huggingface/hub; models--<org>--<name>/snapshots/<commit>/config.json, the commit read
 *    from refs/<model.revision or main> unless the revision is a commit hash itself;
 * 3. peftctl's own copy of a config.json fetched earlier ($PEFTCTL_CACHE_DIR, else
 *    ~/.cache/peftctl; model-configs/<sha256 of endpoint, id and revision>.json), so plan asks the Hub once;
 * 4. the published shape of a few fixed well-known ids (src/plan/architectures.ts), for plans offline;
 * 5. the Hub ($HF_ENDPOINT, HF_TOKEN or $HF_HOME/token for gated repos): one GET of
 *    <endpoint>/<id>/resolve/<revision>/config.json with a short timeout; never when HF_HUB_OFFLINE is set.
 *    A plain fetch rather than @huggingface/hub's downloadFile: that one first probes with a range
 *    request for xet/LFS size information, two round trips for a file that is never in LFS.
 * Every failure is a reason, not an exception: the plan then shows "?" and says why.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Experiment } from "../config/schema.ts";
import { hubEndpoint } from "../hub/hub-endpoint.ts";
import { cachedSnapshotFile, hubCacheDir } from "../hub/hub-cache.ts";
import { resolveHubToken } from "../hub/hub-token.ts";
import { BUILTIN_ARCHITECTURES, wellKnownArchitecture } from "../plan/architectures.ts";
import { modelKey, type ArchitectureLookup } from "../plan/index.ts";
import { parseModelConfig } from "../plan/model-config.ts";
import { writeFileAtomic } from "../runs/store.ts";

/** A config.json is a few kB; anything near this is not one. */
const MAX_CONFIG_BYTES = 1 << 20;
const HUB_TIMEOUT_MS = 5_000;

export type ReadOptions = {
  /** The config file's directory: a relative local model.base is looked for there first. */
  configDir: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
};

type Model = Pick<Experiment["model"], "base" | "revision">;

/** The shapes of `models` by modelKey, each read as the file comment says; built-ins are left to the plan. */
export async function readArchitectures(models: readonly Model[], options: ReadOptions): Promise<Map<string, ArchitectureLookup>> {
  const found = new Map<string, ArchitectureLookup>();
  for (const model of models) {
    if (BUILTIN_ARCHITECTURES[model.base] !== undefined) continue;
    found.set(modelKey(model), await readModelArchitecture(model, options));
  }
  return found;
}

export async function readModelArchitecture(model: Model, options: ReadOptions): Promise<ArchitectureLookup> {
  const env = options.env ?? process.env;
  const local = localDirectory(model.base, options.configDir);
  if (local !== undefined) return fromFile(path.join(local, "config.json"), model.base);

  const cache = hubCacheDir(env);
  const cached = cachedSnapshotFile(cache, model.base, model.revision, "config.json");
  if (cached !== undefined) return fromFile(cached, model.base);
  const ownCopy = ownCachePath(env, model);
  if (existsSync(ownCopy)) return fromFile(ownCopy, model.base);
  const known = model.revision === undefined ? wellKnownArchitecture(model.base) : undefined;
  if (known !== undefined) return { architecture: known, source: "the published shape of a well-known model (src/plan/architectures.ts)" };

  const notCached = `not a local directory, not in the HF cache (${cache})`;
  if (isOffline(env)) return { architecture: null, reason: `no config.json for ${model.base}: ${notCached}, and the Hub is offline (HF_HUB_OFFLINE)` };
  const fetched = await fetchFromHub(model, env, options);
  if ("problem" in fetched) return { architecture: null, reason: `no config.json for ${model.base}: ${notCached}, and ${fetched.problem}` };
  const parsed = parseText(fetched.text, `${model.base}'s config.json on the Hub`);
  if (parsed.architecture !== null) saveOwnCopy(ownCopy, fetched.text);
  return parsed;
}

function localDirectory(base: string, configDir: string): string | undefined {
  const candidates = path.isAbsolute(base) ? [base] : [path.resolve(configDir, base), path.resolve(base)];
  return candidates.find((candidate) => isDirectory(candidate));
}

function isDirectory(candidate: string): boolean {
  try {
    return statSync(candidate).isDirectory();
  } catch {
    return false;
  }
}

function ownCachePath(env: NodeJS.ProcessEnv, model: Model): string {
  const root = env.PEFTCTL_CACHE_DIR?.trim() || path.join(env.HOME?.trim() || os.homedir(), ".cache", "peftctl");
  const key = createHash("sha256").update(`${hubEndpoint(env)}\u0000${model.base}\u0000${model.revision ?? "main"}`).digest("hex");
  return path.join(root, "model-configs", `${key.slice(0, 32)}.json`);
}

/** huggingface_hub's reading of HF_HUB_OFFLINE: 1, ON, YES or TRUE. */
function isOffline(env: NodeJS.ProcessEnv): boolean {
  return ["1", "on", "yes", "true"].includes(env.HF_HUB_OFFLINE?.trim().toLowerCase() ?? "");
}

function fromFile(file: string, base: string): ArchitectureLookup {
  let text: string;
  try {
    if (statSync(file).size > MAX_CONFIG_BYTES) return { architecture: null, reason: `${file} is larger than ${MAX_CONFIG_BYTES} bytes: not a model config` };
    text = readFileSync(file, "utf8");
  } catch (error) {
    return { architecture: null, reason: `no config.json for ${base}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? String(error)})` };
  }
  const parsed = parseText(text, file);
  return parsed.architecture === null ? parsed : { architecture: parsed.architecture, source: file };
}

function parseText(text: string, where: string): ArchitectureLookup {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { architecture: null, reason: `${where} is not valid JSON (${(error as Error).message})` };
  }
  const parsed = parseModelConfig(json);
  return parsed.architecture === null ? { architecture: null, reason: `${where}: ${parsed.reason}` } : { architecture: parsed.architecture, source: where };
}

async function fetchFromHub(model: Model, env: NodeJS.ProcessEnv, options: ReadOptions): Promise<{ text: string } | { problem: string }> {
  const endpoint = hubEndpoint(env);
  const token = resolveHubToken(env);
  const timeoutMs = options.timeoutMs ?? HUB_TIMEOUT_MS;
  const url = `${endpoint}/${model.base.split("/").map(encodeURIComponent).join("/")}/resolve/${encodeURIComponent(model.revision ?? "main")}/config.json`;
  try {
    const response = await fetch(url, {
      headers: token === undefined ? {} : { authorization: `Bearer ${token.value}` },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (response.status === 404) return { problem: `the Hub (${endpoint}) has no config.json in ${model.base}${model.revision === undefined ? "" : ` at ${model.revision}`}` };
    if (response.status === 401 || response.status === 403) {
      return { problem: `the Hub (${endpoint}) refused ${model.base}'s config.json (HTTP ${response.status}: a gated or private repository needs HF_TOKEN)` };
    }
    if (!response.ok) return { problem: `the Hub (${endpoint}) answered HTTP ${response.status} for ${model.base}'s config.json` };
    const text = await response.text();
    if (text.length > MAX_CONFIG_BYTES) return { problem: `the Hub's config.json of ${model.base} is larger than ${MAX_CONFIG_BYTES} bytes` };
    return { text };
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : "";
    const said = error instanceof Error ? (error.name === "TimeoutError" ? `no answer within ${timeoutMs / 1000} s` : `${error.message}${cause}`) : String(error);
    // fetch's messages name the URL, never the token; masked anyway, should one ever quote a header.
    const message = token === undefined ? said : said.split(token.value).join("***");
    return { problem: `the Hub (${endpoint}) could not be asked: ${message}` };
  }
}

/** Written whole or not at all: a second plan reads it instead of the network. */
function saveOwnCopy(file: string, text: string): void {
  try {
    writeFileAtomic(file, text);
  } catch {
    // A cache that cannot be written only costs the next plan a request.
  }
}
