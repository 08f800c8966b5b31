#!/usr/bin/env node
// Two ways to run, told apart by whether the sources are here:
// - a checkout (src/ exists): the TypeScript sources through tsx, no build step between an edit and a
//   working CLI. A dist/ left by an earlier `npm run build` is never run here, so it cannot be stale.
// - the installed package (`npm pack` ships dist/ and no src/, package.json "files"): the compiled
//   JavaScript, with no tsx (a devDependency) and none of its 0.4 s of registration.
import { existsSync } from "node:fs";

const sources = new URL("../src/cli/main.ts", import.meta.url);
let main;
if (existsSync(sources)) {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import(sources.href));
} else {
  ({ main } = await import("../dist/cli/main.js"));
}
process.exitCode = await main(process.argv.slice(2));
