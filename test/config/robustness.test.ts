/**
 * Robustness: 600 configs mutated from the shipped ones by a seeded generator (deleted keys, wrong
 * types, misspelled keys, broken YAML, huge numbers, empty files, binary junk). Every one must end
 * in exit 0, or exit 2 with positioned messages; nothing may throw or print a stack trace.
 */
import { spawnSync } from "node:child_process";
import { cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { isMap, isScalar, isSeq, parseDocument, type Node } from "yaml";
import { describe, expect, onTestFinished, test } from "vitest";
import { seededUniform } from "../../src/config/sweep.ts";
import { runCli } from "./helpers.ts";

const root = path.resolve(import.meta.dirname, "../..");
const SEED = 20261125;
const COUNT = 600;


type Rng = () => number;
const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;

function configFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? configFiles(path.join(dir, entry.name)) : entry.name.endsWith(".yaml") ? [path.join(dir, entry.name)] : [],
  );
}

/** Every node of the document with its parent collection. */
function nodes(doc: ReturnType<typeof parseDocument>): { node: Node; parent?: Node; key?: Node }[] {
  const out: { node: Node; parent?: Node; key?: Node }[] = [];
  const walk = (node: Node, parent?: Node, key?: Node) => {
    out.push({ node, parent, key });
    if (isMap(node)) for (const pair of node.items) walk(pair.value as Node, node, pair.key as Node);
    if (isSeq(node)) for (const item of node.items) walk(item as Node, node);
  };
  if (doc.contents) walk(doc.contents as Node);
  return out.filter((entry) => entry.node);
}

const WRONG_VALUES: unknown[] = ["x", "", 0, -1, 2.5, true, null, [], {}, [1, "a"], { min: 1 }, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2];
const HUGE = ["1.0e+400", "-1.0e+400", "9007199254740993", "123456789012345678901234567890", ".inf", ".nan"];

const mutations: Record<string, (text: string, rng: Rng) => string | Uint8Array> = {
  deleteKey(text, rng) {
    const doc = parseDocument(text);
    const maps = nodes(doc).filter((entry) => isMap(entry.node) && entry.node.items.length > 0);
    const map = pick(rng, maps).node as ReturnType<typeof doc.createNode> & { items: unknown[] };
    map.items.splice(Math.floor(rng() * map.items.length), 1);
    return doc.toString();
  },
  wrongType(text, rng) {
    const doc = parseDocument(text);
    const scalars = nodes(doc).filter((entry) => isScalar(entry.node) && entry.parent);
    const target = pick(rng, scalars);
    const replacement = doc.createNode(pick(rng, WRONG_VALUES));
    if (isMap(target.parent)) target.parent.set(target.key, replacement);
    else if (isSeq(target.parent)) target.parent.items[target.parent.items.indexOf(target.node)] = replacement;
    return doc.toString();
  },
  misspellKey(text, rng) {
    const doc = parseDocument(text);
    const keys = nodes(doc).flatMap((entry) => (isMap(entry.node) ? entry.node.items.map((pair) => pair.key) : [])).filter(isScalar);
    const key = pick(rng, keys);
    const name = String(key.value);
    const at = Math.floor(rng() * name.length);
    key.value = pick(rng, [
      name.slice(0, at) + name.slice(at + 1),
      name.slice(0, at) + String.fromCharCode(97 + Math.floor(rng() * 26)) + name.slice(at),
      name.slice(0, at) + (name[at + 1] ?? "") + (name[at] ?? "") + name.slice(at + 2),
      name.toUpperCase(),
    ]);
    return doc.toString();
  },
  brokenYaml(text, rng) {
    const at = Math.floor(rng() * text.length);
    const junk = pick(rng, ["[", "{", "]", "}", ":", '"', "'", "\t", "&", "*a", "!!binary ", "- ", "\n  - x", "? ", "|", ">", "%YAML", "---\n", "@", "`"]);
    return pick(rng, [text.slice(0, at) + junk + text.slice(at), text.slice(0, at), text.replace(/\n {2}/, `\n${" ".repeat(1 + Math.floor(rng() * 5))}`)]);
  },
  hugeNumber(text, rng) {
    const numbers = [...text.matchAll(/(?<=: |\[|, )-?\d[\d.e+-]*/g)];
    if (numbers.length === 0) return `${text}train:\n  lr: ${pick(rng, HUGE)}\n`;
    const match = pick(rng, numbers);
    return text.slice(0, match.index) + pick(rng, HUGE) + text.slice(match.index + match[0].length);
  },
  empty(_text, rng) {
    return pick(rng, ["", "\n", "# nothing\n", "---\n", "~\n", "[]\n", "42\n", '"text"\n']);
  },
  binary(text, rng) {
    const bytes = Buffer.from(text, "utf8");
    const junk = Buffer.from(Array.from({ length: 1 + Math.floor(rng() * 16) }, () => Math.floor(rng() * 256)));
    const at = Math.floor(rng() * bytes.length);
    return pick(rng, [Buffer.concat([bytes.subarray(0, at), junk, bytes.subarray(at)]), junk, Buffer.from([0xef, 0xbb, 0xbf, ...bytes])]);
  },
};

function positioned(stderr: string): boolean {
  return stderr.split("\n").some((line) => /:\d+:\d+: /.test(line));
}

describe("robustness: mutated shipped configs", () => {
  test(`${COUNT} mutations end in exit 0 or exit 2 with positioned messages`, async () => {
    const tree = await mkdtemp(path.join(os.tmpdir(), "peftctl-robust-"));
    onTestFinished(() => rmSync(tree, { recursive: true, force: true }));
    cpSync(path.join(root, "configs"), path.join(tree, "configs"), { recursive: true });
    const originals = configFiles(path.join(tree, "configs")).map((file) => ({ file, text: readFileSync(file, "utf8") }));
    const rng = seededUniform(SEED); // seeded, so that a failing case can be reproduced by its index
    const outcomes: Record<string, number> = {};
    for (let index = 0; index < COUNT; index++) {
      const original = pick(rng, originals);
      const kind = pick(rng, Object.keys(mutations));
      let mutated: string | Uint8Array;
      try {
        mutated = mutations[kind]!(original.text, rng);
      } catch {
        mutated = original.text.slice(0, Math.floor(rng() * original.text.length)); // a mutation that could not apply: truncate
      }
      // Written next to the original, so that `extends:` and relative data paths resolve as they would.
      const file = path.join(path.dirname(original.file), `mutant-${index}.yaml`);
      writeFileSync(file, mutated);
      const set = rng() < 0.1 ? ["--set", pick(rng, ["method.r=16", "train.lr=abc", "nope.key=1", "train.batch_size=7", "sweep.n=2"])] : [];
      const { code, stdout, stderr } = await runCli(["validate", file, ...set]);
      const label = `case ${index} (${kind} of ${path.basename(original.file)}): exit ${code}\n${stderr}`;
      expect([0, 2], label).toContain(code);
      if (code === 2) expect(positioned(stderr), label).toBe(true);
      else expect(stdout, label).toBe(`ok ${file}\n`);
      expect(stderr, label).not.toMatch(/internal error|\n\s+at \S+ \(/);
      outcomes[`${kind}:${code}`] = (outcomes[`${kind}:${code}`] ?? 0) + 1;
    }
    // The generator must actually produce both outcomes for the mutations that can be harmless.
    expect(Object.keys(outcomes).filter((key) => key.endsWith(":2")).length).toBe(Object.keys(mutations).length);
    expect(Object.entries(outcomes).filter(([key]) => key.endsWith(":0")).length).toBeGreaterThan(0);
  });

  test("the real binary: exit codes and messages", () => {
    const bin = path.join(root, "bin/peftctl.js");
    const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", cwd: root, env: { ...process.env, NO_COLOR: "1" } });
    const ok = run("validate", "configs/smoke.yaml", "configs/extes/llama-7b-adapter.yaml");
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toBe("ok configs/smoke.yaml\nok configs/extes/llama-7b-adapter.yaml\n");
    const bad = run("validate", "configs/smoke.yaml", "--set", "method.alfa=3", "--set", "train.batch_size=6");
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("<--set>:1:8: method.alfa: unknown key `alfa` (did you mean `alpha`?)");
    expect(bad.stderr).toContain("<--set>:2:18: train.batch_size: batch_size 6 is not a multiple of micro_batch_size 4");
    const missing = run("validate", "configs/none.yaml");
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain("configs/none.yaml:1:1: config file not found: configs/none.yaml");
    const junk = run("validate", "package-lock.json");
    expect(junk.status).toBe(2);
    expect(positioned(junk.stderr)).toBe(true);
    expect(`${missing.stderr}${junk.stderr}${bad.stderr}`).not.toMatch(/\n\s+at /);
  });
});
