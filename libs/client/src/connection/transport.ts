/**
 * The part of a WebSocket the client uses: the browser's `WebSocket` has it, and so does the
 * `ws` package in Node (which `@syncline/client/node` supplies).
 */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export interface WebSocketFactoryOptions {
  /** Offer per-message compression, where the implementation lets the caller choose. */
  readonly compression: boolean;
}

export type WebSocketFactory = (url: string, protocols: string[], options: WebSocketFactoryOptions) => WebSocketLike;

export const WS_OPEN = 1;

/** The global `WebSocket` (browsers, Node ≥ 22), when there is one. */
export function globalWebSocketFactory(): WebSocketFactory | undefined {
  const Ctor = (globalThis as { WebSocket?: new (url: string, protocols: string[]) => WebSocketLike }).WebSocket;
  return Ctor ? (url, protocols) => new Ctor(url, protocols) : undefined;
}
