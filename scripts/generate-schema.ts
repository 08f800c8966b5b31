/** `npm run schema`: writes the files derived from the zod schemas: the config JSON Schema and reference (src/config/schema.ts), and the job spec JSON Schema (src/plan/jobspec.ts). */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CONFIG_REFERENCE_PATH, JSON_SCHEMA_PATH, renderConfigReference, renderJsonSchema } from "../src/config/json-schema.ts";
import { JOB_JSON_SCHEMA_PATH, renderJobJsonSchema } from "../src/plan/jobspec.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
await writeFile(path.join(root, JSON_SCHEMA_PATH), renderJsonSchema());
await writeFile(path.join(root, CONFIG_REFERENCE_PATH), renderConfigReference());
await writeFile(path.join(root, JOB_JSON_SCHEMA_PATH), renderJobJsonSchema());
process.stdout.write(`wrote ${JSON_SCHEMA_PATH}, ${CONFIG_REFERENCE_PATH} and ${JOB_JSON_SCHEMA_PATH}\n`);
