import bytes from 'bytes';
import ms from 'ms';
import { z } from 'zod';
import { CHANGES_SETTINGS, DEFAULT_STREAM_NAMES, MUTATIONS_SETTINGS, NAME_PATTERN } from '@syncline/contracts';

/** A configuration value that stops the boot; the message names every bad variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Parses the environment against a service's schema once, at boot. No other code reads
 * `process.env`: services receive the typed result.
 */
export function loadConfig<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const name = issue.path.join('.') || '(environment)';
    const value = typeof issue.path[0] === 'string' ? env[issue.path[0]] : undefined;
    return `  ${name}${value === undefined ? '' : `=${JSON.stringify(redact(name, value))}`}: ${issue.message}`;
  });
  throw new ConfigError(`invalid configuration:\n${problems.join('\n')}`);
}

function redact(name: string, value: string): string {
  return /SECRET|PASSWORD|TOKEN/i.test(name) ? '<redacted>' : value;
}

const name = z.string().regex(NAME_PATTERN, 'must be 1-64 characters of A-Z, a-z, 0-9, "_" or "-"');
const url = (protocols: string[]) =>
  z.string().refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    `must be a URL with scheme ${protocols.join(' or ')}`,
  );

export const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/**
 * A size such as `512MB`, `2GiB` or a plain number of bytes. Units are binary either way, as
 * nats-server counts them: `1GB` and `1GiB` are both 1024³ bytes.
 */
export const byteSize = (fallback: number) =>
  z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined) return fallback;
      const parsed = bytes.parse(value.trim().replace(/ib$/i, 'b'));
      if (parsed !== null && Number.isSafeInteger(parsed) && parsed > 0) return parsed;
      ctx.addIssue({ code: 'custom', message: 'must be a size such as 512MB, 2GiB or a number of bytes' });
      return z.NEVER;
    });

/** A duration such as `90s`, `12h` or `7d`, in milliseconds. */
export const duration = (fallbackMs: number) =>
  z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined) return fallbackMs;
      const parsed = ms(value.trim() as ms.StringValue) as number | undefined;
      if (parsed !== undefined && Number.isSafeInteger(parsed) && parsed > 0) return parsed;
      ctx.addIssue({ code: 'custom', message: 'must be a duration such as 90s, 12h or 7d' });
      return z.NEVER;
    });

const NS_PER_MS = 1_000_000;

/** Settings every service shares: where NATS is, which subjects and streams, telemetry. */
export const commonEnvSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  NATS_URL: z
    .string()
    .default('nats://127.0.0.1:4222')
    .transform((value) => value.split(',').map((s) => s.trim()))
    .pipe(z.array(url(['nats:', 'tls:', 'ws:', 'wss:'])).min(1)),
  SYNC_NAMESPACE: name.default('sync'),
  MUTATIONS_STREAM: name.default(DEFAULT_STREAM_NAMES.mutations),
  CHANGES_STREAM: name.default(DEFAULT_STREAM_NAMES.changes),
  /** Replicas of each stream; 3 on a JetStream cluster. */
  STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  /**
   * Size and age limits of the two streams. nats-server reserves each stream's size on every
   * server holding a replica, so these decide how many deployments share one NATS server.
   */
  MUTATIONS_STREAM_MAX_BYTES: byteSize(MUTATIONS_SETTINGS.maxBytes),
  MUTATIONS_STREAM_MAX_AGE: duration(MUTATIONS_SETTINGS.maxAgeNs / NS_PER_MS),
  CHANGES_STREAM_MAX_BYTES: byteSize(CHANGES_SETTINGS.maxBytes),
  CHANGES_STREAM_MAX_AGE: duration(CHANGES_SETTINGS.maxAgeNs / NS_PER_MS),
  /** A name for this replica; defaults to a random one. */
  INSTANCE_ID: name.optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  OTEL_EXPORTER_OTLP_ENDPOINT: url(['http:', 'https:']).optional(),
  /** Milliseconds between metric exports (the OpenTelemetry standard variable). */
  OTEL_METRIC_EXPORT_INTERVAL: positiveInt(10_000),
  /** Milliseconds a request to a peer service may take before it fails with `UNAVAILABLE`. */
  REQUEST_TIMEOUT_MS: positiveInt(5000),
});
export type CommonConfig = z.infer<typeof commonEnvSchema>;

/** Settings of the services that talk to PostgreSQL. */
export const databaseEnvSchema = z.object({
  DATABASE_URL: url(['postgres:', 'postgresql:']).default('postgres://postgres@127.0.0.1:5432/postgres'),
  /** At least 2: migrations hold an advisory lock on one connection while they run on another. */
  DATABASE_POOL_SIZE: z.coerce.number().int().min(2).max(1000).default(10),
});
export type DatabaseConfig = z.infer<typeof databaseEnvSchema>;
