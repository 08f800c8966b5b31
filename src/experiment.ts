import path from "node:path";
import { execa } from "execa";
import { displayPath } from "./config/diagnostics.ts";
import { checkDataPath } from "./config/files.ts";
import { formatDiagnostic, loadExperiment, type CheckResult, type Diagnostic, type Experiment, type LoadedExperiment } from "./config/index.ts";
import { HUB_DATA_PREFIX } from "./config/schema.ts";
import { MAX_DATA_BYTES } from "./config/limits.ts";
import { UserError } from "./errors.ts";
import { readArchitectures } from "./models/read-model-config.ts";
import { planExperiment, plannedModels, type Plan } from "./plan/index.ts";
import type { DataSummary } from "./plan/tokens.ts";
import { projectRoot, shimEnv, shimPython } from "./shim.ts";

export type ConfigPlan = { loaded: LoadedExperiment; plan: Plan; warnings: string[] };

/**
 * Load a config and plan it: the I/O around the pure planner (the config files, the shim's count of
 * the data file for the token estimate, the base models' config.json for the memory estimate).
 * Loader and plan warnings come back for the caller to show.
 */
export async function planConfig(file: string, options: { set?: string[]; runsDir: string }): Promise<ConfigPlan> {
  const loaded = await loadExperiment(file, { set: options.set });
  const warnings = loaded.warnings.map(formatDiagnostic);
  const warn = (keyPath: readonly (string | number)[], message: string) => warnings.push(formatDiagnostic(loaded.warningAt(keyPath, message)));
  const { data } = loaded.experiment;
  let dataSummary: DataSummary | null = null;
  // Stat'ed again here (the loader did it moments ago): the shim opens the file, and a FIFO put in
  // its place would block it, and this command, for good. A Hub data set is not counted (its
  // download belongs to the run): train tokens read "?".
  const hub = data.path.startsWith(HUB_DATA_PREFIX);
  const checked = hub ? undefined : checkDataPath(data.path, MAX_DATA_BYTES);
  if (checked?.kind === "bad") throw new UserError("PEFTCTL_DATA_INVALID", `data.path: ${displayPath(data.path)} ${checked.reason}`);
  if (checked?.kind === "ok") {
    const summary = await readDataSummary(data);
    if ("problem" in summary) warn(["data", "path"], `${summary.problem}: train tokens shown as "?"`);
    else dataSummary = summary;
  } else if (!hub && !loaded.warnings.some((warning) => warning.path === "data.path")) {
    // A missing data file is reported by the loader (a warning), `validate` and the shim; say it once.
    warn(["data", "path"], `data file ${data.path} not readable: train tokens shown as "?"`);
  }
  const configDir = path.dirname(loaded.configPath);
  // The base models' config.json files, for the memory estimate (src/models/read-model-config.ts).
  const architectures = await readArchitectures(plannedModels(loaded.experiment), { configDir });
  const plan = planExperiment(loaded.experiment, { runsDir: options.runsDir, dataSummary, pathRoot: configDir, architectures });
  for (const warning of plan.warnings) warn(warning.path, warning.message);
  return { loaded, plan, warnings };
}

/** Records of a local data file that `validate` reads: enough to tell a wrong format or column, quick on any file. */
export const DATA_CHECK_RECORDS = 100;

/**
 * `validate`'s check of the data: the first DATA_CHECK_RECORDS records of a local data.path read by the
 * shim's readers (the formats are defined there alone). A problem becomes an error at data.path naming
 * the data file and its line or record; a missing file, or a Hub data set, is left to the run.
 */
export async function checkDataHead(result: CheckResult): Promise<CheckResult> {
  const data = result.experiment?.data;
  if (data === undefined || result.warningAt === undefined || data.path.startsWith(HUB_DATA_PREFIX)) return result;
  if (checkDataPath(data.path, MAX_DATA_BYTES).kind !== "ok") return result;
  const summary = await readDataSummary(data, { head: DATA_CHECK_RECORDS });
  if (!("problem" in summary)) return result;
  if (!summary.badData) {
    const warning = result.warningAt(["data", "path"], `${summary.problem}: the data file was not checked`);
    return { ...result, diagnostics: [...result.diagnostics, warning] };
  }
  const error: Diagnostic = { ...result.warningAt(["data", "path"], summary.problem), severity: "error" };
  const { experiment: _invalid, ...rest } = result;
  return { ...rest, diagnostics: [...result.diagnostics, error], errorCount: result.errorCount + 1 };
}

/**
 * The examples of a data file and their mean length, counted by the shim's own readers
 * (`python -m peftshim data-summary`): one implementation of the formats and of what an example is.
 */
export async function readDataSummary(data: Experiment["data"], options: { head?: number } = {}): Promise<DataSummary | { problem: string; badData: boolean }> {
  const args = ["-m", "peftshim", "data-summary", "--format", data.format, "--path", data.path, "--strategy", data.strategy];
  if (data.columns !== undefined) args.push("--columns", JSON.stringify(data.columns));
  if (data.source !== undefined) args.push("--source", JSON.stringify(data.source));
  if (options.head !== undefined) args.push("--head", String(options.head));
  const result = await execa(shimPython(), args, { cwd: projectRoot, env: shimEnv(), reject: false });
  if (result.exitCode !== 0) {
    const said = result.stderr.trim().split("\n").at(-1)?.replace(/^peftshim: error: /, "");
    // exit 2: the data is bad; anything else: the shim could not judge it (no Python, a broken install)
    const badData = result.exitCode === 2;
    return { badData, problem: result.exitCode === undefined ? `cannot run the shim's Python (${shimPython()}) to read ${data.path}` : `${said || `${data.path} does not read as ${data.format} data`}` };
  }
  const { examples, mean_chars: meanChars } = JSON.parse(result.stdout) as { examples: number; mean_chars: number };
  return { examples, meanChars };
}
