import type { Command } from "commander";
import { checkExperiment, formatDiagnostic } from "../../config/index.ts";
import { UserError } from "../../errors.ts";
import { checkDataHead } from "../../experiment.ts";
import { cliContext } from "../context.ts";
import { setOption } from "../options.ts";

/** `peftctl validate <config...>`: `ok <file>` per valid file; every error of every file, exit 2. */
export function registerValidate(program: Command): void {
  program
    .command("validate")
    .description("check experiment configs: schema, extends, --set, ${env:NAME}, cross-field rules, the data file's first records")
    .argument("<config...>", "experiment config files (YAML)")
    .addOption(setOption())
    .action(async (files: string[], options: { set: string[] }, command: Command) => {
      const context = cliContext(command);
      const results = [];
      for (const file of files) {
        const result = await checkDataHead(await checkExperiment(file, { set: options.set }));
        results.push({ file, result, ok: !result.diagnostics.some((d) => d.severity === "error") });
      }
      const invalid = results.filter(({ ok }) => !ok);
      if (context.json) {
        const report = results.map(({ file, result, ok }) => ({ file, ok, diagnostics: result.diagnostics }));
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      } else {
        for (const { file, result, ok } of results) {
          if (!ok) continue;
          for (const warning of result.diagnostics) process.stderr.write(`${formatDiagnostic(warning)}\n`);
          process.stdout.write(`ok ${file}\n`);
        }
      }
      if (invalid.length > 0) {
        const count = invalid.reduce((sum, { result }) => sum + result.errorCount, 0);
        throw new UserError(
          "PEFTCTL_CONFIG_INVALID",
          `${count.toLocaleString("en-US")} error${count === 1 ? "" : "s"} in ${invalid.map(({ file }) => file).join(", ")}`,
          context.json ? [] : invalid.flatMap(({ result }) => result.diagnostics.map(formatDiagnostic)),
        );
      }
    });
}
