import path from "node:path";
import { stringify } from "yaml";
import type { BaseCard } from "./base-model-card.ts";
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

/** A model.base that is a directory on this machine (job.json holds local paths absolute). */
function isLocalBase(base: string): boolean {
  return path.isAbsolute(base) || base.startsWith("./") || base.startsWith("../");
}

/** The Hub id a card names as its base: hub.base_model, else model.base when it is a Hub id; never a local path. */
export function cardBaseModel(job: Pick<JobSpec, "model" | "hub">): string | null {
  if (job.hub?.base_model !== undefined) return job.hub.base_model;
  return isBuiltinBase(job.model.base) || isLocalBase(job.model.base) ? null : job.model.base;
}

export type CardLicense = { license: string; license_name?: string; license_link?: string; source: string };

/**
 * Licenses of well-known base families by their Hub id, for when the base model's own card is not on
 * this machine. The first match wins (TinyLlama before the LLaMA rows). LLaMA's licenses are not
 * among the Hub's license ids: `other` with a name and a link, as Meta's and the converted repos' cards say.
 */
const KNOWN_LICENSES: ReadonlyArray<[RegExp, Omit<CardLicense, "source">]> = [
  [/tinyllama/i, { license: "apache-2.0" }],
  [/llama-?3/i, { license: "other", license_name: "llama3", license_link: "https://llama.meta.com/llama3/license/" }],
  [/llama-?2/i, { license: "other", license_name: "llama2", license_link: "https://ai.meta.com/llama/license/" }],
  [/llama/i, { license: "other", license_name: "llama-license", license_link: "https://github.com/facebookresearch/llama/blob/llama_v1/MODEL_CARD.md" }],
  [/dialogpt/i, { license: "mit" }],
  [/(^|\/)(distil)?gpt2(-(medium|large|xl))?$/i, { license: "mit" }],
];

/**
 * The card's license: the base model's own (its card's front matter, read by base-model-card.ts), else
 * its family's (KNOWN_LICENSES), else hub.license; the built-in random-weight models have no upstream
 * terms (hub.license, else apache-2.0). null: nothing is known, and the card says so instead of guessing.
 */
export function cardLicense(job: Pick<JobSpec, "model" | "hub">, baseCard: BaseCard | null): CardLicense | null {
  if (isBuiltinBase(job.model.base)) return { license: job.hub?.license ?? "apache-2.0", source: "hub.license (a built-in base has no license of its own)" };
  const fromCard = baseCard?.metadata.license;
  if (typeof fromCard === "string" && fromCard.trim() !== "") {
    const found: CardLicense = { license: fromCard.trim(), source: `the base model's card (${baseCard!.source})` };
    for (const key of ["license_name", "license_link"] as const) {
      const value = baseCard!.metadata[key];
      if (typeof value === "string" && value.trim() !== "") found[key] = value.trim();
    }
    return found;
  }
  const id = cardBaseModel(job);
  const known = id === null ? undefined : KNOWN_LICENSES.find(([pattern]) => pattern.test(id));
  if (known) return { ...known[1], source: `the known license of ${id}'s family` };
  if (job.hub?.license !== undefined) return { license: job.hub.license, source: "hub.license" };
  return null;
}

/** What a push should tell the user about the card: the license or base model it could not name. */
export function cardNotes(job: Pick<JobSpec, "model" | "hub">, baseCard: BaseCard | null): string[] {
  const notes: string[] = [];
  const license = cardLicense(job, baseCard);
  if (license === null) notes.push(`the model card names no license: ${job.model.base}'s license is unknown (no card of it here, not a known family); set hub.license`);
  else if (job.hub?.license !== undefined && job.hub.license !== license.license && !isBuiltinBase(job.model.base)) {
    notes.push(`the model card's license is ${license.license} from ${license.source}, not hub.license ${job.hub.license}: a fine-tune is bound by its base model's terms`);
  }
  if (!isBuiltinBase(job.model.base) && cardBaseModel(job) === null) {
    notes.push(`the model card names no base_model: model.base is the local path ${job.model.base}; set hub.base_model to its Hub id`);
  }
  return notes;
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

function loadSnippet(job: JobSpec, target: PushTarget, merged: boolean): string {
  const revision = target.branch === "main" ? "" : `, revision="${target.branch}"`;
  if (merged || job.method.kind === "full") {
    return [
      "```python",
      "from transformers import AutoModelForCausalLM, AutoTokenizer",
      "",
      `model = AutoModelForCausalLM.from_pretrained("${target.repo}"${revision})`,
      `tokenizer = AutoTokenizer.from_pretrained("${target.repo}"${revision})`,
      "```",
    ].join("\n");
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
  const baseId = cardBaseModel(job);
  const baseRevision = baseId === job.model.base && job.model.revision ? `, revision="${job.model.revision}"` : "";
  return [
    "```python",
    "from peft import PeftModel",
    "from transformers import AutoModelForCausalLM, AutoTokenizer",
    "",
    baseId !== null
      ? `base = AutoModelForCausalLM.from_pretrained("${baseId}"${baseRevision})`
      : `base = AutoModelForCausalLM.from_pretrained("BASE_MODEL")  # the model this adapter was trained on (not on the Hub)`,
    `model = PeftModel.from_pretrained(base, "${target.repo}"${revision})`,
    `tokenizer = AutoTokenizer.from_pretrained("${target.repo}"${revision})`,
    "```",
  ].join("\n");
}

function licenseText(license: CardLicense | null): string {
  if (license === null) return "License: unknown. The base model's license could not be found (no card of it on the pushing machine, not a known family) and `hub.license` is not set; check the base model's terms before using this model.";
  const named = license.license_name ? ` (${license.license_name}${license.license_link ? `: ${license.license_link}` : ""})` : "";
  return `License: \`${license.license}\`${named}, from ${license.source.replace(/ \(\/.*\)$/, "")}.`;
}

function baseModelText(job: JobSpec, baseId: string | null, merged: boolean): string {
  if (isBuiltinBase(job.model.base)) {
    return merged
      ? `\`${job.model.base}\` is peftctl's built-in random-weight model, built by the training shim from a fixed config and seed; it is not on the Hub, so this card has no \`base_model\`. Its weights are part of this merged model.`
      : `\`${job.model.base}\` is peftctl's built-in random-weight model, built by the training shim from a fixed config, a fixed seed and the tokenizer trained on the data (pushed here); it is not on the Hub, so this card has no \`base_model\`. The snippet below rebuilds it with the shim; \`peftctl push --merged\` publishes a model that loads with transformers alone.`;
  }
  if (baseId === null) return "A local model that this card cannot name on the Hub (set `hub.base_model` to its Hub id), so this card has no `base_model`.";
  const revision = baseId === job.model.base && job.model.revision ? ` at revision \`${job.model.revision}\`` : "";
  return `[\`${baseId}\`](https://huggingface.co/${baseId})${revision}.`;
}

/**
 * README.md of a pushed run: YAML metadata the Hub indexes (base model, library, tags, datasets,
 * license, eval results as model-index: the validation loss and, when the run was evaluated with
 * `peftctl eval`, the test metrics of its newest eval/test-<hash>/metrics.json) and a body saying how to load
 * it, how it was trained and how it scored.
 * Deterministic for a given run (no push time in it), so pushing an unchanged run changes nothing.
 */
export function renderModelCard(input: {
  job: JobSpec;
  summary: EventsSummary;
  target: PushTarget;
  testMetrics?: MetricsReport | null;
  /** The base model's own card (base-model-card.ts), for its license. */
  baseCard?: BaseCard | null;
  /** The card of `peftctl push --merged`: the adapter merged into the base, a plain transformers model. */
  merged?: boolean;
}): string {
  const { job, summary, target } = input;
  const merged = input.merged === true;
  const isPeft = job.method.kind !== "full";
  const isAdapter = isPeft && !merged;
  const baseId = cardBaseModel(job);
  const license = cardLicense(job, input.baseCard ?? null);
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
    // A merged adapter or a full fine-tune is one model trained from the base: the Hub's "finetune"
    // ("merge" there means a merge of several models).
    ...(baseId === null ? {} : { base_model: baseId, base_model_relation: isAdapter ? "adapter" : "finetune" }),
    library_name: isAdapter ? "peft" : "transformers",
    ...(license === null
      ? {}
      : { license: license.license, ...(license.license_name ? { license_name: license.license_name } : {}), ...(license.license_link ? { license_link: license.license_link } : {}) }),
    language: job.hub?.language ?? ["en"],
    pipeline_tag: "text-generation",
    tags: [METHOD_TAGS[job.method.kind], "peftctl", ...(isAdapter ? ["peft"] : []), ...(merged ? ["merged-adapter"] : [])],
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
    `${merged ? `The base model with a ${METHOD_NAMES[kind]} adapter merged into its weights` : isPeft ? `A ${METHOD_NAMES[kind]} adapter` : "A fully fine-tuned model"} ` +
      `for \`${baseId ?? (isBuiltinBase(job.model.base) ? job.model.base : "a local base model")}\`, trained by peftctl ` +
      `(experiment \`${job.experiment}\`, run \`${job.run_id}\`)` +
      `${merged ? "; a plain transformers model: loading it needs no peft and no base model." : "."}`,
    "",
    "## Base model",
    "",
    baseModelText(job, baseId, merged),
    "",
    licenseText(license),
    "",
    "## How to load",
    "",
    loadSnippet(job, target, merged),
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
      `retrains this ${isAdapter ? "adapter" : "model"}${merged ? " (then `peftctl export --merge`)" : ""}.`,
    "",
  ].join("\n");
  return `---\n${stringify(metadata, { lineWidth: 0 })}---\n\n${body}`;
}
