/** peftctl human-eval export / import over generations.jsonl fixtures in a real run store layout. */
import { existsSync, mkdirSync, mkdtempSync as makeTemp, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse } from "csv-parse/sync";
import { stringify } from "csv-stringify/sync";
import { afterAll, describe, expect, it } from "vitest";
import { krippendorffAlpha } from "../../src/eval/human-eval/agreement.ts";
import type { HumanEvalResult } from "../../src/eval/human-eval/score.ts";
import { CRITERIA, type Generation, type HumanEvalKey } from "../../src/eval/human-eval/sheet.ts";
import { runCli } from "../config/helpers.ts";
import { makeRun, tempRunsDir as makeRunsDir } from "../launch/helpers.ts";

const temps: string[] = [];
afterAll(() => {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function mkdtempSync(prefix: string): string {
  const dir = makeTemp(prefix);
  temps.push(dir);
  return dir;
}
function tempRunsDir(): string {
  const dir = makeRunsDir();
  temps.push(dir);
  return dir;
}

const RUNS = [
  { experiment: "heval-alpha", runId: "lora-r8-1a2b3c" },
  { experiment: "heval-alpha", runId: "adapter-len10-4d5e6f" },
  { experiment: "heval-beta", runId: "dialogpt-full-7a8b9c" },
];
/** Sorted by `experiment/run_id`, the order the key lists systems in. */
const SYSTEMS = RUNS.map((r) => `${r.experiment}/${r.runId}`).sort();

/** The text of an example's context and responses shows its number, not its id (ids stay in the key). */
const tag = (id: string) => `#${id.slice(3)}`;

function context(id: string): Generation["context"] {
  return [
    { role: "user", text: `I feel lost since my job ended (${tag(id)}).\nI can't sleep, "honestly".` },
    { role: "assistant", text: "That sounds really hard. What happened?" },
    { role: "user", text: `My manager said, without warning, that it was over <b>${tag(id)}</b>.` },
  ];
}

function generation(id: string, response: string): Generation {
  return { id, context: context(id), reference: "I'm sorry to hear that.", reference_strategy: "Reflection of feelings", response, predicted_strategy: null };
}

function writeGenerations(dir: string, gens: Generation[]): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "generations.jsonl"), gens.map((g) => JSON.stringify(g)).join("\n") + "\n");
}

/** Three runs; run 1 has ex-06 that the others lack, run 3 lacks ex-05; heval-alpha/lora-r8 has an older eval too. */
function fixture(): { runsDir: string; out: string } {
  const runsDir = tempRunsDir();
  const ids = ["ex-01", "ex-02", "ex-03", "ex-04", "ex-05", "ex-06"];
  RUNS.forEach((r, n) => {
    const run = makeRun(runsDir, r.runId, { experiment: r.experiment });
    const mine = ids.filter((id) => !(n > 0 && id === "ex-06") && !(n === 2 && id === "ex-05"));
    const responses = mine.map((id) =>
      generation(id, n === 0 ? `<script>alert("${tag(id)}")</script> I hear you, that must hurt.` : n === 1 ? `Losing a job is hard, ${tag(id)}.\nHave you talked to a friend?` : `ok, "${tag(id)}", sure`),
    );
    if (n === 0) {
      const old = path.join(run.dir, "eval", "test-0ld0ld");
      writeGenerations(old, mine.map((id) => generation(id, "OLD RESPONSE")));
      const past = new Date(Date.now() - 3600_000);
      utimesSync(path.join(old, "generations.jsonl"), past, past);
      writeGenerations(path.join(run.dir, "eval", "valid-aaaaaa"), mine.map((id) => generation(id, "VALID RESPONSE")));
    }
    writeGenerations(path.join(run.dir, "eval", `test-${"abcdef".slice(n, n + 3)}${n}99`), responses);
  });
  const out = path.join(mkdtempSync(path.join(os.tmpdir(), "peftctl-heval-")), "sheet");
  return { runsDir, out };
}

const cli = (runsDir: string, ...args: string[]) => runCli(["--runs-dir", runsDir, ...args]);

function readKey(out: string): HumanEvalKey {
  return JSON.parse(readFileSync(path.join(out, "key.json"), "utf8")) as HumanEvalKey;
}

describe("Krippendorff's alpha", () => {
  it("gives the values of Krippendorff's worked example (4 observers, 12 units, missing data)", () => {
    // Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: nominal .743, ordinal .815, interval .849
    const N = null;
    const data = [
      [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
      [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
      [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
      [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
    ];
    const units = data[0]!.map((_, u) => data.map((row) => row[u]!).filter((v): v is number => v !== null));
    expect(krippendorffAlpha(units, "nominal").alpha).toBeCloseTo(0.743, 3);
    expect(krippendorffAlpha(units, "ordinal").alpha).toBeCloseTo(0.815, 3);
    expect(krippendorffAlpha(units, "interval").alpha).toBeCloseTo(0.849, 3);
    expect(krippendorffAlpha(units, "ordinal")).toMatchObject({ units: 11, pairable: 40 });
  });

  it("is 1 for perfect agreement and undefined (null) without variation or pairable values", () => {
    expect(krippendorffAlpha([[1, 1], [3, 3], [5, 5]]).alpha).toBe(1);
    expect(krippendorffAlpha([[3, 3], [3, 3]]).alpha).toBeNull();
    expect(krippendorffAlpha([[3], [4]]).alpha).toBeNull();
  });
});

describe("human-eval export", () => {
  it("writes a blind CSV and HTML sheet of the shared contexts, and a key", async () => {
    const { runsDir, out } = fixture();
    const result = await cli(runsDir, "human-eval", "export", "heval-alpha", "heval-beta", "--samples", "4", "--seed", "7", "-o", out);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("heval-alpha/lora-r8-1a2b3c: heval-alpha/lora-r8-1a2b3c/eval/test-abc099 (the newest of 2 'test' evaluations)");
    expect(result.stdout).toContain("wrote 4 item(s) x 3 response(s)");

    const csv = readFileSync(path.join(out, "sheet.csv"), "utf8");
    const html = readFileSync(path.join(out, "sheet.html"), "utf8");
    const key = readKey(out);
    // blind: no run id, experiment, system label, eval dir or example id anywhere the raters look
    for (const secret of [...RUNS.flatMap((r) => [r.experiment, r.runId]), "lora", "adapter", "dialogpt", "heval", "test-", "ex-0", "1a2b3c"]) {
      expect(csv, secret).not.toContain(secret);
      expect(html, secret).not.toContain(secret);
    }
    // every item: the intersection (ex-06, ex-05 are not in every run), each system once
    expect(key.systems.map((s) => s.system)).toEqual(SYSTEMS);
    expect(key.systems[SYSTEMS.indexOf("heval-alpha/lora-r8-1a2b3c")]!.eval_dir).toBe(path.join("heval-alpha", "lora-r8-1a2b3c", "eval", "test-abc099"));
    expect(key.items).toHaveLength(4);
    expect(new Set(key.items.map((i) => i.example_id))).toEqual(new Set(["ex-01", "ex-02", "ex-03", "ex-04"]));
    for (const item of key.items) {
      expect(Object.keys(item.responses)).toEqual(["A", "B", "C"]);
      expect(Object.values(item.responses).sort()).toEqual(SYSTEMS);
    }
    expect(key.scale).toEqual({ min: 1, max: 5 });

    const rows = parse(csv, { bom: true, columns: true }) as Array<Record<string, string>>;
    expect(Object.keys(rows[0]!)).toEqual(["rater", "item", "response", "context", "text", ...CRITERIA.map((c) => `${c} (1-5)`)]);
    expect(rows).toHaveLength(12);
    for (const item of key.items) {
      const mine = rows.filter((r) => r.item === item.item);
      expect(mine.map((r) => r.response)).toEqual(["A", "B", "C"]);
      for (const row of mine) {
        const system = item.responses[row.response!]!;
        const n = RUNS.findIndex((r) => `${r.experiment}/${r.runId}` === system);
        expect(row.text).toContain(n === 0 ? "<script>" : n === 1 ? "Losing a job" : "ok,");
        expect(row.text).not.toContain("OLD RESPONSE");
        expect(row.context).toBe(`Seeker: ${context(item.example_id)[0]!.text}\nSupporter: That sounds really hard. What happened?\nSeeker: ${context(item.example_id)[2]!.text}`);
      }
    }

    // HTML: escaped, self-contained, says the scale
    expect(html).not.toMatch(/<script>alert/);
    expect(html).toContain("&lt;script&gt;alert(&quot;");
    expect(html).toContain("&lt;b&gt;");
    expect(html.match(/<script>/g)).toHaveLength(1); // the form's own CSV export, inline
    expect(html).not.toMatch(/<[^>]*\s(src|href)=|<link|<iframe|<img|https?:\/\/|@import|url\(/);
    expect(html).toContain("Content-Security-Policy");
    expect(html).toContain("scale 1-5");
    for (const c of CRITERIA) expect(html).toContain(`<b>${c}</b>`);
    expect(html.match(/class="response"/g)).toHaveLength(12);
    expect(html.match(/type="radio"/g)).toHaveLength(12 * 5 * 5);
  });

  it("gives the same sheet for the same seed and another order for another seed", async () => {
    const { runsDir, out } = fixture();
    const args = ["human-eval", "export", "heval-alpha", "heval-beta/dialogpt-full-7a8b9c", "--samples", "4", "-o"];
    expect((await cli(runsDir, ...args, out, "--seed", "1")).code).toBe(0);
    expect((await cli(runsDir, ...args, `${out}2`, "--seed", "1")).code).toBe(0);
    expect((await cli(runsDir, ...args, `${out}3`, "--seed", "2")).code).toBe(0);
    const [first, same, other] = [out, `${out}2`, `${out}3`].map((dir) => ({
      csv: readFileSync(path.join(dir, "sheet.csv"), "utf8"),
      html: readFileSync(path.join(dir, "sheet.html"), "utf8"),
      key: readKey(dir),
    }));
    expect(same!.csv).toBe(first!.csv);
    expect(same!.html).toBe(first!.html);
    expect(same!.key.items).toEqual(first!.key.items);
    expect(other!.key.items).not.toEqual(first!.key.items);
    expect(other!.csv).not.toBe(first!.csv);
    // the same contexts for every system: the four shared ids in both, whatever the order
    expect(new Set(other!.key.items.map((i) => i.example_id))).toEqual(new Set(first!.key.items.map((i) => i.example_id)));
    // a key already there is not replaced without --force
    const again = await cli(runsDir, ...args, out, "--seed", "3");
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("key.json exists");
    expect(readKey(out).seed).toBe(1);
    expect((await cli(runsDir, ...args, out, "--seed", "3", "--force")).code).toBe(0);
    expect(readKey(out).seed).toBe(3);
  });

  it("is exit 2 for a run without generations, too many samples, or a bad generations line", async () => {
    const { runsDir, out } = fixture();
    makeRun(runsDir, "never-evaluated", { experiment: "heval-beta" });
    const missing = await cli(runsDir, "human-eval", "export", "heval-beta", "--samples", "2", "--seed", "1", "-o", out);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("heval-beta/never-evaluated has no generations on split 'test'");
    expect(missing.stderr).toContain("peftctl eval heval-beta/never-evaluated");
    expect(missing.stderr).not.toMatch(/\n\s+at /);

    const tooMany = await cli(runsDir, "human-eval", "export", "heval-alpha", "--samples", "9", "--seed", "1", "-o", out);
    expect(tooMany.code).toBe(2);
    expect(tooMany.stderr).toContain("only 5 example id(s) are in the generations of every run");

    const file = path.join(runsDir, "heval-alpha", "adapter-len10-4d5e6f", "eval", "test-bcd199", "generations.jsonl");
    writeFileSync(file, `${readFileSync(file, "utf8")}{"id": "ex-09", "context": [], "respo\n{"id": 3}\n`);
    const bad = await cli(runsDir, "human-eval", "export", "heval-alpha", "--samples", "2", "--seed", "1", "-o", out);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`${file}:6:1: not JSON`);
    expect(bad.stderr).toContain(`${file}:7:1: expected {id: string`);
    expect(existsSync(out)).toBe(false);

    const split = await cli(runsDir, "human-eval", "export", "heval-alpha/lora-r8-1a2b3c", "--samples", "2", "--seed", "1", "-o", out, "--split", "valid");
    expect(split.code, split.stderr).toBe(0);
    expect(readFileSync(path.join(out, "sheet.csv"), "utf8")).toContain("VALID RESPONSE");
  });
});

/** What a rater gives a system's response to an item (item index in key order). */
type Rater = (system: string, itemIndex: number) => Partial<Record<(typeof CRITERIA)[number], number>>;

const [SA, SB, SC] = SYSTEMS as [string, string, string];

// overall: alice 5/3/3, bob 4/4/2 on every item. fluency: 4 for A and B, 2 for C, except bob's C on the first item (4).
// comforting: 3 for everyone (no variation: alpha undefined). suggestion: bob leaves it empty.
const alice: Rater = (system) => ({
  overall: system === SA ? 5 : 3,
  fluency: system === SC ? 2 : 4,
  identification: system === SA ? 5 : 2,
  comforting: 3,
  suggestion: system === SB ? 1 : 2,
});
const bob: Rater = (system, itemIndex) => ({
  overall: system === SA ? 4 : system === SB ? 4 : 2,
  fluency: system === SC && itemIndex > 0 ? 2 : 4,
  identification: system === SA ? 4 : 2,
  comforting: 3,
});

/** The exported sheet.csv with alice's ratings in it (the rater column left empty: the file name names her). */
function fillSheet(out: string, key: HumanEvalKey, rater: Rater): string {
  const [header, ...rows] = parse(readFileSync(path.join(out, "sheet.csv"), "utf8"), { bom: true }) as string[][];
  const filled = rows.map((row) => {
    const itemIndex = key.items.findIndex((i) => i.item === row[1]);
    const scores = rater(key.items[itemIndex]!.responses[row[2]!]!, itemIndex);
    return [...row.slice(0, 5), ...CRITERIA.map((c) => (scores[c] === undefined ? "" : String(scores[c])))];
  });
  return stringify([header!, ...filled]);
}

/** A compact file like the HTML form downloads: rater, item, response, criteria. */
function compactSheet(key: HumanEvalKey, name: string, rater: Rater): string {
  const rows = key.items.flatMap((item, itemIndex) =>
    Object.entries(item.responses).map(([letter, system]) => {
      const scores = rater(system, itemIndex);
      return [name, item.item, letter, ...CRITERIA.map((c) => (scores[c] === undefined ? "" : String(scores[c])))];
    }),
  );
  return stringify([["rater", "item", "response", ...CRITERIA], ...rows]);
}

describe("human-eval import", () => {
  async function exported(): Promise<{ runsDir: string; out: string; key: HumanEvalKey; ratingsDir: string }> {
    const { runsDir, out } = fixture();
    const result = await cli(runsDir, "human-eval", "export", "heval-alpha", "heval-beta", "--samples", "3", "--seed", "11", "-o", out);
    expect(result.code, result.stderr).toBe(0);
    return { runsDir, out, key: readKey(out), ratingsDir: mkdtempSync(path.join(os.tmpdir(), "peftctl-ratings-")) };
  }

  it("scores two raters: means, win/tie/loss on overall, agreement; writes human-eval.json beside the key", async () => {
    const { runsDir, out, key, ratingsDir } = await exported();
    const aliceFile = path.join(ratingsDir, "alice.csv");
    const bobFile = path.join(ratingsDir, "bob-ratings.csv");
    writeFileSync(aliceFile, fillSheet(out, key, alice));
    writeFileSync(bobFile, compactSheet(key, "bob", bob));
    const keyFile = path.join(out, "key.json");

    const text = await cli(runsDir, "human-eval", "import", aliceFile, bobFile, "--key", keyFile);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain("18 rated response(s) from 2 rater(s) (alice, bob)");
    expect(text.stdout).toMatch(/heval-alpha\/adapter-len10-4d5e6f\s+4\.00 ± 0\.00\s+4\.50 ± 0\.55\s+3\.00 ± 0\.00\s+2\.00 ± 0\.00\s+4\.50 ± 0\.55\s+6\n/);
    expect(text.stdout).toMatch(/heval-alpha\/adapter-len10-4d5e6f\s+heval-alpha\/lora-r8-1a2b3c\s+50\.0%\s+50\.0%\s+0\.0%\s+6\n/);
    expect(text.stdout).toMatch(/fluency\s+0\.738\s+9/);
    expect(text.stdout).toContain(`wrote ${path.join(out, "human-eval.json")}`);

    const result = JSON.parse(readFileSync(path.join(out, "human-eval.json"), "utf8")) as HumanEvalResult;
    const json = await cli(runsDir, "human-eval", "import", aliceFile, bobFile, "--key", keyFile, "--json");
    expect(JSON.parse(json.stdout)).toEqual(result);
    expect(result.raters).toEqual(["alice", "bob"]);
    expect(result.ratings).toBe(18);
    expect(result.missing).toBe(9); // bob's suggestion
    const scores = Object.fromEntries(result.systems.map((s) => [s.system, s.scores]));
    // overall of SA: 5,5,5 (alice) and 4,4,4 (bob): mean 4.5, sample std sqrt(6 * 0.25 / 5)
    expect(scores[SA]!.overall.mean).toBeCloseTo(4.5, 10);
    expect(scores[SA]!.overall.std).toBeCloseTo(Math.sqrt(0.3), 10);
    expect(scores[SA]!.overall.n).toBe(6);
    expect(scores[SB]!.overall.mean).toBeCloseTo(3.5, 10);
    expect(scores[SC]!.overall.mean).toBeCloseTo(2.5, 10);
    // fluency of SC: alice 2,2,2; bob 4,2,2
    expect(scores[SC]!.fluency.mean).toBeCloseTo(14 / 6, 10);
    expect(scores[SB]!.suggestion).toEqual({ mean: 1, std: 0, n: 3 });
    expect(scores[SA]!.comforting).toEqual({ mean: 3, std: 0, n: 6 });

    // win/tie/loss on overall, one comparison per rater and item (3 items x 2 raters)
    const pair = (a: string, b: string) => result.pairwise.find((p) => p.a === a && p.b === b);
    // SYSTEMS sorted: SA = heval-alpha/adapter..., SB = heval-alpha/lora..., SC = heval-beta/dialogpt...
    // SA vs SB: alice 5>3 on all 3 items (wins), bob 4=4 (ties)
    expect(pair(SA, SB)).toEqual({ a: SA, b: SB, win: 0.5, tie: 0.5, loss: 0, n: 6 });
    expect(pair(SA, SC)).toEqual({ a: SA, b: SC, win: 1, tie: 0, loss: 0, n: 6 });
    // SB vs SC: alice 3=3 (ties), bob 4>2 (wins)
    expect(pair(SB, SC)).toEqual({ a: SB, b: SC, win: 0.5, tie: 0.5, loss: 0, n: 6 });

    // fluency by hand: 9 units (3 items x 3 responses), each rated by both: 6 x (4,4), 2 x (2,2), 1 x (2,4).
    // Coincidences o44 = 12, o22 = 4, o24 = o42 = 1; n4 = 13, n2 = 5, n = 18. With two values the ordinal
    // distance is one constant, so alpha = 1 - (n - 1) (o24 + o42) / (2 n2 n4) = 1 - 17 * 2 / 130 = 48/65.
    expect(result.agreement.fluency.alpha).toBeCloseTo(48 / 65, 12);
    expect(result.agreement.fluency).toMatchObject({ metric: "ordinal", units: 9, pairable: 18 });
    // identification: both raters rank SA above the rest every time; alice 5 vs 2, bob 4 vs 2 ->
    // values 2 (x12), 4 (x3), 5 (x3); units 6 x (2,2), 3 x (5,4). Ordinal d(4,5) = (3 + 3 - 3)^2 = 9,
    // d(2,4) = (12 + 3 - 7.5)^2 = 56.25, d(2,5) = (12 + 3 + 3 - 7.5)^2 = 110.25.
    // observed: o45 = o54 = 3 -> 6 * 9 = 54; expected: 2 (12*3*56.25 + 12*3*110.25 + 3*3*9) = 12150;
    // alpha = 1 - 17 * 54 / 12150 = 0.92444...
    expect(result.agreement.identification.alpha).toBeCloseTo(1 - (17 * 54) / 12150, 12);
    expect(result.agreement.comforting.alpha).toBeNull();
    expect(result.agreement.suggestion).toMatchObject({ alpha: null, units: 0 });
  });

  it("is exit 2 naming file, line and column for bad ratings, and writes nothing", async () => {
    const { runsDir, out, key, ratingsDir } = await exported();
    const keyFile = path.join(out, "key.json");
    const good = path.join(ratingsDir, "bob.csv");
    writeFileSync(good, compactSheet(key, "bob", bob));
    const lines = readFileSync(good, "utf8").split("\n");
    const write = (name: string, text: string) => {
      const file = path.join(ratingsDir, name);
      writeFileSync(file, text);
      return file;
    };
    const expectBad = async (file: string, ...messages: string[]) => {
      const result = await cli(runsDir, "human-eval", "import", good, file, "--key", keyFile);
      expect(result.code, result.stdout).toBe(2);
      for (const message of messages) expect(result.stderr).toContain(message);
      expect(result.stderr).toContain("nothing written");
      expect(result.stderr).not.toMatch(/\n\s+at /);
      expect(existsSync(path.join(out, "human-eval.json"))).toBe(false);
    };
    // columns: rater, item, response, fluency (4), identification, comforting, suggestion, overall (8)
    const outside = lines.map((line, i) => (i === 2 ? line.replace(/,[^,]*$/, ",7") : line)).join("\n").replace(/^bob/gm, "carol");
    await expectBad(write("outside.csv", outside), `${path.join(ratingsDir, "outside.csv")}:3:8: overall '7' is not a whole number from 1 to 5`);
    const fraction = lines.map((line, i) => (i === 4 ? line.replace(/^(([^,]*,){3})[^,]*/, "$13.5") : line)).join("\n").replace(/^bob/gm, "dan");
    await expectBad(write("fraction.csv", fraction), `fraction.csv:5:4: fluency '3.5' is not a whole number from 1 to 5`);
    const unknown = lines.map((line, i) => (i === 3 ? line.replace(/item-\d+/, "item-999") : line)).join("\n").replace(/^bob/gm, "erin");
    await expectBad(write("unknown.csv", unknown), `unknown.csv:4:2: unknown item 'item-999' (not in the key)`);
    const letter = lines.map((line, i) => (i === 1 ? line.replace(/,[ABC],/, ",Q,") : line)).join("\n").replace(/^bob/gm, "finn");
    await expectBad(write("letter.csv", letter), `letter.csv:2:3: item ${key.items[0]!.item} has no response 'Q'`);
    const noColumn = lines.map((line) => line.replace(/,[^,]*$/, "")).join("\n").replace(/^bob/gm, "gail");
    await expectBad(write("nocolumn.csv", noColumn), "nocolumn.csv:1:8: missing column(s): overall");
    await expectBad(write("broken.csv", `${lines.slice(0, 3).join("\n")}\nheidi,"item-001,A,3,3,3,3,3\n`), "broken.csv:4:", "not a CSV");
    await expectBad(write("twice.csv", `${lines.join("\n")}${lines[1]}\n`), `twice.csv:${lines.length}:2: rater 'bob' rated`);
    // a multi-line record (the exported sheet's context and text cells) counts from its first line
    const sheetRows = parse(readFileSync(path.join(out, "sheet.csv"), "utf8"), { bom: true }) as string[][];
    sheetRows[2]![9] = "0";
    const sheetText = stringify(sheetRows);
    const startLine = 1 + sheetRows.slice(0, 2).reduce((sum, row) => sum + 1 + row.join("").split("\n").length - 1, 0);
    expect(startLine).toBeGreaterThan(3);
    await expectBad(write("ivan.csv", sheetText), `ivan.csv:${startLine}:10: overall '0' is not a whole number from 1 to 5`);
    // the key itself
    const missingKey = await cli(runsDir, "human-eval", "import", good, "--key", path.join(ratingsDir, "nope.json"));
    expect(missingKey.code).toBe(2);
    expect(missingKey.stderr).toContain("nope.json: no such file");
    const notKey = await cli(runsDir, "human-eval", "import", good, "--key", write("k.json", "{}"));
    expect(notKey.code).toBe(2);
    expect(notKey.stderr).toContain("k.json:1:1: not a human-eval key");
    // and the good file alone still imports
    expect((await cli(runsDir, "human-eval", "import", good, "--key", keyFile)).code).toBe(0);
    expect(existsSync(path.join(out, "human-eval.json"))).toBe(true);
  });
});

describe("the HTML form", () => {
  it("downloads a CSV of the checked ratings that import reads", async () => {
    const { runsDir, out } = fixture();
    expect((await cli(runsDir, "human-eval", "export", "heval-alpha", "heval-beta", "--samples", "2", "--seed", "5", "-o", out)).code).toBe(0);
    const html = readFileSync(path.join(out, "sheet.html"), "utf8");
    const key = readKey(out);
    const script = /<script>([\s\S]*)<\/script>/.exec(html)![1]!;
    const criteria = JSON.parse(/data-criteria="([^"]*)"/.exec(html)![1]!.replace(/&quot;/g, '"')) as string[];
    expect(criteria).toEqual([...CRITERIA]);
    // a stub DOM: each response block from the page's data attributes; the rater checks 4, and leaves overall of B empty
    const blocks = [...html.matchAll(/data-item="([^"]+)" data-response="([^"]+)"/g)].map(([, item, letter]) => ({
      getAttribute: (name: string) => (name === "data-item" ? item : letter),
      querySelector: (selector: string) => (letter === "B" && selector.includes('"overall"') ? null : { value: "4" }),
    }));
    let href = "";
    let download = "";
    const anchor = { set href(v: string) { href = v; }, set download(v: string) { download = v; }, click() {}, remove() {} };
    const document = {
      body: { getAttribute: () => JSON.stringify(criteria), appendChild() {} },
      getElementById: () => ({ value: " Rater One " }),
      querySelectorAll: () => blocks,
      createElement: () => anchor,
    };
    new Function("document", `${script}\npeftctlCsv();`)(document);
    expect(download).toBe("ratings-Rater_One.csv");
    const csv = decodeURIComponent(href.replace(/^data:text\/csv;charset=utf-8,/, ""));
    expect(csv.split("\n")[0]).toBe(["rater", "item", "response", ...CRITERIA].join(","));
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), "peftctl-form-")), download);
    writeFileSync(file, csv);
    const result = await cli(runsDir, "--json", "human-eval", "import", file, "--key", path.join(out, "key.json"));
    expect(result.code, result.stderr).toBe(0);
    const parsed = JSON.parse(result.stdout) as HumanEvalResult;
    expect(parsed.raters).toEqual(["Rater One"]);
    expect(parsed.ratings).toBe(key.items.length * 3);
    expect(parsed.missing).toBe(key.items.length);
  });
});
