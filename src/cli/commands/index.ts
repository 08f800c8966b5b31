import type { Command } from "commander";

/** Each command lives in its own file (src/cli/commands/<name>.ts) and is listed here. */
export const commands: Array<(program: Command) => void> = [];
import { registerValidate } from "./validate.ts"; commands.push(registerValidate);
import { registerPush } from "./push.ts"; commands.push(registerPush);
import { registerPlan } from "./plan.ts"; commands.push(registerPlan);
import { registerRun } from "./run.ts"; import { registerStatus } from "./status.ts"; import { registerLogs } from "./logs.ts"; import { registerStop } from "./stop.ts"; import { registerResume } from "./resume.ts"; import { registerLs } from "./ls.ts"; import { registerGc } from "./gc.ts"; commands.push(registerRun, registerStatus, registerLogs, registerStop, registerResume, registerLs, registerGc);
