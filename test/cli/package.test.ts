/**
 * The package a user installs (`npm pack`, `npm install` of the tarball without devDependencies): its
 * `peftctl` runs the compiled dist/ without tsx, each command importing only the modules it uses, while
 * a checkout's bin/peftctl.js runs the sources through tsx even beside a dist/.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commands } from "../../src/cli/commands/index.ts";
import { installPackage, type InstalledPackage } from "./installed-package.ts";

const root = path.join(import.meta.dirname, "../..");
const recorder = path.join(import.meta.dirname, "record-modules.mjs");
const { version } = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { version: string };

let installed: InstalledPackage;
let scratch: string;

beforeAll(() => {
  installed = installPackage();
  scratch = mkdtempSync(path.join(tmpdir(), "peftctl-package-run-"));
}, 600_000);
afterAll(() => {
  installed?.remove();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

let runs = 0;

/** Runs a peftctl executable with every module it loads recorded; `packages` are the npm packages among them. */
function peftctl(bin: string, args: string[]) {
  const log = path.join(scratch, `modules-${runs++}.log`);
  const result = spawnSync(bin, args, {
    cwd: root,
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, NODE_OPTIONS: `--import=${recorder}`, PEFTCTL_MODULE_LOG: log, PEFTCTL_PYTHON: path.join(root, ".venv/bin/python") },
  });
  const modules = existsSync(log) ? readFileSync(log, "utf8").split("\n").filter(Boolean) : [];
  const packages = new Set(modules.flatMap((file) => [...file.matchAll(/node_modules\/((?:@[^/]+\/)?[^/]+)/g)].map((match) => match[1]!)));
  const commandModules = new Set(modules.flatMap((file) => [...file.matchAll(/\/cli\/commands\/([^/]+)\.[jt]s$/g)].map((match) => match[1]!)));
  commandModules.delete("index");
  return { ...result, modules, packages, commandModules };
}

const installedBin = () => installed.bin;

describe("the installed package", () => {
  it("ships dist/ and the shim, no sources, and does not depend on tsx", () => {
    const listing = execFileSync("tar", ["-tzf", installed.tarball], { encoding: "utf8" }).split("\n");
    expect(listing).toContain("package/dist/cli/main.js");
    expect(listing).toContain("package/dist/report/html/client.js");
    expect(listing).toContain("package/dist/launch/ssh/remote.sh");
    expect(listing).toContain("package/python/peftshim/__main__.py");
    expect(listing).toContain("package/python/pyproject.toml");
    expect(listing).toContain("package/schema/job.schema.json");
    expect(listing.filter((entry) => entry.startsWith("package/src/") || entry.endsWith(".pyc") || entry.includes("/test"))).toEqual([]);
    expect(existsSync(path.join(installed.prefix, "node_modules", "tsx"))).toBe(false);
  });

  it("--version loads commander and its own few modules: no command, tsx, zod, pino, execa or yaml", () => {
    const result = peftctl(installedBin(), ["--version"]);
    expect(result.status).toBe(0);
    expect(result.stdout.trim()).toBe(version);
    expect([...result.packages].sort()).toEqual(["commander", "peftctl"]);
    expect(result.commandModules.size).toBe(0);
  });

  it("--help lists every command without importing one", () => {
    const result = peftctl(installedBin(), ["--help"]);
    expect(result.status).toBe(0);
    for (const { name } of commands) expect(result.stdout).toMatch(new RegExp(`^  ${name} `, "m"));
    expect(result.commandModules.size).toBe(0);
    expect(result.packages.has("tsx")).toBe(false);
  });

  it("status over an empty runs dir loads the status command alone, none of pino, the Hub client, Chart.js, puppeteer, execa, yaml", () => {
    const result = peftctl(installedBin(), ["--runs-dir", path.join(scratch, "runs"), "status"]);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(`no runs in ${path.join(scratch, "runs")}\n`);
    expect([...result.commandModules]).toEqual(["status"]);
    for (const name of ["tsx", "pino", "@huggingface/hub", "chart.js", "puppeteer-core", "execa", "yaml", "csv-parse"]) expect(result.packages.has(name), name).toBe(false);
  });

  it("validate and plan run from dist/ with the installed dependencies", () => {
    const validate = peftctl(installedBin(), ["validate", "configs/smoke.yaml"]);
    expect(validate.status, validate.stderr).toBe(0);
    expect(validate.stdout).toBe("ok configs/smoke.yaml\n");
    expect([...validate.commandModules]).toEqual(["validate"]);
    for (const name of ["tsx", "@huggingface/hub", "chart.js", "puppeteer-core"]) expect(validate.packages.has(name), name).toBe(false);

    const plan = peftctl(installedBin(), ["--runs-dir", path.join(scratch, "runs"), "plan", "configs/smoke.yaml"]);
    expect(plan.status, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/^smoke-\S+-[0-9a-f]{6}\b/m);
    expect([...plan.commandModules]).toEqual(["plan"]);
    const inPackage = plan.modules.filter((file) => file.includes("/node_modules/peftctl/"));
    expect(inPackage.length).toBeGreaterThan(0);
    const outsideDist = inPackage.filter((file) => !/\/node_modules\/peftctl\/(dist\/|bin\/peftctl\.js$|package\.json$)/.test(file));
    expect(outsideDist).toEqual([]);
    expect(plan.packages.has("tsx")).toBe(false);
  });

  it("finds the files it reads beside its own modules: the report's scripts, the SSH agent, the shim's code", () => {
    const dist = path.join(installed.prefix, "node_modules", "peftctl", "dist");
    const script = `
      const { readPageAssets } = await import(${JSON.stringify(path.join(dist, "report/html/assets.js"))});
      const { agentArgv, shimCodeFiles } = await import(${JSON.stringify(path.join(dist, "launch/ssh/layout.js"))});
      const { projectRoot } = await import(${JSON.stringify(path.join(dist, "shim.js"))});
      const assets = readPageAssets();
      console.log(JSON.stringify({ chart: assets.chartJs.includes("Chart"), client: assets.client.length, agent: agentArgv("status")[2].length, files: shimCodeFiles(), projectRoot }));`;
    const found = JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script], { cwd: scratch, encoding: "utf8" })) as Record<string, unknown>;
    expect(found.chart).toBe(true);
    expect(found.client).toBe(readFileSync(path.join(root, "src/report/html/client.js"), "utf8").length);
    expect(found.agent).toBe(readFileSync(path.join(root, "src/launch/ssh/remote.sh"), "utf8").length);
    expect(found.files).toContain("python/peftshim/__main__.py");
    expect(found.files).toContain("schema/job.schema.json");
    expect(found.projectRoot).toBe(path.join(installed.prefix, "node_modules", "peftctl"));
  });

  it("an unknown command is a usage error that suggests the nearest", () => {
    const result = peftctl(installedBin(), ["stauts"]);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("(Did you mean status?)");
  });
});

describe("a checkout's bin/peftctl.js", () => {
  it("runs the sources through tsx even where a dist/ exists", () => {
    expect(existsSync(path.join(root, "dist", "cli", "main.js"))).toBe(true); // left by npm pack's build
    const result = peftctl(path.join(root, "bin", "peftctl.js"), ["--version"]);
    expect(result.status).toBe(0);
    expect(result.stdout.trim()).toBe(version);
    expect(result.packages.has("tsx")).toBe(true);
    expect(result.modules.some((file) => file.endsWith("/src/cli/main.ts"))).toBe(true);
    expect(result.modules.filter((file) => file.includes(`${root}/dist/`))).toEqual([]);
  });
});
