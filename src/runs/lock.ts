/**
 * A per-run lock so two controllers never drive one run: <run_dir>/.lock holds the holder's pid,
 * process start time and hostname. It is created with O_EXCL; a lock whose holder is dead (same
 * host, pid gone or reused) is taken over; a live holder is a user error (exit 2) that names it.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { UserError } from "../errors.ts";
import { isSameProcessAlive, processStartTime } from "./proc.ts";
import { runFile } from "./store.ts";

export type LockHolder = { pid: number; start_time: number | null; host: string; acquired_at: string; command?: string };

export type RunLock = { dir: string; holder: LockHolder; release(): void };

function readHolder(file: string): LockHolder | undefined {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as LockHolder;
  } catch {
    return undefined; // torn or empty: its writer died between create and write
  }
}

/** Whether a recorded holder still runs. A holder on another host cannot be checked and counts as alive. */
export function isHolderAlive(holder: LockHolder): boolean {
  if (holder.host !== os.hostname()) return true;
  return isSameProcessAlive(holder.pid, holder.start_time);
}

export function lockHolder(dir: string): LockHolder | undefined {
  const file = runFile(dir, "lock");
  return existsSync(file) ? readHolder(file) : undefined;
}

export function acquireRunLock(dir: string, command = "peftctl run"): RunLock {
  const file = runFile(dir, "lock");
  const holder: LockHolder = {
    pid: process.pid,
    start_time: processStartTime(process.pid),
    host: os.hostname(),
    acquired_at: new Date().toISOString(),
    command,
  };
  for (let tries = 0; tries < 3; tries++) {
    try {
      writeFileSync(file, JSON.stringify(holder), { flag: "wx" });
      return {
        dir,
        holder,
        release() {
          const current = readHolder(file);
          if (current && current.pid === holder.pid && current.host === holder.host) rmSync(file, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const existing = readHolder(file);
    if (existing && existing.pid === process.pid && existing.host === holder.host) {
      throw new UserError("PEFTCTL_RUN_LOCKED", `run ${dir} is already driven by this process`);
    }
    if (existing && isHolderAlive(existing)) {
      throw new UserError("PEFTCTL_RUN_LOCKED", `run ${dir} is driven by another controller: pid ${existing.pid} on ${existing.host} (${existing.command ?? "peftctl"}, since ${existing.acquired_at})`, [
        "wait for it to finish, or stop it with 'peftctl stop <run>' (or end that process), then run again",
      ]);
    }
    // Stale: the holder died (kill -9, reboot). Take it over.
    rmSync(file, { force: true });
  }
  throw new UserError("PEFTCTL_RUN_LOCKED", `could not take the lock of run ${dir} (another controller keeps taking it)`);
}
