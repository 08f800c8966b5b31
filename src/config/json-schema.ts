/**
 * Derived artefacts of the zod schema: the JSON Schema for editors (schema/experiment.schema.json)
 * and the Markdown config reference (docs/config-reference.md). `npm run schema` writes both (and the
 * job spec's schema, src/plan/jobspec.ts); a test fails when either is stale.
 */
import { z } from "zod";
import { ExperimentSchema } from "./schema.ts";

export const JSON_SCHEMA_PATH = "schema/experiment.schema.json";
export const CONFIG_REFERENCE_PATH = "docs/config-reference.md";

type JsonSchema = {
  type?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  additionalProperties?: JsonSchema | boolean;
  propertyNames?: JsonSchema;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
};

/** The JSON Schema of a config as written (defaults optional), for editors. */
export function experimentJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(ExperimentSchema, { io: "input", target: "draft-2020-12" }) as Record<string, unknown>;
  return { ...schema, title: "peftctl experiment config" };
}

export function renderJsonSchema(): string {
  return `${JSON.stringify(experimentJsonSchema(), null, 2)}\n`;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function typeText(schema: JsonSchema): string {
  if (schema.const !== undefined) return `\`${String(schema.const)}\``;
  if (schema.enum) return schema.enum.map((value) => `\`${String(value)}\``).join(" | ");
  if (schema.anyOf) return schema.anyOf.map(typeText).join(" or ");
  if (schema.oneOf) return schema.oneOf.map(typeText).join(" or ");
  const bounds: string[] = [];
  if (schema.exclusiveMinimum !== undefined) bounds.push(`> ${schema.exclusiveMinimum}`);
  if (schema.minimum !== undefined && schema.minimum !== -MAX_SAFE) bounds.push(`>= ${schema.minimum}`);
  if (schema.maximum !== undefined && schema.maximum !== MAX_SAFE) bounds.push(`<= ${schema.maximum}`);
  if (schema.exclusiveMaximum !== undefined) bounds.push(`< ${schema.exclusiveMaximum}`);
  const bound = bounds.length > 0 ? ` ${bounds.join(", ")}` : "";
  switch (schema.type) {
    case "integer":
      return `integer${bound}`;
    case "number":
      return `number${bound}`;
    case "string":
      return schema.pattern ? `text matching \`${schema.pattern}\`` : "text";
    case "boolean":
      return "boolean";
    case "array":
      return `list of ${schema.items ? typeText(schema.items) : "values"}`;
    case "object":
      return "mapping";
    default:
      return schema.type ?? "any";
  }
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

type Row = { key: string; type: string; fallback: string; meaning: string };

function rows(schema: JsonSchema, prefix: string, required: boolean, out: Row[]): void {
  const fallback = schema.default !== undefined ? `\`${JSON.stringify(schema.default)}\`` : required ? "required" : "";
  out.push({ key: `\`${prefix}\``, type: typeText(schema), fallback, meaning: schema.description ?? "" });
  if (schema.type === "object") childRows(schema, prefix, out);
}

/** Rows of every property of `parent`, keys under `prefix`. */
function childRows(parent: JsonSchema, prefix: string, out: Row[] = []): Row[] {
  for (const [key, child] of Object.entries(parent.properties ?? {})) rows(child, `${prefix}.${key}`, parent.required?.includes(key) ?? false, out);
  return out;
}

/** docs/config-reference.md: every key, its type, default and meaning, from the schema's own descriptions. */
export function renderConfigReference(): string {
  const root = experimentJsonSchema() as JsonSchema;
  const lines = [
    "## Config reference",
    "",
    "<!-- Generated from src/config/schema.ts by `npm run schema`; edit the schema, not this file. -->",
    "",
    `${root.description ?? ""} An experiment config is YAML; editors validate it against`,
    "`schema/experiment.schema.json` when the file starts with",
    "`# yaml-language-server: $schema=<relative path to schema/experiment.schema.json>`.",
    "",
    "- `extends: base.yaml` (or a list) merges the named files first (paths relative to this file, or absolute);",
    "  mappings merge key by key, lists and values replace, and a file that changes `method.kind` replaces `method`.",
    "- `${env:NAME}` in a value is replaced by the environment variable (a missing one is an error);",
    "  a value that is only a reference takes the key's type. `$${env:NAME}` is the literal text.",
    "- `--set key.path=value` (on `validate`, `plan`, `run`) overrides a value, read as the key's type:",
    "  `--set method.r=16`, `--set method.target_modules=[q_proj,v_proj]`, `--set sweep.parameters.method.r=[4,8]`.",
    "- `data.path`, `eval.data.path` and `eval.embeddings` are relative to the file that sets them (to the working directory for `--set`).",
    "- Errors are reported as `file:line:col: key.path: message`, all of them at once; `peftctl validate` exits 2.",
    "",
  ];
  const table = (title: string, body: Row[]): void => {
    if (title) lines.push(title, "");
    lines.push("| key | type | default | meaning |", "| --- | --- | --- | --- |");
    for (const row of body) lines.push(`| ${[row.key, row.type, row.fallback, row.meaning].map(escapeCell).join(" | ")} |`);
    lines.push("");
  };
  const sections = Object.entries(root.properties ?? {});
  const isSection = (schema: JsonSchema): boolean => schema.type === "object" || schema.oneOf !== undefined;
  const topLevel: Row[] = [];
  for (const [key, schema] of sections) if (!isSection(schema)) rows(schema, key, root.required?.includes(key) ?? false, topLevel);
  lines.push("### Top level", "");
  table("", topLevel);
  for (const [key, section] of sections.filter(([, schema]) => isSection(schema))) {
    const required = root.required?.includes(key) ?? false;
    lines.push(`### \`${key}\`${required ? " (required)" : " (optional)"}`, "");
    if (section.description) lines.push(section.description, "");
    if (section.oneOf) {
      for (const variant of section.oneOf) {
        const kind = variant.properties?.kind?.const;
        table(`\`kind: ${String(kind)}\`${variant.description ? `: ${variant.description}` : ""}`, childRows(variant, key));
      }
    } else {
      table("", childRows(section, key));
    }
  }
  return `${lines.join("\n").trimEnd()}\n`;
}
