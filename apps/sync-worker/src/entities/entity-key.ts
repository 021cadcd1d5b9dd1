/** Which entity: the unit of ordering (versions 1, 2, 3 …) and of the worker's cache. */
export interface EntityKey {
  readonly tenant: string;
  readonly entityType: string;
  readonly entityId: string;
}

/** One string per entity, for maps. */
export function keyOf(key: EntityKey): string {
  return `${key.tenant}\u0000${key.entityType}\u0000${key.entityId}`;
}

export function entityKeyOf(key: EntityKey): EntityKey {
  return { tenant: key.tenant, entityType: key.entityType, entityId: key.entityId };
}

/** Distinct entities, in the order they first appear. */
export function uniqueKeys(items: readonly EntityKey[]): EntityKey[] {
  const keys = new Map<string, EntityKey>();
  for (const item of items) {
    const id = keyOf(item);
    if (!keys.has(id)) keys.set(id, entityKeyOf(item));
  }
  return [...keys.values()];
}

export function compareKeys(a: EntityKey, b: EntityKey): number {
  return compare(a.tenant, b.tenant) || compare(a.entityType, b.entityType) || compare(a.entityId, b.entityId);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
