import { readFileSync } from "node:fs";
import path from "node:path";
import { formatDiagnostic, loadExperiment, type LoadedExperiment } from "./config/index.ts";
import { planExperiment, type Plan } from "./plan/index.ts";
import { summarizeData, type DataSummary } from "./plan/tokens.ts";

export type ConfigPlan = { loaded: LoadedExperiment; plan: Plan; warnings: string[] };

/**
 * Load a config and plan it: the I/O around the pure planner (the config files, and a cheap scan
 * of the data file for the token estimate). Loader and plan warnings come back for the caller to show.
 */
export async function planConfig(file: string, options: { set?: string[]; runsDir: string }): Promise<ConfigPlan> {
  const loaded = await loadExperiment(file, { set: options.set });
  const warnings = loaded.warnings.map(formatDiagnostic);
  const { data } = loaded.experiment;
  let dataSummary: DataSummary | null = null;
  try {
    dataSummary = summarizeData(data.format, readFileSync(data.path, "utf8"));
    if (dataSummary === null) warnings.push(`${data.path} does not read as ${data.format} data: train tokens shown as "?"`);
  } catch {
    // Missing data is reported by the loader (a warning), `validate` and the shim; say it once.
    if (!loaded.warnings.some((warning) => warning.path === "data.path")) {
      warnings.push(`data file ${data.path} not readable: train tokens shown as "?"`);
    }
  }
  const plan = planExperiment(loaded.experiment, { runsDir: options.runsDir, dataSummary, pathRoot: path.dirname(loaded.configPath) });
  return { loaded, plan, warnings: [...warnings, ...plan.warnings] };
}
