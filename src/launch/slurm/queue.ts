/**
 * One squeue call per interval for every job the controller follows, however many: a sweep of 100
 * queued jobs costs the cluster what one job costs (slurmctld is shared by everyone on it).
 */
import { queueStates, type QueueEntry } from "./commands.ts";

/** What a follower hears each round: its entry, `undefined` when slurmctld no longer knows the job, or an error. */
export type QueueReport = { entry: QueueEntry | undefined } | { error: unknown };

export class SlurmQueue {
  private readonly followers = new Map<string, Set<(report: QueueReport) => void>>();
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly pollMs: number,
  ) {}

  /** Calls `listener` after every poll until the returned function is called. */
  follow(jobId: string, listener: (report: QueueReport) => void): () => void {
    let set = this.followers.get(jobId);
    if (!set) this.followers.set(jobId, (set = new Set()));
    set.add(listener);
    this.timer ??= setInterval(() => void this.poll(), this.pollMs);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.followers.delete(jobId);
      if (this.followers.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  private async poll(): Promise<void> {
    if (this.polling) return; // a slow slurmctld: skip a round rather than pile up calls
    this.polling = true;
    const ids = [...this.followers.keys()];
    let reports: (id: string) => QueueReport;
    try {
      const states = await queueStates(ids, this.env);
      reports = (id) => ({ entry: states.get(id) });
    } catch (error) {
      reports = () => ({ error });
    } finally {
      this.polling = false;
    }
    for (const id of ids) for (const listener of [...(this.followers.get(id) ?? [])]) listener(reports(id));
  }
}
