/** prepareRuns keeps an existing run's job.json but for its unhashed table label, which follows the config. */
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { prepareRuns } from "../../src/runs/prepare.ts";
import { readJob, runFile } from "../../src/runs/store.ts";
import { fixtureJob } from "../hub/fixture.ts";

describe("prepareRuns and report.label", () => {
  it("a changed label reaches the existing run's job.json; nothing else of it changes", () => {
    const runDir = path.join(mkdtempSync(path.join(os.tmpdir(), "peftctl-prepare-")), "exp", "run-1");
    const job = fixtureJob(runDir);
    prepareRuns([{ ...job, report: { label: "First" } }], "name: exp\n");
    expect(readJob(runDir).report).toEqual({ label: "First" });
    const snapshot = readFileSync(runFile(runDir, "config"), "utf8");

    prepareRuns([{ ...job, report: { label: "Second" } }], "name: changed\n");
    const relabelled = readJob(runDir);
    expect(relabelled.report).toEqual({ label: "Second" });
    expect({ ...relabelled, report: undefined }).toEqual({ ...readJob(runDir), report: undefined });
    expect(readFileSync(runFile(runDir, "config"), "utf8")).toBe(snapshot); // the snapshot is the first config's

    prepareRuns([job], "name: exp\n");
    expect(readJob(runDir).report).toBeUndefined();
    expect(readJob(runDir)).toEqual(readJob(runDir));
  });
});
