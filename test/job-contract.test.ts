/**
 * The job spec has one definition, JobSpecSchema (src/plan/jobspec.ts); the shim validates job.json
 * against the JSON Schema generated from it (schema/job.schema.json). This runs the shim's real parser
 * (`python -m peftshim validate`) on
 * - every job the TypeScript planner plans for the shipped configs: all accepted, and
 * - specs broken in each way the schema forbids, one violation each, derived by walking the generated
 *   schema (a missing required field, an unknown field, a wrong type, a value outside its enum, const,
 *   bounds, pattern, length): each refused by the shim naming its field, and by zod too.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, test } from "vitest";
import { planConfig } from "../src/experiment.ts";
import { DataSchema } from "../src/config/schema.ts";
import { JOB_JSON_SCHEMA_PATH, JobSpecSchema, type JobSpec } from "../src/plan/jobspec.ts";
import { ShimExit } from "../src/runs/events.ts";
import { projectRoot, shimEnv, shimPython } from "../src/shim.ts";

type Schema = {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  oneOf?: Schema[];
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  minItems?: number;
  pattern?: string;
  items?: Schema;
};

const work = mkdtempSync(path.join(os.tmpdir(), "peftctl-contract-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function shippedConfigs(dir = path.join(projectRoot, "configs")): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? shippedConfigs(path.join(dir, entry.name)) : entry.name.endsWith(".yaml") ? [path.join(dir, entry.name)] : [],
  );
}

/** Runs the shim's parser on job files; returns its exit code and each file's reported lines. */
async function shimValidate(files: string[]): Promise<{ exitCode: number | undefined; lines: Map<string, string[]>; output: string }> {
  const result = await execa(shimPython(), ["-m", "peftshim", "validate", ...files.flatMap((file) => ["--job", file])], {
    cwd: projectRoot,
    env: shimEnv(),
    reject: false,
  });
  const lines = new Map<string, string[]>(files.map((file) => [file, []]));
  for (const line of result.stdout.split("\n")) {
    const file = files.find((candidate) => line === `ok ${candidate}` || line.startsWith(`${candidate}: `));
    if (file) lines.get(file)!.push(line);
  }
  return { exitCode: result.exitCode, lines, output: `${result.stdout}\n${result.stderr}` };
}

function write(name: string, value: unknown): string {
  const file = path.join(work, `${name}.json`);
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
  return file;
}

type Mutation = { name: string; field: string; removes?: boolean; apply(spec: Record<string, unknown>): void };

function at(root: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return keys.reduce((node, key) => node[key] as Record<string, unknown>, root);
}

/** One mutation per constraint the schema states, for every field present in `example`. */
function mutations(schema: Schema, example: unknown, keys: string[] = []): Mutation[] {
  const out: Mutation[] = [];
  const field = keys.join(".");
  const set = (name: string, value: unknown): Mutation => ({
    name: `${field}: ${name}`,
    field,
    apply: (spec) => {
      at(spec, keys.slice(0, -1))[keys.at(-1)!] = value;
    },
  });
  if (schema.oneOf) {
    const kind = (example as { kind?: unknown }).kind;
    const variant = schema.oneOf.find((option) => option.properties?.kind?.const === kind);
    return variant ? mutations(variant, example, keys) : out;
  }
  if (keys.length > 0) {
    if (schema.const !== undefined) out.push(set("another constant", typeof schema.const === "number" ? schema.const + 1 : `${String(schema.const)}x`));
    if (schema.enum) out.push(set("outside the enum", "not-an-option"));
    if (schema.type === "integer") out.push(set("a fraction", 1.5), set("text", "7"));
    if (schema.type === "number") out.push(set("text", "fast"));
    if (schema.type === "boolean") out.push(set("a number", 1));
    if (schema.type === "string") out.push(set("a number", 3));
    if (schema.type === "array") out.push(set("an object", {}));
    if (schema.type === "object") out.push(set("a list", []));
    if (schema.exclusiveMinimum !== undefined) out.push(set("at the exclusive minimum", schema.exclusiveMinimum));
    if (schema.minimum !== undefined && schema.minimum > -Number.MAX_SAFE_INTEGER) out.push(set("below the minimum", schema.minimum - 0.5));
    if (schema.maximum !== undefined && schema.maximum < Number.MAX_SAFE_INTEGER) out.push(set("above the maximum", schema.maximum + 0.5));
    if (schema.pattern !== undefined) out.push(set("not matching the pattern", "relative path!"));
    if (schema.minLength !== undefined && schema.minLength > 0) out.push(set("empty", ""));
    if (schema.minItems !== undefined && schema.minItems > 0) out.push(set("an empty list", []));
  }
  if (schema.type === "object" && schema.properties) {
    const record = example as Record<string, unknown>;
    if (schema.additionalProperties === false) {
      out.push({ name: `${field || "(top level)"}: an unknown field`, field: [...keys, "unknown_field"].join("."), apply: (spec) => (at(spec, keys).unknown_field = 1) });
    }
    for (const [key, child] of Object.entries(schema.properties)) {
      if (!(key in record)) continue;
      if (schema.required?.includes(key)) {
        out.push({ name: `${[...keys, key].join(".")}: missing`, field: [...keys, key].join("."), removes: true, apply: (spec) => delete at(spec, keys)[key] });
      }
      out.push(...mutations(child, record[key], [...keys, key]));
    }
  }
  return out;
}

describe("job spec contract: TypeScript planner vs the shim's parser", () => {
  test(`${JOB_JSON_SCHEMA_PATH} is what the shim reads (it names the current schema_version)`, () => {
    const schema = JSON.parse(readFileSync(path.join(projectRoot, JOB_JSON_SCHEMA_PATH), "utf8")) as Schema;
    expect(schema.properties?.schema_version?.const).toBe(JobSpecSchema.shape.schema_version.value);
  });

  test("the shim's contract constants are the controller's: exit codes, schema_version, formats, strategy modes", async () => {
    const { stdout } = await execa(shimPython(), ["-m", "peftshim.contract"], { cwd: projectRoot, env: shimEnv() });
    expect(JSON.parse(stdout)).toEqual({
      exit_codes: ShimExit,
      job_schema_version: JobSpecSchema.shape.schema_version.value,
      formats: DataSchema.shape.format.options,
      strategy_modes: DataSchema.shape.strategy.unwrap().options,
    });
  });

  test("every job planned from every shipped config is accepted", async () => {
    const files: string[] = [];
    for (const config of shippedConfigs()) {
      const { plan } = await planConfig(config, { runsDir: path.join(work, "runs") });
      for (const job of plan.jobs) files.push(write(`planned-${job.spec.run_id}`, job.spec));
    }
    expect(files.length).toBeGreaterThanOrEqual(9);
    const { exitCode, lines, output } = await shimValidate(files);
    expect(exitCode, output).toBe(0);
    for (const file of files) expect(lines.get(file)).toEqual([`ok ${file}`]);
  }, 60_000);

  test("specs broken in each way the schema forbids are refused by both sides, naming the field", async () => {
    const { plan } = await planConfig(path.join(projectRoot, "configs/smoke.yaml"), { runsDir: path.join(work, "runs") });
    const base: JobSpec = {
      ...plan.jobs[0]!.spec,
      hub: { repo: "org/name", private: true, layout: "repo-per-run", auto_push: true, license: "apache-2.0", language: ["en"], datasets: [] },
    };
    const schema = JSON.parse(readFileSync(path.join(projectRoot, JOB_JSON_SCHEMA_PATH), "utf8")) as Schema;
    const broken = mutations(schema, base);
    expect(broken.length).toBeGreaterThan(100);
    const files = broken.map((mutation, index) => {
      const spec = structuredClone(base) as unknown as Record<string, unknown>;
      mutation.apply(spec);
      // zod reads specs as input, where a field with a default may be left out (it fills the default in);
      // the generated schema is the output form, in which every field is required.
      const parsed = JobSpecSchema.safeParse(spec);
      if (mutation.removes && parsed.success) expect(JSON.stringify(parsed.data)).toContain(`"${mutation.field.split(".").at(-1)}"`);
      else expect(parsed.success, `zod accepts ${mutation.name}`).toBe(false);
      return write(`broken-${index}`, spec);
    });
    const { exitCode, lines, output } = await shimValidate(files);
    expect(exitCode, output.slice(0, 2000)).toBe(2);
    expect(output).not.toMatch(/Traceback/);
    broken.forEach((mutation, index) => {
      const reported = lines.get(files[index]!)!;
      expect(reported.some((line) => line.startsWith(`${files[index]}: ${mutation.field}`)), `${mutation.name}: ${reported.join(" | ")}`).toBe(true);
    });
  }, 60_000);

  test("every violation of one spec is reported at once", async () => {
    const { plan } = await planConfig(path.join(projectRoot, "configs/smoke.yaml"), { runsDir: path.join(work, "runs") });
    const spec = structuredClone(plan.jobs[0]!.spec) as unknown as Record<string, Record<string, unknown>>;
    spec.train!.lr = "fast";
    spec.model!.dtype = "fp8";
    delete spec.checkpoint!.keep_last;
    const file = write("three-violations", spec);
    const { exitCode, lines } = await shimValidate([file]);
    expect(exitCode).toBe(2);
    const fields = lines.get(file)!.map((line) => line.slice(file.length + 2).split(":")[0]);
    expect(fields.sort()).toEqual(["checkpoint.keep_last", "model.dtype", "train.lr"]);
  });
});
