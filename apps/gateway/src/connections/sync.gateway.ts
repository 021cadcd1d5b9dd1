import { setTimeout as delay } from 'node:timers/promises';
import { Inject, type BeforeApplicationShutdown } from '@nestjs/common';
import { WebSocketGateway, type OnGatewayConnection } from '@nestjs/websockets';
import type { IncomingMessage } from 'node:http';
import type { RawData, WebSocket } from 'ws';
import { CloseCode, ErrorCode, PROTOCOL_VERSION, SynclineError, WS_SUBPROTOCOL } from '@syncline/contracts';
import { CONFIG, LOGGER, type Logger } from '@syncline/platform';
import { SessionService } from '../auth/session.service.js';
import { TokenVerifier, tokenFromProtocols, type Principal } from '../auth/token-verifier.js';
import { HARD_MAX_PAYLOAD_BYTES, type GatewayConfig } from '../config.js';
import { SubscriptionService } from '../fanout/subscription.service.js';
import { Connection } from './connection.js';
import { ConnectionRegistry } from './connection.registry.js';
import { FrameRouter } from './frame-router.js';

/** Frames a client may send before its token is verified; they are handled once it is. */
const MAX_FRAMES_BEFORE_WELCOME = 64;
/** How long a stopping gateway waits for its clients to answer its close frames. */
const CLOSE_HANDSHAKE_TIMEOUT_MS = 1000;

/**
 * The WebSocket edge at `/ws`. The client offers the `syncline.v1` sub-protocol and its token as
 * a second one (`bearer.<jwt>`); the server selects `syncline.v1` and never echoes the token.
 */
@WebSocketGateway({
  path: '/ws',
  maxPayload: HARD_MAX_PAYLOAD_BYTES,
  handleProtocols: (protocols: Set<string>) => (protocols.has(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : false),
})
export class SyncGateway implements OnGatewayConnection, BeforeApplicationShutdown {
  private readonly keepAlive: NodeJS.Timeout;
  /** Sockets that answered the last probe. */
  private readonly alive = new WeakSet<WebSocket>();

  constructor(
    private readonly verifier: TokenVerifier,
    private readonly router: FrameRouter,
    private readonly registry: ConnectionRegistry,
    private readonly subscriptions: SubscriptionService,
    private readonly sessions: SessionService,
    @Inject(CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.keepAlive = setInterval(() => this.probeSockets(), config.HEARTBEAT_INTERVAL_MS);
    this.keepAlive.unref();
  }

  handleConnection(socket: WebSocket, request: IncomingMessage): void {
    const early: RawData[] = [];
    let connection: Connection | undefined;
    socket.on('message', (data) => {
      if (connection) void this.router.route(connection, data);
      else if (early.length < MAX_FRAMES_BEFORE_WELCOME) early.push(data);
    });
    socket.on('error', (error) => this.logger.debug({ err: error }, 'socket error'));
    socket.on('pong', () => this.alive.add(socket));
    this.alive.add(socket);
    this.authenticate(request).then(
      (principal) => {
        if (socket.readyState !== socket.OPEN) return;
        connection = this.open(socket, principal);
        for (const data of early.splice(0)) void this.router.route(connection, data);
      },
      (error: unknown) => {
        const failure = SynclineError.is(error)
          ? error
          : new SynclineError(ErrorCode.AUTH_INVALID, 'authentication failed');
        socket.send(
          JSON.stringify({
            type: 'error',
            payload: { code: failure.code, message: failure.message },
            timestamp: Date.now(),
          }),
        );
        socket.close(closeCodeOf(failure.code), failure.message);
      },
    );
  }

  /** Tells every client to reconnect elsewhere, then waits (briefly) for the sockets to close. */
  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.keepAlive);
    // Right after this hook the WebSocket adapter terminates every socket. A close frame still
    // queued then (corked by the write coalescing until the loop turn ends, or not yet sent) was
    // dropped, and a client that had just been sent frames saw an abnormal 1006 instead of
    // GOING_AWAY. Waiting for the clients' answering close frames completes the handshake.
    const closed = [...this.registry.all()].map((connection) => {
      connection.close(CloseCode.GOING_AWAY, 'gateway shutting down');
      return connection.closed();
    });
    await Promise.race([Promise.all(closed), delay(CLOSE_HANDSHAKE_TIMEOUT_MS, undefined, { ref: false })]);
  }

  private async authenticate(request: IncomingMessage): Promise<Principal> {
    if (request.headers['sec-websocket-protocol']?.split(',').every((p) => p.trim() !== WS_SUBPROTOCOL)) {
      throw new SynclineError(ErrorCode.UNSUPPORTED_PROTOCOL, `offer the "${WS_SUBPROTOCOL}" sub-protocol`);
    }
    const token = tokenFromProtocols(request.headers['sec-websocket-protocol']);
    if (!token) throw new SynclineError(ErrorCode.AUTH_INVALID, 'no token: offer "bearer.<jwt>" as a sub-protocol');
    return this.verifier.verify(token);
  }

  private open(socket: WebSocket, principal: Principal): Connection {
    const connection = new Connection(socket, principal, this.config.MAX_BUFFERED_BYTES);
    this.registry.add(connection);
    socket.on('close', () => {
      connection.markClosed();
      this.sessions.forget(connection);
      this.registry.remove(connection);
      this.subscriptions.release(connection);
      this.alive.delete(socket);
    });
    connection.send('welcome', {
      protocolVersion: PROTOCOL_VERSION,
      connectionId: connection.id,
      gatewayId: this.config.INSTANCE_ID ?? 'gateway',
      userId: principal.userId,
      tenant: principal.tenant,
      serverTime: Date.now(),
      heartbeatIntervalMs: this.config.HEARTBEAT_INTERVAL_MS,
      maxFrameBytes: this.config.MAX_FRAME_BYTES,
    });
    this.sessions.watch(connection);
    return connection;
  }

  /** WebSocket-level pings find sockets whose peer vanished without closing. */
  private probeSockets(): void {
    for (const connection of this.registry.all()) {
      const socket = connection.socketForProbe;
      if (!this.alive.has(socket)) {
        socket.terminate();
        continue;
      }
      this.alive.delete(socket);
      socket.ping();
    }
  }
}

function closeCodeOf(code: ErrorCode): number {
  if (code === ErrorCode.UNSUPPORTED_PROTOCOL) return CloseCode.UNSUPPORTED_PROTOCOL;
  // An expired token is not a wrong one: the client fetches a fresh token and reconnects.
  if (code === ErrorCode.AUTH_EXPIRED) return CloseCode.AUTH_EXPIRED;
  return CloseCode.AUTH_INVALID;
}
