/**
 * The part of `npm run build` tsc does not do: every file under src/ that is not TypeScript (the
 * report page's client.js, the SSH agent remote.sh) copied to the same place under dist/, since the
 * code reads them beside its own file. Copying all of them, not a list, means a new asset cannot be
 * forgotten.
 */
import { cpSync } from "node:fs";
import path from "node:path";

const root = path.join(import.meta.dirname, "..");
cpSync(path.join(root, "src"), path.join(root, "dist"), {
  recursive: true,
  filter: (source) => !source.endsWith(".ts"),
});
