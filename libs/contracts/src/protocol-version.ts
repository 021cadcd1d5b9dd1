/**
 * Version of the client protocol spoken on `/ws` (and later SSE).
 *
 * History:
 * - 1: JSON frames `{type, id?, payload, timestamp}`; cursors `<epoch>:<seq>`;
 *      field-level deltas with JSON Pointer paths.
 */
export const PROTOCOL_VERSION = 1;

/** The oldest protocol version a gateway still accepts. */
export const MIN_SUPPORTED_PROTOCOL_VERSION = 1;

/** WebSocket sub-protocol a client offers and the gateway selects. */
export const WS_SUBPROTOCOL = `syncline.v${PROTOCOL_VERSION}`;

/** Prefix of the sub-protocol entry that carries the bearer token (never the URL). */
export const WS_TOKEN_PROTOCOL_PREFIX = 'bearer.';
