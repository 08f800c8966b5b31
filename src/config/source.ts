/**
 * Reading one YAML config file with the `yaml` Document API, keeping where every key and value
 * sits (line:col) so that any later error, even one found after merging `extends` and `--set`,
 * can point at the text that caused it.
 */
import { readFile } from "node:fs/promises";
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Node } from "yaml";
import { displayPath, formatKeyPath, type Diagnostic, type KeyPath } from "./diagnostics.ts";

export type Position = { line: number; col: number };
/** Where a value came from: a file (absolute path) or `<--set>`, the key's and the value's position. */
export type Origin = { file: string; key?: Position; value: Position };
/** Key path (as `pathKey`) -> origin. */
export type Origins = Map<string, Origin>;

export const pathKey = (keyPath: KeyPath): string => JSON.stringify(keyPath);

/** Is `inner` the path `outer` or under it? Both given as `pathKey`s. */
export function isUnderPath(inner: string, outer: string): boolean {
  return inner === outer || inner.startsWith(`${outer.slice(0, -1)}${outer === "[]" ? "" : ","}`);
}

export type Source = { file: string; value: unknown; origins: Origins };

export type ReadResult =
  | { kind: "ok"; source: Source; diagnostics: Diagnostic[] }
  | { kind: "not-found" | "unreadable"; message: string; diagnostics: Diagnostic[] };

/** Reads and parses one file. Syntax errors are diagnostics; the value is still returned when usable. */
export async function readSource(file: string): Promise<ReadResult> {
  const shown = displayPath(file);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return { kind: "not-found", message: `config file not found: ${shown}`, diagnostics: [] };
    if (code === "EISDIR") return { kind: "unreadable", message: `${shown} is a directory, not a config file`, diagnostics: [] };
    return { kind: "unreadable", message: `cannot read ${shown}: ${(error as Error).message}`, diagnostics: [] };
  }
  const at = (position: Position, message: string): Diagnostic => ({ severity: "error", file: shown, ...position, path: "", message });

  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    const lossy = bytes.toString("utf8");
    const lineCounter = new LineCounter();
    lineCounter.addNewLine(0);
    for (const match of lossy.matchAll(/\n/g)) lineCounter.addNewLine(match.index + 1);
    const position = lineCounter.linePos(Math.max(0, lossy.indexOf("\uFFFD")));
    return { kind: "ok", source: { file, value: undefined, origins: new Map() }, diagnostics: [at(position, "the file is not UTF-8 text; save it as UTF-8")] };
  }

  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, logLevel: "error" });
  const positionOf = (offset: number): Position => lineCounter.linePos(offset);
  const diagnostics: Diagnostic[] = doc.errors.map((error) => at(positionOf(error.pos[0]), `YAML syntax error: ${error.message}`));
  const control = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/.exec(text);
  if (control) diagnostics.push(at(positionOf(control.index), "the file contains a control character (binary data?); a config is plain text"));
  if (diagnostics.length > 0) return { kind: "ok", source: { file, value: undefined, origins: new Map() }, diagnostics };

  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    let position: Position = { line: 1, col: 1 };
    visit(doc, {
      Alias(_, node) {
        if (node.range && node.resolve(doc) === undefined) {
          position = positionOf(node.range[0]);
          return visit.BREAK;
        }
        return undefined;
      },
    });
    return { kind: "ok", source: { file, value: undefined, origins: new Map() }, diagnostics: [at(position, `YAML error: ${(error as Error).message}`)] };
  }

  const origins: Origins = new Map();
  const collect = (node: Node | null | undefined, keyPath: (string | number)[], key: Position | undefined): void => {
    if (!node) return;
    const valuePosition = node.range ? positionOf(node.range[0]) : (key ?? { line: 1, col: 1 });
    origins.set(pathKey(keyPath), { file, key, value: valuePosition });
    if (isAlias(node)) return; // an alias's content is positioned at the alias
    if (isMap(node)) {
      for (const pair of node.items) {
        const keyNode = pair.key as Node | null;
        const keyPosition = keyNode?.range ? positionOf(keyNode.range[0]) : valuePosition;
        if (keyNode !== null && !isScalar(keyNode)) {
          diagnostics.push({ ...at(keyPosition, "a key must be a plain name, not a list or mapping"), path: formatKeyPath(keyPath) });
          continue;
        }
        const name = keyNode === null || keyNode.value === null ? "" : String(keyNode.value);
        const childPath = [...keyPath, name];
        if (pair.value === null || pair.value === undefined) origins.set(pathKey(childPath), { file, key: keyPosition, value: keyPosition });
        else collect(pair.value as Node, childPath, keyPosition);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, index) => collect(item as Node, [...keyPath, index], undefined));
    }
  };
  if (doc.contents) collect(doc.contents as Node, [], undefined);
  else origins.set(pathKey([]), { file, value: { line: 1, col: 1 } });
  return { kind: "ok", source: { file, value, origins }, diagnostics };
}
