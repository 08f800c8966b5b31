/**
 * Where things live on an SSH host, under its workdir, and how a job and its events translate
 * between the run store here and the run dir there:
 *
 *   <workdir>/shim/<hash of the code>/   python/peftshim and schema/job.schema.json: the
 *                                        controller's own code, keyed by content, so a host never runs
 *                                        a stale copy and two controller versions never overwrite each other
 *   <workdir>/data/<sha256>/<file name>  each data file (or save_to_disk directory) once per host, keyed by content
 *   <workdir>/runs/<experiment>/<run id>/ the run dir there (job.json there names these paths)
 */
import { createHash } from "node:crypto";
import { createReadStream, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import type { JobSpec } from "../../plan/jobspec.ts";
import type { ShimEvent } from "../../runs/events.ts";
import { projectRoot } from "../../shim.ts";

/**
 * remote.sh, the host's agent, sent with each call (`sh -c <script> remote.sh <command> ...`) rather
 * than kept there: stop and reattach work whatever copy of peftctl started the job.
 */
const AGENT_SCRIPT = readFileSync(new URL("./remote.sh", import.meta.url), "utf8"); // beside this file in src/ and in dist/

export function agentArgv(command: "start" | "status" | "signal", ...args: string[]): string[] {
  return ["sh", "-c", AGENT_SCRIPT, "remote.sh", command, ...args];
}

/** The shim's code as it goes over: paths relative to the project root. */
export const SHIM_CODE = ["python/peftshim", "schema/job.schema.json"] as const;

/** Every file of SHIM_CODE (no caches), sorted: what the code hash covers and rsync copies. */
export function shimCodeFiles(root = projectRoot): string[] {
  const files: string[] = [];
  const walk = (relative: string) => {
    const absolute = path.join(root, relative);
    if (statSync(absolute).isDirectory()) {
      for (const name of readdirSync(absolute)) if (name !== "__pycache__" && !name.endsWith(".pyc")) walk(path.join(relative, name));
    } else {
      files.push(relative);
    }
  };
  for (const entry of SHIM_CODE) walk(entry);
  return files.sort();
}

/** 16 hex digits of sha256 over the code files' names and contents. */
export function shimCodeHash(root = projectRoot): string {
  const hash = createHash("sha256");
  for (const file of shimCodeFiles(root)) {
    hash.update(`${file}\0`);
    hash.update(readFileSync(path.join(root, file)));
    hash.update("\0");
  }
  return hash.digest("hex").slice(0, 16);
}

export async function fileSha256(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** data.path's content key: a file's sha256, or for a save_to_disk directory a sha256 over its files' relative paths and sha256s. */
export async function dataSha256(dataPath: string): Promise<string> {
  if (!statSync(dataPath).isDirectory()) return fileSha256(dataPath);
  const files = readdirSync(dataPath, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(dataPath, path.join(entry.parentPath, entry.name)))
    .sort();
  const hash = createHash("sha256");
  for (const file of files) hash.update(`${file}\0${await fileSha256(path.join(dataPath, file))}\n`);
  return hash.digest("hex");
}

export type RemoteLayout = { workdir: string };

export const remotePaths = {
  code: (workdir: string, codeHash: string) => path.posix.join(workdir, "shim", codeHash),
  data: (workdir: string, sha256: string, localPath: string) => path.posix.join(workdir, "data", sha256, path.basename(localPath)),
  runDir: (workdir: string, experiment: string, runId: string) => path.posix.join(workdir, "runs", experiment, runId),
};

/**
 * The job.json the host's shim reads: the run store's, with the run dir and the data file where
 * they are there. Everything else, the fingerprint included, is the same file (the shim's data
 * fingerprint hashes the data's content, not its path).
 */
export function remoteJob(job: JobSpec, where: { runDir: string; dataPath: string }): JobSpec {
  return { ...job, run_dir: where.runDir, data: { ...job.data, path: where.dataPath } };
}

/** An event from the host with its paths inside the run dir there rewritten to the run dir here. */
export function localizeEvent(event: ShimEvent, remoteDir: string, localDir: string): ShimEvent {
  const localize = (value: unknown): unknown => {
    if (typeof value === "string" && (value === remoteDir || value.startsWith(`${remoteDir}/`))) return localDir + value.slice(remoteDir.length);
    return value;
  };
  const copy: Record<string, unknown> = { ...event };
  for (const key of ["path", "adapter_path", "checkpoint"]) if (key in copy) copy[key] = localize(copy[key]);
  return copy as ShimEvent;
}
