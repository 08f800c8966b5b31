/** Configs and checks shared by the SSH tests (real sshd pair from hosts.ts, real shim training). */
import { writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { shimEnv } from "../../src/shim.ts";
import type { TestHosts } from "./hosts.ts";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const bin = path.join(root, "bin/peftctl.js");
/** The hosts' Python: this checkout's venv, named by absolute path as a host config would. */
export const hostPython = path.join(root, ".venv/bin/python");

/**
 * A short CPU experiment on the smoke config's tiny model: `steps` optimizer steps, a checkpoint
 * every 2, no generation. `executor: ssh` on the test hosts, or `local` for the reference runs.
 */
export function writeExperiment(
  file: string,
  options: { name: string; rValues: number[]; steps: number; executor: "ssh" | "local"; hosts?: TestHosts; lostAfterS?: number; pythonFor?: Record<string, string> },
): string {
  const lines = [
    `extends: ${path.join(root, "configs/smoke.yaml")}`,
    `name: ${options.name}`,
    "data:",
    "  max_length: 128",
    "train:",
    `  max_steps: ${options.steps}`,
    "  batch_size: 4",
    "  micro_batch_size: 4",
    "  warmup_steps: 1",
    "  log_every_steps: 1",
    "eval:",
    `  every_steps: ${options.steps}`,
    "  generate:",
    "    samples: 0",
    "checkpoint:",
    "  every_steps: 2",
    "sweep:",
    "  parameters:",
    `    method.r: [${options.rValues.join(", ")}]`,
    "resources:",
    "  gpus: 0",
    `  executor: ${options.executor}`,
  ];
  if (options.executor === "ssh") {
    const hosts = options.hosts!;
    lines.push("  ssh:", `    config_file: ${hosts.configFile}`, `    lost_after_s: ${options.lostAfterS ?? 60}`, "    hosts:");
    for (const host of hosts.hosts) {
      lines.push(`      - host: ${host.alias}`, `        python: ${options.pythonFor?.[host.alias] ?? hostPython}`, `        workdir: ${host.workdir}`, "        cpu_slots: 1");
    }
  }
  writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

const MAX_DIFFERENCE = `
import sys
from safetensors.torch import load_file
a, b = (load_file(p + "/adapter_model.safetensors") for p in sys.argv[1:3])
assert a.keys() == b.keys(), (sorted(a), sorted(b))
print(max(float((a[k] - b[k]).abs().max()) for k in a))
`;

/** The largest absolute difference between two adapters' weights. */
export async function adapterDifference(first: string, second: string): Promise<number> {
  const result = await execa(hostPython, ["-c", MAX_DIFFERENCE, first, second], { env: shimEnv(), extendEnv: false });
  return Number(result.stdout.trim());
}

export async function until(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Runs the SSH executor's controller in a short-poll mode where the tests need quick heartbeats. */
export function controllerEnv(): NodeJS.ProcessEnv {
  return { ...process.env, PEFTCTL_CPU_SLOTS: "4" };
}
