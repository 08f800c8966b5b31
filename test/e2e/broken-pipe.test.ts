/**
 * A reader that goes away (`peftctl run ... | head -1`, `peftctl logs <run> | head`): the real shim
 * on the tiny built-in model, with the controller's stdout a pipe whose reading end is closed after
 * the first line. The controller must keep driving the job to its end (status.json final, no
 * orphaned trainer) and no command may print a Node stack trace for EPIPE.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { isSameProcessAlive } from "../../src/runs/proc.ts";
import { listRuns, readEvents, readStatus } from "../../src/runs/store.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const bin = path.join(root, "bin/peftctl.js");

/** One short LoRA run of the smoke recipe (no sweep): a progress line per step, evals at 4 and 8. */
function tinyConfig(dir: string): string {
  const file = path.join(dir, "tiny.yaml");
  writeFileSync(
    file,
    [
      "name: tiny-pipe",
      "model: { base: builtin:tiny-llama, dtype: float32 }",
      "method: { kind: lora, r: 4, alpha: 8, target_modules: [q_proj, v_proj] }",
      `data: { format: extes, path: ${JSON.stringify(path.join(root, "data/samples/extes-sample.json"))}, max_length: 128 }`,
      "train: { max_steps: 8, lr: 1.0e-2, batch_size: 4, micro_batch_size: 4, warmup_steps: 1, log_every_steps: 1 }",
      "eval: { every_steps: 4, generate: { samples: 0 } }",
      "checkpoint: { every_steps: 4, keep_last: 2 }",
      "resources: { gpus: 0 }",
      "",
    ].join("\n"),
  );
  return file;
}

const STACK_FRAME = /^\s+at .+:\d+:\d+\)?$/m;

describe("a closed stdout", () => {
  it("peftctl run | head -1: the run still ends succeeded with its final step and best eval, no orphan, no stack trace", { timeout: 10 * 60_000 }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-pipe-"));
    const runsDir = path.join(dir, "runs");
    const child = execa(bin, ["--runs-dir", runsDir, "run", tinyConfig(dir)], { reject: false, cwd: root, stdout: "pipe", stderr: "pipe", buffer: { stdout: false } });
    // Like `head -1`: read up to the first newline, then close the pipe's reading end.
    await new Promise<void>((resolve) => {
      let seen = "";
      child.stdout!.on("data", (chunk: Buffer) => {
        seen += chunk.toString();
        if (seen.includes("\n")) {
          child.stdout!.destroy();
          resolve();
        }
      });
    });
    const result = await child;
    expect(result.stderr).not.toMatch(STACK_FRAME);
    expect(result.stderr).not.toContain("EPIPE");
    expect(result.exitCode, result.stderr).toBe(0);

    const [run] = listRuns(runsDir, "tiny-pipe");
    const status = readStatus(run!.dir);
    const events = readEvents(run!.dir);
    const done = events.find((e) => e.type === "done");
    expect(status.state).toBe("succeeded");
    expect(done).toBeDefined();
    expect(status.step).toBe(8);
    expect(status.total_steps).toBe(8);
    expect(status.best_eval_loss).not.toBeNull();
    expect(status.pid).toBeNull();
    const start = events.find((e) => e.type === "start");
    expect(start?.type === "start" && isSameProcessAlive(start.pid, null)).toBe(false);
  });
});
