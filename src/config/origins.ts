/**
 * Where every value of a config came from (file, key and value positions), kept as a tree shaped
 * like the value, so that merging layers, `--set` and looking up a position each cost the depth of
 * the path or the size of what they replace, never the size of the whole config.
 */
import type { KeyPath } from "./diagnostics.ts";

export type Position = { line: number; col: number };
/** Where a value came from: a file (absolute path) or `<--set>`, the key's and the value's position. */
export type Origin = { file: string; key?: Position; value: Position };

/** Mapping keys and list indices share one namespace per node: a node is either a mapping or a list. */
const segmentKey = (segment: string | number): string => String(segment);

export class OriginTree {
  origin: Origin | undefined;
  /** Made on the first child: most nodes are leaves, and a config can have 100,000 of them. */
  private children: Map<string, OriginTree> | undefined;

  constructor(origin?: Origin) {
    this.origin = origin;
  }

  child(segment: string | number): OriginTree | undefined {
    return this.children?.get(segmentKey(segment));
  }

  /** The node at `keyPath`, or undefined. */
  node(keyPath: KeyPath): OriginTree | undefined {
    let node: OriginTree | undefined = this;
    for (const segment of keyPath) {
      node = node.child(segment);
      if (node === undefined) return undefined;
    }
    return node;
  }

  get(keyPath: KeyPath): Origin | undefined {
    return this.node(keyPath)?.origin;
  }

  /** The origin at `keyPath`, else that of its closest ancestor that has one, with `exact` saying which. */
  nearest(keyPath: KeyPath): { origin: Origin; exact: boolean } | undefined {
    let found: Origin | undefined = this.origin;
    let node: OriginTree | undefined = this;
    let depth = 0;
    for (const segment of keyPath) {
      node = node.child(segment);
      if (node === undefined) break;
      depth++;
      if (node.origin !== undefined) found = node.origin;
    }
    if (node !== undefined && depth === keyPath.length && node.origin !== undefined) return { origin: node.origin, exact: true };
    return found === undefined ? undefined : { origin: found, exact: false };
  }

  /** The node at `keyPath`, created (without an origin) where missing. */
  ensure(keyPath: KeyPath): OriginTree {
    let node: OriginTree = this;
    for (const segment of keyPath) {
      let next = node.child(segment);
      if (next === undefined) {
        next = new OriginTree();
        node.setChild(segment, next);
      }
      node = next;
    }
    return node;
  }

  /** Puts `subtree` (its origin and everything under it) at `keyPath`, replacing what was there. */
  graft(keyPath: KeyPath, subtree: OriginTree): void {
    if (keyPath.length === 0) throw new Error("OriginTree.graft: the root cannot be replaced");
    this.ensure(keyPath.slice(0, -1)).setChild(keyPath.at(-1)!, subtree);
  }

  /** Forgets the origins at `keyPath` and under it. */
  drop(keyPath: KeyPath): void {
    if (keyPath.length === 0) {
      this.origin = undefined;
      this.children = undefined;
      return;
    }
    this.node(keyPath.slice(0, -1))?.deleteChild(keyPath.at(-1)!);
  }

  /** A node with this one's origin and children (shared, not copied), for building a merged tree. */
  shallowCopy(): OriginTree {
    const copy = new OriginTree(this.origin);
    if (this.children !== undefined) copy.children = new Map(this.children);
    return copy;
  }

  /** Sets a child without copying anything (for the reader building the tree). */
  setChild(segment: string | number, child: OriginTree): void {
    (this.children ??= new Map()).set(segmentKey(segment), child);
  }

  deleteChild(segment: string | number): void {
    this.children?.delete(segmentKey(segment));
  }

  /** Every origin in the tree. */
  *origins(): Generator<Origin> {
    const stack: OriginTree[] = [this];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (node.origin !== undefined) yield node.origin;
      for (const child of node.children?.values() ?? []) stack.push(child);
    }
  }
}
