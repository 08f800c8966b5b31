import { readFileSync } from "node:fs";
import path from "node:path";
import { Command, CommanderError, Option } from "commander";
import { ExitCode, PeftctlError } from "../errors.ts";
import { projectRoot } from "../shim.ts";
import { commands } from "./commands/index.ts";
import { watchOutputStreams } from "./stdout.ts";

const { version } = JSON.parse(readFileSync(path.join(projectRoot, "package.json"), "utf8")) as { version: string };

function buildProgram(): Command {
  const program = new Command("peftctl")
    .description("Plan, launch, track and publish parameter-efficient fine-tuning runs.")
    .version(version)
    .addOption(new Option("--runs-dir <dir>", "run store root (default: $PEFTCTL_RUNS_DIR or ./runs)"))
    .addOption(
      new Option("--log-level <level>", "diagnostics on stderr")
        .choices(["silent", "fatal", "error", "warn", "info", "debug", "trace"])
        .default("info"),
    )
    .option("--json", "machine-readable output: JSON on stdout, JSON log lines on stderr")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  for (const register of commands) register(program);
  for (const command of program.commands) command.exitOverride();
  return program;
}

/** The one place where errors become messages and exit codes. */
export function reportError(error: unknown): number {
  if (error instanceof CommanderError) {
    if (error.code === "commander.helpDisplayed" || error.code === "commander.version" || error.code === "commander.help") {
      return ExitCode.ok;
    }
    return ExitCode.usage; // commander already printed the message
  }
  if (error instanceof PeftctlError) {
    process.stderr.write(`peftctl: ${error.message}\n`);
    for (const line of error.details) process.stderr.write(`${line}\n`);
    return error.exitCode;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`peftctl: internal error: ${message}\n`);
  if (process.env.PEFTCTL_DEBUG && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  return ExitCode.failure;
}

export async function main(argv: readonly string[]): Promise<number> {
  watchOutputStreams();
  try {
    await buildProgram().parseAsync(argv as string[], { from: "user" });
    return process.exitCode === undefined ? ExitCode.ok : Number(process.exitCode);
  } catch (error) {
    return reportError(error);
  }
}
