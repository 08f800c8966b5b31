import { Command, CommanderError, Option } from "commander";
import { ExitCode, PeftctlError } from "../errors.ts";
import { peftctlVersion } from "../shim.ts";
import { commands, type CommandEntry } from "./commands/index.ts";
import { watchOutputStreams } from "./stdout.ts";

/** The options every command takes, before or after its name. */
function addGlobalOptions(program: Command): Command {
  return program
    .addOption(new Option("--runs-dir <dir>", "run store root (default: $PEFTCTL_RUNS_DIR or ./runs)"))
    .addOption(
      new Option("--log-level <level>", "diagnostics on stderr")
        .choices(["silent", "fatal", "error", "warn", "info", "debug", "trace"])
        .default("info"),
    )
    .option("--json", "machine-readable output: JSON on stdout, JSON log lines on stderr");
}

/**
 * The command argv names (`peftctl [global options] <name> ...` or `peftctl help <name>`), found by
 * commander's own option parsing over the global options, so `--runs-dir status status` reads right.
 */
function requestedCommand(argv: readonly string[]): CommandEntry | undefined {
  const scan = addGlobalOptions(new Command()).allowUnknownOption().helpOption(false);
  const [first, second] = scan.parseOptions([...argv]).operands;
  const name = first === "help" ? second : first;
  return commands.find((entry) => entry.name === name);
}

/**
 * The program with the requested command loaded and every other command as a name and summary:
 * enough for `--help`'s list and for commander's "did you mean" on a misspelt name, without
 * importing the modules of commands that are not run.
 */
async function buildProgram(argv: readonly string[]): Promise<Command> {
  const program = addGlobalOptions(
    new Command("peftctl").description("Plan, launch, track and publish parameter-efficient fine-tuning runs.").version(peftctlVersion),
  )
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  const requested = requestedCommand(argv);
  const register = requested ? await requested.load() : undefined;
  for (const entry of commands) {
    if (entry === requested && register) register(program);
    else program.command(entry.name).description(entry.summary);
  }
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
    await (await buildProgram(argv)).parseAsync(argv as string[], { from: "user" });
    return process.exitCode === undefined ? ExitCode.ok : Number(process.exitCode);
  } catch (error) {
    return reportError(error);
  }
}
