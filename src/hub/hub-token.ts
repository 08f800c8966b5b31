import { existsSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { HubToken } from "./types.ts";

/**
 * The token the way huggingface_hub finds it: $HF_TOKEN, else the file `huggingface-cli login`
 * writes, $HF_HOME/token (HF_HOME defaulting to ~/.cache/huggingface). Undefined when neither has one.
 */
export function resolveHubToken(env: NodeJS.ProcessEnv = process.env): HubToken | undefined {
  const fromEnv = env.HF_TOKEN?.trim();
  if (fromEnv) return { value: fromEnv, source: "HF_TOKEN" };
  const home = env.HF_HOME?.trim() || path.join(env.HOME?.trim() || os.homedir(), ".cache", "huggingface");
  const file = path.join(home, "token");
  if (!existsSync(file)) return undefined;
  const fromFile = readFileSync(file, "utf8").trim();
  return fromFile ? { value: fromFile, source: file } : undefined;
}
