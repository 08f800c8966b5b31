/** The Hub publisher: what the CLI and the run hook use. */
export { pushRun } from "./push-run.ts";
export { autoPushRun } from "./auto-push.ts";
export { planPush } from "./plan-push.ts";
export { resolveHubToken } from "./hub-token.ts";
export { hubEndpoint } from "./hub-endpoint.ts";
export { maskToken } from "./mask-token.ts";
export type { PushOptions, PushPlan, PushResult, PushSuccess, PushFailure, PushTarget, PushFile } from "./types.ts";
