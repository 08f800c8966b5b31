import path from "node:path";

/** One problem in a config, positioned so that editors and terminals can jump to it. */
export type Diagnostic = {
  severity: "error" | "warning";
  /** The file as shown to the user (relative to the working directory when inside it), or `<--set>`. */
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  col: number;
  /** Dotted key path, e.g. `method.r` or `sweep.parameters["method.r"][1]`; empty for the whole file. */
  path: string;
  message: string;
};

/** The pseudo file name of values given with `--set`. */
export const SET_ORIGIN = "<--set>";

/** `file:line:col: key.path: message`, warnings as `file:line:col: warning: key.path: message`. */
export function formatDiagnostic(d: Diagnostic): string {
  const severity = d.severity === "warning" ? "warning: " : "";
  const keyPath = d.path === "" ? "" : `${d.path}: `;
  return `${d.file}:${d.line}:${d.col}: ${severity}${keyPath}${d.message}`;
}

/** Files inside the working directory are shown relative to it, others absolute. */
export function displayPath(file: string, cwd = process.cwd()): string {
  if (file === SET_ORIGIN) return file;
  const relative = path.relative(cwd, file);
  return relative === "" || relative.startsWith("..") || path.isAbsolute(relative) ? file : relative;
}

export type KeyPath = readonly (string | number)[];

/** `method.r`, `method.target_modules[0]`, `sweep.parameters["method.r"]`. */
export function formatKeyPath(keyPath: KeyPath): string {
  let out = "";
  for (const segment of keyPath) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

export function compareDiagnostics(a: Diagnostic, b: Diagnostic): number {
  if (a.file !== b.file) return a.file < b.file ? -1 : 1;
  return a.line - b.line || a.col - b.col || a.path.localeCompare(b.path);
}
