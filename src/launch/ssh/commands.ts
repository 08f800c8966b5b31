/**
 * The argv of every ssh and rsync call the SSH executor makes (pure: no I/O).
 *
 * Every call passes `-F config_file` when the config names one, and BatchMode=yes, so a host that
 * wants a password or an unknown host key fails at once instead of prompting. Host keys are checked
 * as the user's ssh config says: nothing here sets StrictHostKeyChecking or UserKnownHostsFile
 * (test/ssh/commands.test.ts holds that). ControlMaster keeps one connection per host that every
 * call reuses (a call then costs a round trip, not a handshake), on a socket under the controller's
 * temp dir; ServerAlive notices a dead link within about `aliveSeconds` x 3.
 */
import os from "node:os";
import path from "node:path";

export type SshTarget = {
  /** An address, user@address, or a Host alias of the ssh config. */
  host: string;
  /** The ssh config passed as -F (resources.ssh.config_file). */
  configFile?: string;
};

/**
 * The ControlMaster socket: short (socket paths are limited to ~104 bytes); %C is ssh's hash of
 * host, port and user. ssh creates the socket readable by this user alone.
 */
export function controlPath(): string {
  return path.join(os.tmpdir(), `peftctl-ssh-${process.getuid?.() ?? "user"}-%C`);
}

/** ssh does not expand `~` in -F's argument (only a shell would): a config file may be written `~/.ssh/x`. */
export function expandHome(file: string): string {
  return file === "~" || file.startsWith("~/") ? path.join(os.homedir(), file.slice(1)) : file;
}

export type ConnectionOptions = { connectTimeoutSeconds?: number; aliveSeconds?: number };

/** The options every ssh process gets (also rsync's `-e ssh ...`). */
export function sshOptions(target: SshTarget, options: ConnectionOptions = {}): string[] {
  const args: string[] = [];
  if (target.configFile) args.push("-F", expandHome(target.configFile));
  const alive = options.aliveSeconds ?? 5;
  args.push(
    "-o", "BatchMode=yes",
    "-o", `ConnectTimeout=${options.connectTimeoutSeconds ?? 10}`,
    "-o", `ServerAliveInterval=${alive}`,
    "-o", "ServerAliveCountMax=3",
    "-o", "ControlMaster=auto",
    "-o", `ControlPath=${controlPath()}`,
    "-o", "ControlPersist=120",
  );
  return args;
}

/**
 * Quotes a word for the remote POSIX shell (ssh runs the command line through the login shell):
 * single quotes, with each ' written as '\''. Done here because it is one rule, exactly specified
 * by POSIX, and the only quoting ssh needs.
 */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export function remoteCommandLine(argv: readonly string[]): string {
  return argv.map(shellQuote).join(" ");
}

/** `ssh [options] host -- <command line>`. */
export function sshArgs(target: SshTarget, argv: readonly string[], options: ConnectionOptions = {}): string[] {
  return [...sshOptions(target, options), target.host, "--", remoteCommandLine(argv)];
}

/** The rsync argv copying `sources` to `destination`; a remote side is written `remote:<path>`. */
export function rsyncArgs(
  target: SshTarget,
  sources: readonly string[],
  destination: string,
  options: { exclude?: readonly string[]; delete?: boolean; relative?: boolean; connection?: ConnectionOptions } = {},
): string[] {
  const ssh = ["ssh", ...sshOptions(target, options.connection)].map(shellQuote).join(" ");
  const args = ["-a", "--partial-dir=.rsync-partial", "-e", ssh];
  if (options.relative) args.push("--relative");
  if (options.delete) args.push("--delete");
  for (const pattern of options.exclude ?? []) args.push("--exclude", pattern);
  const side = (p: string) => (p.startsWith("remote:") ? `${target.host}:${p.slice("remote:".length)}` : p);
  // rsync's --protect-args: remote paths reach the far side unsplit by its shell.
  return ["--protect-args", ...args, ...sources.map(side), side(destination)];
}
