/** `peftctl validate`, in process through main(). */
import path from "node:path";
import { describe, expect, test } from "vitest";
import { fixture, MINIMAL, runCli } from "./helpers.ts";

describe("peftctl validate", () => {
  test("prints ok per valid file and exits 0; warnings go to stderr", async () => {
    const dir = await fixture({ "a.yaml": MINIMAL, "b.yaml": MINIMAL.replace("path: data.json", "path: missing.json") });
    const result = await runCli(["validate", path.join(dir, "a.yaml"), path.join(dir, "b.yaml")]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`ok ${path.join(dir, "a.yaml")}\nok ${path.join(dir, "b.yaml")}\n`);
    expect(result.stderr).toBe(`${dir}/b.yaml:8:9: warning: data.path: data file not found: ${dir}/missing.json (validation goes on; a run needs it)\n`);
  });

  test("prints every error of every invalid file and exits 2", async () => {
    const dir = await fixture({ "good.yaml": MINIMAL, "bad.yaml": MINIMAL.replace("kind: lora", "kind: lora\n  r: x\n  alfa: 2"), "worse.yaml": "name: [\n" });
    const files = ["good.yaml", "bad.yaml", "worse.yaml"].map((name) => path.join(dir, name));
    const result = await runCli(["validate", ...files]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe(`ok ${files[0]}\n`);
    expect(result.stderr.split("\n")).toEqual([
      `peftctl: 3 errors in ${files[1]}, ${files[2]}`,
      `${dir}/bad.yaml:6:6: method.r: expected a number, got the text "x"`,
      `${dir}/bad.yaml:7:3: method.alfa: unknown key \`alfa\` (did you mean \`alpha\`?)`,
      expect.stringMatching(new RegExp(`^${dir}/worse\\.yaml:2:1: YAML syntax error: `)),
      "",
    ]);
  });

  test("--set applies to validate", async () => {
    const dir = await fixture({ "a.yaml": MINIMAL });
    const bad = await runCli(["validate", path.join(dir, "a.yaml"), "--set", "method.r=0"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("<--set>:1:10: method.r: must be > 0, got number 0\n");
    const good = await runCli(["validate", "--set", "method.r=4", "--set", "train.batch_size=16", path.join(dir, "a.yaml")]);
    expect(good.code).toBe(0);
  });

  test("a missing config file is a clear error, exit 2", async () => {
    const result = await runCli(["validate", "/nonexistent/peftctl/x.yaml"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("/nonexistent/peftctl/x.yaml:1:1: config file not found: /nonexistent/peftctl/x.yaml");
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  test("--json reports every file's diagnostics on stdout", async () => {
    const dir = await fixture({ "a.yaml": MINIMAL.replace("r: 8", ""), "b.yaml": MINIMAL.replace("kind: lora", "kind: lora\n  r: -1") });
    const result = await runCli(["--json", "validate", path.join(dir, "a.yaml"), path.join(dir, "b.yaml")]);
    expect(result.code).toBe(2);
    const report = JSON.parse(result.stdout) as { file: string; ok: boolean; diagnostics: { line: number; path: string }[] }[];
    expect(report.map((entry) => entry.ok)).toEqual([true, false]);
    expect(report[1]!.diagnostics).toMatchObject([{ severity: "error", line: 6, col: 6, path: "method.r" }]);
  });
});
