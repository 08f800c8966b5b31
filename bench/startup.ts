/**
 * `npx tsx bench/startup.ts [--runs N] [--repeat K] [--runs-dir DIR] [--baseline REV]`: the CLI's start, today's against the package's.
 *
 * Today (the baseline, measured in the same run): the sources as committed at REV (default 360743d,
 * the last commit before the compiled package and the lazy command registry), run as a
 * checkout runs them (bin/peftctl.js registering tsx, every command module imported), extracted with
 * `git archive` into a temp dir beside this checkout's node_modules. The package: `npm pack` +
 * `npm install` of this tree (compiled dist/, each command's modules loaded alone). Each command
 * runs K times in turn (today, package, today, ...) and the medians are compared; the goal is under a
 * third of today's time for `--version` and for `status` over a runs dir of N runs (default 10,000,
 * written by the run store's own writers from a planned job of configs/smoke.yaml).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { planConfig } from "../src/experiment.ts";
import { initialStatus, runDirOf, writeJob, writeStatus, type RunState } from "../src/runs/store.ts";
import { installPackage } from "../test/cli/installed-package.ts";

const root = path.join(import.meta.dirname, "..");
const { values } = parseArgs({
  options: { runs: { type: "string", default: "10000" }, repeat: { type: "string", default: "10" }, "runs-dir": { type: "string" }, baseline: { type: "string", default: "360743d" } },
});
const runCount = Number(values.runs);
const repeat = Number(values.repeat);

/** The baseline's bin/, src/ and package.json in a temp dir, resolving packages from this checkout's node_modules. */
function baselineCheckout(revision: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), "peftctl-baseline-"));
  const archive = execFileSync("git", ["archive", revision, "bin", "src", "package.json"], { cwd: root, maxBuffer: 1 << 30 });
  execFileSync("tar", ["-x", "-C", dir], { input: archive });
  symlinkSync(path.join(root, "node_modules"), path.join(dir, "node_modules"));
  return dir;
}

/** N runs in the shapes a real sweep leaves: job.json of a planned job, status.json in the end states. */
async function writeRuns(runsDir: string, count: number): Promise<void> {
  const { plan } = await planConfig(path.join(root, "configs/smoke.yaml"), { runsDir });
  const template = plan.jobs[0]!.spec;
  const states: RunState[] = ["succeeded", "succeeded", "succeeded", "failed", "interrupted"];
  for (let i = 0; i < count; i++) {
    const experiment = `exp${String(i % 10).padStart(2, "0")}`;
    const runId = `${template.run_id}-${String(i).padStart(5, "0")}`;
    const dir = runDirOf(runsDir, experiment, runId);
    writeJob(dir, { ...template, experiment, run_id: runId, run_dir: dir });
    const state = states[i % states.length]!;
    writeStatus(dir, {
      ...initialStatus({ experiment, run_id: runId }),
      state,
      attempts: 1,
      devices: ["cpu"],
      started_at: "2026-01-01T00:00:00.000Z",
      ended_at: "2026-01-01T00:03:20.000Z",
      step: state === "succeeded" ? 200 : 120,
      total_steps: 200,
      best_eval_loss: 2 + (i % 97) / 100,
      exit_code: state === "succeeded" ? 0 : state === "failed" ? 1 : 75,
      error: state === "failed" ? { kind: "data", message: "no examples", retryable: false } : null,
    });
  }
}

function seconds(argv: string[]): number {
  const t0 = process.hrtime.bigint();
  const result = spawnSync(process.execPath, argv, { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  if (result.status !== 0) throw new Error(`${argv.join(" ")} exited ${result.status}: ${result.stderr}`);
  return elapsed;
}

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const head = baselineCheckout(values.baseline!);
const installed = installPackage();
// --runs-dir DIR keeps the runs between calls (writing 10,000 runs, each file fsynced, takes minutes): written when DIR is new.
const keptRuns = values["runs-dir"] ? path.resolve(values["runs-dir"]) : undefined;
const runsDir = keptRuns ?? mkdtempSync(path.join(tmpdir(), "peftctl-runs-"));
try {
  if (!keptRuns || !existsSync(keptRuns)) await writeRuns(runsDir, runCount);
  const today = path.join(head, "bin", "peftctl.js");
  const packaged = path.join(installed.prefix, "node_modules", "peftctl", "bin", "peftctl.js");
  const cases = [
    { name: "--version", args: ["--version"] },
    { name: `status (${runCount.toLocaleString("en-US")} runs)`, args: ["--runs-dir", runsDir, "status"] },
  ];
  console.log(`median of ${repeat} runs each, today (${values.baseline} through tsx) and the package taken in turn`);
  console.log("command                     today s  package s  package/today  goal < 0.333");
  for (const { name, args } of cases) {
    seconds([today, ...args]); // warm the file cache for both
    seconds([packaged, ...args]);
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < repeat; i++) {
      a.push(seconds([today, ...args]));
      b.push(seconds([packaged, ...args]));
    }
    const ratio = median(b) / median(a);
    console.log(
      `${name.padEnd(26)}  ${median(a).toFixed(3).padStart(7)}  ${median(b).toFixed(3).padStart(9)}  ${ratio.toFixed(3).padStart(13)}  ${ratio < 1 / 3 ? "met" : "NOT met"}`,
    );
  }
} finally {
  rmSync(head, { recursive: true, force: true });
  if (!keptRuns) rmSync(runsDir, { recursive: true, force: true });
  installed.remove();
}
