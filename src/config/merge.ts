/**
 * Deep merge of config layers (`extends` parents, then the file itself, then `--set`), carrying
 * the origin of every value along so that errors point at the layer that set it.
 *
 * Mappings merge key by key; lists and scalars replace. A layer that changes `method.kind`
 * replaces the whole `method`: the options of one method mean nothing to another.
 */
import type { KeyPath } from "./diagnostics.ts";
import { isUnderPath, pathKey, type Origins, type Source } from "./source.ts";

export type Layered = { value: unknown; origins: Origins };

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value) && !(value instanceof Uint8Array);
}

/** Assignment that treats `__proto__` as an ordinary key. */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Forgets the origins of the value at `keyPath` and of everything under it. */
export function dropOrigins(origins: Origins, keyPath: KeyPath): void {
  const prefix = pathKey(keyPath);
  for (const key of [...origins.keys()]) if (isUnderPath(key, prefix)) origins.delete(key);
}

function replaceOrigins(origins: Origins, from: Origins, keyPath: KeyPath): void {
  dropOrigins(origins, keyPath);
  const prefix = pathKey(keyPath);
  for (const [key, origin] of from) if (isUnderPath(key, prefix)) origins.set(key, origin);
}

export function mergeLayers(base: Layered, override: Layered | Source): Layered {
  const origins: Origins = new Map(base.origins);
  const merge = (under: unknown, over: unknown, keyPath: string[]): unknown => {
    const kindChanged =
      keyPath.length === 1 && keyPath[0] === "method" && isPlainObject(under) && isPlainObject(over) && Object.hasOwn(over, "kind") && over.kind !== under.kind;
    if (!isPlainObject(under) || !isPlainObject(over) || kindChanged) {
      replaceOrigins(origins, override.origins, keyPath);
      return over;
    }
    const own = override.origins.get(pathKey(keyPath));
    if (own) origins.set(pathKey(keyPath), own);
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(under)) setOwn(out, key, value);
    for (const [key, value] of Object.entries(over)) setOwn(out, key, Object.hasOwn(under, key) ? merge(under[key], value, [...keyPath, key]) : value);
    for (const key of Object.keys(over)) if (!Object.hasOwn(under, key)) replaceOrigins(origins, override.origins, [...keyPath, key]);
    return out;
  };
  return { value: merge(base.value, override.value, []), origins };
}
