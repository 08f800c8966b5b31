/** `npm run schema`: writes the JSON Schema and the config reference derived from src/config/schema.ts. */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CONFIG_REFERENCE_PATH, JOB_JSON_SCHEMA_PATH, JSON_SCHEMA_PATH, renderConfigReference, renderJobJsonSchema, renderJsonSchema } from "../src/config/json-schema.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
await writeFile(path.join(root, JSON_SCHEMA_PATH), renderJsonSchema());
await writeFile(path.join(root, CONFIG_REFERENCE_PATH), renderConfigReference());
await writeFile(path.join(root, JOB_JSON_SCHEMA_PATH), renderJobJsonSchema());
process.stdout.write(`wrote ${JSON_SCHEMA_PATH}, ${CONFIG_REFERENCE_PATH} and ${JOB_JSON_SCHEMA_PATH}\n`);
