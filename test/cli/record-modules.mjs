// Preloaded with `node --import` by test/cli/package.test.ts: appends every module the process loads
// to $PEFTCTL_MODULE_LOG, one URL or path a line. ESM imports are seen by a resolve hook (run in the
// loader thread, so it writes the file itself); CommonJS modules (pino, commander) by the require
// cache at exit, since Node 20's ESM hooks do not see require().
import { appendFileSync } from "node:fs";
import { createRequire, register } from "node:module";

const log = process.env.PEFTCTL_MODULE_LOG;
if (log) {
  register("./record-modules-hooks.mjs", import.meta.url, { data: { log } });
  process.on("exit", () => {
    const cache = createRequire(import.meta.url).cache;
    appendFileSync(log, Object.keys(cache).map((file) => `${file}\n`).join(""));
  });
}
