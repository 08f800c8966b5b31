/**
 * The `logging` section (experiment trackers): its schema, that it cannot be swept, that it reaches
 * job.json (and the shim's parser) without changing any run id, that an existing run's job.json
 * follows it, and the wording of the shim's warning event.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { LoggingSchema } from "../../src/config/schema.ts";
import { planExperiment } from "../../src/plan/index.ts";
import { JobSpecSchema } from "../../src/plan/jobspec.ts";
import type { ShimEvent } from "../../src/runs/events.ts";
import { parseEventLine } from "../../src/runs/events.ts";
import { prepareRuns } from "../../src/runs/prepare.ts";
import { readJob } from "../../src/runs/store.ts";
import { describeEvent } from "../../src/report/event-text.ts";
import { ProgressView } from "../../src/report/progress.ts";
import { projectRoot, shimEnv, shimPython } from "../../src/shim.ts";
import { fixtureJob } from "../hub/fixture.ts";
import { experiment } from "../plan/helpers.ts";
import { MINIMAL, diagnosticsOf, fixture } from "./helpers.ts";

const TRACKERS = {
  tensorboard: true,
  wandb: { project: "esc", entity: "lab", group: "lora-sweep", mode: "offline" as const },
  mlflow: { tracking_uri: "http://mlflow.internal:5000", experiment: "esc" },
};

describe("logging: the schema", () => {
  it("takes every tracker's settings and defaults to none but what is written", () => {
    expect(LoggingSchema.parse(TRACKERS)).toEqual(TRACKERS);
    expect(LoggingSchema.parse({})).toEqual({ tensorboard: false });
    expect(LoggingSchema.parse({ wandb: {} })).toEqual({ tensorboard: false, wandb: {} }); // W&B's own WANDB_* decide
    expect(LoggingSchema.parse({ mlflow: { tracking_uri: "/srv/mlruns" } }).mlflow).toEqual({ tracking_uri: "/srv/mlruns" });
  });

  it("keeps credentials out of the tracking URI (job.json holds no secret)", () => {
    const result = LoggingSchema.safeParse({ mlflow: { tracking_uri: "https://me:hunter22@mlflow.example" } });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toMatch(/no credentials in the URI: set MLFLOW_TRACKING_USERNAME/);
    expect(LoggingSchema.safeParse({ mlflow: { tracking_uri: "https://mlflow.example/path@v2" } }).success).toBe(true);
  });

  it("names the field of a bad tracker setting at its line", async () => {
    const dir = await fixture({
      "a.yaml": `${MINIMAL}logging:\n  wandb:\n    mode: offlne\n  mlflow:\n    tracking_uri: ./mlruns\n    api_key: x\n`,
    });
    const found = await diagnosticsOf(dir, "a.yaml");
    expect(found).toHaveLength(3);
    expect(found.find((d) => d.includes("logging.wandb.mode"))).toMatch(/a\.yaml:11:\d+: logging\.wandb\.mode: must be one of online, offline, disabled.*did you mean `offline`/);
    expect(found.find((d) => d.includes("logging.mlflow.tracking_uri"))).toMatch(/a\.yaml:13:\d+: .*expected a URI .* or an absolute path/);
    expect(found.find((d) => d.includes("api_key"))).toMatch(/a\.yaml:14:\d+: logging\.mlflow/); // secrets have no key
  });

  it("refuses to sweep the trackers: they change no run id", async () => {
    const dir = await fixture({ "a.yaml": `${MINIMAL}sweep:\n  parameters:\n    logging.wandb.project: [a, b]\n` });
    const found = await diagnosticsOf(dir, "a.yaml");
    expect(found).toEqual([expect.stringMatching(/a\.yaml:11:5: sweep\.parameters\["logging\.wandb\.project"\]: cannot sweep over `logging`/)]);
  });
});

describe("logging: into job.json", () => {
  it("reaches every job of a sweep and changes no run id or fingerprint", () => {
    const sweep = { parameters: { "method.r": [4, 8] } };
    const without = planExperiment(experiment({ sweep }), { runsDir: "/runs" });
    const withTrackers = planExperiment(experiment({ sweep, logging: TRACKERS }), { runsDir: "/runs" });
    expect(withTrackers.jobs.map((j) => j.spec.run_id)).toEqual(without.jobs.map((j) => j.spec.run_id));
    expect(withTrackers.jobs.map((j) => j.spec.fingerprints)).toEqual(without.jobs.map((j) => j.spec.fingerprints));
    for (const job of withTrackers.jobs) {
      expect(job.spec.logging).toEqual(TRACKERS);
      expect(JobSpecSchema.parse(job.spec).logging).toEqual(TRACKERS);
    }
    expect(without.jobs[0]!.spec).not.toHaveProperty("logging");
  });

  it("is parsed by the shim from the generated job schema", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-logging-"));
    const [job] = planExperiment(experiment({ logging: TRACKERS }), { runsDir: dir }).jobs;
    const file = path.join(dir, "job.json");
    writeFileSync(file, JSON.stringify(job!.spec));
    const script = "import sys; from peftshim.spec import load_spec; from pathlib import Path; " +
      "s = load_spec(Path(sys.argv[1])).logging; print(s.tensorboard, s.wandb.mode, s.wandb.group, s.mlflow.tracking_uri)";
    const { stdout } = await execa(shimPython(), ["-c", script, file], { cwd: projectRoot, env: shimEnv() });
    expect(stdout.trim()).toBe("True offline lora-sweep http://mlflow.internal:5000");
  });

  it("follows the config in an existing run's job.json, nothing else of it changing", () => {
    const runDir = path.join(mkdtempSync(path.join(os.tmpdir(), "peftctl-prepare-")), "exp", "run-1");
    const job = fixtureJob(runDir);
    prepareRuns([job], "name: exp\n");
    prepareRuns([{ ...job, logging: TRACKERS }], "name: exp\n");
    expect(readJob(runDir).logging).toEqual(TRACKERS);
    expect({ ...readJob(runDir), logging: undefined }).toEqual({ ...job, logging: undefined });
    prepareRuns([job], "name: exp\n");
    expect(readJob(runDir)).not.toHaveProperty("logging");
  });
});

describe("the warning event", () => {
  const warning = { v: 1, t: "2026-01-01T10:00:05.000Z", run_id: "r1", type: "warning", source: "mlflow", message: "mlflow switched off (starting): MlflowException: API request failed" } as const;

  it("parses and reads the same in peftctl logs and the live view", () => {
    expect(parseEventLine(JSON.stringify(warning))).toEqual(warning);
    expect(describeEvent(warning)).toBe("10:00:05 warning (mlflow): mlflow switched off (starting): MlflowException: API request failed");
    const out = new PassThrough();
    let text = "";
    out.on("data", (chunk) => (text += String(chunk)));
    const view = new ProgressView([{ experiment: "e", runId: "r1", dir: "/x/r1" }], { mode: "plain", out });
    view.onEvent({ experiment: "e", runId: "r1", dir: "/x/r1" }, warning as ShimEvent);
    view.stop();
    expect(text.trim()).toBe("r1: warning (mlflow): mlflow switched off (starting): MlflowException: API request failed");
  });
});
