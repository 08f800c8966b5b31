/** A damaged run dir (found by `make soak`): checkpoints/ is a file. The index has no checkpoints there, no crash. */
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { listCheckpoints, newestCompleteCheckpoint } from "../../src/runs/checkpoints.ts";

describe("the checkpoint index of a damaged run dir", () => {
  it("a file where checkpoints/ should be holds no checkpoints", () => {
    const runDir = mkdtempSync(path.join(os.tmpdir(), "peftctl-damaged-"));
    writeFileSync(path.join(runDir, "checkpoints"), "not a directory");
    expect(listCheckpoints(runDir)).toEqual([]);
    expect(newestCompleteCheckpoint(runDir)).toBeUndefined();
  });
});
