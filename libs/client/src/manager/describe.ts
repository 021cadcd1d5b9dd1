import type { JsonObject } from '@syncline/contracts';
import { jsonEqual } from '@syncline/delta';
import type { ClientEvents } from '../client-events.js';

/** The top-level fields whose values differ between two versions of a document, sorted. */
export function changedFields(previous: JsonObject | null, next: JsonObject | null): string[] {
  const keys = new Set([...Object.keys(previous ?? {}), ...Object.keys(next ?? {})]);
  return [...keys].filter((key) => !jsonEqual(previous?.[key], next?.[key])).sort();
}

/** One line for a history panel, e.g. `orders/o-1: stage → "packed" (remote)`. */
export function describeChange(change: ClientEvents['state:change'], fields: readonly string[]): string {
  const entity = `${change.entityType}/${change.entityId}`;
  const by = change.source === 'remote' ? 'remote' : change.source === 'local' ? 'local' : 'confirmed';
  if (change.previous === null && change.next !== null) return `${entity} created (${by})`;
  if (change.next === null) return `${entity} deleted (${by})`;
  if (fields.length === 0) return `${entity} confirmed`;
  const shown = fields.slice(0, 3).map((field) => `${field} → ${preview(change.next?.[field])}`);
  if (fields.length > 3) shown.push(`+${fields.length - 3} more`);
  return `${entity}: ${shown.join(', ')} (${by})`;
}

function preview(value: unknown): string {
  if (value === undefined) return '(removed)';
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}
