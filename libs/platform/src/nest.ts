import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from './logger.js';
import type { Telemetry } from './telemetry.js';

/**
 * Injection tokens for what every service builds once at boot, before NestJS starts:
 * the typed configuration, the logger, the telemetry and the NATS connection.
 */
export const CONFIG = Symbol('CONFIG');
export const LOGGER = Symbol('LOGGER');
export const TELEMETRY = Symbol('TELEMETRY');
export const NATS = Symbol('NATS');
export const DATA_SOURCE = Symbol('DATA_SOURCE');
/** The service's Prometheus registry (services with a monitoring server). */
export const METRICS_REGISTRY = Symbol('METRICS_REGISTRY');

export interface Runtime<C> {
  readonly config: C;
  readonly logger: Logger;
  readonly telemetry: Telemetry;
  readonly nats: NatsConnection;
}

/** Providers that hand the boot-time runtime to NestJS. */
export function runtimeProviders<C>(runtime: Runtime<C>) {
  return [
    { provide: CONFIG, useValue: runtime.config },
    { provide: LOGGER, useValue: runtime.logger },
    { provide: TELEMETRY, useValue: runtime.telemetry },
    { provide: NATS, useValue: runtime.nats },
  ];
}
