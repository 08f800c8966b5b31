/** `npm run schema`: writes the JSON Schema and the config reference derived from src/config/schema.ts. */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CONFIG_REFERENCE_PATH, JSON_SCHEMA_PATH, renderConfigReference, renderJsonSchema } from "../src/config/json-schema.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
await writeFile(path.join(root, JSON_SCHEMA_PATH), renderJsonSchema());
await writeFile(path.join(root, CONFIG_REFERENCE_PATH), renderConfigReference());
process.stdout.write(`wrote ${JSON_SCHEMA_PATH} and ${CONFIG_REFERENCE_PATH}\n`);
