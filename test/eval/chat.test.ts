/**
 * `peftctl chat` end to end with the real shim: a 4-step tiny-llama LoRA run trained by `peftctl run`,
 * then `--once` (plain and --json) against the shim's own reply, an interactive session driven through
 * stdin (replies streamed after `supporter> `, /reset, /quit), Ctrl-C, and the targets refused with exit 2.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { chatArgs, planChat } from "../../src/eval/chat.ts";
import { listRuns, type RunRef } from "../../src/runs/store.ts";
import { shimEnv, shimPython } from "../../src/shim.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const bin = path.join(root, "bin/peftctl.js");

const CONFIG = `
name: chattiny
model: { base: builtin:tiny-llama, dtype: float32 }
method: { kind: lora, r: 4, alpha: 8, target_modules: [q_proj, v_proj] }
data: { format: extes, path: ${path.join(root, "data/samples/extes-sample.json")}, strategy: inline, max_length: 128 }
train: { max_steps: 4, lr: 1.0e-2, batch_size: 4, micro_batch_size: 4, warmup_steps: 0, log_every_steps: 2 }
eval: { every_steps: 4, generate: { max_new_tokens: 12, samples: 0 } }
checkpoint: { every_steps: 4, keep_last: 1 }
resources: { gpus: 0 }
`;

type ShimLine = { type: string; text?: string; strategy?: string | null };

let runsDir: string;
let run: RunRef;
/** The shim's own replies to MESSAGES in one session: what the CLI must print. */
let expected: Array<{ text: string; strategy: string | null; pieces: string[] }>;
const MESSAGES = ["I feel lonely", "What should I do?"];

const peftctl = (args: string[], input?: string) =>
  execa(bin, ["--runs-dir", runsDir, ...args], { reject: false, cwd: root, input });

/** The shim's replies to `messages` in one session, asked directly (the reference the CLI must print). */
async function shimReplies(messages: string[]): Promise<Array<{ text: string; strategy: string | null; pieces: string[] }>> {
  const target = planChat(runsDir, run.runId, { checkpoint: null, base: false, scene: "" });
  const input = messages.map((text) => `${JSON.stringify({ text })}\n`).join("");
  const done = await execa(shimPython(), chatArgs(target), { env: shimEnv(), input, reject: false });
  expect(done.exitCode, done.stderr).toBe(0);
  const lines = done.stdout.split("\n").map((line) => JSON.parse(line) as ShimLine);
  const replies: Array<{ text: string; strategy: string | null; pieces: string[] }> = [];
  let pieces: string[] = [];
  for (const line of lines) {
    if (line.type === "token") pieces.push(line.text!);
    if (line.type === "reply") {
      replies.push({ text: line.text!, strategy: line.strategy ?? null, pieces });
      pieces = [];
    }
  }
  return replies;
}

const shown = (reply: { text: string; strategy: string | null }) => `${reply.text}${reply.strategy ? ` [${reply.strategy}]` : ""}`;

describe("peftctl chat", () => {
  beforeAll(async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-chat-"));
    runsDir = path.join(dir, "runs");
    writeFileSync(path.join(dir, "tiny.yaml"), CONFIG);
    const trained = await execa(bin, ["--runs-dir", runsDir, "run", path.join(dir, "tiny.yaml")], { reject: false, cwd: root });
    expect(trained.exitCode, trained.stderr).toBe(0);
    [run] = listRuns(runsDir, "chattiny") as [RunRef];
    expected = await shimReplies(MESSAGES);
  }, 300_000);

  it("--once prints the shim's reply (plain, and {reply, strategy} with --json) and exits 0", { timeout: 180_000 }, async () => {
    const first = expected[0]!;
    expect(first.text).not.toBe("");
    const once = await peftctl(["chat", run.runId, "--once", "I feel lonely"]);
    expect(once.exitCode, once.stderr).toBe(0);
    expect(once.stdout).toBe(first.text);
    const json = await peftctl(["--json", "chat", `chattiny/${run.runId}`, "--once", "I feel lonely"]);
    expect(json.exitCode, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ reply: first.text, strategy: first.strategy });
  });

  it("an interactive session streams each reply after supporter>, /reset forgets, /quit exits 0", { timeout: 120_000 }, async () => {
    const session = await peftctl(["chat", run.runId], "I feel lonely\nWhat should I do?\n/reset\nI feel lonely\n/quit\nnever read\n");
    expect(session.exitCode, session.stderr).toBe(0);
    expect(session.stdout).toMatch(/^chatting with chattiny\/.+ \(adapter\) on cpu; \/reset clears/);
    const printed = session.stdout.split("supporter> ").slice(1).map((part) => part.slice(0, part.indexOf("\n")));
    // the pieces as the shim streamed them, then the strategy in brackets; after /reset the first reply again
    expect(printed).toEqual([shown(expected[0]!), shown(expected[1]!), shown(expected[0]!)]);
    expect(expected[0]!.pieces.join("")).toBe(expected[0]!.text);
    expect(expected.some((reply) => reply.pieces.length > 1)).toBe(true);
    expect(session.stdout).toContain("(conversation cleared)");
    expect(session.stdout.split("you> ")).toHaveLength(6); // a prompt per line read up to /quit, the first included
  });

  it("Ctrl-C ends the chat with exit 130 and no stack trace", { timeout: 120_000 }, async () => {
    const child = execa(bin, ["--runs-dir", runsDir, "chat", run.runId], { reject: false, cwd: root, stdin: "pipe" });
    child.stdout!.on("data", (chunk: Buffer) => {
      if (chunk.toString().includes("you> ")) child.kill("SIGINT");
    });
    const ended = await child;
    expect(ended.exitCode).toBe(130);
    expect(ended.stderr).toContain("chat ended by Ctrl-C");
    expect(ended.stderr).not.toMatch(/\n\s+at /);
    // and the shim went with it (its own process group was sent SIGTERM)
    const jobFile = path.join(run.dir, "job.json");
    await expect.poll(async () => (await execa("pgrep", ["-f", `peftshim chat --job ${jobFile}`], { reject: false })).exitCode, { timeout: 10_000 }).toBe(1);
  });

  it("refuses a bad run id or a missing checkpoint with exit 2 and a message", { timeout: 60_000 }, async () => {
    const unknown = await peftctl(["chat", "no-such-run", "--once", "hi"]);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain("no-such-run");
    const checkpoint = await peftctl(["chat", run.runId, "--checkpoint", "step-999", "--once", "hi"]);
    expect(checkpoint.exitCode).toBe(2);
    expect(checkpoint.stderr).toContain("step-000999");
    const both = await peftctl(["chat", run.runId, "--base", "--checkpoint", "step-4", "--once", "hi"]);
    expect(both.exitCode).toBe(2);
    expect(both.stderr).toContain("exclude each other");
  });
});
