import path from "node:path";
import { execa } from "execa";
import { displayPath } from "./config/diagnostics.ts";
import { checkRegularFile } from "./config/files.ts";
import { formatDiagnostic, loadExperiment, type Experiment, type LoadedExperiment } from "./config/index.ts";
import { MAX_DATA_BYTES } from "./config/limits.ts";
import { UserError } from "./errors.ts";
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
  const warn = (keyPath: readonly (string | number)[], message: string) => warnings.push(formatDiagnostic(loaded.warningAt(keyPath, message)));
  const { data } = loaded.experiment;
  let dataSummary: DataSummary | null = null;
  // Stat'ed again here (the loader did it moments ago): the shim opens the file, and a FIFO put in
  // its place would block it, and this command, for good.
  const checked = checkRegularFile(data.path, MAX_DATA_BYTES, "a data file");
  if (checked.kind === "bad") throw new UserError("PEFTCTL_DATA_INVALID", `data.path: ${displayPath(data.path)} ${checked.reason}`);
  if (checked.kind === "ok") {
    const summary = await readDataSummary(data);
    if ("problem" in summary) warn(["data", "path"], `${summary.problem}: train tokens shown as "?"`);
    else dataSummary = summary;
  } else if (!loaded.warnings.some((warning) => warning.path === "data.path")) {
    // A missing data file is reported by the loader (a warning), `validate` and the shim; say it once.
    warn(["data", "path"], `data file ${data.path} not readable: train tokens shown as "?"`);
  }
  const plan = planExperiment(loaded.experiment, { runsDir: options.runsDir, dataSummary, pathRoot: path.dirname(loaded.configPath) });
  for (const warning of plan.warnings) warn(warning.path, warning.message);
  return { loaded, plan, warnings };
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
