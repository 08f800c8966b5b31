/**
 * Public types of the Hub publisher. Wire formats of the Hub API stay inside @huggingface/hub and
 * the emulator; nothing here mirrors them.
 */
import type { Logger } from "pino";
import type { PeftctlError } from "../errors.ts";
import type { RetryOptions } from "./retrying-fetch.ts";

/** Where a token came from: the HF_TOKEN variable or the path of the token file. */
export type HubToken = { value: string; source: string };

/** Where one run goes. */
export type PushTarget = {
  /** org/name */
  repo: string;
  branch: string;
  private: boolean;
  /** Hub base URL without a trailing slash. */
  endpoint: string;
};

/** One file of the push, already in its place in the repo. */
export type PushFile = {
  /** Path inside the repo. */
  path: string;
  size: number;
  content: Blob;
  /** The local file it comes from, or "generated" for the card and the bundle. */
  source: string;
};

/** `notes`: what the card could not name (a license, a base model on the Hub), for the user. */
export type PushPlan = { runId: string; experiment: string; target: PushTarget; files: PushFile[]; notes: string[] };

export type PushOptions = {
  /** org/name instead of the run's hub.repo. */
  repo?: string;
  branch?: string;
  /** Overrides hub.private; only matters when the repo is created. */
  private?: boolean;
  /** Push the adapter merged into the base (a plain transformers model) to `<repo>-merged` instead of the adapter. */
  merged?: boolean;
  /** HF_TOKEN, HF_HOME, HF_ENDPOINT are read from here (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** The transport under the retries (tests pass one that counts requests). */
  fetch?: typeof fetch;
  retry?: Omit<RetryOptions, "fetch">;
  log?: Logger;
  /** Write the outcome to status.json (default true). */
  recordStatus?: boolean;
};

export type PushSuccess = {
  ok: true;
  runId: string;
  repo: string;
  branch: string;
  /** The head commit after the push (the existing head when nothing changed). */
  commitOid: string;
  url: string;
  /** true when the remote already held every file unchanged: no commit was made. */
  skipped: boolean;
  /** Paths uploaded by this push. */
  uploaded: string[];
};

export type PushFailure = { ok: false; runId: string; repo?: string; branch?: string; error: PeftctlError };

export type PushResult = PushSuccess | PushFailure;
