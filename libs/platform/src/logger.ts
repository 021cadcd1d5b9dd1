import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stdout, one logger per service, children per capability. */
export function createLogger(service: string, level: string, instance: string): Logger {
  return pino({ name: service, level, base: { service, instance } });
}
