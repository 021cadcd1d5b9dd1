import { randomBytes } from 'node:crypto';
import type { WebSocket } from 'ws';
import { CloseCode, type ErrorPayload, type ServerFrameType, type ServerPayloads } from '@syncline/contracts';
import type { Principal } from '../auth/token-verifier.js';
import { coalesceWrites } from './write-coalescing.js';

const SLOW_CONSUMER = 'slow consumer: resume with your cursor';
/** The protocol's frames are JSON text, whether given as a string or as UTF-8 bytes. */
const TEXT_FRAME = { binary: false } as const;
/** How long a paced bulk send waits for a client to read what it was sent. */
const DRAIN_TIMEOUT_MS = 10_000;
const DRAIN_POLL_MS = 10;

/**
 * One client socket and what the gateway knows of it. Frames leave only through `send`, which
 * also watches the socket's unsent bytes: a client that stops reading is closed (and resumes
 * later with its cursor) rather than being allowed to grow the gateway's memory.
 */
/** A mutation of this connection whose final outcome has not been sent yet. */
export interface AwaitedOutcome {
  readonly frameId: string | undefined;
  /** When to ask the workers' ledger for it, should the outcome message not have come by then. */
  checkAt: number;
  /** Times it was asked for and not recorded yet. */
  checks: number;
}

export class Connection {
  readonly id = randomBytes(9).toString('base64url');
  /** Entity types this connection receives changes of. */
  readonly subscriptions = new Set<string>();
  /** `mutate` frames awaiting their outcome, by mutation id: the final ack echoes the frame id. */
  readonly awaitingOutcome = new Map<string, AwaitedOutcome>();
  private open = true;

  constructor(
    private readonly socket: WebSocket,
    private currentPrincipal: Principal,
    private readonly maxBufferedBytes: number,
  ) {}

  /** Who the connection acts for: from its latest token (see {@link renew}). */
  get principal(): Principal {
    return this.currentPrincipal;
  }

  /** Takes a renewed token's principal; the caller has checked it is the same user and tenant. */
  renew(principal: Principal): void {
    this.currentPrincipal = principal;
  }

  /** The socket, for WebSocket-level liveness probes only; frames go through `send`. */
  get socketForProbe(): WebSocket {
    return this.socket;
  }

  get tenant(): string {
    return this.principal.tenant;
  }

  get isOpen(): boolean {
    return this.open;
  }

  send<K extends ServerFrameType>(type: K, payload: ServerPayloads[K], id?: string): void {
    const frame =
      id === undefined ? { type, payload, timestamp: Date.now() } : { type, id, payload, timestamp: Date.now() };
    this.sendRaw(JSON.stringify(frame));
  }

  /**
   * Sends an already serialized frame. The change feed encodes a delta once, as a buffer, for all
   * its recipients: `ws` frames a buffer without copying it.
   */
  sendRaw(frame: string | Buffer): void {
    if (!this.open) return;
    if (this.socket.bufferedAmount > this.maxBufferedBytes) {
      this.close(CloseCode.GOING_AWAY, SLOW_CONSUMER);
      return;
    }
    coalesceWrites(this.socket);
    this.socket.send(frame, TEXT_FRAME);
  }

  /**
   * For bulk sends (a replay): undefined while the socket's unsent data is under half the bound,
   * else a promise that resolves once it is, so a client catching up on a large backlog is paced
   * instead of being cut off. One that does not drain within {@link DRAIN_TIMEOUT_MS} is closed as
   * a slow consumer, like in live traffic.
   */
  writable(): Promise<void> | undefined {
    const drained = () => !this.open || this.socket.bufferedAmount <= this.maxBufferedBytes / 2;
    if (drained()) return undefined;
    const startedAt = Date.now();
    return new Promise((resolve) => {
      const check = (): void => {
        if (drained()) return resolve();
        if (Date.now() - startedAt > DRAIN_TIMEOUT_MS) {
          this.close(CloseCode.GOING_AWAY, SLOW_CONSUMER);
          return resolve();
        }
        setTimeout(check, DRAIN_POLL_MS);
      };
      setTimeout(check, DRAIN_POLL_MS);
    });
  }

  sendError(error: ErrorPayload, id?: string): void {
    this.send('error', error, id);
  }

  close(code: number, reason: string): void {
    if (!this.open) return;
    this.open = false;
    this.socket.close(code, reason);
  }

  /** Resolves once the socket has closed, whoever closed it. */
  closed(): Promise<void> {
    if (this.socket.readyState === this.socket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => this.socket.once('close', () => resolve()));
  }

  /** Called when the socket closed, whoever closed it. */
  markClosed(): void {
    this.open = false;
  }
}
