/**
 * `peftctl logs <run> | head`: the reader closes the pipe long before the events are printed. The
 * command ends quietly (exit 0, nothing on stderr), with -f too, which would otherwise follow a
 * running run forever into a pipe nobody reads.
 */
import { appendFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { updateStatus } from "../../src/runs/store.ts";
import { makeRun, tempRunsDir } from "../launch/helpers.ts";

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../bin/peftctl.js");

/** A run with more events than a pipe buffers (64 KiB), so `head` closes it while logs still writes. */
function runWithManyEvents(state: "succeeded" | "running") {
  const runsDir = tempRunsDir();
  const run = makeRun(runsDir, "many-events");
  const steps = 20_000;
  let lines = "";
  for (let step = 1; step <= steps; step++) {
    lines += `${JSON.stringify({ v: 1, t: new Date().toISOString(), run_id: run.runId, type: "progress", step, total_steps: steps, epoch: 0, loss: 1, lr: 1e-4, tokens_per_s: 1, eta_s: 1 })}\n`;
  }
  appendFileSync(path.join(run.dir, "events.jsonl"), lines);
  // "running" with this test's own pid: a live process, so -f keeps following.
  updateStatus(run.dir, () => ({ state, pid: state === "running" ? process.pid : null }));
  return { runsDir, run };
}

describe("peftctl logs into a closed pipe", () => {
  for (const follow of [false, true]) {
    it(`logs${follow ? " -f" : ""} | head -1: exit 0, no stack trace`, { timeout: 60_000 }, async () => {
      const { runsDir, run } = runWithManyEvents(follow ? "running" : "succeeded");
      const command = `'${bin}' --runs-dir '${runsDir}' logs ${follow ? "-f " : ""}${run.runId} | head -1`;
      const result = await execa("bash", ["-o", "pipefail", "-c", command], { reject: false, timeout: 30_000 });
      expect(result.timedOut).toBe(false);
      expect(result.stdout).toMatch(/step 1\/20000/);
      expect(result.stderr).toBe("");
      expect(result.exitCode).toBe(0);
    });
  }
});
