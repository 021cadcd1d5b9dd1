import { keyOf, uniqueKeys } from '../entities/entity-key.js';
import type { EntityCache } from '../entities/entity-cache.js';
import type { EntityChange, EntityState } from '../entities/entity-state.js';
import type { BatchPlan, BatchProcessor } from './batch-processor.service.js';
import type { EntityStoreRepository } from './entity-store.repository.js';
import { failureKind, type FailureKind } from './failure-kind.js';
import type { IncomingMutation } from './incoming-mutation.js';

/** One mutation as the pipeline carries it: the consumer's delivery. */
export interface PipelineItem {
  readonly incoming: IncomingMutation;
  /** JetStream delivered it before: its id may be in the ledger already. */
  readonly redelivered: boolean;
}

/** What the consumer does with the pipeline's results; only the consumer talks to JetStream. */
export interface PipelineHooks<T extends PipelineItem> {
  /** A batch is committed: acknowledge it, publish its changes, answer its authors. */
  committed(items: readonly T[], plan: BatchPlan, outboxId: number | undefined, startedAt: number): void;
  /** PostgreSQL refuses this mutation whatever is tried: terminate and record it, tell its author. */
  refused(item: T, error: unknown): Promise<void>;
  /** A batch failed and will be tried again (logged). */
  retrying(size: number, error: unknown, attempt: number, kind: FailureKind): void;
}

export interface PipelineOptions {
  /** The epoch of the MUTATIONS stream the mutations come from (see `isSuperseded`). */
  readonly mutationStream: string;
  readonly batchSize: number;
  /** Batches written at the same time, each on its own connection. */
  readonly maxInFlight: number;
}

const MAX_RETRY_DELAY_MS = 30_000;

/**
 * Turns the stream of mutations into committed batches, several in flight at once over disjoint
 * sets of entities.
 *
 * An entity belongs to at most one batch in flight. A mutation of an entity that is being
 * written waits in the queue, and so does every later mutation of that entity, while mutations
 * of other entities go ahead in new batches. So one entity's mutations are applied in stream
 * order, each batch computes on committed state only, and a batch that fails holds up only its
 * own entities: it is retried, alone and in place, until it is committed or its mutations are
 * refused. A mutation is never handed back to JetStream to be redelivered after later ones.
 */
export class BatchPipeline<T extends PipelineItem> {
  private queue: T[] = [];
  /** Entities of the batches in flight, by `keyOf`. */
  private readonly inFlightKeys = new Set<string>();
  private readonly inFlight = new Set<Promise<void>>();
  private pumping: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private held = 0;

  constructor(
    private readonly processor: BatchProcessor,
    private readonly store: EntityStoreRepository,
    private readonly cache: EntityCache,
    private readonly hooks: PipelineHooks<T>,
    private readonly options: PipelineOptions,
  ) {}

  /** Mutations waiting or being written. */
  get size(): number {
    return this.held;
  }

  push(items: readonly T[]): void {
    // A redelivery can be older than what is queued: put it first, so that the entity's
    // mutations are applied in stream order rather than reconciled as late ones (see `isLate`).
    let previous = this.queue.at(-1)?.incoming.streamSeq ?? 0;
    let ordered = true;
    for (const { incoming } of items) {
      if (incoming.streamSeq < previous) ordered = false;
      previous = incoming.streamSeq;
    }
    this.queue.push(...items);
    if (!ordered) this.queue.sort((a, b) => a.incoming.streamSeq - b.incoming.streamSeq);
    this.held += items.length;
    this.signal();
    this.pumping ??= this.pump().finally(() => {
      this.pumping = undefined;
    });
  }

  /** Resolves once everything pushed so far is committed or refused. */
  async idle(): Promise<void> {
    while (this.pumping) await this.pumping;
  }

  private async pump(): Promise<void> {
    while (this.queue.length > 0 || this.inFlight.size > 0) {
      const items = this.inFlight.size < this.options.maxInFlight ? this.takeBatch() : [];
      if (items.length > 0) {
        this.launch(items);
        continue;
      }
      // Everything queued waits for an entity in flight (or the limit is reached): wait for a
      // batch to finish or for new mutations.
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /**
   * The next batch: queued mutations of entities not in flight, in queue order. Once one
   * mutation of an entity stays queued, every later one of that entity stays too.
   */
  private takeBatch(): T[] {
    const taken: T[] = [];
    const waiting: T[] = [];
    const blocked = new Set(this.inFlightKeys);
    for (const item of this.queue) {
      const key = keyOf(item.incoming.mutation);
      if (!blocked.has(key) && taken.length < this.options.batchSize) taken.push(item);
      else {
        waiting.push(item);
        blocked.add(key);
      }
    }
    this.queue = waiting;
    return taken;
  }

  private launch(items: readonly T[]): void {
    const keys = uniqueKeys(items.map((item) => item.incoming.mutation)).map(keyOf);
    for (const key of keys) this.inFlightKeys.add(key);
    const run = this.commit(items).finally(() => {
      for (const key of keys) this.inFlightKeys.delete(key);
      this.held -= items.length;
      this.inFlight.delete(run);
      this.signal();
    });
    this.inFlight.add(run);
  }

  /** Commits a batch, retrying in place with what each failure calls for, until it is done. */
  private async commit(items: readonly T[]): Promise<void> {
    let checkLedger = items.some((item) => item.redelivered);
    for (let attempt = 1; ; attempt++) {
      const startedAt = performance.now();
      try {
        const plan = await this.prepare(items, checkLedger);
        const { outboxId } = await this.store.write(plan.writes);
        for (const [key, { state, changes }] of plan.changed) this.cache.committed(key, state, changes);
        this.hooks.committed(items, plan, outboxId, startedAt);
        return;
      } catch (error) {
        const kind = failureKind(error);
        if (kind === 'bad-data') return this.isolate(items, error);
        if (kind === 'repeated-mutation') checkLedger = true;
        // Whatever the cache assumed of these entities is read again.
        this.cache.invalidate(uniqueKeys(items.map((item) => item.incoming.mutation)).map(keyOf));
        this.hooks.retrying(items.length, error, attempt, kind);
        if (kind === 'transient') await delay(retryDelayMs(attempt));
        else if (attempt > 3) await delay(Math.random() * 20);
      }
    }
  }

  /** Bad data: halves the batch until the mutation at fault stands alone, and refuses that one. */
  private async isolate(items: readonly T[], error: unknown): Promise<void> {
    if (items.length === 1) return this.hooks.refused(items[0] as T, error);
    const middle = Math.ceil(items.length / 2);
    await this.commit(items.slice(0, middle));
    await this.commit(items.slice(middle));
  }

  private async prepare(items: readonly T[], checkLedger: boolean): Promise<BatchPlan> {
    const keys = uniqueKeys(items.map((item) => item.incoming.mutation));
    const states = new Map<string, EntityState>();
    const recent = new Map<string, readonly EntityChange[]>();
    const missing = [];
    for (const key of keys) {
      const cached = this.cache.get(keyOf(key));
      if (!cached) missing.push(key);
      else {
        states.set(keyOf(key), cached.state);
        recent.set(keyOf(key), cached.recent);
      }
    }
    if (missing.length > 0) {
      for (const [key, state] of await this.store.load(missing)) {
        states.set(key, state);
        this.cache.loaded(key, state);
      }
    }
    const processed = checkLedger ? await this.store.ledger(items.map((item) => item.incoming.mutation)) : [];
    return this.processor.plan(
      items.map((item) => item.incoming),
      {
        states,
        processed,
        recent: (key) => recent.get(keyOf(key)) ?? [],
        logged: (key, afterVersion) => this.store.changesAfter(key, afterVersion),
        mutationStream: this.options.mutationStream,
        laterWrites: (key, position) => this.store.laterWrites(key, position),
      },
    );
  }
}

/** Exponential backoff from 250 ms to 30 s by attempt. */
export function retryDelayMs(attempt: number): number {
  return Math.min(MAX_RETRY_DELAY_MS, 250 * 2 ** Math.max(0, attempt - 1));
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
