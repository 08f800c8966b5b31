/**
 * Rules about which part may do what (docs/ARCHITECTURE.md), checked on the source text:
 * - the core knows no screen: src/launch never writes to stdout/stderr, never logs, never renders;
 * - run files are written by the run store (src/runs) and the executors, nobody else.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const root = path.resolve(import.meta.dirname, "..");

/** The .ts files under `dir`, as paths relative to the repository root. */
function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true })
    .flatMap((entry) => {
      const child = path.join(dir, entry.name);
      if (entry.isDirectory()) return sourceFiles(child);
      return entry.isFile() && entry.name.endsWith(".ts") ? [child] : [];
    })
    .sort();
}

type Import = { names: string[]; from: string };

/** The static imports of a file: what it names (or "*" for a namespace or default import) and from where. */
function importsOf(text: string): Import[] {
  const imports: Import[] = [];
  for (const match of text.matchAll(/^import\s+(?:type\s+)?([^;]*?)\s+from\s+"([^"]+)"/gms)) {
    const clause = match[1]!;
    const braces = /\{([^}]*)\}/.exec(clause);
    const names = braces ? braces[1]!.split(",").map((name) => name.trim().replace(/^type\s+/, "").split(/\s+as\s+/)[0]!).filter(Boolean) : [];
    if (!braces || /^[\w$]+\s*,|^\*/.test(clause.trim())) names.push("*");
    imports.push({ names, from: match[2]! });
  }
  return imports;
}

/** The repository path an import points at ("" for a package). */
function resolved(file: string, from: string): string {
  return from.startsWith(".") ? path.relative(root, path.resolve(root, path.dirname(file), from)) : "";
}

describe("architecture", () => {
  const launchFiles = sourceFiles("src/launch");

  it("finds the launch code", () => {
    expect(launchFiles).toContain(path.join("src", "launch", "scheduler.ts"));
  });

  it("src/launch shows nothing: no src/report, no src/log.ts, no process.stdout/stderr, no console", () => {
    const offences: string[] = [];
    for (const file of launchFiles) {
      const text = readFileSync(path.join(root, file), "utf8");
      for (const { from } of importsOf(text)) {
        const target = resolved(file, from);
        if (target.startsWith(`src${path.sep}report${path.sep}`) || target === path.join("src", "log.ts")) offences.push(`${file} imports ${from}`);
      }
      for (const word of ["process.stdout", "process.stderr", "console."]) {
        if (text.includes(word)) offences.push(`${file} mentions ${word}`);
      }
    }
    expect(offences).toEqual([]);
  });

  it("only src/runs and the executors import the node:fs functions that write", () => {
    const writing = new Set(["write", "writeFile", "append", "appendFile", "mkdir", "mkdtemp", "rm", "rmdir", "unlink", "rename", "copyFile", "cp", "truncate", "ftruncate", "symlink", "link", "chmod", "chown", "utimes", "createWriteStream"]);
    const offences: string[] = [];
    for (const file of sourceFiles("src")) {
      if (file.startsWith(`src${path.sep}runs${path.sep}`)) continue;
      const text = readFileSync(path.join(root, file), "utf8");
      if (/\bimplements Executor\b/.test(text)) continue;
      for (const { names, from } of importsOf(text)) {
        if (!/^(node:)?fs(\/promises)?$/.test(from)) continue;
        for (const name of names) {
          if (name === "*" || writing.has(name.replace(/Sync$/, ""))) offences.push(`${file} imports ${name} from ${from}`);
        }
      }
    }
    expect(offences).toEqual([]);
  });
});
