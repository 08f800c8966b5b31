/**
 * Errors with stable codes. Every error a user can cause is a PeftctlError with exit code 2;
 * the one top-level handler in src/cli/main.ts turns them into messages and exit codes, so no
 * user error ever reaches the terminal as a stack trace.
 */

export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  interrupted: 130,
} as const;

export type ErrorCode =
  | "PEFTCTL_CONFIG_INVALID"
  | "PEFTCTL_CONFIG_NOT_FOUND"
  | "PEFTCTL_USAGE"
  | "PEFTCTL_RUN_NOT_FOUND"
  | "PEFTCTL_RUN_LOCKED"
  | "PEFTCTL_DATA_INVALID"
  | "PEFTCTL_JOB_FAILED"
  | "PEFTCTL_HUB_AUTH"
  | "PEFTCTL_HUB_FAILED"
  | "PEFTCTL_SLURM"
  | "PEFTCTL_SSH"
  | "PEFTCTL_INTERRUPTED"
  | "PEFTCTL_INTERNAL";

export class PeftctlError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  /** Extra lines shown under the message (e.g. one per config error). */
  readonly details: readonly string[];

  constructor(code: ErrorCode, message: string, options: { exitCode?: number; details?: readonly string[]; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "PeftctlError";
    this.code = code;
    this.exitCode = options.exitCode ?? ExitCode.usage;
    this.details = options.details ?? [];
  }
}

/** A mistake in what the user gave us: arguments, config, data. Exit code 2. */
export class UserError extends PeftctlError {
  constructor(code: ErrorCode, message: string, details: readonly string[] = []) {
    super(code, message, { exitCode: ExitCode.usage, details });
    this.name = "UserError";
  }
}

/** Something ran and failed (a job, a push): exit code 1, no stack trace. */
export class FailureError extends PeftctlError {
  constructor(code: ErrorCode, message: string, details: readonly string[] = [], cause?: unknown) {
    super(code, message, { exitCode: ExitCode.failure, details, cause });
    this.name = "FailureError";
  }
}

export class InterruptedError extends PeftctlError {
  constructor(message = "interrupted") {
    super("PEFTCTL_INTERRUPTED", message, { exitCode: ExitCode.interrupted });
    this.name = "InterruptedError";
  }
}
