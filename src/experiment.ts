import { existsSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { formatDiagnostic, loadExperiment, type Experiment, type LoadedExperiment } from "./config/index.ts";
import { planExperiment, type Plan } from "./plan/index.ts";
import type { DataSummary } from "./plan/tokens.ts";
import { projectRoot, shimEnv, shimPython } from "./shim.ts";

export type ConfigPlan = { loaded: LoadedExperiment; plan: Plan; warnings: string[] };

/**
 * Load a config and plan it: the I/O around the pure planner (the config files, and the shim's count
 * of the data file for the token estimate). Loader and plan warnings come back for the caller to show.
 */
export async function planConfig(file: string, options: { set?: string[]; runsDir: string }): Promise<ConfigPlan> {
  const loaded = await loadExperiment(file, { set: options.set });
  const warnings = loaded.warnings.map(formatDiagnostic);
  const { data } = loaded.experiment;
  let dataSummary: DataSummary | null = null;
  if (existsSync(data.path)) {
    const summary = await readDataSummary(data);
    if ("problem" in summary) warnings.push(`${summary.problem}: train tokens shown as "?"`);
    else dataSummary = summary;
  } else if (!loaded.warnings.some((warning) => warning.path === "data.path")) {
    // A missing data file is reported by the loader (a warning), `validate` and the shim; say it once.
    warnings.push(`data file ${data.path} not readable: train tokens shown as "?"`);
  }
  const plan = planExperiment(loaded.experiment, { runsDir: options.runsDir, dataSummary, pathRoot: path.dirname(loaded.configPath) });
  return { loaded, plan, warnings: [...warnings, ...plan.warnings] };
}

/**
 * The examples of a data file and their mean length, counted by the shim's own readers
 * (`python -m peftshim data-summary`): one implementation of the formats and of what an example is.
 */
async function readDataSummary(data: Experiment["data"]): Promise<DataSummary | { problem: string }> {
  const result = await execa(shimPython(), ["-m", "peftshim", "data-summary", "--format", data.format, "--path", data.path, "--strategy", data.strategy], {
    cwd: projectRoot,
    env: shimEnv(),
    reject: false,
  });
  if (result.exitCode !== 0) {
    const said = result.stderr.trim().split("\n").at(-1)?.replace(/^peftshim: error: /, "");
    return { problem: result.exitCode === undefined ? `cannot run the shim's Python (${shimPython()}) to read ${data.path}` : `${said || `${data.path} does not read as ${data.format} data`}` };
  }
  const { examples, mean_chars: meanChars } = JSON.parse(result.stdout) as { examples: number; mean_chars: number };
  return { examples, meanChars };
}
