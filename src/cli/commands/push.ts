import type { Command } from "commander";
import { FailureError, UserError } from "../../errors.ts";
import { planPush } from "../../hub/plan-push.ts";
import { pushRun } from "../../hub/push-run.ts";
import type { PushResult } from "../../hub/types.ts";
import { log } from "../../log.ts";
import { formatBytes } from "../../report/format.ts";
import { readJob, readStatus, requireRuns, type RunRef } from "../../runs/store.ts";
import { cliContext } from "../context.ts";

type PushCliOptions = { repo?: string; private?: boolean; branch?: string; dryRun?: boolean; merged?: boolean };

/** Runs worth pushing: a named run as is; of an experiment, the runs that succeeded. */
function pushableRuns(runs: RunRef[], target: string): RunRef[] {
  if (runs.length === 1) return runs;
  const succeeded: RunRef[] = [];
  for (const run of runs) {
    const { state } = readStatus(run.dir);
    if (state === "succeeded") succeeded.push(run);
    else log().warn(`skipping ${run.experiment}/${run.runId}: state ${state}, not succeeded`);
  }
  if (succeeded.length === 0) {
    throw new UserError("PEFTCTL_USAGE", `no run of '${target}' has succeeded yet: nothing to push`, ["see `peftctl status " + target + "`"]);
  }
  return succeeded;
}

/** `peftctl push <run|experiment>`: publish finished adapters with their model card to the Hub. */
export function registerPush(program: Command): void {
  program
    .command("push")
    .description("publish finished runs to the Hugging Face Hub (token: $HF_TOKEN or $HF_HOME/token; endpoint: $HF_ENDPOINT)")
    .argument("<run|experiment>", "a run id, <experiment>/<run_id>, or an experiment (its succeeded runs)")
    .option("--repo <org/name>", "target repo instead of hub.repo, taken as is")
    .option("--private", "create the repo private (default: hub.private, else private)")
    .option("--branch <name>", "push to this branch (created when missing) instead of the layout's")
    .option("--dry-run", "list the files and the target without a request")
    .option("--merged", "publish the adapter merged into the base (a plain transformers model, exported into <run>/export/merged) to <repo>-merged")
    .action(async (target: string, options: PushCliOptions, command: Command) => {
      const context = cliContext(command);
      const runs = pushableRuns(requireRuns(context.runsDir, target), target);
      if (options.branch !== undefined && runs.length > 1) {
        throw new UserError("PEFTCTL_USAGE", `--branch names one branch but '${target}' has ${runs.length} runs to push`, [
          "push one run (peftctl push <experiment>/<run_id> --branch NAME), or let hub.layout choose the branches",
        ]);
      }
      if (options.repo !== undefined && runs.length > 1 && runs.some((run) => (readJob(run.dir).hub?.layout ?? "repo-per-run") === "repo-per-run")) {
        throw new UserError("PEFTCTL_USAGE", `--repo names one repo but '${target}' has ${runs.length} runs, which would overwrite each other there`, [
          "push one run (peftctl push <experiment>/<run_id> --repo org/name), or set `hub.layout: branch-per-run` to keep them as branches of one repo",
        ]);
      }
      const pushOptions = { repo: options.repo, branch: options.branch, private: options.private ? true : undefined, merged: Boolean(options.merged) };

      if (options.dryRun) {
        const plans = [];
        for (const run of runs) plans.push(await planPush(run.dir, pushOptions));
        if (context.json) {
          const report = plans.map(({ runId, experiment, target: t, files }) => ({
            run: `${experiment}/${runId}`,
            ...t,
            files: files.map((file) => ({ path: file.path, size: file.size, source: file.source })),
          }));
          process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
          return;
        }
        for (const plan of plans) {
          const t = plan.target;
          process.stdout.write(`${plan.experiment}/${plan.runId} -> ${t.repo} branch ${t.branch} at ${t.endpoint} (${t.private ? "private" : "public"} if created)\n`);
          for (const note of plan.notes) log().warn(note);
          for (const file of plan.files) process.stdout.write(`  ${formatBytes(file.size).padStart(10)}  ${file.path}\n`);
          const total = plan.files.reduce((sum, file) => sum + file.size, 0);
          process.stdout.write(`  ${formatBytes(total).padStart(10)}  total, ${plan.files.length} files (dry run: nothing sent)\n`);
        }
        return;
      }

      const results: PushResult[] = [];
      for (const run of runs) {
        const result = await pushRun(run.dir, pushOptions);
        results.push(result);
        if (context.json) continue;
        if (result.ok) {
          const what = result.skipped ? "unchanged" : `${result.uploaded.length} file(s)`;
          process.stdout.write(`${run.experiment}/${run.runId} -> ${result.url} (${what}, commit ${result.commitOid.slice(0, 12)})\n`);
        } else if (runs.length > 1) {
          process.stderr.write(`peftctl: ${result.error.message}\n${result.error.details.map((line) => `${line}\n`).join("")}`);
        }
      }
      if (context.json) {
        const report = results.map((result) =>
          result.ok ? result : { ok: false, runId: result.runId, repo: result.repo, branch: result.branch, error: { code: result.error.code, message: result.error.message, details: result.error.details } },
        );
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      }
      const failures = results.filter((result) => !result.ok);
      if (failures.length === 1 && runs.length === 1 && !failures[0]!.ok) throw failures[0]!.error;
      if (failures.length > 0) {
        throw new FailureError("PEFTCTL_HUB_FAILED", `${failures.length} of ${results.length} pushes failed (see above); run the same command again to finish them`);
      }
    });
}
