import { Inject, Injectable } from '@nestjs/common';
import { CloseCode, ErrorCode, SynclineError, canRead } from '@syncline/contracts';
import { CONFIG, LOGGER, type Logger } from '@syncline/platform';
import type { GatewayConfig } from '../config.js';
import type { Connection } from '../connections/connection.js';
import { SubscriptionService } from '../fanout/subscription.service.js';
import { TokenVerifier } from './token-verifier.js';

/** setTimeout's longest delay; a token valid for longer is looked at again after it. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Timers {
  warn: NodeJS.Timeout | undefined;
  expire: NodeJS.Timeout | undefined;
}

/**
 * A connection lives as long as its token. Ahead of expiry the client is told (`auth_expiring`)
 * and may send `auth` with a fresh token, which carries the connection on without a reconnect;
 * at expiry an unrenewed connection gets `AUTH_EXPIRED` and is closed with 4402, which tells the
 * client to reconnect with a fresh token and resume: nothing is lost either way.
 */
@Injectable()
export class SessionService {
  private readonly timers = new Map<Connection, Timers>();

  constructor(
    private readonly verifier: TokenVerifier,
    private readonly subscriptions: SubscriptionService,
    @Inject(CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** Starts watching a connection's token expiry. */
  watch(connection: Connection): void {
    this.forget(connection);
    const expiresAt = connection.principal.expiresAt;
    if (expiresAt === undefined) return;
    const remaining = expiresAt * 1000 - Date.now();
    const lead = Math.min(this.config.AUTH_RENEW_LEAD_MS, remaining / 2);
    if (remaining - lead > MAX_TIMER_MS) {
      this.timers.set(connection, { warn: setTimeout(() => this.watch(connection), MAX_TIMER_MS), expire: undefined });
      return;
    }
    this.timers.set(connection, {
      warn: setTimeout(() => connection.send('auth_expiring', { expiresAt: expiresAt * 1000 }), remaining - lead),
      expire: setTimeout(() => this.expire(connection), remaining),
    });
  }

  forget(connection: Connection): void {
    const timers = this.timers.get(connection);
    if (!timers) return;
    clearTimeout(timers.warn);
    clearTimeout(timers.expire);
    this.timers.delete(connection);
  }

  /** `auth`: a fresh token for the same user and tenant; rights it no longer grants are withdrawn. */
  async renew(connection: Connection, token: string, id: string | undefined): Promise<void> {
    const principal = await this.verifier.verify(token);
    const current = connection.principal;
    if (principal.tenant !== current.tenant || principal.userId !== current.userId) {
      throw new SynclineError(ErrorCode.FORBIDDEN, 'a renewed token must be for the same user and tenant');
    }
    connection.renew(principal);
    const revoked = [...connection.subscriptions].filter((type) => !canRead(principal.permissions, type));
    this.subscriptions.drop(connection, revoked);
    this.watch(connection);
    connection.send(
      'auth_renewed',
      { revoked, ...(principal.expiresAt === undefined ? {} : { expiresAt: principal.expiresAt * 1000 }) },
      id,
    );
  }

  private expire(connection: Connection): void {
    this.timers.delete(connection);
    this.logger.debug({ connection: connection.id }, 'token expired; closing');
    connection.sendError({ code: ErrorCode.AUTH_EXPIRED, message: 'token expired: reconnect with a fresh token' });
    connection.close(CloseCode.AUTH_EXPIRED, 'token expired');
  }
}
