/**
 * The controller's exit code as the README documents it, with the FAKE trainer through
 * bin/peftctl.js resume: a run refused for bad input (the shim's exit 2: spec, data, fingerprint,
 * environment) is a user error, exit 2 with the shim's message on stderr, when nothing else failed;
 * any other failure beside it makes it exit 1.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { readStatus } from "../../src/runs/store.ts";
import { fakeEnv, makeRun, tempRunsDir, type FakeBehaviour } from "./helpers.ts";

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../bin/peftctl.js");

async function resumeWith(behaviours: FakeBehaviour[]) {
  const runsDir = tempRunsDir();
  const runs = behaviours.map((fake, i) => makeRun(runsDir, `run-${i}`, { fake: { steps: 4, step_ms: 20, ...fake } }));
  const result = await execa(bin, ["--runs-dir", runsDir, "resume", "fake-exp"], { reject: false, env: fakeEnv({ PEFTCTL_CPU_SLOTS: "2" }) });
  return { result, states: runs.map((run) => readStatus(run.dir).state) };
}

describe("peftctl run/resume exit codes", () => {
  it("every failure is the shim's bad input: exit 2 with its message", async () => {
    const { result, states } = await resumeWith([{ behaviour: "bad-input" }]);
    expect(states).toEqual(["failed"]);
    expect(result.stderr).toContain("run-0: spec: train.lr: must be positive (fake)");
    expect(result.stderr).not.toMatch(/^\s+at /m);
    expect(result.exitCode).toBe(2);
  });

  it("bad input beside a success is still exit 2", async () => {
    const { result, states } = await resumeWith([{ behaviour: "bad-input" }, { behaviour: "ok" }]);
    expect(states).toEqual(["failed", "succeeded"]);
    expect(result.exitCode).toBe(2);
  });

  it("bad input beside another kind of failure: exit 1", async () => {
    const { result, states } = await resumeWith([{ behaviour: "bad-input" }, { behaviour: "fail" }]);
    expect(states).toEqual(["failed", "failed"]);
    expect(result.exitCode).toBe(1);
  });

  it("a re-run that skips a run refused for bad input says why and exits 2 again", async () => {
    const runsDir = tempRunsDir();
    makeRun(runsDir, "run-0", { fake: { steps: 4, step_ms: 20, behaviour: "bad-input" } });
    const env = fakeEnv();
    await execa(bin, ["--runs-dir", runsDir, "resume", "fake-exp"], { reject: false, env });
    const again = await execa(bin, ["--runs-dir", runsDir, "resume", "fake-exp"], { reject: false, env });
    expect(again.stderr).toContain("--retry-failed");
    expect(again.exitCode).toBe(2);
  });
});
