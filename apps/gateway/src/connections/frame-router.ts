import { Inject, Injectable } from '@nestjs/common';
import type { RawData } from 'ws';
import {
  ErrorCode,
  SynclineError,
  clientFrameSchemas,
  envelopeSchema,
  findUnsafeJson,
  isClientFrameType,
  isJsonObject,
  type ClientFrame,
  type JsonObject,
} from '@syncline/contracts';
import { CONFIG, LOGGER, type Logger } from '@syncline/platform';
import { authorizeFrame } from '../auth/authorize.js';
import { SessionService } from '../auth/session.service.js';
import type { GatewayConfig } from '../config.js';
import { RateLimits } from '../limits/rate-limits.js';
import { PrometheusMetrics } from '../telemetry/prometheus-metrics.js';
import { SubscriptionService } from '../fanout/subscription.service.js';
import { MutationService } from '../mutations/mutation.service.js';
import { SyncService } from '../sync/sync.service.js';
import type { Connection } from './connection.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Every client frame passes here: size, UTF-8, JSON, safe JSON, envelope, then the schema of its
 * type, before a handler sees it. Whatever fails gets an `error` frame with a stable code and
 * the connection carries on; no input can throw past this class.
 */
@Injectable()
export class FrameRouter {
  constructor(
    private readonly subscriptions: SubscriptionService,
    private readonly mutations: MutationService,
    private readonly syncs: SyncService,
    private readonly sessions: SessionService,
    private readonly limits: RateLimits,
    private readonly prometheus: PrometheusMetrics,
    @Inject(CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async route(connection: Connection, data: RawData): Promise<void> {
    const receivedAt = Date.now();
    try {
      // Before anything else, so that a flood costs the gateway as little as possible.
      this.limits.admitFrame(connection);
    } catch (error) {
      this.reply(connection, error, this.idOf(data));
      return;
    }
    let frame: ClientFrame;
    try {
      frame = this.parse(data);
    } catch (error) {
      this.reply(connection, error, undefined);
      return;
    }
    try {
      authorizeFrame(connection.principal, frame);
      this.limits.admitMutation(frame, connection.tenant);
      await this.dispatch(connection, frame, receivedAt);
    } catch (error) {
      if (frame.type === 'mutate') {
        this.prometheus.mutations.inc({ edge: 'websocket', result: SynclineError.is(error) ? error.code : 'INTERNAL' });
      }
      this.reply(connection, error, frame.id);
    }
  }

  /**
   * The id of a frame refused before it was read (rate limited), so the client can tell which
   * one. Only the JSON is parsed: a refused frame is not worth a check of its contents.
   */
  private idOf(data: RawData): string | undefined {
    try {
      return idIn(this.readJson(data));
    } catch {
      return undefined;
    }
  }

  /** The frame as a JSON object, within the size limit; nothing of its contents is checked yet. */
  private readJson(data: RawData): JsonObject {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (bytes.byteLength > this.config.MAX_FRAME_BYTES) {
      throw new SynclineError(
        ErrorCode.FRAME_TOO_LARGE,
        `frame of ${bytes.byteLength} bytes exceeds ${this.config.MAX_FRAME_BYTES}`,
      );
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(utf8.decode(bytes));
    } catch {
      throw new SynclineError(ErrorCode.BAD_FRAME, 'frame is not valid UTF-8 JSON');
    }
    if (!isJsonObject(parsed)) throw new SynclineError(ErrorCode.BAD_FRAME, 'frame must be a JSON object');
    return parsed;
  }

  private parse(data: RawData): ClientFrame {
    const parsed = this.readJson(data);
    const unsafe = findUnsafeJson(parsed);
    const id = idIn(parsed);
    if (unsafe) throw withRef(new SynclineError(ErrorCode.UNSAFE_INPUT, `frame rejected: ${unsafe}`), id);
    const envelope = envelopeSchema.safeParse(parsed);
    if (!envelope.success) throw withRef(validationError(envelope.error.issues, 'frame'), id);
    const { type, payload } = envelope.data;
    if (!isClientFrameType(type))
      throw withRef(new SynclineError(ErrorCode.UNKNOWN_TYPE, `unknown frame type "${type.slice(0, 64)}"`), id);
    const checked = clientFrameSchemas[type].safeParse(payload);
    if (!checked.success) throw withRef(validationError(checked.error.issues, `${type} payload`), id);
    return { ...envelope.data, type, payload: checked.data } as ClientFrame;
  }

  private async dispatch(connection: Connection, frame: ClientFrame, receivedAt: number): Promise<void> {
    switch (frame.type) {
      case 'subscribe':
        return this.subscriptions.subscribe(connection, frame.payload, frame.id);
      case 'unsubscribe':
        return this.subscriptions.unsubscribe(connection, frame.payload, frame.id);
      case 'mutate':
        return this.mutations.mutate(connection, frame.payload, frame.id, receivedAt);
      case 'sync':
        return this.syncs.sync(connection, frame.payload, frame.id);
      case 'ping':
        return connection.send('pong', { serverTime: Date.now() }, frame.id);
      case 'auth':
        return this.sessions.renew(connection, frame.payload.token, frame.id);
    }
  }

  private reply(connection: Connection, error: unknown, id: string | undefined): void {
    const ref =
      id ?? (error instanceof SynclineError ? (error.details as { ref?: string } | undefined)?.ref : undefined);
    if (error instanceof SynclineError) {
      connection.sendError(
        {
          code: error.code,
          message: error.message,
          ...(ref === undefined ? {} : { ref }),
          ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }),
        },
        ref,
      );
      return;
    }
    this.logger.error({ err: error, connection: connection.id }, 'frame handler failed');
    connection.sendError(
      { code: ErrorCode.INTERNAL, message: 'internal error', ...(ref === undefined ? {} : { ref }) },
      ref,
    );
  }
}

function withRef(error: SynclineError, ref: string | undefined): SynclineError {
  return ref === undefined ? error : new SynclineError(error.code, error.message, { details: { ref } });
}

function validationError(issues: readonly { path: PropertyKey[]; message: string }[], what: string): SynclineError {
  const issue = issues[0];
  const path = issue?.path.map(String).join('.') || '(root)';
  return new SynclineError(ErrorCode.VALIDATION_FAILED, `${what}: ${path}: ${issue?.message ?? 'invalid'}`);
}

function idIn(frame: JsonObject): string | undefined {
  return typeof frame['id'] === 'string' ? frame['id'].slice(0, 128) : undefined;
}
