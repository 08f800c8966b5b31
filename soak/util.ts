/** What every soak class shares: the CLI as a child process with a time bound, a seeded random source, scratch dirs. */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { projectRoot } from "../src/shim.ts";

export const root = projectRoot;
export const CLI = path.join(root, "bin", "peftctl.js");
export const VENV_PYTHON = path.join(root, ".venv", "bin", "python");

/** A stack trace of either side: node's "    at f (file:1:2)" frames or Python's traceback header. */
export const STACK_TRACE = /^\s+at .+[(:]\S+:\d+|Traceback \(most recent call last\)/m;

export type Exec = { code: number | null; signal: string | null; stdout: string; stderr: string; ms: number; timedOut: boolean };

/**
 * Runs a command to its end or to `timeoutMs`, then SIGKILLs its process group (the CLI's shim runs
 * in a group of its own, so a timed-out controller leaves nothing the next trial would meet).
 */
export function exec(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs: number; cwd?: string; nice?: boolean }): Promise<Exec> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: options.cwd ?? root, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        /* already gone */
      }
    }, options.timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started, timedOut });
    });
  });
}

/** `peftctl <args>` through node directly, so the pid is the controller's own. */
export function peftctl(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs: number; cwd?: string }): Promise<Exec> {
  return exec(process.execPath, [CLI, ...args], options);
}

export function python(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Exec> {
  return exec(VENV_PYTHON, args, { ...options, env: { ...process.env, PYTHONPATH: path.join(root, "python"), ...options.env } });
}

/** mulberry32: small, seedable, and the same sequence on every machine (Math.random is not seedable). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

export function int(random: () => number, low: number, high: number): number {
  return low + Math.floor(random() * (high - low + 1));
}

let scratchRoot: string | undefined;
/** One scratch tree per soak process; failures point into it, so it is kept. */
export function scratch(name: string): string {
  scratchRoot ??= mkdtempSync(path.join(os.tmpdir(), "peftctl-soak-"));
  const dir = path.join(scratchRoot, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs `work` over `items` with at most `limit` at a time, results in input order. */
export async function pool<T, R>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!, index);
    }
  });
  await Promise.all(lanes);
  return results;
}

/** The last lines of a command's output, for a failure's detail. */
export function tail(text: string, lines = 6): string {
  return text.trim().split("\n").slice(-lines).join("\n");
}
