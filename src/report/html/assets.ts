/** The scripts the report page inlines, read when a page is made: Chart.js's minified UMD build from node_modules and client.js beside this file. */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { PageAssets } from "./render-page.ts";

/** chart.js's package exports name no UMD file, so it is found beside the package's main file (dist/chart.cjs). */
function chartJsUmdFile(): string {
  const main = createRequire(import.meta.url).resolve("chart.js");
  return path.join(path.dirname(main), "chart.umd.min.js");
}

export function readPageAssets(): PageAssets {
  return {
    chartJs: readFileSync(chartJsUmdFile(), "utf8"),
    client: readFileSync(fileURLToPath(new URL("./client.js", import.meta.url)), "utf8"),
  };
}
