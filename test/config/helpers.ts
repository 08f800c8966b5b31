import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { checkExperiment, formatDiagnostic, type LoadOptions } from "../../src/config/index.ts";
import { main } from "../../src/cli/main.ts";
import { afterAll } from "vitest";

const trees: string[] = [];
afterAll(async () => {
  await Promise.all(trees.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** Writes `{ "a/b.yaml": "text" }` under a fresh temp directory and returns the directory. */
export async function writeTree(files: Record<string, string | Uint8Array>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "peftctl-config-"));
  trees.push(dir);
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), content);
  }
  return dir;
}

/** One ExTES dialogue: a data file `validate`'s check of the first records passes. */
export const ONE_DIALOGUE = JSON.stringify([{ scene: "Work", description: "Deadlines.", content: [{ User: "I am tired." }, { AI: "That sounds hard.", "AI Strategy": "Empathetic Statements" }] }]);

/** A temp tree with a one-dialogue data.json next to the configs, so that data.path problems stay out of the way. */
export function fixture(files: Record<string, string | Uint8Array>): Promise<string> {
  return writeTree({ "data.json": ONE_DIALOGUE, ...files });
}

/** Every diagnostic of `dir/file`, formatted, with the temp directory shown as `<dir>`. */
export async function diagnosticsOf(dir: string, file: string, options: LoadOptions = {}): Promise<string[]> {
  const result = await checkExperiment(path.join(dir, file), { env: {}, ...options });
  return result.diagnostics.map((d) => formatDiagnostic(d).split(dir).join("<dir>"));
}

/** Runs the CLI in this process, capturing what it writes. */
export async function runCli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const originalOut = process.stdout.write.bind(process.stdout);
  const originalErr = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await main(argv);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = originalOut;
    process.stderr.write = originalErr;
  }
}

/** A minimal valid config. */
export const MINIMAL = `name: t
model:
  base: builtin:tiny-llama
method:
  kind: lora
data:
  format: extes
  path: data.json
`;
