import WebSocket from 'ws';
import type { WebSocketFactory, WebSocketLike } from './connection/transport.js';

export * from './index.js';
export { FileStorage } from './storage/file-storage.js';

/**
 * The `ws` package as the client's WebSocket, for Node before version 22. It offers
 * per-message compression only when the client's `enableCompression` option asks for it.
 */
export const nodeWebSocketFactory: WebSocketFactory = (url, protocols, options) =>
  new WebSocket(url, protocols, { perMessageDeflate: options.compression }) as unknown as WebSocketLike;
