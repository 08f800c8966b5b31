/**
 * env.json: what a run ran with (Python and package versions, torch's CUDA build, GPUs, host, the
 * git commit of the config's repository). Python versions come from ONE `python -c` call per sweep,
 * reading package metadata instead of importing torch (seconds saved per sweep).
 */
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { runFile, writeJsonAtomic } from "./store.ts";

export type RunEnvironment = {
  hostname: string;
  platform: string;
  node: string;
  python: { executable: string; version: string | null; packages: Record<string, string | null>; torch_cuda: string | null } | { error: string };
  gpus: Array<{ id: string; name: string }>;
  git: { commit: string; dirty: boolean; repository: string } | null;
  collected_at: string;
};

const PROBE = `
import json, sys, re
from importlib import metadata
pk = {}
for name in ["torch", "transformers", "peft", "accelerate", "safetensors", "tokenizers", "numpy"]:
    try: pk[name] = metadata.version(name)
    except metadata.PackageNotFoundError: pk[name] = None
cuda = None
try:
    text = metadata.distribution("torch").locate_file("torch/version.py").read_text()
    m = re.search(r"^cuda(?:: \\S+)? = '([^']+)'", text, re.M)
    cuda = m.group(1) if m else None
except Exception: pass
print(json.dumps({"version": sys.version.split()[0], "packages": pk, "torch_cuda": cuda}))
`;

async function gitInfo(dir: string): Promise<RunEnvironment["git"]> {
  const top = await execa("git", ["-C", dir, "rev-parse", "--show-toplevel"], { reject: false });
  if (top.failed) return null;
  const commit = await execa("git", ["-C", dir, "rev-parse", "HEAD"], { reject: false });
  if (commit.failed) return null;
  const dirty = await execa("git", ["-C", dir, "status", "--porcelain", "--untracked-files=no"], { reject: false });
  return { commit: String(commit.stdout).trim(), dirty: String(dirty.stdout).trim().length > 0, repository: String(top.stdout).trim() };
}

export async function collectEnvironment(options: { python: string; configPath?: string; gpus: Array<{ id: string; name: string }> }): Promise<RunEnvironment> {
  const probe = await execa(options.python, ["-c", PROBE], { reject: false, timeout: 60_000 });
  let python: RunEnvironment["python"];
  try {
    python = { executable: options.python, ...(JSON.parse(String(probe.stdout)) as { version: string; packages: Record<string, string | null>; torch_cuda: string | null }) };
  } catch {
    python = { error: `could not run ${options.python}: ${probe.shortMessage ?? probe.stderr}` };
  }
  return {
    hostname: os.hostname(),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    python,
    gpus: options.gpus,
    git: options.configPath ? await gitInfo(path.dirname(options.configPath)) : null,
    collected_at: new Date().toISOString(),
  };
}

export function writeEnvironment(runDir: string, environment: RunEnvironment): void {
  writeJsonAtomic(runFile(runDir, "env"), environment);
}
