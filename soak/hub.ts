/**
 * Hub faults: `peftctl push` of the reference run against the tests' Hub emulator (HF_ENDPOINT at it),
 * one fault per trial on one route: 429 with Retry-After, 5xx, resets, a dropped answer, a hung
 * connection, a body that stalls after its headers, persistent failures. A push retries to success or
 * fails with a clear message within a bound; never a stack trace; the (canary) token appears in no
 * output, no run file and no pushed file. The CLI keeps its own per-request timeout (120 s), so the
 * persistent hangs run in process through `pushRun` with a short timeout; the rest through the real CLI.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { pushRun } from "../src/hub/push-run.ts";
import { createLogger } from "../src/log.ts";
import { HubEmulator, type Fault, type Route } from "../test/hub/emulator.ts";
import { Tally } from "./report.ts";
import { EXPERIMENT, referenceRun, stackTraceIn } from "./training.ts";
import { peftctl, pool, scratch, tail } from "./util.ts";

type HubTrial = { route: Route; fault: Fault; times: number; succeed: boolean; boundMs: number; inProcess?: boolean };
const retry429: Fault = { kind: "status", status: 429, retryAfterS: 1 };
const TRIALS: HubTrial[] = [
  { route: "whoami", fault: retry429, times: 2, succeed: true, boundMs: 60_000 },
  { route: "preupload", fault: { kind: "status", status: 500 }, times: 2, succeed: true, boundMs: 60_000 },
  { route: "commit", fault: { kind: "status", status: 503 }, times: 1, succeed: true, boundMs: 60_000 },
  { route: "lfs-batch", fault: { kind: "status", status: 502 }, times: 3, succeed: true, boundMs: 60_000 },
  { route: "lfs-upload", fault: { kind: "reset" }, times: 1, succeed: true, boundMs: 60_000 },
  { route: "create-repo", fault: { kind: "reset" }, times: 2, succeed: true, boundMs: 60_000 },
  { route: "commit", fault: { kind: "drop-response" }, times: 1, succeed: true, boundMs: 60_000 },
  { route: "tree", fault: { kind: "status", status: 504 }, times: 2, succeed: true, boundMs: 60_000 },
  { route: "commit", fault: { kind: "hang" }, times: 1, succeed: true, boundMs: 240_000 },
  { route: "create-repo", fault: { kind: "status", status: 500 }, times: 50, succeed: false, boundMs: 120_000 },
  { route: "preupload", fault: retry429, times: 50, succeed: false, boundMs: 120_000 },
  { route: "whoami", fault: { kind: "status", status: 401 }, times: 50, succeed: false, boundMs: 60_000 },
  { route: "commit", fault: { kind: "status", status: 403 }, times: 50, succeed: false, boundMs: 60_000 },
  { route: "whoami", fault: { kind: "hang" }, times: 50, succeed: false, boundMs: 60_000, inProcess: true },
  { route: "lfs-upload", fault: { kind: "hang" }, times: 50, succeed: false, boundMs: 60_000, inProcess: true },
  { route: "preupload", fault: { kind: "hang" }, times: 1, succeed: true, boundMs: 60_000, inProcess: true },
  { route: "whoami", fault: { kind: "stall-body" }, times: 1, succeed: true, boundMs: 60_000, inProcess: true },
  { route: "commit", fault: { kind: "stall-body" }, times: 1, succeed: true, boundMs: 60_000, inProcess: true },
];

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name);
    return statSync(file).isDirectory() ? filesUnder(file) : [file];
  });
}

function describe(t: HubTrial): string {
  const fault = t.fault.kind === "status" ? `${t.fault.status}${t.fault.retryAfterS ? " + Retry-After" : ""}` : t.fault.kind;
  return `${t.route} ${fault} x${t.times >= 50 ? "always" : t.times}${t.inProcess ? " (pushRun, 2 s request timeout)" : ""}`;
}

export async function runHub(options: { quick: boolean }): Promise<Tally> {
  const tally = new Tally();
  const reference = await referenceRun();
  const token = `hf_soakCanary${randomBytes(12).toString("hex")}`;
  const home = scratch("hub-home");
  // a push left hanging by a failed trial goes on after its emulator stopped: its retries are not this run's news
  const quiet = createLogger({ level: "silent" });
  const trials = options.quick ? TRIALS.filter((t) => t.boundMs <= 60_000) : TRIALS;
  // one emulator per trial: faults are queued per route, and trials run side by side
  await pool(trials, 4, async (trial, index) => {
    const hub = new HubEmulator([{ token, name: "soak" }]);
    await hub.start();
    const env = { ...process.env, HF_TOKEN: token, HF_ENDPOINT: hub.url, HF_HOME: home, PEFTCTL_RUNS_DIR: reference.runsDir };
    try {
      const repo = `soak/push-${index}`;
      hub.inject(trial.route, trial.fault, trial.times);
      const began = Date.now();
      const problems: string[] = [];
      let output = "";
      let ok = false;
      if (trial.inProcess) {
        const outcome = await Promise.race([
          pushRun(reference.runDir, { repo, env, recordStatus: false, log: quiet, retry: { requestTimeoutMs: 2_000, totalTimeMs: 20_000, baseDelayMs: 100, maxDelayMs: 1_000 } }),
          new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), trial.boundMs)),
        ]);
        if (outcome === "timeout") problems.push(`pushRun did not settle within ${trial.boundMs} ms`);
        else {
          ok = outcome.ok;
          output = outcome.ok ? "" : `${outcome.error.message}\n${outcome.error.details?.join("\n") ?? ""}`;
          if (!outcome.ok && outcome.error.message.trim() === "") problems.push("an empty error message");
        }
      } else {
        const done = await peftctl(["push", `${EXPERIMENT}`, "--repo", repo], { env, timeoutMs: trial.boundMs });
        output = done.stdout + done.stderr;
        ok = done.code === 0;
        if (done.timedOut) problems.push(`no exit within ${trial.boundMs} ms`);
        else if (done.code !== 0 && done.code !== 1 && done.code !== 2) problems.push(`exit ${done.code}`);
        if (!ok && !done.timedOut && !/hub|push|token|repo/i.test(output)) problems.push(`an unclear failure: ${tail(output, 3)}`);
        problems.push(...stackTraceIn([output]));
      }
      if (trial.succeed && !ok) problems.push(`the push should have retried to success: ${tail(output, 3)}`);
      if (!trial.succeed && ok) problems.push("the push succeeded through a persistent fault");
      if (ok && !hub.files(repo).has("adapter_model.safetensors")) problems.push("pushed, but the repo has no adapter_model.safetensors");
      if (output.includes(token)) problems.push("the token appears in the output");
      if (ok) for (const [name, content] of hub.files(repo)) if (content.includes(token)) problems.push(`the token appears in the pushed ${name}`);
      tally.record(`push: ${describe(trial)}`, problems, `npx tsx soak/main.ts --only hub (trial ${index}: ${describe(trial)})`);
      console.log(`  ${describe(trial)}: ${ok ? "pushed" : "failed"} in ${((Date.now() - began) / 1000).toFixed(1)} s${problems.length ? ": FAILED " + problems.join("; ") : ""}`);
    } finally {
      await hub.stop();
    }
  });
  const leaked = [...filesUnder(reference.runDir), ...filesUnder(home)].filter((file) => readFileSync(file).includes(token));
  tally.record("the token in no run file or HF_HOME file", leaked.map((f) => `the token is in ${f}`), `grep -r <token> ${reference.runDir}`);
  return tally;
}
