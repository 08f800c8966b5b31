import type { Command } from "commander";
import { FailureError } from "../../errors.ts";
import { scorePairs } from "../../eval/score.ts";
import { renderMetricsTable } from "../../report/metrics-table.ts";
import { cliContext } from "../context.ts";

/**
 * `peftctl score --pairs FILE.jsonl [--hyp-field F] [--ref-field F] [--embeddings FILE]`: the ExTES
 * paper's automatic metrics (BLEU-1..4, ROUGE-L, METEOR, embedding metrics, Distinct-n, strategy
 * accuracy / macro-F1) of responses against references; a table, or the scorer's JSON with --json.
 * Exit 0 scored; 2 bad input (file:line named); 1 the scorer failed (e.g. no java for METEOR).
 */
export function registerScore(program: Command): void {
  program
    .command("score")
    .description("automatic metrics of responses against references (BLEU, ROUGE-L, METEOR, embeddings, Distinct, strategy)")
    .requiredOption("--pairs <file>", "JSON Lines, one pair per line (e.g. a run's samples.jsonl)")
    .option("--hyp-field <field>", "the field holding the response", "response")
    .option("--ref-field <field>", "the field holding the reference (a string or a list of strings)", "reference")
    .option("--embeddings <file>", "word vectors in GloVe text format (glove.6B.300d.txt for paper-comparable values)")
    .option("--toxicity-command <cmd>", "a toxicity scorer: reads {\"id\", \"text\"} JSON lines on stdin, writes one score in [0, 1] per line")
    .action(async (options: { pairs: string; hypField: string; refField: string; embeddings?: string; toxicityCommand?: string }, command: Command) => {
      const context = cliContext(command);
      const result = await scorePairs({ pairs: options.pairs, hypField: options.hypField, refField: options.refField, embeddings: options.embeddings, toxicityCommand: options.toxicityCommand });
      if (!result.ok) throw new FailureError("PEFTCTL_INTERNAL", `scoring ${options.pairs} failed: ${result.error}`);
      process.stdout.write(context.json ? `${JSON.stringify(result.report, null, 2)}\n` : `${renderMetricsTable(result.report)}\n`);
    });
}
