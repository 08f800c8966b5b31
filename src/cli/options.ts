import { Option } from "commander";

/** `--set key.path=value`, repeatable: the config overrides of validate, plan and run. */
export function setOption(): Option {
  return new Option("--set <key.path=value>", "override a config value (repeatable), e.g. --set method.r=16")
    .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value])
    .default([]);
}
