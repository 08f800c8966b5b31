import type { Command } from "commander";
import { loadExperiment } from "../../config/load.ts";
import { FailureError, UserError } from "../../errors.ts";
import { hostProblems, reportHosts } from "../../launch/ssh/hosts-report.ts";
import { renderHostsTable } from "../../report/hosts-table.ts";
import { cliContext } from "../context.ts";
import { setOption } from "../options.ts";

/** The resources.ssh of a config, or a user error saying what to add. */
async function sshSettingsOf(file: string, set: string[]) {
  const { experiment, configPath } = await loadExperiment(file, { set });
  const ssh = experiment.resources.ssh;
  if (!ssh) throw new UserError("PEFTCTL_USAGE", `${configPath}: no resources.ssh: it lists the SSH hosts (README: Running on SSH hosts)`, []);
  return { ssh, inContainer: experiment.resources.container !== undefined };
}

/** `peftctl hosts [check] <config>`: the SSH hosts of a config with GPUs, free slots and library versions. */
export function registerHosts(program: Command): void {
  const hosts = program.command("hosts").description("the SSH hosts of a config (resources.ssh): GPUs, free slots, torch/transformers/peft versions");
  const action = (check: boolean) => async (file: string, options: { set: string[] }, command: Command) => {
    const context = cliContext(command);
    const { ssh, inContainer } = await sshSettingsOf(file, options.set);
    const reports = await reportHosts(ssh, context.runsDir);
    const problems = hostProblems(reports, { checkPython: !inContainer });
    if (context.json) process.stdout.write(`${JSON.stringify({ hosts: reports, problems }, null, 2)}\n`);
    else process.stdout.write(renderHostsTable(reports));
    if (check && problems.length > 0) throw new FailureError("PEFTCTL_SSH", `hosts check: ${problems.length} problem(s)`, problems);
    if (check && !context.json) process.stdout.write(`hosts check: ${reports.length} host(s) ready\n`);
  };
  hosts
    .command("list", { isDefault: true })
    .description("list the hosts (the default)")
    .argument("<config>", "experiment config (YAML) with resources.ssh")
    .addOption(setOption())
    .action(action(false));
  hosts
    .command("check")
    .description("like list, and exit 1 when a host does not answer or a library version differs from python/requirements.txt")
    .argument("<config>", "experiment config (YAML) with resources.ssh")
    .addOption(setOption())
    .action(action(true));
}
