/**
 * A full disk, for real: the run store on a 60 MiB tmpfs (mounted by the test, which runs as root),
 * a full fine-tuning of the tiny built-in model whose first checkpoint (~46 MiB) fits and whose
 * second does not. The run fails as `disk_full` with "no space left on <mount>", retryable, with no
 * half-written checkpoint left; once the filesystem is grown (remount, as freeing space would), a
 * plain `peftctl run` (no --retry-failed) resumes it from its checkpoint and it succeeds.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { listRuns, readEvents, readStatus } from "../../src/runs/store.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const bin = path.join(root, "bin/peftctl.js");
const mounted: string[] = [];

async function mountTmpfs(dir: string, size: string): Promise<void> {
  const done = await execa("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { reject: false });
  if (done.exitCode !== 0) throw new Error(`this test mounts a small tmpfs and needs root (CAP_SYS_ADMIN): ${done.stderr}`);
  mounted.push(dir);
}

afterAll(async () => {
  for (const dir of mounted) await execa("umount", ["-l", dir], { reject: false });
});

function leftovers(runDir: string): string[] {
  const checkpoints = path.join(runDir, "checkpoints");
  const names = [...readdirSync(runDir), ...(existsSync(checkpoints) ? readdirSync(checkpoints) : [])];
  return names.filter((name) => name.startsWith(".tmp-") || name.startsWith(".old-") || name.endsWith(".tmp"));
}

describe("a disk that fills up during training", () => {
  it("fails as disk_full naming the filesystem, and a plain re-run resumes once there is space", { timeout: 10 * 60_000 }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-disk-"));
    const disk = path.join(dir, "disk");
    mkdirSync(disk);
    await mountTmpfs(disk, "60m");
    const config = path.join(dir, "full.yaml");
    writeFileSync(
      config,
      [
        "name: disk-full",
        "model: { base: builtin:tiny-llama, dtype: float32 }",
        "method: { kind: full }",
        `data: { format: extes, path: ${JSON.stringify(path.join(root, "data/samples/extes-sample.json"))}, max_length: 128 }`,
        "train: { max_steps: 4, lr: 1.0e-3, batch_size: 4, micro_batch_size: 4, warmup_steps: 1, log_every_steps: 1 }",
        "eval: { every_steps: 2, generate: { samples: 0 } }",
        "checkpoint: { every_steps: 2, keep_last: 1 }",
        "resources: { gpus: 0 }",
        "",
      ].join("\n"),
    );
    const args = ["--runs-dir", path.join(disk, "runs"), "run", config];

    const first = await execa(bin, args, { reject: false, cwd: root });
    const [run] = listRuns(path.join(disk, "runs"), "disk-full");
    const failed = readStatus(run!.dir);
    expect(failed.state, first.stderr).toBe("failed");
    expect(failed.exit_code).toBe(4);
    expect(failed.error?.kind).toBe("disk_full");
    expect(failed.error?.retryable).toBe(true);
    expect(failed.error?.message).toMatch(new RegExp(`^no space left on ${disk} \\(writing ${run!.dir}/checkpoints/step-000004; .* free of 60\\.0 MiB\\)`));
    expect(failed.error?.message).toContain("then run peftctl run (or resume) again");
    expect(first.stdout).toContain("failed: no space left on");
    expect(first.stderr).not.toMatch(/Traceback|^\s+at /m);
    expect(first.exitCode).toBe(1);
    expect(leftovers(run!.dir)).toEqual([]);
    expect(readdirSync(path.join(run!.dir, "checkpoints"))).toEqual(["step-000002"]);

    await execa("mount", ["-o", "remount,size=256m", disk]);
    const second = await execa(bin, args, { reject: false, cwd: root });
    expect(second.exitCode, second.stderr).toBe(0);
    const status = readStatus(run!.dir);
    expect(status.state).toBe("succeeded");
    expect(status.step).toBe(4);
    const starts = readEvents(run!.dir).flatMap((e) => (e.type === "start" ? [e] : []));
    expect(starts.map((s) => s.resumed_from_step)).toEqual([null, 2]);
    expect(leftovers(run!.dir)).toEqual([]);
  });
});
