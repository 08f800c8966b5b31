/**
 * Files of huggingface_hub's cache on this machine: where it lives and the snapshot file of a repo at a
 * revision. Read by the memory estimate (a base model's config.json) and the model card (its README.md).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";

const COMMIT = /^[0-9a-f]{40}$/;

/** huggingface_hub's cache root: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function hubCacheDir(env: NodeJS.ProcessEnv): string {
  if (env.HF_HUB_CACHE?.trim()) return env.HF_HUB_CACHE.trim();
  const home = env.HF_HOME?.trim() || path.join(env.HOME?.trim() || os.homedir(), ".cache", "huggingface");
  return path.join(home, "hub");
}

/** models--<org>--<name>/snapshots/<commit>/<name> of huggingface_hub's cache, the commit from refs/<revision>; any snapshot holding the file when the ref is missing. */
export function cachedSnapshotFile(cache: string, hubId: string, revision: string | undefined, name: string): string | undefined {
  const repo = path.join(cache, `models--${hubId.split("/").join("--")}`);
  const wanted = revision ?? "main";
  let commit: string | undefined = COMMIT.test(wanted) ? wanted : undefined;
  if (commit === undefined) {
    try {
      commit = readFileSync(path.join(repo, "refs", wanted), "utf8").trim();
    } catch {
      commit = undefined;
    }
  }
  if (commit !== undefined) {
    const file = path.join(repo, "snapshots", commit, name);
    return existsSync(file) ? file : undefined;
  }
  if (revision !== undefined) return undefined; // a named revision that is not cached: another snapshot would be another card
  let snapshots: string[];
  try {
    snapshots = readdirSync(path.join(repo, "snapshots"));
  } catch {
    return undefined;
  }
  const holding = snapshots.map((snapshot) => path.join(repo, "snapshots", snapshot, name)).filter((file) => existsSync(file));
  return holding.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}
