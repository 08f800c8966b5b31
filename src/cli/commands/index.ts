import type { Command } from "commander";
import { registerChat } from "./chat.ts";
import { registerEval } from "./eval.ts";
import { registerGc } from "./gc.ts";
import { registerHosts } from "./hosts.ts";
import { registerHumanEval } from "./human-eval.ts";
import { registerLogs } from "./logs.ts";
import { registerLs } from "./ls.ts";
import { registerPlan } from "./plan.ts";
import { registerPush } from "./push.ts";
import { registerReport } from "./report.ts";
import { registerResume } from "./resume.ts";
import { registerRun } from "./run.ts";
import { registerScore } from "./score.ts";
import { registerStatus } from "./status.ts";
import { registerStop } from "./stop.ts";
import { registerTable } from "./table.ts";
import { registerValidate } from "./validate.ts";

/** Each command lives in its own file (src/cli/commands/<name>.ts); this is the order of `--help`. */
export const commands: Array<(program: Command) => void> = [
  registerValidate,
  registerPlan,
  registerRun,
  registerStatus,
  registerLogs,
  registerStop,
  registerHosts,
  registerResume,
  registerLs,
  registerGc,
  registerPush,
  registerEval,
  registerChat,
  registerScore,
  registerHumanEval,
  registerTable,
  registerReport,
];
