import type { ConsumerMessages } from '@nats-io/jetstream';
import type { Logger } from './logger.js';

/** Routine notifications: every pull and heartbeat produces one. */
const ROUTINE = new Set(['heartbeat', 'next', 'debug', 'flow_control', 'discard']);

/**
 * Logs what a JetStream consumer reports about its own health: missed heartbeats, a consumer
 * not found or recreated, no responders. After losing a NATS node, these lines tell an operator
 * when the pulls stopped and when they came back.
 */
export function logConsumerStatus(messages: ConsumerMessages, logger: Logger, context: Record<string, unknown>): void {
  void (async () => {
    for await (const status of messages.status()) {
      if (ROUTINE.has(status.type)) continue;
      logger.warn({ ...context, status }, 'consumer status');
    }
  })().catch(() => undefined);
}
