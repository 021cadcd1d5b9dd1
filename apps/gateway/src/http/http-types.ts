import type { IncomingMessage, ServerResponse } from 'node:http';

/** What the gateway reads of an Express request: the Node request plus the parsed query and body. */
export type HttpRequest = IncomingMessage & {
  readonly query: Record<string, unknown>;
  readonly body: unknown;
};

export type HttpResponse = ServerResponse;
