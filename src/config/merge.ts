/**
 * Deep merge of config layers (`extends` parents, then the file itself, then `--set`), carrying
 * the origin of every value along so that errors point at the layer that set it.
 *
 * Mappings merge key by key; lists and scalars replace. A layer that changes `method.kind`
 * replaces the whole `method`: the options of one method mean nothing to another.
 */
import { OriginTree } from "./origins.ts";

export type Layered = { value: unknown; origins: OriginTree };

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value) && !(value instanceof Uint8Array);
}

/** Assignment that treats `__proto__` as an ordinary key. */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * `override` over `base`. The result shares the subtrees (values and origins) it takes from either
 * side, so neither layer may be changed afterwards; each merged mapping costs its number of keys.
 */
export function mergeLayers(base: Layered, override: Layered): Layered {
  const merge = (under: unknown, over: unknown, underOrigins: OriginTree | undefined, overOrigins: OriginTree | undefined, keyPath: readonly string[]): [unknown, OriginTree] => {
    const kindChanged = keyPath.length === 1 && keyPath[0] === "method" && isPlainObject(under) && isPlainObject(over) && Object.hasOwn(over, "kind") && over.kind !== under.kind;
    if (!isPlainObject(under) || !isPlainObject(over) || kindChanged) return [over, overOrigins ?? new OriginTree()];
    const origins = underOrigins?.shallowCopy() ?? new OriginTree();
    if (overOrigins?.origin !== undefined) origins.origin = overOrigins.origin;
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(under)) setOwn(out, key, value);
    for (const [key, value] of Object.entries(over)) {
      const overChild = overOrigins?.child(key);
      if (!Object.hasOwn(under, key)) {
        setOwn(out, key, value);
        if (overChild) origins.setChild(key, overChild);
        else origins.deleteChild(key);
        continue;
      }
      const [merged, mergedOrigins] = merge(under[key], value, underOrigins?.child(key), overChild, [...keyPath, key]);
      setOwn(out, key, merged);
      origins.setChild(key, mergedOrigins);
    }
    return [out, origins];
  };
  const [value, origins] = merge(base.value, override.value, base.origins, override.origins, []);
  return { value, origins };
}
