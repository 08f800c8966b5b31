/**
 * Scheduler benchmark (prints figures; not a timed test).
 *
 * 1. Makespan: 64 single-GPU jobs of mixed durations on 8 simulated GPU slots, run through the real
 *    Scheduler and run store with an in-process SIMULATED executor on VIRTUAL time (no processes;
 *    a job "runs" until the virtual clock reaches its end). Longest-processing-time first (durations
 *    known, as the plan's token estimate makes them) against FIFO, both against the lower bound
 *    max(longest job, total work / 8). Target: LPT makespan <= 1.1x the bound.
 * 2. Controller overhead per launched job, measured with the FAKE trainer (test/fixtures/fake-trainer.py,
 *    plain python3): spawn to first event observed by the controller, minus a bare `python3 -c pass`
 *    start (the interpreter's own start-up, which the real shim's imports dwarf, is not controller time).
 *
 * Run: npx tsx bench/schedule.ts
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { DevicePool } from "../src/launch/devices.ts";
import type { Executor, JobHandle, JobResult, StartRequest } from "../src/launch/executor.ts";
import { LocalExecutor } from "../src/launch/local.ts";
import { Scheduler, type ScheduledRun } from "../src/launch/scheduler.ts";
import { setLogger, createLogger } from "../src/log.ts";
import type { ShimEvent } from "../src/runs/events.ts";
import type { RunRef } from "../src/runs/store.ts";
import { fakeEnv, makeRun, type FakeBehaviour } from "../test/launch/helpers.ts";

setLogger(createLogger({ level: "warn" }));

function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

function makeRuns(runsDir: string, count: number, fake: FakeBehaviour = {}): RunRef[] {
  return Array.from({ length: count }, (_, i) =>
    makeRun(runsDir, `job-${String(i).padStart(3, "0")}`, { experiment: "bench", gpus: 1, retries: 0, micro: 1, accumulation: 1, fake }),
  );
}

/** A simulated executor on virtual time: jobs end when the virtual clock reaches start + duration. */
class VirtualTimeExecutor implements Executor {
  readonly kind = "simulated";
  now = 0;
  private readonly pending: Array<{ end: number; resolve: () => void }> = [];

  constructor(private readonly durations: Map<string, number>) {}

  async prepare(): Promise<void> {}
  async collect(): Promise<void> {}
  /** No simulated job outlives the sweep that started it. */
  signalRecorded(): boolean {
    return false;
  }

  async start(request: StartRequest): Promise<JobHandle> {
    const startedAt = this.now;
    const duration = this.durations.get(request.run.dir)!;
    let resolveEnd!: () => void;
    const ended = new Promise<void>((resolve) => (resolveEnd = resolve));
    this.pending.push({ end: startedAt + duration, resolve: resolveEnd });
    const result = ended.then(
      (): JobResult => ({ failed: false, exitCode: 0, signal: null, durationMs: duration, lastEvent: undefined, error: undefined }),
    );
    return { pid: null, pidStartTime: null, onEvent: () => {}, signal: () => {}, wait: () => result };
  }

  /** Advances the clock to the next job end once the scheduler has nothing left to do at this instant. */
  async drive(done: () => boolean): Promise<void> {
    while (!done()) {
      for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
      if (this.pending.length === 0) continue;
      this.pending.sort((a, b) => a.end - b.end);
      const next = this.pending.shift()!;
      this.now = next.end;
      next.resolve();
    }
  }
}

async function makespan(order: "lpt" | "fifo", durations: number[]): Promise<number> {
  const runsDir = mkdtempSync(path.join(os.tmpdir(), "peftctl-bench-"));
  try {
    const runs = makeRuns(runsDir, durations.length);
    const byDir = new Map(runs.map((run, i) => [run.dir, durations[i]!]));
    const executor = new VirtualTimeExecutor(byDir);
    const scheduler = new Scheduler({ executor, pool: new DevicePool(["0", "1", "2", "3", "4", "5", "6", "7"], 1) });
    const scheduled: ScheduledRun[] = runs.map((run) => ({ run, estimatedWork: order === "lpt" ? byDir.get(run.dir) : undefined }));
    let finished = false;
    const driving = executor.drive(() => finished);
    const result = await scheduler.run(scheduled);
    finished = true;
    await driving;
    if (result.succeeded.length !== durations.length) throw new Error(`only ${result.succeeded.length} jobs succeeded`);
    return executor.now;
  } finally {
    rmSync(runsDir, { recursive: true, force: true });
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function overhead(jobs: number): Promise<void> {
  const bare: number[] = [];
  for (let i = 0; i < 8; i++) {
    const t0 = performance.now();
    await execa("python3", ["-c", "pass"]);
    bare.push(performance.now() - t0);
  }
  const runsDir = mkdtempSync(path.join(os.tmpdir(), "peftctl-bench-"));
  try {
    const runs = makeRuns(runsDir, jobs, { steps: 1, step_ms: 0 });
    const local = new LocalExecutor({ env: fakeEnv() });
    const spawnToEvent: number[] = [];
    const delivery: number[] = [];
    const startCall: number[] = [];
    const measuring: Executor = {
      kind: "measured-local",
      prepare: (run) => local.prepare(run),
      collect: (run) => local.collect(run),
      signalRecorded: (run, status, signal) => local.signalRecorded(run, status, signal),
      async start(request) {
        const t0 = performance.now();
        const handle = await local.start(request);
        startCall.push(performance.now() - t0);
        let first = true;
        handle.onEvent((event: ShimEvent) => {
          if (!first) return;
          first = false;
          spawnToEvent.push(performance.now() - t0);
          delivery.push(Date.now() - Date.parse(event.t));
        });
        return handle;
      },
    };
    const scheduler = new Scheduler({ executor: measuring, pool: new DevicePool([], 1) });
    const t0 = performance.now();
    const result = await scheduler.run(runs.map((run) => ({ run })));
    const wall = performance.now() - t0;
    if (result.succeeded.length !== jobs) throw new Error(`only ${result.succeeded.length} fake jobs succeeded`);
    console.log(`controller overhead (fake trainer, ${jobs} jobs one after another on 1 CPU slot):`);
    console.log(`  executor.start (open logs, spawn, read /proc): median ${median(startCall).toFixed(1)} ms`);
    console.log(`  event delivery (emitted -> seen by the scheduler): median ${median(delivery).toFixed(1)} ms`);
    console.log(`  => controller overhead per launched job: ~${(median(startCall) + median(delivery)).toFixed(1)} ms`);
    console.log(`  for scale: spawn -> first event ${median(spawnToEvent).toFixed(1)} ms, of which a bare \`python3 -c pass\` takes ${median(bare).toFixed(1)} ms (the trainer's start-up, not controller time)`);
    console.log(`  whole sweep: ${(wall / jobs).toFixed(1)} ms per job wall time`);
  } finally {
    rmSync(runsDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const random = seededRandom(7);
  // Mixed durations (virtual minutes): mostly short sweeps points, some long ones.
  const durations = Array.from({ length: 64 }, () => Math.round(5 + (random() < 0.25 ? 60 + 120 * random() : 40 * random())));
  const total = durations.reduce((a, b) => a + b, 0);
  const bound = Math.max(Math.max(...durations), total / 8);
  const lpt = await makespan("lpt", durations);
  const fifo = await makespan("fifo", durations);
  console.log(`makespan, 64 jobs on 8 simulated GPUs (in-process simulated executor, virtual time):`);
  console.log(`  lower bound max(longest ${Math.max(...durations)}, total ${total} / 8) = ${bound.toFixed(1)}`);
  console.log(`  longest-first: ${lpt} (${(lpt / bound).toFixed(3)}x the bound) ${lpt <= 1.1 * bound ? "OK (<= 1.1x)" : "ABOVE 1.1x"}`);
  console.log(`  FIFO:          ${fifo} (${(fifo / bound).toFixed(3)}x the bound)`);
  await overhead(16);
  if (lpt > 1.1 * bound) process.exitCode = 1;
}

await main();
