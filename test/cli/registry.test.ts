/** The lazy command registry (src/cli/commands/index.ts): every command file listed, each summary its command's own description. */
import { readdirSync } from "node:fs";
import path from "node:path";
import { Command } from "commander";
import { afterEach, describe, expect, it, vi } from "vitest";
import { main } from "../../src/cli/main.ts";
import { commands } from "../../src/cli/commands/index.ts";

const commandsDir = path.join(import.meta.dirname, "../../src/cli/commands");

/** What main writes on stdout from now on. */
function output(): () => string {
  const spy = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
  return () => spy.mock.calls.map(([chunk]) => String(chunk)).join("");
}

afterEach(() => vi.restoreAllMocks());

describe("the command registry", () => {
  it("lists every command file once, by its file name", () => {
    const files = readdirSync(commandsDir).filter((name) => name.endsWith(".ts") && name !== "index.ts").map((name) => name.slice(0, -3));
    expect(commands.map((entry) => entry.name).sort()).toEqual(files.sort());
  });

  it.each(commands.map((entry) => [entry.name, entry] as const))("%s: the summary is the command's own description", async (name, entry) => {
    const program = new Command();
    (await entry.load())(program);
    expect(program.commands.map((command) => command.name())).toEqual([name]);
    expect(entry.summary).toBe(program.commands[0]!.description());
  });

  it("--help lists every command with its summary, in the registry's order", async () => {
    const printed = output();
    expect(await main(["--help"])).toBe(0);
    const listed = printed()
      .split("Commands:\n")[1]!
      .split("\n")
      .filter((line) => /^ {2}\S/.test(line))
      .map((line) => line.trim().split(/\s{2,}/)[0]);
    expect(listed).toEqual([...commands.map((entry) => entry.name), "help [command]"]);
  });

  it("`help <command>`, `<command> --help` and global options before the name show the command's own help", async () => {
    for (const argv of [["help", "validate"], ["validate", "--help"], ["--runs-dir", "status", "--json", "validate", "--help"]]) {
      const printed = output();
      expect(await main(argv)).toBe(0);
      expect(printed()).toContain("Usage: peftctl validate [options] <config...>");
      vi.restoreAllMocks();
    }
  });

  it("a misspelt command is a usage error with commander's suggestion", async () => {
    const errors = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    expect(await main(["stauts"])).toBe(2);
    expect(errors.mock.calls.map(([chunk]) => String(chunk)).join("")).toContain("(Did you mean status?)");
  });
});
