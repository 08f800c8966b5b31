/**
 * Reading one YAML config file with the `yaml` Document API, keeping where every key and value
 * sits (line:col) so that any later error, even one found after merging `extends` and `--set`,
 * can point at the text that caused it.
 *
 * Reading is bounded (src/config/limits.ts): the file must be a regular file of at most
 * MAX_CONFIG_BYTES; nesting is measured on the lexer's tokens before the parser (whose cost grows
 * with depth) sees them; the document's values are counted with aliases expanded before anything
 * copies them (an alias is a reference to its anchor, so a few lines can stand for billions of
 * values); duplicate keys are found with one set per mapping (the library's own check compares every
 * key with every other one).
 */
import { Composer, CST, isAlias, isMap, isScalar, isSeq, Lexer, LineCounter, Parser, YAMLParseError, type Document, type Node } from "yaml";
import { displayPath, formatKeyPath, type Diagnostic, type KeyPath } from "./diagnostics.ts";
import { readRegularFile } from "./files.ts";
import { MAX_CONFIG_BYTES, MAX_NESTING, MAX_VALUES } from "./limits.ts";
import { OriginTree, type Position } from "./origins.ts";

export type { Origin, Position } from "./origins.ts";

export type Source = { file: string; value: unknown; origins: OriginTree };

export type ReadResult =
  | { kind: "ok"; source: Source; diagnostics: Diagnostic[] }
  | { kind: "not-found" | "unreadable"; message: string; diagnostics: Diagnostic[] };

/** Reads and parses one file. Syntax errors are diagnostics; the value is still returned when usable. */
export async function readSource(file: string): Promise<ReadResult> {
  const shown = displayPath(file);
  const read = await readRegularFile(file, MAX_CONFIG_BYTES, "a config file");
  if (!("bytes" in read)) {
    if (read.kind === "missing") return { kind: "not-found", message: `config file not found: ${shown}`, diagnostics: [] };
    return { kind: "unreadable", message: `${shown} ${read.kind === "bad" ? read.reason : "cannot be read"}`, diagnostics: [] };
  }
  const { bytes } = read;
  const at = (position: Position, message: string): Diagnostic => ({ severity: "error", file: shown, ...position, path: "", message });
  const failed = (diagnostics: Diagnostic[]): ReadResult => ({ kind: "ok", source: { file, value: undefined, origins: new OriginTree() }, diagnostics });

  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    const lossy = bytes.toString("utf8");
    const lineCounter = new LineCounter();
    lineCounter.addNewLine(0);
    for (const match of lossy.matchAll(/\n/g)) lineCounter.addNewLine(match.index + 1);
    const position = lineCounter.linePos(Math.max(0, lossy.indexOf("\uFFFD")));
    return failed([at(position, "the file is not UTF-8 text; save it as UTF-8")]);
  }

  const lineCounter = new LineCounter();
  const positionOf = (offset: number): Position => lineCounter.linePos(offset);
  const parsed = parseBounded(text, lineCounter);
  if ("tooDeepAt" in parsed) {
    return failed([at(positionOf(parsed.tooDeepAt), `mappings and lists nested deeper than ${MAX_NESTING} levels; a config is at most ${MAX_NESTING} deep`)]);
  }
  const { doc } = parsed;
  const diagnostics: Diagnostic[] = doc.errors.map((error) => at(positionOf(error.pos[0]), `YAML syntax error: ${error.message}`));
  const control = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/.exec(text);
  if (control) diagnostics.push(at(positionOf(control.index), "the file contains a control character (binary data?); a config is plain text"));
  if (diagnostics.length > 0) return failed(diagnostics);

  const structure = checkStructure(doc.contents as Node | null);
  if (structure.problem) return failed([at(positionOf(structure.problem.offset), structure.problem.message)]);

  let value: unknown;
  try {
    value = toValue(doc, structure.aliases);
  } catch (error) {
    return failed([at({ line: 1, col: 1 }, `YAML error: ${(error as Error).message}`)]);
  }

  const origins = new OriginTree();
  // keyPath is one array pushed and popped along the walk (copied only for a message): a spread per node
  // would make the walk quadratic in the depth and allocate a path for each of 100,000 values.
  const keyPath: (string | number)[] = [];
  const collect = (node: Node | null | undefined, tree: OriginTree, key: Position | undefined): void => {
    if (!node) return;
    const valuePosition = node.range ? positionOf(node.range[0]) : (key ?? { line: 1, col: 1 });
    tree.origin = { file, key, value: valuePosition };
    if (isAlias(node)) return; // an alias's content is positioned at the alias
    if (isMap(node)) {
      for (const pair of node.items) {
        const keyNode = pair.key as Node | null;
        const keyPosition = keyNode?.range ? positionOf(keyNode.range[0]) : valuePosition;
        if (keyNode !== null && !isScalar(keyNode)) {
          diagnostics.push({ ...at(keyPosition, "a key must be a plain name, not a list or mapping"), path: formatKeyPath([...keyPath]) });
          continue;
        }
        const name = keyScalarText(keyNode);
        const child = new OriginTree();
        tree.setChild(name, child);
        if (pair.value === null || pair.value === undefined) child.origin = { file, key: keyPosition, value: keyPosition };
        else {
          keyPath.push(name);
          collect(pair.value as Node, child, keyPosition);
          keyPath.pop();
        }
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, index) => {
        const child = new OriginTree();
        tree.setChild(index, child);
        keyPath.push(index);
        collect(item as Node, child, undefined);
        keyPath.pop();
      });
    }
  };
  if (doc.contents) collect(doc.contents as Node, origins, undefined);
  else origins.origin = { file, value: { line: 1, col: 1 } };
  return { kind: "ok", source: { file, value, origins }, diagnostics };
}

function keyScalarText(keyNode: Node | null): string {
  return keyNode === null || !isScalar(keyNode) || keyNode.value === null ? "" : String(keyNode.value);
}

/**
 * Lexes, measures the nesting, parses and composes in one pass over the tokens, stopping at the
 * first token nested deeper than MAX_NESTING: the parser and the composer (which recurses per level)
 * never see a deeper document. The same steps as `parseDocument`, with the lexer's tokens in view.
 */
function parseBounded(text: string, lineCounter: LineCounter): { doc: Document.Parsed } | { tooDeepAt: number } {
  const parser = new Parser(lineCounter.addNewLine);
  const meter = nestingMeter();
  const tokens: CST.Token[] = [];
  lineCounter.addNewLine(0);
  for (const lexeme of new Lexer().lex(text)) {
    if (meter(lexeme) > MAX_NESTING) return { tooDeepAt: meter.offset() };
    for (const token of parser.next(lexeme)) tokens.push(token);
  }
  for (const token of parser.end()) tokens.push(token);
  // uniqueKeys off: the library compares each key with every earlier one; checkStructure uses a set.
  const composer = new Composer({ uniqueKeys: false, logLevel: "error" });
  let doc: Document.Parsed | undefined;
  for (const next of composer.compose(tokens, true, text.length)) {
    if (doc === undefined) doc = next;
    else {
      doc.errors.push(new YAMLParseError([next.range[0], next.range[1]], "MULTIPLE_DOCS", "Source contains multiple documents; please use YAML.parseAllDocuments()"));
      break;
    }
  }
  return { doc: doc! };
}

/** Lexer tokens that stand for no text (markers the lexer adds for the parser). */
const MARKERS = new Set(["\u0002", "\u0018", "\u001f"]);

/**
 * How deep the token just given is nested, from the lexer's tokens alone: flow collections by their
 * brackets; block collections by the columns they start at (each nested block node starts to the
 * right of its parent, a list under a key at most at the key's own column), so the figure is at
 * least half the true depth and never more than it, which is all a guard against deep input needs.
 */
function nestingMeter(): ((lexeme: string) => number) & { offset: () => number } {
  let offset = 0;
  let tokenStart = 0;
  let lineStart = 0;
  let flowDepth = 0;
  let afterScalarMarker = false;
  /** Column of the first node on this line since the last block indicator: the key of a `key:`. */
  let pendingNodeColumn: number | undefined;
  const blockColumns: number[] = [];
  const openBlock = (column: number) => {
    while (blockColumns.length > 0 && blockColumns.at(-1)! > column) blockColumns.pop();
    if (blockColumns.length === 0 || blockColumns.at(-1)! < column) blockColumns.push(column);
  };
  const step = (lexeme: string): number => {
    tokenStart = offset;
    const column = offset - lineStart;
    const type = afterScalarMarker ? "scalar-source" : CST.tokenType(lexeme);
    afterScalarMarker = type === "scalar";
    if (!MARKERS.has(lexeme)) offset += lexeme.length;
    const newline = lexeme.lastIndexOf("\n");
    if (newline >= 0 && !MARKERS.has(lexeme)) lineStart = tokenStart + newline + 1;
    switch (type) {
      case "scalar-source":
      case "single-quoted-scalar":
      case "double-quoted-scalar":
      case "alias":
      case "anchor":
      case "tag":
        pendingNodeColumn ??= column;
        break;
      case "flow-map-start":
      case "flow-seq-start":
        pendingNodeColumn ??= column;
        flowDepth++;
        break;
      case "flow-map-end":
      case "flow-seq-end":
        flowDepth = Math.max(0, flowDepth - 1);
        break;
      case "seq-item-ind":
      case "explicit-key-ind":
        if (flowDepth === 0) {
          openBlock(column);
          pendingNodeColumn = undefined;
        }
        break;
      case "map-value-ind":
        if (flowDepth === 0) {
          openBlock(pendingNodeColumn ?? column);
          pendingNodeColumn = undefined;
        }
        break;
      case "newline":
        pendingNodeColumn = undefined;
        break;
      case "flow-error-end":
        flowDepth = 0;
        break;
      case "doc-start":
      case "doc-end":
        blockColumns.length = 0;
        flowDepth = 0;
        pendingNodeColumn = undefined;
        break;
    }
    return blockColumns.length + flowDepth;
  };
  return Object.assign(step, { offset: () => tokenStart });
}

/**
 * One walk over the document in order: duplicate keys, aliases that name no earlier anchor or the
 * node they sit in, and the values and depth the document stands for with every alias expanded
 * (an anchor's figures are worked out once, so the walk is linear in the text).
 */
function checkStructure(root: Node | null): { problem?: { offset: number; message: string }; aliases: AliasSite[] } {
  type Figures = { values: number; depth: number };
  const aliases: AliasSite[] = [];
  const anchors = new Map<string, { node: Node; figures?: Figures }>();
  let total = 0;
  let problem: { offset: number; message: string } | undefined;
  const fail = (node: Node, message: string): Figures => {
    problem ??= { offset: node.range?.[0] ?? 0, message };
    return { values: 0, depth: 0 };
  };
  const add = (node: Node, figures: Figures, depth: number): Figures => {
    total += figures.values;
    if (total > MAX_VALUES) {
      const what = isAlias(node) ? `this alias stands for ${figures.values.toLocaleString("en-US")} values, and with it the file holds` : "the file holds";
      return fail(node, `${what} more than ${MAX_VALUES.toLocaleString("en-US")} values (aliases expanded); a config holds at most ${MAX_VALUES.toLocaleString("en-US")}`);
    }
    if (depth + figures.depth > MAX_NESTING) {
      return fail(node, `mappings and lists nested deeper than ${MAX_NESTING} levels${isAlias(node) ? " once this alias is expanded" : ""}; a config is at most ${MAX_NESTING} deep`);
    }
    return figures;
  };
  /** `put` replaces the node in its parent (for an alias: see toValue). */
  const walk = (node: Node | null | undefined, depth: number, put: (replacement: Node) => void): Figures => {
    if (!node || problem) return { values: 0, depth: 0 };
    if (isAlias(node)) {
      const anchor = anchors.get(node.source);
      if (anchor === undefined) return fail(node, `YAML error: alias *${node.source} names no anchor (&${node.source}) before it`);
      if (anchor.figures === undefined) return fail(node, `YAML error: alias *${node.source} sits inside the node it names, which would make it infinite`);
      aliases.push({ alias: node, anchor: anchor.node, put });
      return add(node, anchor.figures, depth);
    }
    const entry: { node: Node; figures?: Figures } | undefined = node.anchor ? { node } : undefined;
    if (entry) anchors.set(node.anchor!, entry);
    if (isMap(node) || isSeq(node)) {
      add(node, { values: 1, depth: 1 }, depth); // the collection itself: counted, and its depth checked
      if (problem) return { values: 0, depth: 0 };
    }
    let figures: Figures;
    if (isMap(node)) {
      figures = { values: 1, depth: 1 };
      const keys = new Set<string>();
      for (const pair of node.items) {
        const keyNode = pair.key as Node | null;
        if (isScalar(keyNode)) {
          const name = keyScalarText(keyNode);
          if (keys.has(name)) return fail(keyNode, "YAML syntax error: Map keys must be unique");
          keys.add(name);
        }
        for (const side of ["key", "value"] as const) {
          const inner = walk(pair[side] as Node | null, depth + 1, (replacement) => (pair[side] = replacement));
          figures.values += inner.values;
          figures.depth = Math.max(figures.depth, 1 + inner.depth);
        }
        if (problem) break;
      }
    } else if (isSeq(node)) {
      figures = { values: 1, depth: 1 };
      for (const [index, item] of node.items.entries()) {
        const inner = walk(item as Node, depth + 1, (replacement) => (node.items[index] = replacement));
        figures.values += inner.values;
        figures.depth = Math.max(figures.depth, 1 + inner.depth);
        if (problem) break;
      }
    } else {
      figures = add(node, { values: 1, depth: 0 }, depth);
    }
    if (entry) entry.figures = figures;
    return figures;
  };
  walk(root, 0, () => {
    throw new Error("checkStructure: the document itself is never an alias");
  });
  return { problem, aliases };
}

/** Where an alias sits, and how to put another node there. */
type AliasSite = { alias: Node; anchor: Node; put: (node: Node) => void };

/**
 * The document's value. The library looks each alias's anchor up among every anchor and alias before
 * it (quadratic in their number), so each alias is first replaced by its anchor's node, which
 * checkStructure found, and put back afterwards (the positions of an alias's content stay the alias's).
 * The values this expands to were counted: at most MAX_VALUES.
 */
function toValue(doc: Document.Parsed, aliases: readonly AliasSite[]): unknown {
  for (const site of aliases) site.put(site.anchor);
  try {
    return doc.toJS({ maxAliasCount: -1 });
  } finally {
    for (const site of aliases) site.put(site.alias);
  }
}


/**
 * A YAML value given as text (`--set key=value`, the value of `${env:NAME}`), under the same bounds
 * as a file; undefined when it is not one well-formed YAML value.
 */
export function parseValueText(text: string): { value: unknown } | undefined {
  const parsed = parseBounded(text, new LineCounter());
  if ("tooDeepAt" in parsed || parsed.doc.errors.length > 0) return undefined;
  const structure = checkStructure(parsed.doc.contents as Node | null);
  if (structure.problem) return undefined;
  try {
    return { value: toValue(parsed.doc, structure.aliases) };
  } catch {
    return undefined;
  }
}
