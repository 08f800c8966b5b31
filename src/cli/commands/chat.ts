import { createInterface, type Interface } from "node:readline";
import { styleText } from "node:util";
import type { Command } from "commander";
import { FailureError, InterruptedError } from "../../errors.ts";
import { ChatProcess, chatDevice, planChat, type Reply } from "../../eval/chat.ts";
import { log } from "../../log.ts";
import { cliContext } from "../context.ts";

type ChatCliOptions = { once?: string; scene?: string; checkpoint?: string; base?: boolean };

const HELP = "/reset clears the conversation, /quit or Ctrl-D ends it";

/** `peftctl chat <run>`: talk to a run's adapter in the terminal (python -m peftshim chat). */
export function registerChat(program: Command): void {
  program
    .command("chat")
    .description("talk to a run's adapter with the training prompt template, the reply streamed as it is decoded")
    .argument("<run>", "run id or <experiment>/<run_id>")
    .option("--once <text>", "answer this one message, print the reply and exit (for scripts)")
    .option("--scene <text>", "the seeker's situation (the template's Situation line)", "")
    .option("--checkpoint <step-N>", "a checkpoint's adapter (checkpoints/step-N/adapter) instead of the final one")
    .option("--base", "the base model alone, without an adapter")
    .action(async (target: string, options: ChatCliOptions, command: Command) => {
      const context = cliContext(command);
      const chatTarget = planChat(context.runsDir, target, {
        checkpoint: options.checkpoint ?? null,
        base: Boolean(options.base),
        scene: options.scene ?? "",
      });
      const gpu = await chatDevice(context.runsDir, chatTarget.job, process.env);
      if (chatTarget.job.resources.gpus > 0 && gpu === null) log().warn("no free GPU: chatting on the CPU");
      const chat = ChatProcess.spawn(chatTarget, { gpu });
      const name = `${chatTarget.run.experiment}/${chatTarget.run.runId} (${chatTarget.label})`;
      if (options.once !== undefined) {
        await answerOnce(chat, options.once, context.json);
        return;
      }
      await converse(chat, name);
    });
}

async function answerOnce(chat: ChatProcess, text: string, json: boolean): Promise<void> {
  let interrupted = false;
  const stop = () => {
    interrupted = true;
    chat.stop();
  };
  process.once("SIGINT", stop);
  try {
    await chat.ready();
    const reply = await chat.send(text, () => {});
    await ended(chat);
    process.stdout.write(json ? `${JSON.stringify({ reply: reply.text, strategy: reply.strategy })}\n` : `${reply.text}\n`);
  } catch (error) {
    throw interrupted ? new InterruptedError("chat ended by Ctrl-C") : error;
  } finally {
    process.off("SIGINT", stop);
  }
}

/** The interactive loop: `you> ` lines in, `supporter> ` replies streamed out, until /quit, Ctrl-D or Ctrl-C. */
async function converse(chat: ChatProcess, name: string): Promise<void> {
  const say = (text: string) => process.stdout.write(text);
  let rl: Interface | undefined;
  let interrupted = false;
  const interrupt = () => {
    interrupted = true;
    chat.stop();
    rl?.close();
  };
  process.on("SIGINT", interrupt); // a piped stdin: the terminal's Ctrl-C arrives as a signal
  try {
    const device = await chat.ready();
    // Created only now, so that lines typed while the model loads wait in stdin instead of being dropped.
    rl = createInterface({ input: process.stdin, output: process.stdout, prompt: "you> ", terminal: Boolean(process.stdin.isTTY) });
    rl.on("SIGINT", interrupt); // a terminal in raw mode: readline sees Ctrl-C as a key
    say(`chatting with ${name} on ${device}; ${HELP}\n`);
    rl.prompt();
    for await (const raw of rl) {
      const line = raw.trim();
      if (line === "/quit") break;
      if (line === "/reset") {
        await chat.reset();
        say("(conversation cleared)\n");
      } else if (line !== "") {
        say("supporter> ");
        let streamed = "";
        const reply = await chat.send(line, (piece) => {
          streamed += piece;
          say(piece);
        });
        say(`${rest(streamed, reply)}${strategyText(reply.strategy)}\n`);
      }
      rl.prompt();
    }
    rl.close();
    if (!interrupted) await ended(chat);
  } catch (error) {
    if (!interrupted) throw error; // a stopped shim's broken reply is no error of its own
  } finally {
    process.off("SIGINT", interrupt);
    rl?.close();
  }
  if (interrupted) {
    say("\n");
    throw new InterruptedError("chat ended by Ctrl-C");
  }
}

/** What the streamed pieces left out of the reply (nothing, unless the shim could not stream it as it decoded). */
function rest(streamed: string, reply: Reply): string {
  if (reply.text.startsWith(streamed)) return reply.text.slice(streamed.length);
  return `\n${reply.text}`;
}

/** ` [Emotional Validation]`, dimmed on a terminal; nothing when the reply predicted no strategy. */
function strategyText(strategy: string | null): string {
  if (strategy === null) return "";
  const text = `[${strategy}]`;
  return ` ${process.stdout.isTTY ? styleText("dim", text) : text}`;
}

async function ended(chat: ChatProcess): Promise<void> {
  const code = await chat.close();
  if (code !== 0) throw new FailureError("PEFTCTL_JOB_FAILED", `the chat shim exited with ${code ?? "a signal"}`);
}
