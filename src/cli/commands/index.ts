import type { Command } from "commander";

/**
 * Every command, in the order of `--help`: its name, the summary `--help` lists, and how to load it.
 * main.ts imports only the module of the command being run, so a command's start costs only the
 * modules it uses; `--help` lists these summaries without importing any command. A command's
 * summary is the description its own file gives (test/cli/registry.test.ts checks they are equal).
 * Add a command with one line here and its file src/cli/commands/<name>.ts exporting register<Name>.
 */
export type CommandEntry = { name: string; summary: string; load: () => Promise<(program: Command) => void> };

export const commands: readonly CommandEntry[] = [
  { name: "validate", summary: "check experiment configs: schema, extends, --set, ${env:NAME}, cross-field rules, the data file's first records", load: async () => (await import("./validate.ts")).registerValidate },
  { name: "plan", summary: "expand an experiment's sweep into jobs and show them with memory and token estimates; launches nothing", load: async () => (await import("./plan.ts")).registerPlan },
  { name: "run", summary: "plan, launch and track an experiment's runs; re-running skips finished runs and resumes interrupted ones", load: async () => (await import("./run.ts")).registerRun },
  { name: "status", summary: "the state of every run (or of one experiment's runs)", load: async () => (await import("./status.ts")).registerStatus },
  { name: "logs", summary: "a run's events (readable), stdout.log or stderr.log; -f follows while it runs", load: async () => (await import("./logs.ts")).registerLogs },
  { name: "stop", summary: "stop running runs: they save a checkpoint and are marked interrupted ('peftctl resume' continues them)", load: async () => (await import("./stop.ts")).registerStop },
  { name: "hosts", summary: "the SSH hosts of a config (resources.ssh): GPUs, free slots, torch/transformers/peft versions", load: async () => (await import("./hosts.ts")).registerHosts },
  { name: "resume", summary: "finish an experiment's runs from their stored job.json (no config needed)", load: async () => (await import("./resume.ts")).registerResume },
  { name: "ls", summary: "experiments in the runs dir, with run counts by state", load: async () => (await import("./ls.ts")).registerLs },
  { name: "gc", summary: "remove checkpoints beyond checkpoint.keep_last and temporary leftovers of finished runs", load: async () => (await import("./gc.ts")).registerGc },
  { name: "push", summary: "publish finished runs to the Hugging Face Hub (token: $HF_TOKEN or $HF_HOME/token; endpoint: $HF_ENDPOINT)", load: async () => (await import("./push.ts")).registerPush },
  { name: "eval", summary: "generate a response for every example of the test (or valid) split with each run's adapter, into <run_dir>/eval/<split>-<hash>/generations.jsonl", load: async () => (await import("./eval.ts")).registerEval },
  { name: "chat", summary: "talk to a run's adapter with the training prompt template, the reply streamed as it is decoded", load: async () => (await import("./chat.ts")).registerChat },
  { name: "export", summary: "write a run's adapter as a clean directory, or with --merge the base model with the adapter merged in (safetensors, tokenizer, generation config)", load: async () => (await import("./export.ts")).registerExport },
  { name: "score", summary: "automatic metrics of responses against references (BLEU, ROUGE-L, METEOR, embeddings, Distinct, strategy)", load: async () => (await import("./score.ts")).registerScore },
  { name: "human-eval", summary: "blind human evaluation of runs' generations (the ExTES criteria): export sheets, import ratings", load: async () => (await import("./human-eval.ts")).registerHumanEval },
  { name: "table", summary: "the results table of runs (automatic metrics x100, human evaluation), seeds as mean ± std, best per column marked", load: async () => (await import("./table.ts")).registerTable },
  { name: "report", summary: "a self-contained HTML report of runs: training curves, the results table, metrics by swept parameter, generations", load: async () => (await import("./report.ts")).registerReport },
];
