/** One version (package.json's): `peftctl --version`, the PEFTCTL_VERSION every shim is started with, and the shim's own (python/peftshim/version.py). */
import { readFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { expect, it } from "vitest";
import { peftctlVersion, shimEnv, shimPython } from "../../src/shim.ts";

const { version } = JSON.parse(readFileSync(path.join(import.meta.dirname, "../../package.json"), "utf8")) as { version: string };

it("the controller's version is package.json's, and every shim is told it", () => {
  expect(peftctlVersion).toBe(version);
  expect(shimEnv({}).PEFTCTL_VERSION).toBe(version);
});

it("the shim the controller starts has package.json's version and accepts the controller", async () => {
  const script = "import peftshim.version as v; print(v.__version__); print(v.controller_version_problem())";
  const result = await execa(shimPython(), ["-c", script], { env: shimEnv() });
  expect(result.stdout.split("\n")).toEqual([version, "None"]);
});
