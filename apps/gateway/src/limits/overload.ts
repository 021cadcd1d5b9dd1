import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { ErrorCode, SynclineError } from '@syncline/contracts';
import { CONFIG, LOGGER, type Logger } from '@syncline/platform';
import type { GatewayConfig } from '../config.js';
import { WorkerQueue } from './worker-queue.js';

/** How often the workers' queue is read. */
const SAMPLE_INTERVAL_MS = 250;
/** Weight of the newest drain-rate sample. */
const RATE_SMOOTHING = 0.3;
/** The busiest drain rate seen halves every 30 s without a busier one. */
const PEAK_DECAY = 0.5 ** (SAMPLE_INTERVAL_MS / 30_000);
/** Workers drain at least this share of the busiest rate seen: they are busy, not stalled. */
const BUSY_SHARE = 0.5;
/** A queue this short is never a reason to refuse, whatever the rate. */
const MIN_BACKLOG = 200;
/**
 * After the queue could not be read or did not move (a NATS failover, PostgreSQL down), how long
 * its drain rate is not trusted: the workers are catching up, and a rate measured then made the
 * gateways refuse every write for seconds after the cluster had recovered.
 */
const STALL_GRACE_MS = 10_000;
/** The queue has not moved for this long with work in it: stalled (a batch alone takes less). */
const STALL_AFTER_MS = 2_000;
/** Bounds of the delay the gateway asks a refused client to wait. */
const MIN_RETRY_MS = 200;
const MAX_RETRY_MS = 10_000;

/** What the gateway knows of the workers' queue. */
export interface QueueState {
  /** Mutations stored in MUTATIONS that no worker has taken yet. */
  readonly backlog: number;
  /** Mutations the workers process per second, smoothed. */
  readonly drainPerSecond: number;
  /** How long the last mutation in the queue waits at that rate. */
  readonly delayMs: number;
  readonly shedding: boolean;
}

/**
 * Admission control: a gateway stops taking new mutations while the workers' queue holds more
 * than `OVERLOAD_QUEUE_DELAY_MS` of work at the rate they drain it, and takes them again once it
 * is back under half of that. A refused mutation gets `OVERLOADED` with `retryAfterMs`, and the
 * connection stays open; clients wait and send again.
 *
 * Without it, an offered rate above what the workers persist grows the queue without bound:
 * every accepted write still lands exactly once, but later and later, and the latency stays high
 * long after the burst. With it, the queue stays a fraction of a second long, the workers stay
 * busy (persisted throughput holds), and latency is back to normal as soon as the burst ends.
 *
 * Only a queue the workers are busy draining counts: while they take less than half of the
 * busiest rate seen recently, the queue grows because they cannot take it (a failover, PostgreSQL
 * down), not because too much is offered, and refusing writes would only move them from durable
 * JetStream into the clients' queues. The same when the queue cannot be read (NATS failing over).
 * The queue is read from the workers' durable consumer, which every gateway sees the same way.
 */
@Injectable()
export class Overload implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer: NodeJS.Timeout | undefined;
  private sampling = false;
  private previous: { at: number; processed: number } | undefined;
  private state: QueueState = { backlog: 0, drainPerSecond: 0, delayMs: 0, shedding: false };
  private peakDrainPerSecond = 0;
  private stalledAt = Number.NEGATIVE_INFINITY;
  /** Since when the workers have processed nothing while work waited, if they have not. */
  private stillSince: number | undefined;
  /** Mutations this gateway sent to JetStream that it has not yet heard back about. */
  private unconfirmed = 0;

  constructor(
    private readonly workerQueue: WorkerQueue,
    @Inject(CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  get queue(): QueueState {
    return this.state;
  }

  onApplicationBootstrap(): void {
    if (this.config.OVERLOAD_QUEUE_DELAY_MS === 0) return;
    this.timer = setInterval(() => void this.sample(), SAMPLE_INTERVAL_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  /** Refuses a new mutation while the system is overloaded. */
  admit(): void {
    if (this.state.shedding) {
      const retryAfterMs = Math.round(
        clamp(this.state.delayMs - this.config.OVERLOAD_QUEUE_DELAY_MS / 2, MIN_RETRY_MS, MAX_RETRY_MS),
      );
      throw new SynclineError(ErrorCode.OVERLOADED, 'the system is overloaded: send again after retryAfterMs', {
        retryAfterMs,
      });
    }
    if (this.unconfirmed >= this.config.MAX_UNCONFIRMED_MUTATIONS) {
      throw new SynclineError(
        ErrorCode.OVERLOADED,
        'JetStream is slow to confirm writes: send again after retryAfterMs',
        {
          retryAfterMs: MIN_RETRY_MS * 5,
        },
      );
    }
  }

  /** Counts a mutation on its way to JetStream until `confirmed` is called for it. */
  sent(): void {
    this.unconfirmed++;
  }

  confirmed(): void {
    this.unconfirmed--;
  }

  private async sample(): Promise<void> {
    if (this.sampling) return;
    this.sampling = true;
    try {
      const info = await this.workerQueue.read(SAMPLE_INTERVAL_MS * 4);
      // The queue is what waits for a worker. What workers hold is not: it is bounded by their
      // prefetch, and after a NATS failover it includes what the lost node sent out and never
      // delivered, which waits for the ack wait. Counted, it read as a long queue at a near-zero
      // drain rate, and every write was refused for up to 10 s after the cluster had recovered.
      if (info) this.update(info.num_pending, info.delivered.consumer_seq - info.num_ack_pending);
      else {
        // Unknown is not overloaded.
        if (this.state.shedding) this.logger.warn("the workers' queue cannot be read; admitting mutations");
        this.state = { ...this.state, shedding: false };
        this.stalledAt = performance.now();
      }
    } finally {
      this.sampling = false;
    }
  }

  private update(backlog: number, processed: number): void {
    const now = performance.now();
    const previous = this.previous;
    this.previous = { at: now, processed };
    if (!previous) return;
    const seconds = (now - previous.at) / 1000;
    const rate = Math.max(0, processed - previous.processed) / seconds;
    const drainPerSecond =
      this.state.drainPerSecond === 0 ? rate : RATE_SMOOTHING * rate + (1 - RATE_SMOOTHING) * this.state.drainPerSecond;
    this.peakDrainPerSecond = Math.max(this.peakDrainPerSecond * PEAK_DECAY, drainPerSecond);
    const delayMs = backlog < MIN_BACKLOG ? 0 : (backlog / Math.max(drainPerSecond, 1)) * 1000;
    const limit = this.config.OVERLOAD_QUEUE_DELAY_MS;
    if (rate > 0 || backlog === 0) this.stillSince = undefined;
    else if ((this.stillSince ??= now) <= now - STALL_AFTER_MS) this.stalledAt = now;
    const recovering = now - this.stalledAt < STALL_GRACE_MS;
    const busy = drainPerSecond > 0 && drainPerSecond >= BUSY_SHARE * this.peakDrainPerSecond && !recovering;
    const shedding = busy && (this.state.shedding ? delayMs > limit / 2 : delayMs > limit);
    if (shedding !== this.state.shedding) {
      this.logger.info(
        { backlog, drainPerSecond: Math.round(drainPerSecond), delayMs: Math.round(delayMs) },
        shedding ? 'overloaded: refusing new mutations' : 'load back to normal: accepting mutations',
      );
    }
    this.state = { backlog, drainPerSecond, delayMs, shedding };
  }
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
