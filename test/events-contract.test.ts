/**
 * The event protocol has two halves: the zod schema in src/runs/events.ts and the emitter in
 * python/peftshim/events.py. This runs the Python emitter for real and checks both agree.
 */
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { ErrorEvent, ShimEvent, parseEventLine } from "../src/runs/events.ts";
import { projectRoot, shimEnv, shimPython } from "../src/shim.ts";

async function runEventsModule(flag: "--samples" | "--types"): Promise<string> {
  const { stdout } = await execa(shimPython(), ["-m", "peftshim.events", flag], {
    cwd: projectRoot,
    env: shimEnv(),
  });
  return stdout;
}

const ENVELOPE = ["v", "t", "run_id", "type"];

/** type -> the schema's fields besides the envelope. */
function zodFields(): Map<string, string[]> {
  const fields = new Map<string, string[]>();
  for (const option of ShimEvent.options) {
    const type = option.shape.type.value as string;
    fields.set(type, Object.keys(option.shape).filter((key) => !ENVELOPE.includes(key)).sort());
  }
  return fields;
}

describe("event protocol: python emitter vs zod schema", () => {
  it("has the same event types and fields on both sides", async () => {
    const { fields: python, error_kinds: errorKinds } = JSON.parse(await runEventsModule("--types")) as {
      fields: Record<string, string[]>;
      error_kinds: string[];
    };
    const zod = zodFields();
    expect([...errorKinds].sort()).toEqual([...ErrorEvent.shape.kind.options].sort());
    expect(Object.keys(python).sort()).toEqual([...zod.keys()].sort());
    for (const [type, fields] of zod) {
      expect([...python[type]!].sort(), `fields of ${type}`).toEqual(fields);
    }
  });

  it("emits events of every type that the zod schema accepts", async () => {
    const lines = (await runEventsModule("--samples")).split("\n").filter((line) => line.trim() !== "");
    const seen = new Set<string>();
    for (const line of lines) {
      const result = ShimEvent.safeParse(JSON.parse(line));
      expect(result.success, `${line}\n${result.success ? "" : JSON.stringify(result.error.issues)}`).toBe(true);
      expect(parseEventLine(line)).toBeDefined();
      seen.add(JSON.parse(line).type as string);
    }
    expect([...seen].sort()).toEqual([...zodFields().keys()].sort());
  });

  it("reads a data event of a shim before `mapped` existed", () => {
    const older = { v: 1, t: "2026-01-01T00:00:00.000Z", run_id: "r", type: "data", examples: { train: 1, valid: 0, test: 0 },
      dialogues: 1, skipped: {}, repaired: {}, truncated: 0, train_tokens: 9, pad_fraction: 0, fingerprint: "ab" };
    expect(parseEventLine(JSON.stringify(older))).toMatchObject({ type: "data", mapped: {} });
  });
});
