/**
 * Walking the zod schema by key path: which keys exist under a path, and what type a value there
 * takes. `--set` uses it to split `sweep.parameters.method.r=...` and to read `--set name=123` as a
 * string; the sweep rules use it to reject keys that do not exist.
 */
import type { z } from "zod";
import { isPlainObject } from "./merge.ts";
import { ExperimentSchema } from "./schema.ts";
import { parseValueText } from "./source.ts";

type AnySchema = z.ZodType;
type Def = {
  type: string;
  innerType?: AnySchema;
  in?: AnySchema;
  shape?: Record<string, AnySchema>;
  options?: AnySchema[];
  discriminator?: string;
  valueType?: AnySchema;
  element?: AnySchema;
  values?: unknown[];
  entries?: Record<string, unknown>;
};

function defOf(schema: AnySchema): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def;
}

const WRAPPERS = new Set(["optional", "default", "prefault", "nullable", "readonly", "catch", "nonoptional"]);

/** The schema under optional/default/prefault wrappers. */
export function unwrap(schema: AnySchema): AnySchema {
  let current = schema;
  for (;;) {
    const def = defOf(current);
    if (WRAPPERS.has(def.type) && def.innerType) current = def.innerType;
    else if (def.type === "pipe" && def.in) current = def.in;
    else return current;
  }
}

/** `method.kind` of a config not yet validated, when it is text: it picks the method's variant. */
export function methodKindOf(root: unknown): string | undefined {
  const kind = isPlainObject(root) && isPlainObject(root.method) ? root.method.kind : undefined;
  return typeof kind === "string" ? kind : undefined;
}

/** Keys of the object schemas among `schemas`. */
function objectKeys(schemas: AnySchema[]): string[] {
  const objects = schemas.filter((schema) => defOf(schema).type === "object");
  return [...new Set(objects.flatMap((schema) => Object.keys(defOf(schema).shape!)))];
}

/** Options of a (discriminated) union, restricted to the one whose discriminator is `kind` when known. */
function unionOptions(def: Def, kind: string | undefined): AnySchema[] {
  const options = def.options ?? [];
  if (def.discriminator === undefined || kind === undefined) return options;
  const chosen = options.filter((option) => {
    const literal = defOf(unwrap(option)).shape?.[def.discriminator!];
    return literal !== undefined && (defOf(unwrap(literal)).values ?? []).includes(kind);
  });
  return chosen.length > 0 ? chosen : options;
}

/** Flattens unions so that each entry is one concrete schema. */
function concrete(schemas: AnySchema[], kind: string | undefined): AnySchema[] {
  const out: AnySchema[] = [];
  for (const schema of schemas) {
    const inner = unwrap(schema);
    const def = defOf(inner);
    if (def.type === "union") out.push(...concrete(unionOptions(def, kind), kind));
    else out.push(inner);
  }
  return out;
}

export type PathResolution = {
  /** The key path, with a record's key (which may contain dots) kept as one segment. */
  path: string[];
  /** The schemas a value at `path` may match (empty when the path does not exist). */
  schemas: AnySchema[];
  /** When the path does not exist: how many segments did, and the valid keys at that point. */
  missing?: { resolvedSegments: number; validKeys: string[] };
};

/**
 * Resolves a dotted key path against the schema. `methodKind` picks the method's variant; without
 * it a key of any method resolves.
 */
export function resolveKeyPath(
  dotted: string | readonly string[],
  options: { methodKind?: string; root?: AnySchema } = {},
): PathResolution {
  const segments = typeof dotted === "string" ? dotted.split(".") : [...dotted];
  let schemas: AnySchema[] = [options.root ?? ExperimentSchema];
  const path: string[] = [];
  let index = 0;
  while (index < segments.length) {
    const current = concrete(schemas, path[0] === "method" ? options.methodKind : undefined);
    const records = current.filter((schema) => defOf(schema).type === "record");
    if (records.length > 0) {
      // A record's keys are free-form (sweep parameters are themselves dotted paths): the rest is one key.
      path.push(segments.slice(index).join("."));
      schemas = records.map((schema) => defOf(schema).valueType!);
      index = segments.length;
      break;
    }
    const segment = segments[index]!;
    const arrays = current.filter((schema) => defOf(schema).type === "array");
    if (arrays.length > 0 && /^\d+$/.test(segment)) {
      path.push(segment);
      schemas = arrays.map((schema) => defOf(schema).element!);
      index++;
      continue;
    }
    const objects = current.filter((schema) => defOf(schema).type === "object");
    const next = objects.map((schema) => defOf(schema).shape![segment]).filter((s): s is AnySchema => s !== undefined);
    if (next.length === 0) {
      return { path: [...path, ...segments.slice(index)], schemas: [], missing: { resolvedSegments: index, validKeys: objectKeys(objects) } };
    }
    path.push(segment);
    schemas = next;
    index++;
  }
  return { path, schemas };
}

export type ValueType = "string" | "number" | "boolean" | "array" | "object" | "null" | "any";

/** The JSON types a value matching one of `schemas` may have. */
export function acceptedTypes(schemas: AnySchema[], methodKind?: string): Set<ValueType> {
  const types = new Set<ValueType>();
  for (const schema of concrete(schemas, methodKind)) {
    const def = defOf(schema);
    switch (def.type) {
      case "string":
      case "number":
      case "boolean":
      case "array":
      case "object":
      case "null":
        types.add(def.type);
        break;
      case "record":
        types.add("object");
        break;
      case "enum":
        for (const value of Object.values(def.entries ?? {})) types.add(typeOfValue(value));
        break;
      case "literal":
        for (const value of def.values ?? []) types.add(typeOfValue(value));
        break;
      default:
        types.add("any");
    }
  }
  return types;
}

export function typeOfValue(value: unknown): ValueType {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  const type = typeof value;
  if (type === "string" || type === "number" || type === "boolean" || type === "object") return type;
  return "any";
}

/** Keys of the object schema(s) at `path`, for suggestions. */
export function keysAt(path: readonly string[], methodKind?: string): string[] {
  const { schemas } = resolveKeyPath(path, { methodKind });
  return objectKeys(concrete(schemas, methodKind));
}

/** Method kinds (other than `kind`) whose options include `key`. */
export function methodKindsWithKey(key: string): string[] {
  const methodSchema = defOf(unwrap(ExperimentSchema)).shape!.method!;
  return concrete([methodSchema], undefined)
    .filter((option) => key in defOf(option).shape!)
    .map((option) => String(defOf(unwrap(defOf(option).shape!.kind!)).values?.[0]));
}

/**
 * Reads text given on the command line or through `${env:NAME}` as the type the schema expects at
 * that key: `--set method.r=16` is a number, `--set model.revision=1234` stays a string.
 */
export function parseTypedText(raw: string, schemas: AnySchema[], methodKind?: string): unknown {
  const read = parseValueText(raw);
  if (read === undefined) return raw;
  const parsed = read.value;
  if (typeof parsed === "string") return parsed;
  const accepted = acceptedTypes(schemas, methodKind);
  if (accepted.size === 0 || accepted.has("any") || accepted.has(typeOfValue(parsed))) return parsed;
  return accepted.has("string") ? raw : parsed;
}
