import { Inject, Injectable } from '@nestjs/common';
import { jwtVerify, errors as joseErrors } from 'jose';
import { z } from 'zod';
import { ErrorCode, SynclineError, WS_TOKEN_PROTOCOL_PREFIX, tenantSchema } from '@syncline/contracts';
import { CONFIG } from '@syncline/platform';
import type { GatewayConfig } from '../config.js';

/** Who a connection acts for, from its verified token. */
export interface Principal {
  readonly userId: string;
  readonly tenant: string;
  /** Token expiry, epoch seconds. */
  readonly expiresAt: number | undefined;
}

const claimsSchema = z.object({
  sub: z.string().min(1).max(256),
  tenant: tenantSchema,
  exp: z.number().optional(),
});

/** Verifies HS256 client tokens with `jose`; issuer and audience are checked when configured. */
@Injectable()
export class TokenVerifier {
  private readonly secret: Uint8Array;

  constructor(@Inject(CONFIG) private readonly config: GatewayConfig) {
    this.secret = new TextEncoder().encode(config.JWT_SECRET);
  }

  async verify(token: string): Promise<Principal> {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.secret, {
        algorithms: ['HS256'],
        ...(this.config.JWT_ISSUER ? { issuer: this.config.JWT_ISSUER } : {}),
        ...(this.config.JWT_AUDIENCE ? { audience: this.config.JWT_AUDIENCE } : {}),
      }));
    } catch (error) {
      const reason = error instanceof joseErrors.JWTExpired ? 'token expired' : 'token invalid';
      throw new SynclineError(ErrorCode.AUTH_INVALID, reason, { cause: error });
    }
    const claims = claimsSchema.safeParse(payload);
    if (!claims.success) {
      throw new SynclineError(
        ErrorCode.AUTH_INVALID,
        `token claims invalid: ${claims.error.issues[0]?.path.join('.')}`,
      );
    }
    return { userId: claims.data.sub, tenant: claims.data.tenant, expiresAt: claims.data.exp };
  }
}

/** The token offered in `Sec-WebSocket-Protocol` as `bearer.<jwt>`, if any. */
export function tokenFromProtocols(header: string | undefined): string | undefined {
  if (!header) return undefined;
  for (const entry of header.split(',')) {
    const value = entry.trim();
    if (value.startsWith(WS_TOKEN_PROTOCOL_PREFIX)) return value.slice(WS_TOKEN_PROTOCOL_PREFIX.length);
  }
  return undefined;
}
