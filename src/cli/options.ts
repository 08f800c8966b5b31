import { Option } from "commander";
import { UserError } from "../errors.ts";

/** `--set key.path=value`, repeatable: the config overrides of validate, plan and run (eval: of the eval section). */
export function setOption(description = "override a config value (repeatable), e.g. --set method.r=16"): Option {
  return new Option("--set <key.path=value>", description)
    .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value])
    .default([]);
}

function parseCpuSlots(value: string): number {
  const slots = Number(value);
  if (!Number.isInteger(slots) || slots < 1) throw new UserError("PEFTCTL_USAGE", `--cpu-slots: expected a whole number >= 1, got '${value}'`);
  return slots;
}

/** `--cpu-slots <n>` of run and resume. */
export function cpuSlotsOption(): Option {
  return new Option("--cpu-slots <n>", "concurrent jobs on the CPU when there is no GPU (default $PEFTCTL_CPU_SLOTS or 1)").argParser(parseCpuSlots);
}

/** `--retry-failed` of run and resume. */
export function retryFailedOption(): Option {
  return new Option("--retry-failed", "also retry runs that failed with a non-retryable error (bad spec or data)");
}
