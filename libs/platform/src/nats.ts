import { connect, type NatsConnection, headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { ErrorCode, SynclineError } from '@syncline/contracts';
import type { z } from 'zod';

export interface NatsOptions {
  readonly servers: string[];
  readonly name: string;
}

/**
 * Connects to NATS. `noAsyncTraces` stops nats.js from building an `Error` per request to keep
 * async stack traces: that alone roughly doubles publish throughput.
 */
export async function connectNats(options: NatsOptions): Promise<NatsConnection> {
  return connect({
    servers: options.servers,
    name: options.name,
    noAsyncTraces: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 10_000,
  });
}

export { jetstreamManager };

/**
 * Calls `listener` each time the connection is back after losing its server. Core NATS messages
 * published to this connection's subscriptions meanwhile are gone, and consumers that lived on
 * the lost server are silent: whoever depends on them catches up here.
 */
export function onReconnect(nc: NatsConnection, listener: () => void): void {
  void (async () => {
    for await (const status of nc.status()) if (status.type === 'reconnect') listener();
  })();
}

/** Builds NATS headers from plain pairs. */
export function headersFrom(pairs: Record<string, string | undefined>): MsgHdrs {
  const h = natsHeaders();
  for (const [key, value] of Object.entries(pairs)) if (value !== undefined) h.set(key, value);
  return h;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

export function decodeJson(data: Uint8Array): unknown {
  return JSON.parse(decoder.decode(data));
}

/**
 * Request/reply with JSON bodies and a schema-checked answer. A reply `{error:{code,message}}`
 * becomes a `SynclineError`; no responder or a timeout becomes `UNAVAILABLE`.
 */
export async function requestJson<S extends z.ZodType>(
  nc: NatsConnection,
  subject: string,
  body: unknown,
  schema: S,
  options: { timeoutMs: number; headers?: MsgHdrs },
): Promise<z.infer<S>> {
  let reply;
  try {
    reply = await nc.request(subject, encodeJson(body), {
      timeout: options.timeoutMs,
      ...(options.headers ? { headers: options.headers } : {}),
    });
  } catch (cause) {
    throw new SynclineError(ErrorCode.UNAVAILABLE, `no answer on ${subject}`, { cause, retryAfterMs: 1000 });
  }
  const decoded = decodeJson(reply.data) as { error?: { code: string; message: string } };
  if (decoded && typeof decoded === 'object' && decoded.error) {
    throw new SynclineError(decoded.error.code as ErrorCode, decoded.error.message);
  }
  const parsed = schema.safeParse(decoded);
  if (!parsed.success) {
    throw new SynclineError(ErrorCode.INTERNAL, `malformed reply on ${subject}: ${parsed.error.message}`);
  }
  return parsed.data;
}

/** The error body of a request/reply answer. */
export function replyError(error: unknown): { error: { code: string; message: string } } {
  if (error instanceof SynclineError) return { error: { code: error.code, message: error.message } };
  return { error: { code: ErrorCode.INTERNAL, message: 'internal error' } };
}
