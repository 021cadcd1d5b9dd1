/**
 * Stable error codes. Clients switch on `code`; the message is for humans and may change.
 * Each edge maps a code once: an `error` frame or close code on WebSocket, a status on HTTP,
 * ack / nak / term on JetStream.
 */
export const ErrorCode = {
  /** The frame is not JSON, or not an object. */
  BAD_FRAME: 'BAD_FRAME',
  /** The frame's `type` is not part of the protocol. */
  UNKNOWN_TYPE: 'UNKNOWN_TYPE',
  /** The frame's payload does not match the schema of its type. */
  VALIDATION_FAILED: 'VALIDATION_FAILED',
  /** The frame is larger than the gateway accepts. */
  FRAME_TOO_LARGE: 'FRAME_TOO_LARGE',
  /** A value is not safe JSON: too deep, NUL characters, or prototype-polluting keys. */
  UNSAFE_INPUT: 'UNSAFE_INPUT',
  /** A tenant, entity type or entity id cannot be used as a subject token. */
  INVALID_IDENTIFIER: 'INVALID_IDENTIFIER',
  /** The client's hybrid logical clock is too far from the server's. */
  CLOCK_SKEW: 'CLOCK_SKEW',
  /** Missing or malformed credentials, or ones that do not verify. */
  AUTH_INVALID: 'AUTH_INVALID',
  /** The token expired: get a fresh one (an `auth` frame renews it on an open connection). */
  AUTH_EXPIRED: 'AUTH_EXPIRED',
  /** The credentials do not allow this tenant, entity type or action. */
  FORBIDDEN: 'FORBIDDEN',
  /** A bound of the connection was reached (subscriptions per connection); the request was not carried out. */
  LIMIT_EXCEEDED: 'LIMIT_EXCEEDED',
  /**
   * A cursor of the right format that cannot be served: its sequence is not a safe integer, or it
   * lies beyond the end of the change stream (SSE: a `Last-Event-ID` that is no position at all).
   * A cursor of the wrong format is `VALIDATION_FAILED`.
   */
  INVALID_CURSOR: 'INVALID_CURSOR',
  /** Too many requests; `retryAfterMs` says when to try again. */
  RATE_LIMITED: 'RATE_LIMITED',
  /**
   * The system has more work queued than it processes in a moment: the mutation was not taken.
   * Wait `retryAfterMs` (with every other mutation of this client, not just this one), then send
   * it again. The connection stays open.
   */
  OVERLOADED: 'OVERLOADED',
  /** A dependency (JetStream, PostgreSQL, a peer service) did not answer in time. */
  UNAVAILABLE: 'UNAVAILABLE',
  /** WebSocket sub-protocols were offered, but not `syncline.v1`. */
  UNSUPPORTED_PROTOCOL: 'UNSUPPORTED_PROTOCOL',
  /** HTTP: no such resource or route. */
  NOT_FOUND: 'NOT_FOUND',
  /** An unexpected failure; the request may be retried. */
  INTERNAL: 'INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface SynclineErrorOptions {
  readonly retryAfterMs?: number;
  readonly cause?: unknown;
  readonly details?: unknown;
}

/** The one error type of the platform: a stable code, a human message, an optional retry hint. */
export class SynclineError extends Error {
  override readonly name = 'SynclineError';
  readonly retryAfterMs: number | undefined;
  readonly details: unknown;

  constructor(
    readonly code: ErrorCode,
    message: string,
    options: SynclineErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.retryAfterMs = options.retryAfterMs;
    this.details = options.details;
  }

  static is(value: unknown, code?: ErrorCode): value is SynclineError {
    return value instanceof SynclineError && (code === undefined || value.code === code);
  }
}

/** WebSocket close codes (4000-4999 are application defined). */
export const CloseCode = {
  /** Authentication failed; do not reconnect with the same token. */
  AUTH_INVALID: 4401,
  /** The token expired and was not renewed in time: reconnect with a fresh token and resume. */
  AUTH_EXPIRED: 4402,
  /** Sub-protocols were offered, but not `syncline.v1`: offer it. */
  UNSUPPORTED_PROTOCOL: 4400,
  /**
   * The gateway is shutting down, or the client is a slow consumer (more than
   * `MAX_BUFFERED_BYTES` of frames waiting to be sent): reconnect (to any gateway) and resume.
   */
  GOING_AWAY: 4001,
  /**
   * A message exceeded 1 MiB, the WebSocket server's own limit (the standard code, sent by the
   * server library): reconnect and resume; do not send that frame again.
   */
  MESSAGE_TOO_BIG: 1009,
  /**
   * A text frame that is not valid UTF-8 (the standard code, sent by the server library): fix the
   * client's encoding; reconnect and resume.
   */
  INVALID_PAYLOAD: 1007,
} as const;
