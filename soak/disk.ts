/**
 * A full disk, for real (the approach of test/e2e/disk-full.test.ts): the runs dir on a small tmpfs
 * (mounted here, so root is needed). The run fails as `disk_full` naming the filesystem, with no stack
 * trace and no half-written temporary left; after a remount with room, a plain `peftctl run` finishes it.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { listRuns, readStatus } from "../src/runs/store.ts";
import { Tally } from "./report.ts";
import { RUN_BOUND_MS, TRAIN_ENV, stackTraceIn } from "./training.ts";
import { exec, peftctl, root, scratch, tail } from "./util.ts";

type DiskTrial = { name: string; size: string; method: string; steps: number };
const TRIALS: DiskTrial[] = [
  // full fine-tuning: its first checkpoint (~46 MiB) fits in 60 MiB, the second does not
  { name: "full fine-tuning on 60 MiB", size: "60m", method: "{ kind: full }", steps: 4 },
  // LoRA on 400 KiB: the run dir fits, a checkpoint or the adapter does not
  { name: "LoRA on 400 KiB", size: "400k", method: "{ kind: lora, r: 4, alpha: 8, target_modules: [q_proj, v_proj] }", steps: 4 },
];

function leftovers(runDir: string): string[] {
  const checkpoints = path.join(runDir, "checkpoints");
  const names = [...readdirSync(runDir), ...(existsSync(checkpoints) ? readdirSync(checkpoints) : [])];
  return names.filter((name) => name.startsWith(".tmp-") || name.startsWith(".old-") || name.endsWith(".tmp"));
}

export async function runDisk(): Promise<Tally> {
  const tally = new Tally();
  for (const [index, trial] of TRIALS.entries()) {
    const dir = scratch(`disk/${index}`);
    const disk = path.join(dir, "disk");
    mkdirSync(disk, { recursive: true });
    const mount = await exec("mount", ["-t", "tmpfs", "-o", `size=${trial.size}`, "tmpfs", disk], { timeoutMs: 30_000 });
    if (mount.code !== 0) {
      tally.record(trial.name, [`could not mount a tmpfs (this class needs root): ${tail(mount.stderr, 2)}`], "sudo npx tsx soak/main.ts --only disk");
      continue;
    }
    const problems: string[] = [];
    try {
      const config = path.join(dir, "full.yaml");
      writeFileSync(config, [
        "name: soak-disk",
        "model: { base: builtin:tiny-llama, dtype: float32 }",
        `method: ${trial.method}`,
        `data: { format: extes, path: ${JSON.stringify(path.join(root, "data/samples/extes-sample.json"))}, max_length: 64, max_examples: 16 }`,
        `train: { max_steps: ${trial.steps}, lr: 1.0e-3, batch_size: 2, micro_batch_size: 2, warmup_steps: 1, log_every_steps: 1 }`,
        `eval: { every_steps: ${trial.steps}, generate: { samples: 0 } }`,
        "checkpoint: { every_steps: 2, keep_last: 1 }",
        "resources: { gpus: 0 }",
        "",
      ].join("\n"));
      const args = ["--runs-dir", path.join(disk, "runs"), "run", config];
      const first = await peftctl(args, { env: TRAIN_ENV, timeoutMs: RUN_BOUND_MS });
      const outputs = [first.stdout + first.stderr];
      const runDirOf = () => (existsSync(path.join(disk, "runs")) ? listRuns(path.join(disk, "runs"), "soak-disk")[0]?.dir : undefined);
      const runDir = runDirOf();
      if (first.code === 0) problems.push("the run succeeded on a disk too small for it");
      if (first.code !== 0 && !/no space left/i.test(outputs[0]!)) problems.push(`exit ${first.code} without "no space left": ${tail(outputs[0]!, 3)}`);
      if (runDir && existsSync(path.join(runDir, "status.json"))) {
        const status = readStatus(runDir);
        if (status.state === "failed" && status.error?.kind !== "disk_full") problems.push(`failed as ${status.error?.kind}, not disk_full`);
        const left = leftovers(runDir);
        if (left.length > 0) problems.push(`half-written files left: ${left.join(", ")}`);
      }
      await exec("mount", ["-o", "remount,size=512m", disk], { timeoutMs: 30_000 });
      const second = await peftctl(args, { env: TRAIN_ENV, timeoutMs: RUN_BOUND_MS });
      outputs.push(second.stdout + second.stderr);
      const after = runDirOf();
      if (second.code !== 0) problems.push(`after the remount: exit ${second.code}: ${tail(outputs[1]!, 3)}`);
      if (!after || readStatus(after).state !== "succeeded") problems.push("after the remount the run did not succeed");
      problems.push(...stackTraceIn(outputs));
      console.log(`  ${trial.name}: first exit ${first.code}, after remount exit ${second.code}${problems.length ? ": FAILED" : ""}`);
    } finally {
      await exec("umount", ["-l", disk], { timeoutMs: 30_000 });
    }
    tally.record(trial.name, problems, `npx tsx soak/main.ts --only disk (tmpfs size=${trial.size} at ${disk})`);
  }
  return tally;
}
