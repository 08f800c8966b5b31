/** What the remote benchmarks (bench/remote.ts, bench/remote-ssh.ts) measure per job: start() to its first event. */
import { performance } from "node:perf_hooks";
import type { Executor } from "../src/launch/executor.ts";

/** Wraps an executor so that each attempt's milliseconds from start() to its first event land in `samples`. */
export function timedFirstEvents(executor: Executor, samples: number[]): Executor {
  const wrapped = Object.create(executor) as Executor;
  wrapped.start = async (request) => {
    const t0 = performance.now();
    const handle = await executor.start(request);
    let seen = false;
    handle.onEvent(() => {
      if (seen) return;
      seen = true;
      samples.push(performance.now() - t0);
    });
    return handle;
  };
  return wrapped;
}
