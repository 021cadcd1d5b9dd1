import { z } from 'zod';
import { ErrorCode, SynclineError } from './errors.js';
import { LONE_SURROGATE } from './json.js';

/**
 * Tenants and entity types are names chosen by operators and developers: they must already
 * be safe subject tokens, so they are checked, never encoded.
 */
export const NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** Entity ids come from applications and may hold anything printable, up to this length. */
export const MAX_ENTITY_ID_LENGTH = 256;

/** Ids made only of these characters are used as subject tokens as they are. */
const PLAIN_ID = /^[A-Za-z0-9_-]+$/;

/** Marks an encoded id. `~` never appears in a plain id, so encoding stays injective. */
const ENCODED_PREFIX = '~';

export const tenantSchema = z.string().regex(NAME_PATTERN, 'tenant must match [A-Za-z0-9_-]{1,64}');
export const entityTypeSchema = z.string().regex(NAME_PATTERN, 'entity type must match [A-Za-z0-9_-]{1,64}');
export const entityIdSchema = z
  .string()
  .min(1, 'entity id must not be empty')
  .max(MAX_ENTITY_ID_LENGTH, `entity id must be at most ${MAX_ENTITY_ID_LENGTH} characters`)
  .refine((id) => !id.includes('\u0000'), 'entity id must not contain NUL')
  // A lone surrogate has no UTF-8 form: encoding would replace it and two ids would share a subject.
  .refine((id) => !LONE_SURROGATE.test(id), 'entity id must be well-formed Unicode');

/** Checks a tenant or entity type, throwing `INVALID_IDENTIFIER` with the reason. */
export function assertName(
  kind: 'tenant' | 'entity type' | 'namespace' | 'gateway id' | 'stream',
  value: string,
): string {
  if (!NAME_PATTERN.test(value)) {
    throw new SynclineError(
      ErrorCode.INVALID_IDENTIFIER,
      `${kind} "${value.slice(0, 80)}" must be 1-64 characters of A-Z, a-z, 0-9, "_" or "-"`,
    );
  }
  return value;
}

/**
 * The subject token for an entity id: the id itself when it is plain, otherwise `~` followed by
 * the base64url of its UTF-8 bytes. NATS tokens may not hold `.`, `*`, `>` or whitespace.
 */
export function encodeEntityIdToken(entityId: string): string {
  const checked = entityIdSchema.safeParse(entityId);
  if (!checked.success) {
    throw new SynclineError(ErrorCode.INVALID_IDENTIFIER, checked.error.issues[0]?.message ?? 'invalid entity id');
  }
  if (PLAIN_ID.test(entityId)) return entityId;
  return ENCODED_PREFIX + toBase64Url(new TextEncoder().encode(entityId));
}

export function decodeEntityIdToken(token: string): string {
  if (!token.startsWith(ENCODED_PREFIX)) return token;
  return new TextDecoder().decode(fromBase64Url(token.slice(ENCODED_PREFIX.length)));
}

// Written with btoa/atob rather than Buffer so that contracts also run in browsers.
function toBase64Url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

function fromBase64Url(text: string): Uint8Array {
  const binary = atob(text.replaceAll('-', '+').replaceAll('_', '/'));
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}
