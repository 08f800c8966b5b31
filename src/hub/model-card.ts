import { stringify } from "yaml";
import type { MetricName, MetricsReport } from "../runs/eval-metrics.ts";
import type { JobSpec } from "../plan/jobspec.ts";
import type { EventsSummary } from "./summarize-events.ts";
import type { PushTarget } from "./types.ts";

/** The Hub tag of each method (the first is what the Hub's PEFT filters know). */
const METHOD_TAGS: Record<JobSpec["method"]["kind"], string> = {
  lora: "lora",
  adapter: "llama-adapter",
  ia3: "ia3",
  prefix: "prefix-tuning",
  prompt: "prompt-tuning",
  full: "full-fine-tuning",
};

const METHOD_NAMES: Record<JobSpec["method"]["kind"], string> = {
  lora: "LoRA",
  adapter: "LLaMA-Adapter",
  ia3: "IA3",
  prefix: "prefix-tuning",
  prompt: "prompt-tuning",
  full: "full fine-tuning",
};

/** Base models the shim builds itself; they exist on no Hub. */
function isBuiltinBase(base: string): boolean {
  return base.startsWith("builtin:");
}

function evalMetrics(summary: EventsSummary): { loss?: number; perplexity?: number; step?: number } {
  const last = summary.eval[summary.eval.length - 1];
  if (last) return { loss: last.loss, perplexity: last.perplexity, step: last.step };
  const metrics = summary.final_metrics;
  return { loss: metrics.eval_loss, perplexity: metrics.eval_perplexity ?? metrics.perplexity };
}

/** The test metrics a card shows, in the ExTES paper's order: report key, Hub metric type, printed name. */
const TEST_METRICS: Array<[MetricName, string, string]> = [
  ["bleu-1", "bleu", "BLEU-1"],
  ["bleu-2", "bleu", "BLEU-2"],
  ["bleu-3", "bleu", "BLEU-3"],
  ["bleu-4", "bleu", "BLEU-4"],
  ["rouge-l", "rouge", "ROUGE-L"],
  ["meteor", "meteor", "METEOR"],
  ["vector_extrema", "vector_extrema", "Vector Extrema"],
  ["dist-1", "distinct-1", "Distinct-1"],
  ["dist-2", "distinct-2", "Distinct-2"],
  ["dist-3", "distinct-3", "Distinct-3"],
  ["toxicity", "toxicity", "Toxicity"],
];

/** The report's fractions x100, rounded to 2 digits as papers print them; metrics not computed (null) are left out. */
function testMetrics(report: MetricsReport): Array<{ type: string; value: number; name: string }> {
  const metrics: Array<{ type: string; value: number; name: string }> = [];
  for (const [key, type, name] of TEST_METRICS) {
    const value = report.metrics[key];
    if (typeof value === "number" && Number.isFinite(value)) metrics.push({ type, value: Math.round(value * 10000) / 100, name });
  }
  return metrics;
}

function format(value: unknown): string {
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
  if (Array.isArray(value)) return value.map(format).join(", ");
  return String(value);
}

function table(rows: Array<[string, unknown]>): string {
  return ["| setting | value |", "| --- | --- |", ...rows.map(([key, value]) => `| ${key} | ${format(value).replace(/\|/g, "\\|")} |`)].join("\n");
}

function loadSnippet(job: JobSpec, target: PushTarget): string {
  const revision = target.branch === "main" ? "" : `, revision="${target.branch}"`;
  if (job.method.kind === "full") {
    return ["```python", "from transformers import AutoModelForCausalLM", "", `model = AutoModelForCausalLM.from_pretrained("${target.repo}"${revision})`, "```"].join("\n");
  }
  if (isBuiltinBase(job.model.base)) {
    // The built-in base is rebuilt from the pushed tokenizer and a fixed seed, as the shim built it.
    return [
      "```python",
      "import torch",
      "from huggingface_hub import snapshot_download",
      "from peft import PeftModel",
      "from transformers import AutoTokenizer",
      "from peftshim.model import build_builtin_model  # peftctl's python/ on PYTHONPATH",
      "",
      `path = snapshot_download("${target.repo}"${revision})`,
      "tokenizer = AutoTokenizer.from_pretrained(path)",
      `base = build_builtin_model("${job.model.base}", tokenizer, device=torch.device("cpu"), dtype=torch.float32, attn="${job.model.attn}")`,
      "model = PeftModel.from_pretrained(base, path)",
      "```",
    ].join("\n");
  }
  return [
    "```python",
    "from peft import PeftModel",
    "from transformers import AutoModelForCausalLM, AutoTokenizer",
    "",
    `base = AutoModelForCausalLM.from_pretrained("${job.model.base}"${job.model.revision ? `, revision="${job.model.revision}"` : ""})`,
    `model = PeftModel.from_pretrained(base, "${target.repo}"${revision})`,
    `tokenizer = AutoTokenizer.from_pretrained("${target.repo}"${revision})`,
    "```",
  ].join("\n");
}

/**
 * README.md of a pushed run: YAML metadata the Hub indexes (base model, library, tags, datasets,
 * license, eval results as model-index: the validation loss and, when the run was evaluated with
 * `peftctl eval`, the test metrics of its newest eval/test-<hash>/metrics.json) and a body saying how to load
 * it, how it was trained and how it scored.
 * Deterministic for a given run (no push time in it), so pushing an unchanged run changes nothing.
 */
export function renderModelCard(input: { job: JobSpec; summary: EventsSummary; target: PushTarget; testMetrics?: MetricsReport | null }): string {
  const { job, summary, target } = input;
  const builtin = isBuiltinBase(job.model.base);
  const isPeft = job.method.kind !== "full";
  const metrics = evalMetrics(summary);
  const datasets = job.hub?.datasets ?? [];
  const repoName = target.repo.slice(target.repo.indexOf("/") + 1);
  const dataName = job.data.path.split(/[\\/]/).pop() ?? job.data.path;

  const dataset = { name: datasets[0] ?? dataName, type: datasets[0] ?? job.data.format };
  const test = input.testMetrics ? testMetrics(input.testMetrics) : [];
  const results: Array<Record<string, unknown>> =
    metrics.loss !== undefined
      ? [
          {
            task: { type: "text-generation", name: "Text Generation" },
            dataset: { ...dataset, split: "validation" },
            metrics: [
              { type: "loss", value: metrics.loss, name: "Eval loss" },
              ...(metrics.perplexity !== undefined ? [{ type: "perplexity", value: metrics.perplexity, name: "Eval perplexity" }] : []),
            ],
          },
        ]
      : [];
  if (test.length > 0) results.push({ task: { type: "text-generation", name: "Text Generation" }, dataset: { ...dataset, split: "test" }, metrics: test });
  const metadata: Record<string, unknown> = {
    ...(builtin ? {} : { base_model: job.model.base }),
    library_name: isPeft ? "peft" : "transformers",
    license: job.hub?.license ?? "apache-2.0",
    pipeline_tag: "text-generation",
    tags: [METHOD_TAGS[job.method.kind], "peftctl", ...(isPeft ? ["peft"] : [])],
    ...(datasets.length > 0 ? { datasets } : {}),
    ...(results.length > 0 ? { "model-index": [{ name: repoName, results }] } : {}),
  };

  const { kind, ...methodSettings } = job.method;
  const settings: Array<[string, unknown]> = [
    ["method", kind],
    ...Object.entries(methodSettings).map(([key, value]): [string, unknown] => [`method.${key}`, value]),
    ["data", `${job.data.format}: ${dataName} (max_length ${job.data.max_length}, packing ${job.data.packing}, strategy ${job.data.strategy})`],
    ["split", `train ${job.data.split.train} / valid ${job.data.split.valid} / test ${job.data.split.test}, seed ${job.data.split.seed}`],
    ...Object.entries(job.train).map(([key, value]): [string, unknown] => [`train.${key}`, value]),
    ["dtype", job.model.dtype],
  ];
  if (summary.params) settings.push(["trainable parameters", `${summary.params.trainable} of ${summary.params.total}`]);
  if (summary.device) settings.push(["device", summary.device]);

  const lossLines: string[] = [];
  if (summary.train_loss) {
    const { first, min, last } = summary.train_loss;
    lossLines.push(
      `Train loss: first ${format(first.loss)} (step ${first.step}), minimum ${format(min.loss)} (step ${min.step}), last ${format(last.loss)} (step ${last.step}).`,
    );
  } else {
    lossLines.push("No train loss was logged.");
  }
  if (summary.eval.length > 0) {
    lossLines.push("", "| step | eval loss | perplexity |", "| --- | --- | --- |");
    for (const point of summary.eval) lossLines.push(`| ${point.step} | ${format(point.loss)} | ${format(point.perplexity)} |`);
  }

  const evaluationLines: string[] = [];
  if (test.length > 0) {
    const pairs = input.testMetrics!.pairs;
    evaluationLines.push(
      "## Evaluation",
      "",
      `Automatic metrics of \`peftctl eval\` on the test split (${pairs} response${pairs === 1 ? "" : "s"}), as fractions x100 rounded to 2 digits as papers print them (the \`model-index\` above has the same values).`,
      "",
      "| metric | test |",
      "| --- | --- |",
      ...test.map((metric) => `| ${metric.name} | ${metric.value.toFixed(2)} |`),
      "",
    );
  }

  const sweepEntries = Object.entries(job.sweep_values);
  const body = [
    `# ${repoName}`,
    "",
    `${isPeft ? `A ${METHOD_NAMES[kind]} adapter` : "A fully fine-tuned model"} for \`${job.model.base}\`, trained by peftctl ` +
      `(experiment \`${job.experiment}\`, run \`${job.run_id}\`).`,
    "",
    "## Base model",
    "",
    builtin
      ? `\`${job.model.base}\` is peftctl's built-in random-weight model, built by the training shim from a fixed config, a fixed seed and the tokenizer trained on the data (pushed here); it is not on the Hub, so this card has no \`base_model\`. The snippet below rebuilds it with the shim.`
      : `[\`${job.model.base}\`](https://huggingface.co/${job.model.base})${job.model.revision ? ` at revision \`${job.model.revision}\`` : ""}.`,
    "",
    "## How to load",
    "",
    loadSnippet(job, target),
    "",
    "## Training settings",
    "",
    table(settings),
    "",
    "## Loss curve",
    "",
    ...lossLines,
    "",
    ...evaluationLines,
    "## Sweep values",
    "",
    sweepEntries.length > 0 ? table(sweepEntries) : "This run is not part of a sweep.",
    "",
    "## Reproduce",
    "",
    "`peftctl/` holds the resolved job spec (`job.json`), the training environment (`env.json`), the data fingerprint " +
      "(`data-fingerprint.json`) and the events summary (`events-summary.json`): `peftctl run` on the same job and data " +
      "retrains this adapter.",
    "",
  ].join("\n");
  return `---\n${stringify(metadata, { lineWidth: 0 })}---\n\n${body}`;
}
