/**
 * Malformed data for every format (extes, esconv, chat, alpaca) through `python -m peftshim data-summary`
 * (the reader training uses), and a sample through a real `peftctl run`. Invariants: exit 0 or 2; a
 * refusal is one `peftshim: error:` line naming the file (the CLI: a data error naming it), never a
 * traceback or an internal error, within the bound.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Tally } from "./report.ts";
import { STACK_TRACE, peftctl, pool, python, root, scratch, tail } from "./util.ts";

const FORMATS = ["extes", "esconv", "chat", "alpaca"] as const;
type Format = (typeof FORMATS)[number];
const BOUND_MS = 60_000;

/** A few valid records of each format, the base every malformation starts from. */
function records(format: Format): unknown[] {
  switch (format) {
    case "extes": return (JSON.parse(readFileSync(path.join(root, "data/samples/extes-sample.json"), "utf8")) as unknown[]).slice(0, 6);
    case "esconv": return (JSON.parse(readFileSync(path.join(root, "data/samples/esconv-sample.json"), "utf8")) as unknown[]).slice(0, 6);
    case "chat": return Array.from({ length: 6 }, (_, i) => ({ messages: [{ role: "system", content: "Be kind." }, { role: "user", content: `I feel low today (${i}).` }, { role: "assistant", content: "I am sorry to hear that. What happened?" }] }));
    case "alpaca": return Array.from({ length: 6 }, (_, i) => ({ instruction: "Answer kindly.", input: `I feel low today (${i}).`, output: "I am sorry to hear that. What happened?" }));
  }
}

function serialize(format: Format, items: unknown[]): string {
  return format === "chat" ? items.map((r) => JSON.stringify(r)).join("\n") + "\n" : JSON.stringify(items, null, 2);
}

/** The first text field of a record, for swapping in odd values. */
function withText(format: Format, record: unknown, text: unknown): unknown {
  const copy = structuredClone(record) as Record<string, any>;
  if (format === "extes") copy.content[0].User = text;
  else if (format === "esconv") copy.dialog[1].content = text;
  else if (format === "chat") copy.messages[1].content = text;
  else copy.input = text;
  return copy;
}

function withoutField(format: Format, record: unknown): unknown {
  const copy = structuredClone(record) as Record<string, any>;
  if (format === "extes") delete copy.content;
  else if (format === "esconv") delete copy.dialog;
  else if (format === "chat") delete copy.messages;
  else delete copy.output;
  return copy;
}

type Malformed = { kind: string; content: Buffer | "directory" | "missing"; /** may the reader accept it (exit 0)? */ acceptable: boolean };

function malformations(format: Format): Malformed[] {
  const items = records(format);
  const good = serialize(format, items);
  const raw = (text: string) => Buffer.from(text, "utf8");
  const swap = (i: number, value: unknown) => serialize(format, items.map((r, j) => (j === i ? value : r)));
  return [
    { kind: "truncated", content: raw(good.slice(0, Math.floor(good.length * 0.6))), acceptable: false },
    { kind: "empty", content: raw(""), acceptable: false },
    { kind: "whitespace", content: raw("  \n\n\t "), acceptable: false },
    { kind: "wrong-top-level", content: raw(format === "chat" ? "[1, 2, 3]\n" : JSON.stringify({ data: items })), acceptable: false },
    { kind: "wrong-types", content: raw(swap(1, withText(format, items[1], { nested: [1, 2] }))), acceptable: true },
    { kind: "record-not-object", content: raw(format === "chat" ? good + "42\n" : JSON.stringify([...items, 42, "x", null])), acceptable: true },
    { kind: "missing-fields", content: raw(serialize(format, items.map((r) => withoutField(format, r)))), acceptable: false },
    { kind: "deep-nesting", content: raw(format === "chat" ? good + "[".repeat(100_000) + "]".repeat(100_000) + "\n" : "[" + "[".repeat(100_000) + "]".repeat(100_000) + "]"), acceptable: false },
    { kind: "huge-int", content: raw(swap(0, withText(format, items[0], "HUGE")).replace('"HUGE"', "9".repeat(5_000))), acceptable: true },
    { kind: "lone-surrogate", content: raw(swap(0, withText(format, items[0], "SURR")).replace('"SURR"', '"a\\ud800b"')), acceptable: true },
    { kind: "bom", content: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), raw(good)]), acceptable: true },
    { kind: "utf16", content: Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(good, "utf16le")]), acceptable: true },
    { kind: "latin1", content: Buffer.from(swap(0, withText(format, items[0], "café ÿ naïve")), "latin1"), acceptable: true },
    { kind: "invalid-utf8", content: Buffer.concat([raw(good.slice(0, 40)), Buffer.from([0xc3, 0x28, 0xff, 0xfe]), raw(good.slice(40))]), acceptable: false },
    { kind: "nul-bytes", content: Buffer.concat([raw(good.slice(0, 30)), Buffer.alloc(64), raw(good.slice(30))]), acceptable: false },
    { kind: "huge-string", content: raw(swap(0, withText(format, items[0], "x".repeat(5_000_000)))), acceptable: true },
    { kind: "directory", content: "directory", acceptable: false },
    { kind: "missing-file", content: "missing", acceptable: false },
  ];
}

function write(dir: string, format: Format, m: Malformed): string {
  const file = path.join(dir, `${format}-${m.kind}.${format === "chat" ? "jsonl" : "json"}`);
  if (m.content === "directory") mkdirSync(file, { recursive: true });
  else if (m.content !== "missing") writeFileSync(file, m.content);
  return file;
}

function judge(what: string, done: { code: number | null; signal: string | null; stdout: string; stderr: string; timedOut: boolean }, file: string, acceptable: boolean): string[] {
  const output = done.stdout + done.stderr;
  const problems: string[] = [];
  if (done.timedOut) problems.push(`${what}: no exit within ${BOUND_MS} ms`);
  else if (done.code === 0 && !acceptable) problems.push(`${what}: accepted (exit 0) a file it must refuse`);
  else if (done.code !== 0 && done.code !== 2) problems.push(`${what}: exit ${done.code ?? done.signal}: ${tail(output, 3)}`);
  if (done.code === 2 && !output.includes(path.basename(file))) problems.push(`${what}: the refusal does not name the file: ${tail(output, 2)}`);
  if (STACK_TRACE.test(output)) problems.push(`${what}: traceback: ${tail(output, 4)}`);
  if (/\binternal\b/i.test(output)) problems.push(`${what}: internal error: ${tail(output, 3)}`);
  return problems;
}

export async function runData(options: { jobs: number; runSample: number }): Promise<Tally> {
  const tally = new Tally();
  const dir = scratch("data");
  const cases = FORMATS.flatMap((format) => malformations(format).map((m) => ({ format, m, file: write(dir, format, m) })));
  await pool(cases, options.jobs, async ({ format, m, file }) => {
    const args = ["-m", "peftshim", "data-summary", "--format", format, "--path", file];
    const done = await python(args, { timeoutMs: BOUND_MS });
    const problems = judge("data-summary", done, file, m.acceptable);
    if (done.code === 2 && !/^peftshim: error: /m.test(done.stderr)) problems.push(`no 'peftshim: error:' line: ${tail(done.stderr, 2)}`);
    tally.record(`data-summary ${format} ${m.kind}`, problems, `PYTHONPATH=python .venv/bin/python ${args.join(" ")}`);
  });
  // the real CLI on refused kinds, spread over the formats: refused at planning or by the shim, exit 2, a `data` error
  const refused = cases.filter((c) => !c.m.acceptable && c.m.content !== "missing");
  const sample = Array.from({ length: Math.min(options.runSample, refused.length) }, (_, i) => refused[Math.floor((i * refused.length) / Math.min(options.runSample, refused.length))]!);
  await pool(sample, Math.min(2, options.jobs), async ({ format, m, file }) => {
    const config = path.join(dir, `run-${format}-${m.kind}.yaml`);
    writeFileSync(config, [
      `name: soak-data-${format}`,
      "model: { base: builtin:tiny-llama, dtype: float32 }",
      "method: { kind: lora, r: 4, alpha: 8, target_modules: [q_proj, v_proj] }",
      `data: { format: ${format}, path: ${JSON.stringify(file)}, max_length: 64 }`,
      "train: { max_steps: 2, batch_size: 2, micro_batch_size: 2, warmup_steps: 0, log_every_steps: 1 }",
      "eval: { every_steps: 2, generate: { samples: 0 } }",
      "checkpoint: { every_steps: 2 }",
      "resources: { gpus: 0 }",
      "",
    ].join("\n"));
    const args = ["--runs-dir", path.join(dir, "runs"), "run", config];
    const done = await peftctl(args, { timeoutMs: BOUND_MS * 2 });
    const problems = judge("peftctl run", done, file, false);
    if (done.code === 0) problems.push("peftctl run succeeded on a file it must refuse");
    if (done.code === 2 && !/data/i.test(done.stdout + done.stderr)) problems.push(`exit 2 without a data error: ${tail(done.stderr, 3)}`);
    tally.record(`peftctl run ${format} ${m.kind}`, problems, `npx peftctl ${args.join(" ")}`);
  });
  tally.note(`${cases.length} malformed files (${FORMATS.length} formats x ${cases.length / FORMATS.length} kinds) through data-summary, ${sample.length} through peftctl run`);
  return tally;
}
