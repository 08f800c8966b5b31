/**
 * What an SSH host offers, asked over ssh in one call: its workdir made absolute (created when
 * missing), its GPUs (nvidia-smi; none when it is absent or fails) and the versions of the shim's
 * libraries in its Python. `peftctl hosts` prints it; the SSH executor builds its device pool from it.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "../../shim.ts";
import { SshConnection, type CallResult } from "./connection.ts";

export type HostSettings = { host: string; gpus?: number; cpu_slots: number; python: string; workdir: string };

export type HostInventory = {
  host: string;
  reachable: boolean;
  /** Why it could not be asked (ssh's last line of stderr), when unreachable. */
  error: string | null;
  workdir: string | null;
  /** GPU ids: resources.ssh.hosts[].gpus when given, else nvidia-smi's indices. */
  gpus: string[];
  gpuNames: string[];
  cpuSlots: number;
  /** Library -> version in the host's Python (null: not installed); empty when Python could not run. */
  versions: Record<string, string | null>;
  pythonError: string | null;
};

/** The libraries whose versions must match python/requirements.txt on every host. */
export const CHECKED_LIBRARIES = ["torch", "transformers", "peft"] as const;

/** name -> pinned version of python/requirements.txt (`name==version` lines). */
export function requiredVersions(file = path.join(projectRoot, "python", "requirements.txt")): Record<string, string> {
  const pins: Record<string, string> = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const match = /^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s#;]+)/.exec(line);
    if (match) pins[match[1]!.toLowerCase()] = match[2]!;
  }
  return pins;
}

const VERSIONS_SCRIPT = `
import importlib.metadata as m, json
out = {}
for name in ${JSON.stringify([...CHECKED_LIBRARIES])}:
    try:
        out[name] = m.version(name)
    except m.PackageNotFoundError:
        out[name] = None
print("PEFTCTL-VERSIONS " + json.dumps(out))
`;

/** The host's answer in one round trip: markers keep the parts apart whatever else the login shell prints. */
function probeScript(settings: HostSettings): string {
  const quotedWorkdir = `'${settings.workdir.replace(/'/g, `'\\''`)}'`;
  const quotedPython = `'${settings.python.replace(/'/g, `'\\''`)}'`;
  return [
    `mkdir -p ${quotedWorkdir} && cd ${quotedWorkdir} && echo "PEFTCTL-WORKDIR $(pwd)"`,
    `command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=index,name --format=csv,noheader 2>/dev/null | sed 's/^/PEFTCTL-GPU /'`,
    `${quotedPython} -c ${`'${VERSIONS_SCRIPT.replace(/'/g, `'\\''`)}'`} 2>&1 | sed 's/^/PEFTCTL-PY /'`,
    "true",
  ].join("; ");
}

export async function probeHost(settings: HostSettings, configFile: string | undefined, timeoutMs = 30_000): Promise<HostInventory> {
  const connection = new SshConnection({ host: settings.host, configFile });
  return parseProbe(settings, await connection.call(["sh", "-c", probeScript(settings)], timeoutMs));
}

/** probeHost, blocking (the SSH executor's device pool is asked for synchronously). */
export function probeHostSync(settings: HostSettings, configFile: string | undefined, timeoutMs = 30_000): HostInventory {
  const connection = new SshConnection({ host: settings.host, configFile });
  return parseProbe(settings, connection.callSync(["sh", "-c", probeScript(settings)], timeoutMs));
}

function parseProbe(settings: HostSettings, answer: CallResult): HostInventory {
  const base: HostInventory = { host: settings.host, reachable: false, error: null, workdir: null, gpus: [], gpuNames: [], cpuSlots: settings.cpu_slots, versions: {}, pythonError: null };
  if (!answer.ok) return { ...base, error: answer.stderr.trim().split("\n").at(-1) || `ssh exited ${answer.exitCode}` };
  const lines = answer.stdout.split("\n");
  const tagged = (tag: string) => lines.filter((l) => l.startsWith(`${tag} `)).map((l) => l.slice(tag.length + 1));
  const workdir = tagged("PEFTCTL-WORKDIR")[0] ?? null;
  const found = tagged("PEFTCTL-GPU").map((l) => l.split(",").map((s) => s.trim()));
  const gpus = settings.gpus !== undefined ? Array.from({ length: settings.gpus }, (_, i) => String(i)) : found.map(([index]) => index!);
  const python = tagged("PEFTCTL-PY");
  const versionsLine = python.find((l) => l.startsWith("PEFTCTL-VERSIONS "));
  let versions: Record<string, string | null> = {};
  let pythonError: string | null = null;
  if (versionsLine) versions = JSON.parse(versionsLine.slice("PEFTCTL-VERSIONS ".length)) as Record<string, string | null>;
  else pythonError = python.at(-1) ?? `${settings.python} printed nothing`;
  return { ...base, reachable: workdir !== null, error: workdir === null ? `cannot create or enter workdir ${settings.workdir}` : null, workdir, gpus, gpuNames: found.map((cols) => cols[1] ?? ""), versions, pythonError };
}

/** Each checked library whose version on the host differs from python/requirements.txt. */
export function versionMismatches(inventory: HostInventory, required = requiredVersions()): Array<{ library: string; host: string | null; required: string | null }> {
  if (!inventory.reachable || inventory.pythonError) return [];
  // A local version label (+cpu, +cu128) names the build, not the version: torch==2.13.0 is met by 2.13.0+cu128.
  const release = (version: string | null | undefined) => (version ? version.split("+")[0]! : null);
  return CHECKED_LIBRARIES.filter((library) => release(inventory.versions[library]) !== release(required[library])).map((library) => ({
    library,
    host: inventory.versions[library] ?? null,
    required: required[library] ?? null,
  }));
}
