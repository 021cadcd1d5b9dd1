import { readFileSync } from 'node:fs';
import { Inject, Injectable } from '@nestjs/common';
import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import {
  ErrorCode,
  SynclineError,
  TENANT_WIDE_PERMISSIONS,
  WS_TOKEN_PROTOCOL_PREFIX,
  permissionsClaimSchema,
  tenantSchema,
  type Permissions,
} from '@syncline/contracts';
import { CONFIG } from '@syncline/platform';
import type { GatewayConfig } from '../config.js';

/** Who a connection or request acts for, from its verified token. */
export interface Principal {
  readonly userId: string;
  readonly tenant: string;
  readonly permissions: Permissions;
  /** Token expiry, epoch seconds. */
  readonly expiresAt: number | undefined;
}

const claimsSchema = z.object({
  sub: z.string().min(1).max(256),
  tenant: tenantSchema,
  exp: z.number().optional(),
  permissions: permissionsClaimSchema.optional(),
});

const SYMMETRIC = ['HS256', 'HS384', 'HS512'];
const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

type Key = Awaited<ReturnType<JWTVerifyGetKey>> | Uint8Array;

/**
 * Verifies client tokens with `jose`: HMAC-signed ones with the shared secret, asymmetrically
 * signed ones with the configured public keys (a JWKS URL, fetched and cached by `jose`, or a
 * JWKS file); issuer and audience are checked when configured.
 */
@Injectable()
export class TokenVerifier {
  private readonly secret: Uint8Array | undefined;
  private readonly publicKeys: JWTVerifyGetKey | undefined;

  constructor(@Inject(CONFIG) private readonly config: GatewayConfig) {
    this.secret = config.JWT_SECRET ? new TextEncoder().encode(config.JWT_SECRET) : undefined;
    this.publicKeys = config.JWT_JWKS_URL
      ? createRemoteJWKSet(new URL(config.JWT_JWKS_URL))
      : config.JWT_JWKS_FILE
        ? createLocalJWKSet(
            JSON.parse(readFileSync(config.JWT_JWKS_FILE, 'utf8')) as Parameters<typeof createLocalJWKSet>[0],
          )
        : undefined;
  }

  async verify(token: string): Promise<Principal> {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, (...args: Parameters<JWTVerifyGetKey>) => this.keyFor(...args), {
        algorithms: [...(this.secret ? SYMMETRIC : []), ...(this.publicKeys ? ASYMMETRIC : [])],
        ...(this.config.JWT_ISSUER ? { issuer: this.config.JWT_ISSUER } : {}),
        ...(this.config.JWT_AUDIENCE ? { audience: this.config.JWT_AUDIENCE } : {}),
      }));
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) throw new SynclineError(ErrorCode.AUTH_EXPIRED, 'token expired');
      throw new SynclineError(ErrorCode.AUTH_INVALID, 'token invalid', { cause: error });
    }
    const claims = claimsSchema.safeParse(payload);
    if (!claims.success) {
      const issue = claims.error.issues[0];
      throw new SynclineError(
        ErrorCode.AUTH_INVALID,
        `token claims invalid: ${issue?.path.join('.')}: ${issue?.message}`,
      );
    }
    return {
      userId: claims.data.sub,
      tenant: claims.data.tenant,
      permissions: claims.data.permissions ?? TENANT_WIDE_PERMISSIONS,
      expiresAt: claims.data.exp,
    };
  }

  private keyFor(...[header, jws]: Parameters<JWTVerifyGetKey>): Key | Promise<Key> {
    if (SYMMETRIC.includes(header.alg)) {
      if (this.secret) return this.secret;
    } else if (this.publicKeys) {
      return this.publicKeys(header, jws);
    }
    throw new SynclineError(ErrorCode.AUTH_INVALID, `tokens signed with ${header.alg} are not accepted here`);
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
