import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';

/**
 * Coalesces the frames a socket is sent within one turn of the event loop into one write.
 *
 * The change feed hands the gateway several changes per read from NATS; delivered one by one,
 * each becomes its own system call per socket, and at high fan-out those calls are most of the
 * gateway's CPU. Corking the TCP socket until the loop turn ends (`setImmediate`) turns them
 * into one `writev` per socket, adding no more than that turn to any frame's latency.
 */
const corked = new Set<Socket>();
let flushScheduled = false;

export function coalesceWrites(websocket: WebSocket): void {
  // `ws` keeps its TCP socket private; without it, frames simply go out one by one.
  const socket = (websocket as unknown as { _socket?: Socket })._socket;
  if (!socket || corked.has(socket) || socket.destroyed) return;
  socket.cork();
  corked.add(socket);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
}

function flush(): void {
  flushScheduled = false;
  for (const socket of corked) socket.uncork();
  corked.clear();
}
