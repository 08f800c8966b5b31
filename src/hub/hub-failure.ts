import { HubApiError } from "@huggingface/hub";
import { FailureError, type PeftctlError } from "../errors.ts";
import { describeError } from "./describe-error.ts";
import { maskToken } from "./mask-token.ts";
import type { HubToken, PushTarget } from "./types.ts";

function redact(text: string, token: HubToken | undefined): string {
  return token ? text.split(token.value).join(maskToken(token.value)) : text;
}

/**
 * Turns whatever a Hub call threw into a message a user can act on: which token (masked, and where
 * it came from), which repo, what to do. Exit code 1; the raw token never reaches the text.
 */
export function hubFailure(error: unknown, context: { token?: HubToken; target: PushTarget; action: string }): PeftctlError {
  const { token, target, action } = context;
  const tokenName = token ? `${maskToken(token.value)} (from ${token.source})` : "(none)";
  const where = `${target.repo}${target.branch === "main" ? "" : ` branch ${target.branch}`} at ${target.endpoint}`;
  const retry = "the Hub applies a commit whole or not at all: running the same `peftctl push` again completes it";

  if (error instanceof HubApiError) {
    const serverSays = redact(error.message, token);
    if (error.statusCode === 401) {
      return new FailureError("PEFTCTL_HUB_AUTH", `the Hub rejected the token ${tokenName} while ${action} for ${where}`, [
        `the Hub said: ${serverSays}`,
        `check that the token is valid and not revoked (${target.endpoint}/settings/tokens), then set HF_TOKEN or run \`huggingface-cli login\``,
      ]);
    }
    if (error.statusCode === 403) {
      return new FailureError("PEFTCTL_HUB_AUTH", `the token ${tokenName} may not write to ${where} (${action})`, [
        `the Hub said: ${serverSays}`,
        `use a token with write access to '${target.repo.split("/")[0]}' (a fine-grained token needs write permission on that repo or organisation)`,
      ]);
    }
    if (error.statusCode === 404) {
      return new FailureError("PEFTCTL_HUB_FAILED", `${where} was not found, or the token ${tokenName} cannot see it (${action})`, [
        `the Hub said: ${serverSays}`,
        "check the repo name (--repo, or hub.repo in the config) and that the token belongs to a member of its organisation",
      ]);
    }
    return new FailureError("PEFTCTL_HUB_FAILED", `the Hub answered ${error.statusCode} while ${action} for ${where}`, [
      `the Hub said: ${serverSays}`,
      retry,
    ]);
  }
  const message = redact(describeError(error), token);
  if (error instanceof TypeError && /must start with 'hf_'/.test(message)) {
    return new FailureError("PEFTCTL_HUB_AUTH", `the token ${tokenName} is not a Hugging Face access token (they start with hf_)`, [
      "set HF_TOKEN to a token from https://huggingface.co/settings/tokens, or run `huggingface-cli login`",
    ]);
  }
  return new FailureError("PEFTCTL_HUB_FAILED", `could not finish ${action} for ${where}: ${message}`, [retry]);
}
