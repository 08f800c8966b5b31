/**
 * A fetch that retries what a retry can fix: 429 and 5xx answers, dropped connections, requests that
 * hang past a per-attempt timeout. @huggingface/hub takes it through its `fetch` parameter, so every
 * request it makes (API calls and LFS uploads alike) gets the same policy. Written here because the
 * client has no retry policy of its own and the few lines are clearer than another dependency.
 */
import { describeError } from "./describe-error.ts";

export type RetryOptions = {
  /** Attempts per request, the first included (default 5). */
  attempts?: number;
  /** First back-off step; each retry doubles it, full jitter (default 500 ms). */
  baseDelayMs?: number;
  /** Cap of one wait, Retry-After included (default 30 s). */
  maxDelayMs?: number;
  /** No retry starts after this much time since the first attempt (default 5 min). */
  totalTimeMs?: number;
  /**
   * An attempt that has not answered by then is aborted and retried (default 2 min), plus one second
   * per MiB of request body so that a large LFS upload on a slow link is not cut off.
   */
  requestTimeoutMs?: number;
  fetch?: typeof fetch;
  /** Called before each wait (logging). */
  onRetry?: (info: { url: string; attempt: number; delayMs: number; reason: string }) => void;
  random?: () => number;
};

const RETRYABLE_STATUS = (status: number) => status === 429 || status === 408 || (status >= 500 && status !== 501);

function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** 1 MiB/s: the slowest upload a push still expects to finish. */
const MIN_UPLOAD_BYTES_PER_MS = (1024 * 1024) / 1000;

function bodySize(body: RequestInit["body"]): number {
  if (body instanceof Blob) return body.size;
  if (typeof body === "string") return body.length;
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return body.byteLength;
  return 0;
}

export function createRetryingFetch(options: RetryOptions = {}): typeof fetch {
  const attempts = Math.max(1, options.attempts ?? 5);
  const baseDelayMs = options.baseDelayMs ?? 500;
  const maxDelayMs = options.maxDelayMs ?? 30_000;
  const totalTimeMs = options.totalTimeMs ?? 300_000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 120_000;
  const inner = options.fetch ?? globalThis.fetch;
  const random = options.random ?? Math.random;

  return async function retryingFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const callerSignal = init?.signal ?? undefined;
    // A stream body is consumed by the first attempt and cannot be sent again.
    const replayable = !(init?.body instanceof ReadableStream) && !(input instanceof Request && input.body);
    const started = Date.now();
    const attemptTimeoutMs = requestTimeoutMs + bodySize(init?.body) / MIN_UPLOAD_BYTES_PER_MS;

    for (let attempt = 1; ; attempt++) {
      const timeout = new AbortController();
      const timer = setTimeout(() => timeout.abort(new Error(`no answer within ${attemptTimeoutMs} ms`)), attemptTimeoutMs);
      const signal = callerSignal ? AbortSignal.any([callerSignal, timeout.signal]) : timeout.signal;
      let reason: string;
      let delayHint: number | undefined;
      let response: Response | undefined;
      try {
        response = await inner(input, { ...init, signal });
        // The answer is read within the attempt's time too: a body that stalls after its headers
        // would otherwise hang the caller's read for good (found by `make soak`). Hub answers are small.
        if (!RETRYABLE_STATUS(response.status) || attempt >= attempts || !replayable) return await buffered(response);
        reason = `HTTP ${response.status}`;
        delayHint = retryAfterMs(response.headers.get("Retry-After"));
      } catch (error) {
        if (callerSignal?.aborted) throw error;
        const timedOut = timeout.signal.aborted;
        const network = error instanceof TypeError; // undici: "fetch failed" for resets, refusals, DNS
        if ((!timedOut && !network) || attempt >= attempts || !replayable) throw error;
        reason = timedOut ? `no answer within ${Math.round(attemptTimeoutMs)} ms` : describeError(error);
      } finally {
        clearTimeout(timer);
      }

      const backoff = random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
      const delayMs = Math.min(maxDelayMs, delayHint ?? backoff);
      if (Date.now() - started + delayMs > totalTimeMs) {
        // The caller sees the last answer itself (status, message), or why there was none.
        if (response) return response;
        throw new TypeError(`gave up on ${new URL(url).pathname} after ${attempt} attempts in ${Date.now() - started} ms: ${reason}`);
      }
      await response?.body?.cancel().catch(() => undefined);
      options.onRetry?.({ url, attempt, delayMs, reason });
      await new Promise<void>((resolve, reject) => {
        const wait = setTimeout(resolve, delayMs);
        callerSignal?.addEventListener("abort", () => {
          clearTimeout(wait);
          reject(callerSignal.reason);
        }, { once: true });
      });
    }
  };
}

/** The response with its body read to the end (null-body statuses keep no body). */
async function buffered(response: Response): Promise<Response> {
  const body = [101, 204, 205, 304].includes(response.status) ? null : await response.arrayBuffer();
  const copy = new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  Object.defineProperties(copy, { url: { value: response.url }, redirected: { value: response.redirected } });
  return copy;
}
