import type { PendingMutation } from './offline-queue.js';

/**
 * Which queued mutations go out now, so that each entity's mutations reach the gateway in the
 * order they were made, across retries and reconnections.
 *
 * Sent all at once, a mutation refused for a moment (`UNAVAILABLE` while a NATS node fails over)
 * and sent again later lands after the ones made after it, and so does a queue replayed after a
 * reconnection while new edits go straight out. The server then sees the older edit as
 * concurrent with the newer ones, and a strategy such as last-write-wins drops it. So per
 * entity one mutation at a time is on its way: the next goes once the gateway has stored the
 * one before (`accepted`) or it has its outcome. Entities do not wait for each other.
 *
 * A new connection starts afresh: everything still queued is sent again, in order (the gateway
 * answers one it already has with its outcome, or `accepted` again).
 */
export class SendLanes {
  /** Sent on this connection, not yet stored. */
  private readonly onTheWay = new Set<string>();
  /** Stored by the gateway (acknowledged `accepted`) on this connection, outcome still to come. */
  private readonly stored = new Set<string>();
  /** Refused for the moment; waiting out the delay the server asked for. */
  private readonly held = new Set<string>();

  /** The mutations to send now, in queue order: per entity, the first one not yet stored. */
  take(pending: readonly PendingMutation[]): PendingMutation[] {
    const busy = new Set<string>();
    const due: PendingMutation[] = [];
    for (const mutation of pending) {
      const lane = laneOf(mutation);
      if (busy.has(lane) || this.stored.has(mutation.mutationId)) continue;
      busy.add(lane);
      if (this.onTheWay.has(mutation.mutationId) || this.held.has(mutation.mutationId)) continue;
      this.onTheWay.add(mutation.mutationId);
      due.push(mutation);
    }
    return due;
  }

  /** The gateway stored it: the entity's next mutation may go. */
  accepted(mutationId: string): void {
    this.onTheWay.delete(mutationId);
    this.stored.add(mutationId);
  }

  /**
   * Stored, but its outcome is long overdue: it may have been lost on its way (outcomes are not
   * stored anywhere on the way to the gateway). Sending it again makes the gateway look the
   * outcome up. False when it is no longer waiting for one.
   */
  askAgain(mutationId: string): boolean {
    return this.stored.delete(mutationId);
  }

  /** Refused for now: it, and the entity's later mutations, wait until `release`. */
  hold(mutationId: string): void {
    this.onTheWay.delete(mutationId);
    this.held.add(mutationId);
  }

  release(mutationId: string): void {
    this.held.delete(mutationId);
  }

  /** It left the queue (outcome, or refused for good). */
  settled(mutationId: string): void {
    this.onTheWay.delete(mutationId);
    this.stored.delete(mutationId);
    this.held.delete(mutationId);
  }

  /** A new connection: nothing is on its way on it yet. */
  reset(): void {
    this.onTheWay.clear();
    this.stored.clear();
    this.held.clear();
  }
}

function laneOf(mutation: PendingMutation): string {
  return `${mutation.entityType}\u0000${mutation.entityId}`;
}
