import type { Command } from "commander";

/** Each command lives in its own file (src/cli/commands/<name>.ts) and is listed here. */
export const commands: Array<(program: Command) => void> = [];
