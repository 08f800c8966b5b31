/**
 * The base model's own model card (README.md front matter), where one is on this machine: a local
 * model directory's README.md, else the Hugging Face cache's snapshot of the Hub id (the id of
 * model.base, or hub.base_model when model.base is a local path) at model.revision or main. The card
 * renderer takes the license from it (model-card.ts `cardLicense`). Nothing is fetched: a push
 * should not depend on a second repo answering, and the known families' table covers the common bases.
 */
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import type { JobSpec } from "../plan/jobspec.ts";
import { cachedSnapshotFile, hubCacheDir } from "./hub-cache.ts";

/** A model card is text of some kB; a front matter beyond this is not read. */
const MAX_CARD_BYTES = 1 << 20;

export type BaseCard = { metadata: Record<string, unknown>; source: string };

/** The base model's card front matter, or null when no card is on this machine (or it has none). */
export function readBaseModelCard(job: Pick<JobSpec, "model" | "hub">, env: NodeJS.ProcessEnv = process.env): BaseCard | null {
  const base = job.model.base;
  if (base.startsWith("builtin:")) return null;
  const candidates: string[] = [];
  if (path.isAbsolute(base)) candidates.push(path.join(base, "README.md"));
  const hubId = path.isAbsolute(base) ? job.hub?.base_model : base;
  if (hubId !== undefined) {
    const cached = cachedSnapshotFile(hubCacheDir(env), hubId, path.isAbsolute(base) ? undefined : job.model.revision, "README.md");
    if (cached !== undefined) candidates.push(cached);
  }
  for (const file of candidates) {
    const metadata = frontMatterOf(file);
    if (metadata !== null) return { metadata, source: file };
  }
  return null;
}

/** The YAML front matter of a markdown file as an object, or null (no file, no front matter, not a mapping). */
export function frontMatterOf(file: string): Record<string, unknown> | null {
  let text: string;
  try {
    if (statSync(file).size > MAX_CARD_BYTES) return null;
    text = readFileSync(file, "utf8");
  } catch {
    return null;
  }
  const match = /^---\r?\n([\s\S]*?)\r?\n---\r?\n?/.exec(text);
  if (!match) return null;
  try {
    const value: unknown = parse(match[1]!, { maxAliasCount: 100 });
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null; // a malformed card of someone else's model: as if it had none
  }
}
