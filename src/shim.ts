import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The project root (where python/ and .venv/ live). */
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** package.json's version: `peftctl --version`, and the shim's check that it is the same major.minor (python/peftshim/version.py). */
export const peftctlVersion = (JSON.parse(readFileSync(path.join(projectRoot, "package.json"), "utf8")) as { version: string }).version;

/**
 * The Python that runs the shim: $PEFTCTL_PYTHON, else the project's .venv (made by `make`),
 * else python3 on PATH (a GPU host with the requirements installed system-wide).
 */
export function shimPython(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PEFTCTL_PYTHON) return env.PEFTCTL_PYTHON;
  const venvPython = path.join(projectRoot, ".venv", "bin", "python");
  return existsSync(venvPython) ? venvPython : "python3";
}

/** Environment for a shim process: python/ on PYTHONPATH so `python -m peftshim` resolves. */
export function shimEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const pythonDir = path.join(projectRoot, "python");
  return {
    ...env,
    PYTHONPATH: env.PYTHONPATH ? `${pythonDir}${path.delimiter}${env.PYTHONPATH}` : pythonDir,
    PYTHONUNBUFFERED: "1",
    PEFTCTL_VERSION: peftctlVersion,
  };
}
