import { UserError } from "../errors.ts";
import type { JobSpec } from "../plan/jobspec.ts";
import type { PushTarget } from "./types.ts";

const REPO_PATTERN = /^[\w.-]+\/[\w.-]+$/;
/** The Hub's limit on a repo name (the part after the slash). */
const MAX_REPO_NAME = 96;

/** The run's part of a repo or branch name: its id without the experiment prefix the plan gives it. */
function runSuffix(job: Pick<JobSpec, "run_id" | "experiment">): string {
  const withoutPrefix = job.run_id.startsWith(`${job.experiment}-`) ? job.run_id.slice(job.experiment.length + 1) : job.run_id;
  return withoutPrefix.replace(/[^\w.-]+/g, "-").replace(/^[-.]+|[-.]+$/g, "") || "run";
}

/**
 * Which repo and branch one run goes to. From hub.repo, the layout decides: repo-per-run keeps the
 * repo for a single-run experiment and appends the run suffix for a sweep; branch-per-run keeps one
 * repo and gives every run its own branch. `repo` (--repo) is taken as is; `branch` (--branch) too.
 * `merged` (push --merged) takes hub.repo with `-merged` appended as the repo the layout starts from.
 */
export function resolvePushTarget(
  job: Pick<JobSpec, "run_id" | "experiment" | "sweep_values" | "hub">,
  options: { repo?: string; branch?: string; private?: boolean; endpoint: string; merged?: boolean },
): PushTarget {
  // A merged model is another model than the adapter: its own repo, beside the adapter's.
  const configured = job.hub?.repo !== undefined && options.merged ? `${job.hub.repo}-merged` : job.hub?.repo;
  const base = options.repo ?? configured;
  if (!base) {
    throw new UserError("PEFTCTL_USAGE", `run ${job.experiment}/${job.run_id} has no hub.repo in its config`, [
      "pass --repo org/name, or add `hub: { repo: org/name }` to the experiment config",
    ]);
  }
  if (!REPO_PATTERN.test(base)) {
    throw new UserError("PEFTCTL_USAGE", `'${base}' is not a Hub repo name: expected org/name (letters, digits, '-', '_', '.')`);
  }
  const layout = job.hub?.layout ?? "repo-per-run";
  const isSweepRun = Object.keys(job.sweep_values ?? {}).length > 0;
  let repo = base;
  let branch = "main";
  if (layout === "branch-per-run") {
    branch = runSuffix(job);
  } else if (isSweepRun && options.repo === undefined) {
    repo = `${base}-${runSuffix(job)}`;
    const name = repo.slice(repo.indexOf("/") + 1);
    if (name.length > MAX_REPO_NAME) {
      throw new UserError("PEFTCTL_USAGE", `repo name '${repo}' is longer than the Hub's ${MAX_REPO_NAME} characters`, [
        "pass a shorter --repo, or use `hub.layout: branch-per-run`",
      ]);
    }
  }
  if (options.branch !== undefined) branch = options.branch;
  // Letters, digits, "_", "-", ".": names that need no escaping in any Hub URL.
  if (!/^\w[\w.-]*$/.test(branch) || branch.includes("..") || branch.endsWith(".lock")) {
    throw new UserError("PEFTCTL_USAGE", `'${branch}' is not a valid branch name`);
  }
  return { repo, branch, private: options.private ?? job.hub?.private ?? true, endpoint: options.endpoint };
}
