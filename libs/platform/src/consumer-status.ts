import type { ConsumerMessages } from '@nats-io/jetstream';
import type { Logger } from './logger.js';

/**
 * Idle heartbeat of every pull consumer: while a pull request waits, the server sends one this
 * often, and nats.js reports them missed after two. A pull request lives only on the consumer's
 * leader: when the NATS node holding it dies, the pull is lost, and the consumer has a new leader
 * only after nats-server's Raft election timeout (4-9 s, fixed in the server). How soon the
 * client pulls again after that is what this decides. 500 ms is the least nats.js takes; it costs
 * two small messages a second per idle consumer.
 */
export const PULL_HEARTBEAT_MS = 500;

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
