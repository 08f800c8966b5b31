import { describe, expect, it } from "vitest";
import { createRetryingFetch } from "../../src/hub/retrying-fetch.ts";

type Step = Response | Error | "hang";

/** A transport that answers from a script and records what it was asked. */
function scripted(steps: Step[]) {
  const calls: Array<{ url: string; body: unknown }> = [];
  const transport = (async (input: string | URL | Request, init?: RequestInit) => {
    calls.push({ url: String(input), body: init?.body });
    const step = steps.shift() ?? new Response("ok");
    if (step === "hang") {
      return new Promise<Response>((_, reject) => init?.signal?.addEventListener("abort", () => reject(init.signal!.reason)));
    }
    if (step instanceof Error) throw step;
    return step;
  }) as typeof fetch;
  return { transport, calls };
}

const fast = { baseDelayMs: 1, maxDelayMs: 5_000, requestTimeoutMs: 200 };

/** Headers at once, then a body that never ends (until the request is aborted). */
function stalledBody(init?: RequestInit): Response {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode("{"));
      init?.signal?.addEventListener("abort", () => controller.error(init.signal!.reason));
    },
  });
  return new Response(body, { status: 200, headers: { "Content-Type": "application/json" } });
}

describe("createRetryingFetch", () => {
  it("bounds reading the body too: a body stalled after its headers is retried, then given up on", async () => {
    let calls = 0;
    const transport = (async (_input: string | URL | Request, init?: RequestInit) => {
      calls += 1;
      return calls < 3 ? stalledBody(init) : new Response('{"ok": true}', { status: 200 });
    }) as typeof fetch;
    const retries: string[] = [];
    const fetchWithRetry = createRetryingFetch({ ...fast, fetch: transport, onRetry: ({ reason }) => retries.push(reason) });
    const response = await fetchWithRetry("http://hub/api/whoami-v2");
    expect(await response.json()).toEqual({ ok: true });
    expect(retries).toEqual(["no answer within 200 ms", "no answer within 200 ms"]);

    const always = createRetryingFetch({ ...fast, attempts: 2, fetch: (async (_i: string | URL | Request, init?: RequestInit) => stalledBody(init)) as typeof fetch });
    const started = Date.now();
    await expect(always("http://hub/api/commit")).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("retries 5xx and 429 and dropped connections, replaying the body", async () => {
    const { transport, calls } = scripted([new Response("x", { status: 502 }), new TypeError("fetch failed"), new Response("x", { status: 429 }), new Response("done")]);
    const retries: string[] = [];
    const fetchWithRetry = createRetryingFetch({ ...fast, fetch: transport, onRetry: ({ reason }) => retries.push(reason) });
    const response = await fetchWithRetry("http://hub/api/x", { method: "POST", body: "payload" });
    expect(await response.text()).toBe("done");
    expect(calls.map((c) => c.body)).toEqual(["payload", "payload", "payload", "payload"]);
    expect(retries).toEqual(["HTTP 502", "fetch failed", "HTTP 429"]);
  });

  it("waits what Retry-After says (capped by maxDelayMs)", async () => {
    const delays: number[] = [];
    const { transport } = scripted([new Response("x", { status: 429, headers: { "Retry-After": "3" } }), new Response("x", { status: 503, headers: { "Retry-After": "0" } })]);
    const fetchWithRetry = createRetryingFetch({ ...fast, maxDelayMs: 50, fetch: transport, onRetry: ({ delayMs }) => delays.push(delayMs) });
    expect((await fetchWithRetry("http://hub/a")).status).toBe(200);
    expect(delays).toEqual([50, 0]);
  });

  it("aborts an attempt that hangs and tries again", async () => {
    const { transport, calls } = scripted(["hang", new Response("late")]);
    const response = await createRetryingFetch({ ...fast, fetch: transport })("http://hub/slow");
    expect(await response.text()).toBe("late");
    expect(calls).toHaveLength(2);
  });

  it("gives a large upload one more second per MiB before calling it hung", async () => {
    const calls: number[] = [];
    const slowUpload = (async () => {
      calls.push(Date.now());
      await new Promise((resolve) => setTimeout(resolve, 400));
      return new Response("stored");
    }) as typeof fetch;
    const body = new Blob([new Uint8Array(1024 * 1024)]);
    const response = await createRetryingFetch({ ...fast, requestTimeoutMs: 100, fetch: slowUpload })("http://lfs/put", { method: "PUT", body });
    expect(await response.text()).toBe("stored");
    expect(calls).toHaveLength(1);
  });

  it("hands back the last answer after the last attempt, and does not retry 4xx", async () => {
    const { transport, calls } = scripted(Array.from({ length: 5 }, () => new Response("busy", { status: 503 })));
    expect((await createRetryingFetch({ ...fast, attempts: 3, fetch: transport })("http://hub/a")).status).toBe(503);
    expect(calls).toHaveLength(3);
    const notFound = scripted([new Response("no", { status: 404 })]);
    expect((await createRetryingFetch({ ...fast, fetch: notFound.transport })("http://hub/b")).status).toBe(404);
    expect(notFound.calls).toHaveLength(1);
  });

  it("stops retrying when the total time is spent, and never retries after the caller aborts", async () => {
    const { transport, calls } = scripted([new TypeError("fetch failed"), new TypeError("fetch failed")]);
    const fetchWithRetry = createRetryingFetch({ ...fast, baseDelayMs: 1000, totalTimeMs: 10, random: () => 1, fetch: transport });
    await expect(fetchWithRetry("http://hub/a")).rejects.toThrow(/gave up on \/a after 1 attempts/);
    expect(calls).toHaveLength(1);

    const caller = new AbortController();
    const hanging = scripted(["hang", new Response("never")]);
    const pending = createRetryingFetch({ ...fast, requestTimeoutMs: 10_000, fetch: hanging.transport })("http://hub/b", { signal: caller.signal });
    caller.abort(new Error("user pressed ^C"));
    await expect(pending).rejects.toThrow("user pressed ^C");
    expect(hanging.calls).toHaveLength(1);
  });
});
