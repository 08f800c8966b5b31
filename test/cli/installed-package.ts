/**
 * The package as a user gets it: `npm pack` (whose prepack builds dist/) into a temp dir and
 * `npm install` of the tarball into a temp prefix without devDependencies, so tsx is not there to
 * be loaded. Shared by test/cli/package.test.ts and bench/startup.ts.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const root = path.join(import.meta.dirname, "../..");

export type InstalledPackage = { dir: string; prefix: string; bin: string; tarball: string; remove: () => void };

function npm(args: string[], cwd: string): string {
  return execFileSync("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

export function installPackage(): InstalledPackage {
  const dir = mkdtempSync(path.join(tmpdir(), "peftctl-package-"));
  npm(["pack", "--pack-destination", dir], root);
  const tarball = path.join(dir, readdirSync(dir).find((name) => name.endsWith(".tgz"))!);
  const prefix = path.join(dir, "prefix");
  const install = (cacheMode: string) => npm(["install", "--prefix", prefix, cacheMode, "--omit=dev", tarball], dir);
  try {
    install("--offline"); // the dependencies from npm's cache, where an earlier install left them
  } catch {
    install("--prefer-offline"); // a cache without them: the registry, once
  }
  return {
    dir,
    prefix,
    tarball,
    bin: path.join(prefix, "node_modules", ".bin", "peftctl"),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
