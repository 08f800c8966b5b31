/**
 * Bad data through the real shim: an ExTES file whose dialogues have no assistant reply. The shim
 * refuses it (exit 2, error kind data); `peftctl run` exits 2, a user error as the README promises,
 * with the shim's message on stderr and no stack trace.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const bin = path.join(root, "bin/peftctl.js");

describe("peftctl run on bad data", () => {
  it("exits 2 with the shim's message", { timeout: 5 * 60_000 }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-bad-data-"));
    const data = path.join(dir, "no-replies.json");
    const dialogue = { scene: "work", description: "stress", content: [{ User: "I am tired." }, { User: "Anyone?" }] };
    writeFileSync(data, JSON.stringify([dialogue, dialogue, dialogue, dialogue, dialogue]));
    const config = path.join(dir, "bad.yaml");
    writeFileSync(
      config,
      [
        "name: bad-data",
        "model: { base: builtin:tiny-llama, dtype: float32 }",
        "method: { kind: lora, r: 4, alpha: 8, target_modules: [q_proj, v_proj] }",
        `data: { format: extes, path: ${JSON.stringify(data)}, max_length: 128 }`,
        "train: { max_steps: 2, lr: 1.0e-2, batch_size: 4, micro_batch_size: 4, warmup_steps: 1 }",
        "eval: { every_steps: 2, generate: { samples: 0 } }",
        "checkpoint: { every_steps: 2 }",
        "resources: { gpus: 0 }",
        "",
      ].join("\n"),
    );
    const result = await execa(bin, ["--runs-dir", path.join(dir, "runs"), "run", config], { reject: false, cwd: root });
    expect(result.stderr).toMatch(/no usable dialogue in 5 record\(s\)/);
    expect(result.stderr).not.toMatch(/Traceback|^\s+at /m);
    expect(result.exitCode).toBe(2);
  });
});
