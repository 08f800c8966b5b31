import { createRequire } from "node:module";
import type { Logger, Level } from "pino";

/** pino (CommonJS) is required when the first logger is made: a command that logs nothing never loads it. */
const loadPino = () => (createRequire(import.meta.url)("pino") as typeof import("pino")).pino;

export type LogOptions = { level?: Level | "silent"; json?: boolean };

/**
 * The one logger. Human-facing output (tables, progress) goes to stdout through the command's
 * renderer; diagnostics go to stderr through pino, as JSON lines with --json, else as short
 * "level: message" lines (pino-pretty would be another dependency for four lines of formatting).
 */
export function createLogger(options: LogOptions = {}): Logger {
  const pino = loadPino();
  const level = options.level ?? "info";
  if (options.json) {
    return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
  }
  return pino(
    { level, base: undefined, timestamp: false },
    {
      write(line: string) {
        const record = JSON.parse(line) as { level: number; msg?: string } & Record<string, unknown>;
        const { level: levelNumber, msg, ...rest } = record;
        const name = pino.levels.labels[levelNumber] ?? String(levelNumber);
        const extra = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : "";
        process.stderr.write(`${name}: ${msg ?? ""}${extra}\n`);
      },
    },
  );
}

let current: Logger | undefined;
let options: LogOptions = {};

export function setLogger(logger: Logger): void {
  current = logger;
}

/** The options of the logger log() makes on its first call (the global options of the CLI). */
export function configureLogger(next: LogOptions): void {
  options = next;
  current = undefined;
}

export function log(): Logger {
  return (current ??= createLogger(options));
}
