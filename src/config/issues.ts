/**
 * zod issues -> messages a user can act on ("must be > 0, got 0", "unknown key `alfa` (did you
 * mean `alpha`?)"), each reported at the key path it concerns.
 */
import type { z } from "zod";
import type { KeyPath } from "./diagnostics.ts";
import { isPlainObject } from "./merge.ts";
import { keysAt, methodKindOf, methodKindsWithKey, resolveKeyPath } from "./schema-paths.ts";
import { didYouMean } from "./suggest.ts";

/** Where a message goes: the value at the path, the key itself, or (for a missing key) its parent. */
export type Anchor = "value" | "key";
/** A message, or how to build it: building can cost (a suggestion), and only shown messages are built. */
export type Message = string | (() => string);
export type Report = (keyPath: KeyPath, message: Message, anchor?: Anchor) => void;

export function messageText(message: Message): string {
  return typeof message === "string" ? message : message();
}

type Issue = z.core.$ZodIssue & { input?: unknown };

export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return "an empty value";
  if (Array.isArray(value)) return "a list";
  if (value instanceof Uint8Array) return "binary data";
  if (isPlainObject(value)) return "a mapping";
  if (typeof value === "string") return `the text ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
  if (typeof value === "number" && !Number.isFinite(value)) return `a number out of range (${value})`;
  return `${typeof value} ${String(value)}`;
}

function valueAt(root: unknown, keyPath: readonly PropertyKey[]): { found: boolean; value: unknown } {
  let current: unknown = root;
  for (const segment of keyPath) {
    if (current === null || typeof current !== "object" || !Object.hasOwn(current, segment)) return { found: false, value: undefined };
    current = (current as Record<PropertyKey, unknown>)[segment];
  }
  return { found: true, value: current };
}

const EXPECTED: Record<string, string> = {
  object: "a mapping",
  array: "a list",
  string: "text",
  number: "a number",
  int: "an integer",
  boolean: "true or false",
};

function expectedName(expected: string): string {
  return EXPECTED[expected] ?? expected;
}

/** The first sentence of the schema's description of a key, to say what a missing key is for. */
function explain(keyPath: (string | number)[], root: unknown): string {
  const { schemas } = resolveKeyPath(keyPath.map(String), { methodKind: methodKindOf(root) });
  const description = schemas.map((schema) => schema.description).find((text) => text !== undefined);
  if (description === undefined) return "";
  const sentence = /^.*?(?:\.(?=\s)|$)/.exec(description)?.[0] ?? description;
  return ` (${sentence.replace(/\.$/, "").replace(/^./, (c) => c.toLowerCase())})`;
}

export function reportIssues(issues: readonly Issue[], root: unknown, report: Report, prefix: KeyPath = []): void {
  for (const issue of issues) {
    const keyPath = [...prefix, ...(issue.path as (string | number)[])];
    const { found, value } = valueAt(root, keyPath);
    switch (issue.code) {
      case "invalid_type": {
        if (!found) {
          report(keyPath, `missing required key \`${String(keyPath.at(-1))}\`${explain(keyPath, root)}`);
        } else {
          report(keyPath, `expected ${expectedName(issue.expected)}, got ${describeValue(value)}`);
        }
        break;
      }
      case "too_small": {
        const bound = Number(issue.minimum);
        if (issue.origin === "array") report(keyPath, `must list at least ${bound} item${bound === 1 ? "" : "s"}`);
        else if (issue.origin === "string") report(keyPath, bound === 1 ? "must not be empty" : `must be at least ${bound} characters`);
        else report(keyPath, `must be ${issue.inclusive ? ">=" : ">"} ${bound}, got ${describeValue(value)}`);
        break;
      }
      case "too_big": {
        const bound = Number(issue.maximum);
        if (issue.origin === "array") report(keyPath, `must list at most ${bound} items`);
        else if (issue.origin === "string") report(keyPath, `must be at most ${bound} characters`);
        else report(keyPath, `must be ${issue.inclusive ? "<=" : "<"} ${bound}, got ${describeValue(value)}`);
        break;
      }
      case "not_multiple_of":
        report(keyPath, `must be a multiple of ${String(issue.divisor)}, got ${describeValue(value)}`);
        break;
      case "invalid_value": {
        const options = issue.values.map(String);
        const hint = typeof value === "string" ? didYouMean(value, options) : "";
        report(keyPath, `must be one of ${options.join(", ")}; got ${describeValue(value)}${hint}`);
        break;
      }
      case "invalid_format":
        report(keyPath, `${issue.message}, got ${describeValue(value)}`);
        break;
      case "unrecognized_keys": {
        for (const key of issue.keys) reportUnknownKey(root, keyPath, key, report);
        break;
      }
      case "invalid_union": {
        reportUnion(issue, keyPath, found, value, root, report);
        break;
      }
      default:
        report(keyPath, issue.message);
    }
  }
}

function reportUnknownKey(root: unknown, parent: (string | number)[], key: string, report: Report): void {
  const keyPath = [...parent, key];
  const kind = methodKindOf(root);
  if (parent.length === 1 && parent[0] === "method" && kind !== undefined) {
    const owners = methodKindsWithKey(key).filter((owner) => owner !== kind);
    if (owners.length > 0) {
      report(keyPath, `\`${key}\` is not an option of method ${kind} (it belongs to ${owners.join(", ")}); remove it or change method.kind`, "key");
      return;
    }
  }
  if (key.includes(".") && !resolveKeyPath([...parent.map(String), ...key.split(".")], { methodKind: kind }).missing) {
    const [head, ...rest] = key.split(".");
    report(keyPath, `\`${key}\` is a key path, and keys are not split at dots here: nest it (${head}: { ${rest.join(".")}: ... })`, "key");
    return;
  }
  report(keyPath, () => `unknown key \`${key}\`${didYouMean(key, keysAt(parent.map(String), kind))}`, "key");
}

function reportUnion(
  issue: Extract<Issue, { code: "invalid_union" }>,
  keyPath: (string | number)[],
  found: boolean,
  value: unknown,
  root: unknown,
  report: Report,
): void {
  if ("discriminator" in issue && issue.discriminator !== undefined) {
    const options = ((issue as { options?: unknown[] }).options ?? []).map(String);
    if (!found) report(keyPath, `missing required key \`${issue.discriminator}\`: one of ${options.join(", ")}`);
    else {
      const hint = typeof value === "string" ? didYouMean(value, options) : "";
      report(keyPath, `must be one of ${options.join(", ")}; got ${describeValue(value)}${hint}`);
    }
    return;
  }
  // The branch that got furthest (not rejected for its type at the top) says the most.
  const branches = issue.errors.filter((errors) => !errors.every((e) => e.code === "invalid_type" && e.path.length === 0));
  if (branches.length > 0) {
    reportIssues(branches[0] as Issue[], root, report, keyPath);
    return;
  }
  const expected = [...new Set(issue.errors.flat().map((e) => (e.code === "invalid_type" ? expectedName(e.expected) : e.message)))];
  report(keyPath, `expected ${expected.join(" or ")}, got ${describeValue(value)}`);
}
