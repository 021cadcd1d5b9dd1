import { z } from 'zod';
import { commonEnvSchema, positiveInt } from '@syncline/platform';

export const gatewayEnvSchema = commonEnvSchema
  .extend({
    GATEWAY_HOST: z.string().default('0.0.0.0'),
    GATEWAY_PORT: z.coerce.number().int().min(0).max(65535).default(3000),
    /** HS256 secret that signs client tokens; at least 32 characters. */
    JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
    /** Public keys that verify asymmetrically signed tokens (RS*, PS*, ES*, EdDSA), as a JWKS URL or file. */
    JWT_JWKS_URL: z.url({ protocol: /^https?$/ }).optional(),
    JWT_JWKS_FILE: z.string().min(1).optional(),
    JWT_ISSUER: z.string().optional(),
    JWT_AUDIENCE: z.string().optional(),
    /** Frames above this size get `FRAME_TOO_LARGE` and the connection stays open. */
    MAX_FRAME_BYTES: positiveInt(64 * 1024),
    /** How far ahead of the server a client's HLC may run before `CLOCK_SKEW`. */
    MAX_CLOCK_SKEW_MS: positiveInt(60_000),
    HEARTBEAT_INTERVAL_MS: positiveInt(30_000),
    /** A socket whose unsent data exceeds this is too slow to keep up and is closed. */
    MAX_BUFFERED_BYTES: positiveInt(4 * 1024 * 1024),
    MAX_SUBSCRIPTIONS_PER_CONNECTION: positiveInt(100),
    /** Frames a second one connection may send (pings aside), with bursts of twice as many. */
    RATE_LIMIT_FRAMES_PER_SECOND: positiveInt(500),
    /** Mutations a second one tenant may send through all gateways together, with bursts of twice as many. */
    RATE_LIMIT_TENANT_MUTATIONS_PER_SECOND: positiveInt(5_000),
    /**
     * New mutations get `OVERLOADED` while the workers' queue holds more than this much work (at
     * the rate they drain it), until it is back under half; 0 never refuses for load.
     */
    OVERLOAD_QUEUE_DELAY_MS: z.coerce.number().int().min(0).default(500),
    /** Mutations a gateway may have on their way to JetStream, unconfirmed, before it refuses more. */
    MAX_UNCONFIRMED_MUTATIONS: positiveInt(10_000),
    /**
     * Origins whose pages may call the HTTP API and SSE (comma separated, or `*`). Default: none
     * in production, any in development.
     */
    CORS_ORIGINS: z.string().optional(),
    /** Largest HTTP request body (a batch of mutations); larger ones get `FRAME_TOO_LARGE` (413). */
    MAX_HTTP_BODY_BYTES: positiveInt(1024 * 1024),
    /** Interval of the comment lines that keep idle SSE streams (and the proxies on their way) open. */
    SSE_HEARTBEAT_MS: positiveInt(15_000),
    /** How long before its token expires a connection is asked to renew it (capped at half its lifetime). */
    AUTH_RENEW_LEAD_MS: positiveInt(60_000),
    /**
     * Accept per-message compression (permessage-deflate) from clients that offer it, for frames
     * of at least this many bytes; 0 turns it off. Off by default: it costs CPU on every frame
     * and helps only large documents on slow links.
     */
    WS_COMPRESSION_MIN_BYTES: z.coerce.number().int().min(0).default(0),
  })
  .transform((config, ctx) => {
    if (config.JWT_JWKS_URL && config.JWT_JWKS_FILE) {
      ctx.addIssue({ code: 'custom', path: ['JWT_JWKS_FILE'], message: 'set JWT_JWKS_URL or JWT_JWKS_FILE, not both' });
      return z.NEVER;
    }
    if (config.JWT_SECRET) return { ...config, JWT_SECRET: config.JWT_SECRET as string | undefined };
    // Development gets a fixed secret so `npm start` and `npm run token` agree; production never does.
    if (config.NODE_ENV !== 'production')
      return { ...config, JWT_SECRET: DEVELOPMENT_JWT_SECRET as string | undefined };
    if (config.JWT_JWKS_URL ?? config.JWT_JWKS_FILE) return { ...config, JWT_SECRET: undefined as string | undefined };
    ctx.addIssue({
      code: 'custom',
      path: ['JWT_SECRET'],
      message: 'is required in production (or JWT_JWKS_URL / JWT_JWKS_FILE)',
    });
    return z.NEVER;
  });
export type GatewayConfig = z.infer<typeof gatewayEnvSchema>;

export const DEVELOPMENT_JWT_SECRET = 'syncline-development-secret-change-me-0123456789';

/** Hard limit enforced by the WebSocket server itself: beyond it the socket is closed (1009). */
export const HARD_MAX_PAYLOAD_BYTES = 1024 * 1024;
