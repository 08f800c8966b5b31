import type { Command } from "commander";
import { planExport, runExport } from "../../export/export-run.ts";
import { log } from "../../log.ts";
import { formatBytes } from "../../report/format.ts";
import { cliContext } from "../context.ts";

type ExportCliOptions = { output: string; merge?: boolean; dtype?: string; checkpoint?: string; force?: boolean; maxShardSize?: string };

const STAGE_TEXT: Record<string, string> = { load: "loading the base model and the adapter", merge: "merging the adapter into the base", save: "saving" };

/** `peftctl export <run> -o DIR`: the run's adapter as a clean directory, or merged into its base (python -m peftshim export). */
export function registerExport(program: Command): void {
  program
    .command("export")
    .description("write a run's adapter as a clean directory, or with --merge the base model with the adapter merged in (safetensors, tokenizer, generation config)")
    .argument("<run>", "run id or <experiment>/<run_id>")
    .requiredOption("-o, --output <dir>", "the directory to write")
    .option("--merge", "merge the adapter into the base (LoRA, DoRA, IA3; a full fine-tune is its own model): loads with AutoModelForCausalLM.from_pretrained")
    .option("--dtype <dtype>", "float32, bfloat16 or float16 (default: the base model's)")
    .option("--checkpoint <step-N>", "a checkpoint's adapter (checkpoints/step-N/adapter) instead of the final one")
    .option("--max-shard-size <size>", "largest safetensors shard of a merged model, e.g. 2GB", "5GB")
    .option("--force", "replace an existing non-empty output directory")
    .action(async (target: string, options: ExportCliOptions, command: Command) => {
      const context = cliContext(command);
      const planned = planExport(context.runsDir, target, {
        checkpoint: options.checkpoint ?? null,
        merge: Boolean(options.merge),
        dtype: options.dtype ?? null,
        outDir: options.output,
        force: Boolean(options.force),
        maxShardSize: options.maxShardSize,
      });
      const outcome = await runExport(planned, { onStage: (stage) => log().info(`${planned.run.runId}: ${STAGE_TEXT[stage] ?? stage}`) });
      if (!outcome.ok) throw outcome.error;
      const { exported } = outcome;
      if (context.json) {
        process.stdout.write(`${JSON.stringify({ run: `${planned.run.experiment}/${planned.run.runId}`, ...exported }, null, 2)}\n`);
        return;
      }
      const what = exported.merged ? `merged ${exported.method} model (${exported.dtype})` : `${exported.method} adapter (${planned.label})`;
      process.stdout.write(`${planned.run.experiment}/${planned.run.runId} -> ${exported.dir}: ${what}, ${exported.files.length} files, ${formatBytes(exported.bytes)}\n`);
    });
}
