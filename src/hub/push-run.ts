import { commit, createBranch, createRepo, HubApiError, listCommits, listFiles, repoExists, whoAmI } from "@huggingface/hub";
import { FailureError, PeftctlError, UserError } from "../errors.ts";
import { log } from "../log.ts";
import { hasRun, nowIso, readJob, updateStatus, type PushRecord } from "../runs/store.ts";
import { fileOids } from "./file-oids.ts";
import { hubFailure } from "./hub-failure.ts";
import { resolveHubToken } from "./hub-token.ts";
import { planPush } from "./plan-push.ts";
import { createRetryingFetch } from "./retrying-fetch.ts";
import type { HubToken, PushFile, PushOptions, PushResult, PushTarget } from "./types.ts";

/** Files this small are read whole to check that the token is not in them (weights are not text). */
const SCANNED_BELOW_BYTES = 10 * 1024 * 1024;

type Hub = { hubUrl: string; accessToken: string; fetch: typeof fetch };

function repoUrl(target: PushTarget): string {
  return `${target.endpoint}/${target.repo}${target.branch === "main" ? "" : `/tree/${encodeURIComponent(target.branch)}`}`;
}

function isStatus(error: unknown, ...codes: number[]): boolean {
  return error instanceof HubApiError && codes.includes(error.statusCode);
}

async function refuseFilesWithToken(files: readonly PushFile[], token: HubToken): Promise<void> {
  for (const file of files) {
    if (file.size >= SCANNED_BELOW_BYTES || file.path.endsWith(".safetensors")) continue;
    if ((await file.content.text()).includes(token.value)) {
      throw new FailureError("PEFTCTL_HUB_FAILED", `${file.source === "generated" ? file.path : file.source} contains the Hub token; nothing was pushed`, [
        "remove the token from the run's files (job specs and env files must never hold secrets) and push again",
      ]);
    }
  }
}

async function headCommit(hub: Hub, target: PushTarget): Promise<string | undefined> {
  for await (const entry of listCommits({ ...hub, repo: target.repo, revision: target.branch, batchSize: 1 })) return entry.oid;
  return undefined;
}

/** Paths whose local content differs from the branch (sha256 against LFS files, git blob oid against the rest). */
async function changedFiles(hub: Hub, target: PushTarget, files: readonly PushFile[]): Promise<PushFile[]> {
  const remote = new Map<string, { oid?: string; lfsOid?: string }>();
  for await (const entry of listFiles({ ...hub, repo: target.repo, revision: target.branch, recursive: true })) {
    if (entry.type === "file") remote.set(entry.path, { oid: entry.oid, lfsOid: entry.lfs?.oid });
  }
  const changed: PushFile[] = [];
  for (const file of files) {
    const there = remote.get(file.path);
    if (!there) {
      changed.push(file);
      continue;
    }
    const local = await fileOids(file.content);
    if (there.lfsOid ? there.lfsOid !== local.sha256 : there.oid !== local.gitOid) changed.push(file);
  }
  return changed;
}

/**
 * Publishes one finished run: creates the repo (and branch) when missing, uploads only what changed,
 * in one commit. Never throws: the outcome, success or failure, is the result and goes to
 * status.json, so an auto-push that fails leaves the training run succeeded.
 */
export async function pushRun(runDir: string, options: PushOptions = {}): Promise<PushResult> {
  const logger = options.log ?? log();
  const env = options.env ?? process.env;
  let target: PushTarget | undefined;
  let token: HubToken | undefined;
  let runId = runDir;
  let action = "planning the push";
  const record = (push: PushRecord) => {
    if (options.recordStatus === false || !hasRun(runDir)) return;
    try {
      updateStatus(runDir, () => ({ push }));
    } catch (error) {
      logger.warn({ run_dir: runDir }, `could not record the push in status.json: ${error instanceof Error ? error.message : String(error)}`);
    }
  };

  try {
    if (hasRun(runDir)) runId = readJob(runDir).run_id;
    const plan = await planPush(runDir, { ...options, env });
    target = plan.target;
    for (const note of plan.notes) logger.warn({ run_id: plan.runId }, note);
    token = resolveHubToken(env);
    if (!token) {
      throw new UserError("PEFTCTL_HUB_AUTH", `no Hugging Face token to push ${plan.experiment}/${plan.runId} to ${target.repo}`, [
        "set HF_TOKEN, or run `huggingface-cli login` (it writes $HF_HOME/token, HF_HOME defaulting to ~/.cache/huggingface)",
      ]);
    }
    await refuseFilesWithToken(plan.files, token);
    const hub: Hub = {
      hubUrl: target.endpoint,
      accessToken: token.value,
      fetch: createRetryingFetch({
        ...options.retry,
        fetch: options.fetch,
        onRetry: ({ url, attempt, delayMs, reason }) =>
          logger.warn({ attempt, delay_ms: Math.round(delayMs) }, `retrying ${new URL(url).pathname}: ${reason}`),
      }),
    };

    action = "checking the token";
    await whoAmI(hub);

    action = "creating the repo";
    if (!(await repoExists({ ...hub, repo: target.repo }))) {
      try {
        await createRepo({ ...hub, repo: target.repo, visibility: target.private ? "private" : "public" });
        logger.info(`created ${target.private ? "private" : "public"} repo ${target.repo}`);
      } catch (error) {
        if (!isStatus(error, 409)) throw error; // 409: created meanwhile (an earlier, interrupted push)
      }
    }

    action = "reading the branch";
    let head: string | undefined;
    try {
      head = await headCommit(hub, target);
    } catch (error) {
      if (!isStatus(error, 404) || target.branch === "main") throw error;
      action = "creating the branch";
      try {
        await createBranch({ ...hub, repo: target.repo, branch: target.branch });
        logger.info(`created branch ${target.branch} in ${target.repo}`);
      } catch (branchError) {
        if (!isStatus(branchError, 409)) throw branchError;
      }
      action = "reading the branch";
      head = await headCommit(hub, target);
    }

    action = "comparing with the remote files";
    const changed = await changedFiles(hub, target, plan.files);
    const url = repoUrl(target);
    if (changed.length === 0 && head) {
      logger.info(`${target.repo}@${target.branch} already holds this run (${head.slice(0, 12)}): nothing to push`);
      record({ state: "pushed", repo: target.repo, revision: target.branch, url, commit: head, at: nowIso() });
      return { ok: true, runId, repo: target.repo, branch: target.branch, commitOid: head, url, skipped: true, uploaded: [] };
    }

    action = "committing";
    let commitOid: string;
    try {
      const output = await commit({
        ...hub,
        repo: target.repo,
        branch: target.branch,
        // A retried commit whose first attempt landed fails on this instead of committing twice.
        parentCommit: head,
        title: `peftctl: ${plan.experiment}/${plan.runId}${options.merged ? " (merged)" : ""}`,
        description: `Pushed by peftctl push: ${changed.map((file) => file.path).join(", ")}`,
        operations: changed.map((file) => ({ operation: "addOrUpdate" as const, path: file.path, content: file.content })),
        useXet: false,
      });
      if (!output) throw new Error("the Hub returned no commit");
      commitOid = output.commit.oid;
    } catch (error) {
      // The answer was lost or the parent moved: the commit may have landed; the tree tells.
      if (!(error instanceof HubApiError) || isStatus(error, 409, 412)) {
        action = "checking whether the commit landed";
        const stillChanged = await changedFiles(hub, target, plan.files).catch(() => changed);
        const newHead = stillChanged.length === 0 ? await headCommit(hub, target).catch(() => undefined) : undefined;
        if (!newHead) throw error;
        commitOid = newHead;
      } else {
        throw error;
      }
    }
    logger.info(`pushed ${changed.length} file(s) to ${url} (commit ${commitOid.slice(0, 12)})`);
    record({ state: "pushed", repo: target.repo, revision: target.branch, url, commit: commitOid, at: nowIso() });
    return { ok: true, runId, repo: target.repo, branch: target.branch, commitOid, url, skipped: false, uploaded: changed.map((file) => file.path) };
  } catch (caught) {
    const error =
      caught instanceof PeftctlError
        ? caught
        : target
          ? hubFailure(caught, { token, target, action })
          : new FailureError("PEFTCTL_HUB_FAILED", `push of ${runDir} failed while ${action}: ${caught instanceof Error ? caught.message : String(caught)}`);
    record({
      state: "failed",
      repo: target?.repo ?? "",
      revision: target?.branch,
      error: [error.message, ...error.details].join("\n"),
      at: nowIso(),
    });
    return { ok: false, runId, repo: target?.repo, branch: target?.branch, error };
  }
}
