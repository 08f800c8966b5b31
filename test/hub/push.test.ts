/**
 * pushRun against the local Hub emulator with the real @huggingface/hub client: repo creation,
 * layouts, idempotence, auth errors, and every fault on every route the push uses.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { parse } from "yaml";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { autoPushRun } from "../../src/hub/auto-push.ts";
import { pushRun } from "../../src/hub/push-run.ts";
import type { PushOptions, PushResult, PushSuccess } from "../../src/hub/types.ts";
import { readStatus } from "../../src/runs/store.ts";
import { HubEmulator, type Fault, type Route } from "./emulator.ts";
import { makeRunDir, saveAdapter, type SavedAdapter } from "./fixture.ts";

const TOKEN = "hf_peftctlTestWriteToken0123456789abcd";
const READ_ONLY_TOKEN = "hf_peftctlTestReadOnlyToken987654wxyz";
const WRONG_TOKEN = "hf_thisTokenIsNotKnownToTheHub5555zzzz";

let root: string;
let adapter: SavedAdapter;
let hub: HubEmulator;
let runsDir: string;
let logLines: string[];
let counter = 0;

function options(extra: Partial<PushOptions> = {}, token = TOKEN): PushOptions {
  return {
    env: { HF_TOKEN: token, HF_ENDPOINT: hub.url, HF_HOME: path.join(root, "hf-home") },
    retry: { attempts: 4, baseDelayMs: 5, maxDelayMs: 2000, requestTimeoutMs: 700, totalTimeMs: 20_000 },
    log: pino({ level: "debug" }, { write: (line: string) => void logLines.push(line) }),
    ...extra,
  };
}

function freshRun(overrides: Parameters<typeof makeRunDir>[2] = {}) {
  counter += 1;
  return makeRunDir(runsDir, adapter, { hub: { repo: `peft-org/run-${counter}`, private: true, layout: "repo-per-run", auto_push: true, license: "apache-2.0", language: ["en"], datasets: [] }, ...overrides });
}

function expectOk(result: PushResult): PushSuccess {
  if (!result.ok) throw new Error(`push failed: ${result.error.message}\n${result.error.details.join("\n")}`);
  return result;
}

/** Every adapter file and the bundle are on the branch, byte for byte. */
function expectComplete(repo: string, branch: string, runDir: string): void {
  const files = hub.files(repo, branch);
  for (const name of readdirSync(path.join(runDir, "adapter"))) {
    if (name === "README.md") continue;
    expect(files.get(name), name).toEqual(readFileSync(path.join(runDir, "adapter", name)));
  }
  for (const name of ["README.md", "peftctl/job.json", "peftctl/env.json", "peftctl/metrics.json", "peftctl/data-fingerprint.json", "peftctl/events-summary.json"]) {
    expect(files.has(name), name).toBe(true);
  }
}

function allFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? allFiles(full) : [full];
  });
}

beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), "peftctl-hub-"));
  adapter = saveAdapter(root);
}, 120_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

beforeEach(async () => {
  hub = new HubEmulator([
    { token: TOKEN, name: "alice", orgs: ["peft-org"] },
    { token: READ_ONLY_TOKEN, name: "bob", orgs: ["peft-org"], role: "read" },
  ]);
  await hub.start();
  runsDir = path.join(root, `runs-${++counter}`);
  mkdirSync(runsDir, { recursive: true });
  logLines = [];
});

afterEach(() => hub.stop());

describe("pushRun", () => {
  it("creates a private repo and commits the adapter, tokenizer, model card and bundle in one commit", async () => {
    const { dir, job } = freshRun();
    const result = expectOk(await pushRun(dir, options()));
    const repo = job.hub!.repo;
    expect(result).toMatchObject({ repo, branch: "main", skipped: false, url: `${hub.url}/${repo}` });
    expect(hub.isPrivate(repo)).toBe(true);
    expectComplete(repo, "main", dir);
    const history = hub.history(repo);
    expect(history).toHaveLength(2); // the repo's initial commit, then ours
    expect(history[0]!.oid).toBe(result.commitOid);
    expect(JSON.parse(hub.files(repo).get("peftctl/job.json")!.toString())).toEqual(job);
    expect(result.uploaded).toEqual(expect.arrayContaining(["adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "README.md"]));
    // the safetensors went through the LFS batch API and the PUT target, the rest inline
    expect(hub.requests.filter((r) => r.route === "lfs-upload" && r.status === 200)).toHaveLength(1);
    const push = readStatus(dir).push!;
    expect(push).toMatchObject({ state: "pushed", repo, revision: "main", commit: result.commitOid, url: result.url });
  });

  it("makes no commit when an unchanged run is pushed again, and uploads only what changed", async () => {
    const { dir, job } = freshRun();
    const first = expectOk(await pushRun(dir, options()));
    hub.treePageSize = 2; // the comparison must follow the Link header through every page
    const second = expectOk(await pushRun(dir, options()));
    expect(second).toMatchObject({ skipped: true, commitOid: first.commitOid, uploaded: [] });
    expect(hub.history(job.hub!.repo)).toHaveLength(2);
    expect(hub.requests.filter((r) => r.route === "tree").length).toBeGreaterThan(3);

    writeFileSync(path.join(dir, "metrics.json"), `${JSON.stringify({ eval_loss: 2.5 })}\n`);
    const third = expectOk(await pushRun(dir, options()));
    expect(third.uploaded).toEqual(["peftctl/metrics.json"]);
    expect(hub.history(job.hub!.repo)).toHaveLength(3);
  });

  it("gives each sweep run its own repo (repo-per-run) or its own branch (branch-per-run)", async () => {
    const runs = [4, 8].map((r) => freshRun({ experiment: "sweep", run_id: `sweep-r${r}-00000${r}`, sweep_values: { "method.r": r } }));
    for (const { dir } of runs) expectOk(await pushRun(dir, options()));
    expect(hub.hasRepo(`${runs[0]!.job.hub!.repo}-r4-000004`)).toBe(true);
    expect(hub.hasRepo(`${runs[1]!.job.hub!.repo}-r8-000008`)).toBe(true);

    const hubSection = { repo: "peft-org/sweep-branches", private: false, layout: "branch-per-run" as const, auto_push: true, license: "mit", language: ["en"], datasets: [] };
    const branched = [4, 8].map((r) => makeRunDir(runsDir, adapter, { experiment: "sweep2", run_id: `sweep2-r${r}-00000${r}`, sweep_values: { "method.r": r }, hub: hubSection }));
    const results = [];
    for (const { dir } of branched) results.push(expectOk(await pushRun(dir, options())));
    expect(hub.branches("peft-org/sweep-branches")).toEqual(["main", "r4-000004", "r8-000008"]);
    expect(hub.isPrivate("peft-org/sweep-branches")).toBe(false);
    expect(hub.history("peft-org/sweep-branches", "main")).toHaveLength(1);
    const initial = hub.history("peft-org/sweep-branches", "main")[0]!.oid;
    for (const [i, { dir }] of branched.entries()) {
      const branch = ["r4-000004", "r8-000008"][i]!;
      expectComplete("peft-org/sweep-branches", branch, dir);
      expect(hub.history("peft-org/sweep-branches", branch).map((c) => c.parents)).toEqual([[initial], []]);
      expect(results[i]!.url).toBe(`${hub.url}/peft-org/sweep-branches/tree/${branch}`);
    }
    // --repo and --branch override the config
    const override = expectOk(await pushRun(branched[0]!.dir, options({ repo: "alice/mine", branch: "v1", private: true })));
    expect(override).toMatchObject({ repo: "alice/mine", branch: "v1" });
    expect(hub.isPrivate("alice/mine")).toBe(true);
  });
});

describe("autoPushRun (the run hook)", () => {
  it("pushes only runs whose config has hub: with auto_push, and records the outcome", async () => {
    const { dir, job } = freshRun();
    expect(await autoPushRun(dir, { hub: undefined }, options())).toBeUndefined();
    expect(await autoPushRun(dir, { hub: { ...job.hub!, auto_push: false } }, options())).toBeUndefined();
    expect(hub.requests).toHaveLength(0);
    const result = expectOk((await autoPushRun(dir, job, options()))!);
    expect(readStatus(dir).push).toMatchObject({ state: "pushed", commit: result.commitOid });
    expect(readStatus(dir).state).toBe("succeeded");
  });
});

describe("pushRun errors", () => {
  it("401: names the token source and its masked form, never the token, exit 1", async () => {
    const { dir } = freshRun();
    const result = await pushRun(dir, options({}, WRONG_TOKEN));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.code).toBe("PEFTCTL_HUB_AUTH");
    expect(result.error.exitCode).toBe(1);
    const text = [result.error.message, ...result.error.details].join("\n");
    expect(text).toContain("hf_****zzzz (from HF_TOKEN)");
    expect(text).toContain("rejected the token");
    expect(text).not.toContain(WRONG_TOKEN);
    expect(readStatus(dir).push).toMatchObject({ state: "failed" });
    expect(readStatus(dir).state).toBe("succeeded"); // a failed push never fails the run
  });

  it("reads the token file under HF_HOME and names that file in errors", async () => {
    const { dir } = freshRun();
    const hfHome = path.join(root, "hf-home-file");
    mkdirSync(hfHome, { recursive: true });
    writeFileSync(path.join(hfHome, "token"), `${READ_ONLY_TOKEN}\n`);
    const env = { HF_ENDPOINT: hub.url, HF_HOME: hfHome };
    const result = await pushRun(dir, { ...options(), env });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const text = [result.error.message, ...result.error.details].join("\n");
    expect(result.error.code).toBe("PEFTCTL_HUB_AUTH");
    expect(text).toContain(`hf_****wxyz (from ${path.join(hfHome, "token")}) may not write to peft-org/`);
    expect(text).not.toContain(READ_ONLY_TOKEN);

    writeFileSync(path.join(hfHome, "token"), `${TOKEN}\n`);
    expectOk(await pushRun(dir, { ...options(), env }));
  });

  it("404: says which repo was not found", async () => {
    const { dir, job } = freshRun();
    hub.inject("commits", { kind: "status", status: 404 });
    const result = await pushRun(dir, options());
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.message).toContain(`${job.hub!.repo} at ${hub.url} was not found, or the token hf_****abcd (from HF_TOKEN) cannot see it`);
  });

  it("a missing token is a user error that says where it looked", async () => {
    const { dir } = freshRun();
    const result = await pushRun(dir, { ...options(), env: { HF_ENDPOINT: hub.url, HF_HOME: path.join(root, "empty-home") } });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.exitCode).toBe(2);
    expect(result.error.details.join("\n")).toContain("HF_TOKEN");
    expect(hub.requests).toHaveLength(0);
  });
});

const ROUTES: Route[] = ["whoami", "repo-info", "create-repo", "commits", "branch", "tree", "preupload", "lfs-batch", "lfs-upload", "commit"];
const FAULTS: Array<[string, Fault, number]> = [
  ["503 twice", { kind: "status", status: 503 }, 2],
  ["429 with Retry-After", { kind: "status", status: 429, retryAfterS: 0 }, 1],
  ["a hanging request", { kind: "hang" }, 1],
  ["a reset connection", { kind: "reset" }, 1],
];

describe("faults", () => {
  for (const route of ROUTES) {
    it(`completes the push through 503s, 429s, hangs and resets on ${route}`, async () => {
      for (const [name, fault, times] of FAULTS) {
        // branch-per-run into a fresh repo: every route of the push is called
        const { dir, job } = freshRun({ hub: { repo: `peft-org/faults-${++counter}`, private: true, layout: "branch-per-run", auto_push: true, license: "apache-2.0", language: ["en"], datasets: [] } });
        const before = hub.requests.length;
        hub.inject(route, fault, times);
        const result = expectOk(await pushRun(dir, options()));
        const hits = hub.requests.slice(before).filter((r) => r.route === route);
        expect(hits.length, `${name} on ${route}: retried`).toBeGreaterThan(times);
        expect(hits.slice(0, times).map((r) => r.status), name).toEqual(Array(times).fill(fault.kind === "status" ? fault.status : fault.kind === "hang" ? "hung" : "dropped"));
        expectComplete(job.hub!.repo, result.branch, dir);
        expect(hub.history(job.hub!.repo, result.branch)).toHaveLength(2);
      }
    }, 60_000);
  }

  it("waits as long as Retry-After says", async () => {
    const { dir } = freshRun();
    hub.inject("preupload", { kind: "status", status: 429, retryAfterS: 1 });
    const started = Date.now();
    expectOk(await pushRun(dir, options()));
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(logLines.some((line) => line.includes("retrying") && line.includes("HTTP 429"))).toBe(true);
  });

  for (const route of ["commit", "create-repo", "branch"] as Route[]) {
    it(`a ${route} whose answer is lost is not made twice`, async () => {
      const { dir, job } = freshRun({ hub: { repo: `peft-org/lost-${++counter}`, private: true, layout: "branch-per-run", auto_push: true, license: "apache-2.0", language: ["en"], datasets: [] } });
      hub.inject(route, { kind: "drop-response" });
      const result = expectOk(await pushRun(dir, options()));
      expect(hub.requests.some((r) => r.route === route && r.status === "dropped")).toBe(true);
      expect(hub.history(job.hub!.repo, result.branch)).toHaveLength(2);
      expect(result.commitOid).toBe(hub.history(job.hub!.repo, result.branch)[0]!.oid);
      expectComplete(job.hub!.repo, result.branch, dir);
    });
  }

  for (const [route, fault] of [["commit", { kind: "status", status: 503 }], ["lfs-upload", { kind: "reset" }], ["preupload", { kind: "hang" }]] as Array<[Route, Fault]>) {
    it(`a push that fails for good on ${route} (${fault.kind}) commits nothing, and the next push completes it`, async () => {
      const { dir, job } = freshRun();
      hub.inject(route, fault, 1000);
      const failed = await pushRun(dir, options());
      expect(failed.ok).toBe(false);
      if (failed.ok) return;
      expect(failed.error.code).toBe("PEFTCTL_HUB_FAILED");
      expect(failed.error.exitCode).toBe(1);
      expect(failed.error.details.join("\n")).toContain("running the same `peftctl push` again completes it");
      expect(hub.history(job.hub!.repo)).toHaveLength(1); // only the repo's initial commit
      expect(readStatus(dir).push).toMatchObject({ state: "failed", repo: job.hub!.repo });

      hub.clearFaults();
      const retried = expectOk(await pushRun(dir, options()));
      expect(retried.skipped).toBe(false);
      expectComplete(job.hub!.repo, "main", dir);
      expect(hub.history(job.hub!.repo)).toHaveLength(2);
      expect(readStatus(dir).push).toMatchObject({ state: "pushed", commit: retried.commitOid });
    }, 60_000);
  }
});

describe("the token stays secret", () => {
  it("appears in no pushed file, run file, log line or error message", async () => {
    const { dir, job } = freshRun();
    hub.inject("commit", { kind: "status", status: 503 });
    hub.inject("tree", { kind: "reset" });
    const results = [await pushRun(dir, options())];
    hub.inject("preupload", { kind: "status", status: 500 }, 1000);
    results.push(await pushRun(freshRun().dir, options()));
    results.push(await pushRun(freshRun().dir, options({}, READ_ONLY_TOKEN)));
    expect(results.map((r) => r.ok)).toEqual([true, false, false]);

    const texts = [
      hub.allStoredBytes(job.hub!.repo).toString("latin1"),
      ...allFiles(runsDir).map((file) => readFileSync(file, "latin1")),
      ...logLines,
      ...results.flatMap((r) => (r.ok ? [JSON.stringify(r)] : [r.error.message, ...r.error.details])),
    ];
    expect(logLines.length).toBeGreaterThan(0);
    for (const secret of [TOKEN, READ_ONLY_TOKEN]) {
      for (const text of texts) expect(text.includes(secret)).toBe(false);
    }
  });

  it("refuses to push a run whose files hold the token", async () => {
    const { dir } = freshRun();
    writeFileSync(path.join(dir, "env.json"), JSON.stringify({ HF_TOKEN: TOKEN }));
    const result = await pushRun(dir, options());
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.message).toContain("contains the Hub token");
    expect(hub.requests).toHaveLength(0);
  });
});

describe("model card", () => {
  it("is pushed as README.md with the metadata the Hub indexes", async () => {
    const { dir, job } = freshRun();
    expectOk(await pushRun(dir, options()));
    const card = hub.files(job.hub!.repo).get("README.md")!.toString();
    const metadata = parse(card.split("---\n")[1]!) as Record<string, unknown>;
    expect(metadata.library_name).toBe("peft");
    expect(metadata.base_model).toBeUndefined(); // builtin:tiny-llama is on no Hub
    expect(card).toContain("this card has no `base_model`");
  });
});
