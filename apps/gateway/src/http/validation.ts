import { ErrorCode, SynclineError, findUnsafeJson, isJsonObject } from '@syncline/contracts';
import type { z } from 'zod';

/**
 * Parses outside input with its schema, or throws the same errors WebSocket frames get. A batch
 * envelope names its list in `itemsKey`: the envelope is checked, and each item's values are left
 * to the item's own check, so that one unsafe item does not refuse the others.
 */
export function parseInput<S extends z.ZodType>(
  schema: S,
  input: unknown,
  what: string,
  { itemsKey }: { itemsKey?: string } = {},
): z.output<S> {
  const unsafe = findUnsafeJson(itemsKey && isJsonObject(input) ? { ...input, [itemsKey]: [] } : input);
  if (unsafe) throw new SynclineError(ErrorCode.UNSAFE_INPUT, `${what} rejected: ${unsafe}`);
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.map(String).join('.') || '(root)';
    throw new SynclineError(ErrorCode.VALIDATION_FAILED, `${what}: ${path}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
