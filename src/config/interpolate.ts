/**
 * `${env:NAME}` in string values. A value that is exactly one reference takes the type the schema
 * expects there (`lr: ${env:LR}` is a number); a reference inside longer text is spliced in as text.
 * `$${env:NAME}` stands for the literal text `${env:NAME}`.
 */
import type { KeyPath } from "./diagnostics.ts";
import { methodKindOf, parseTypedText, resolveKeyPath } from "./schema-paths.ts";

const REFERENCE = /\$?\$\{([^}]*)\}/g;
const WHOLE = /^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$/;

export type InterpolationProblem = { path: KeyPath; message: string };

export function interpolateEnv(
  value: unknown,
  env: NodeJS.ProcessEnv,
): { value: unknown; problems: InterpolationProblem[]; substituted: { name: string; value: string }[] } {
  const problems: InterpolationProblem[] = [];
  const substituted: { name: string; value: string }[] = [];
  const methodKind = methodKindOf(value);
  const visit = (node: unknown, keyPath: (string | number)[]): unknown => {
    if (typeof node === "string") return interpolateString(node, keyPath);
    if (Array.isArray(node)) return node.map((item, index) => visit(item, [...keyPath, index]));
    if (node !== null && typeof node === "object") {
      const out: Record<string, unknown> = {};
      for (const [key, child] of Object.entries(node)) out[key] = visit(child, [...keyPath, key]);
      return out;
    }
    return node;
  };
  const interpolateString = (text: string, keyPath: (string | number)[]): unknown => {
    if (!text.includes("${")) return text;
    const whole = WHOLE.exec(text);
    if (whole) {
      const name = whole[1]!;
      const resolved = env[name];
      if (resolved === undefined) {
        problems.push({ path: keyPath, message: `environment variable ${name} is not set (referenced as \${env:${name}})` });
        return text;
      }
      substituted.push({ name, value: resolved });
      const { schemas } = resolveKeyPath(keyPath.map(String), { methodKind });
      return parseTypedText(resolved, schemas);
    }
    return text.replace(REFERENCE, (match, inner: string) => {
      if (match.startsWith("$$")) return match.slice(1);
      const reference = /^env:([A-Za-z_][A-Za-z0-9_]*)$/.exec(inner);
      if (!reference) {
        problems.push({ path: keyPath, message: `cannot interpolate ${match}: only \${env:NAME} is supported (write $\${...} for a literal)` });
        return match;
      }
      const resolved = env[reference[1]!];
      if (resolved === undefined) {
        problems.push({ path: keyPath, message: `environment variable ${reference[1]} is not set (referenced as ${match})` });
        return match;
      }
      substituted.push({ name: reference[1]!, value: resolved });
      return resolved;
    });
  };
  return { value: visit(value, []), problems, substituted };
}
