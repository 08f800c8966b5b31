import path from "node:path";
import type { Command } from "commander";
import type { Level } from "pino";
import { configureLogger } from "../log.ts";

/** What every command gets from the global options. */
export type CliContext = {
  /** Absolute run store root: --runs-dir, else PEFTCTL_RUNS_DIR, else ./runs. */
  runsDir: string;
  /** --json: machine-readable output on stdout, JSON logs on stderr. */
  json: boolean;
  logLevel: Level | "silent";
};

export function cliContext(command: Command): CliContext {
  const options = command.optsWithGlobals<{ runsDir?: string; json?: boolean; logLevel?: Level | "silent" }>();
  const runsDir = path.resolve(options.runsDir ?? process.env.PEFTCTL_RUNS_DIR ?? "runs");
  const context: CliContext = { runsDir, json: options.json ?? false, logLevel: options.logLevel ?? "info" };
  configureLogger({ level: context.logLevel, json: context.json });
  return context;
}
