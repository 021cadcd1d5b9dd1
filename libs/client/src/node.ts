import WebSocket from 'ws';
import type { WebSocketFactory, WebSocketLike } from './connection/transport.js';

export * from './index.js';
export { FileStorage } from './storage/file-storage.js';

/** The `ws` package as the client's WebSocket, for Node before version 22. */
export const nodeWebSocketFactory: WebSocketFactory = (url, protocols) =>
  new WebSocket(url, protocols, { perMessageDeflate: false }) as unknown as WebSocketLike;
