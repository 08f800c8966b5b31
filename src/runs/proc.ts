/**
 * Process identity on Linux: a pid plus its start time (clock ticks since boot, /proc/<pid>/stat
 * field 22). A pid alone is not enough to find an orphaned shim or a lock holder again, because
 * pids are reused; the pair is.
 */
import { readFileSync } from "node:fs";

/** Start time of a live process, or null when it does not exist (or /proc is unavailable). */
export function processStartTime(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) is in parentheses and may itself hold spaces or parentheses.
    const afterName = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // afterName[0] is field 3 (state); field 22 is afterName[19].
    const state = afterName[0];
    if (state === "Z" || state === "X") return null; // a zombie has exited already
    const start = Number(afterName[19]);
    return Number.isFinite(start) ? start : null;
  } catch {
    return null;
  }
}

/** True when the process that had this pid and start time is still running. */
export function isSameProcessAlive(pid: number | null | undefined, startTime: number | null | undefined): boolean {
  if (!pid || pid <= 0) return false;
  const current = processStartTime(pid);
  if (current === null) return false;
  return startTime === null || startTime === undefined ? true : current === startTime;
}

/** Polls until that process has exited; false when it still runs after `ms`. */
export async function waitForExit(pid: number | null | undefined, startTime: number | null | undefined, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!isSameProcessAlive(pid, startTime)) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return !isSameProcessAlive(pid, startTime);
}

/** Sends a signal to a process group (the shim, torchrun and its workers); false when it no longer exists. */
export function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  }
}
