import {
  HybridLogicalClock,
  VectorClocks,
  type DeltaPayload,
  type JsonObject,
  type OutcomeAckPayload,
  type ServerFrame,
  type SyncResponsePayload,
  type VectorClockRecord,
} from '@syncline/contracts';
import { Connection, browserOnlineSignal, type ConnectionState, type SyncConnection } from './connection/connection.js';
import { SseConnection } from './connection/sse-connection.js';
import { globalWebSocketFactory } from './connection/transport.js';
import type { ClientEvents } from './client-events.js';
import { TypedEmitter } from './events.js';
import type { DifferentialSyncClientOptions } from './options.js';
import { QualityMonitor } from './quality/quality-monitor.js';
import { OfflineQueue, type PendingMutation } from './queue/offline-queue.js';
import { SendLanes } from './queue/send-lanes.js';
import { EntityStore, type ConfirmedEntity } from './state/entity-store.js';
import { MemoryStorage } from './storage/memory-storage.js';
import type { KeyValueStorage } from './storage/storage.js';

export interface SyncStatus {
  readonly isConnected: boolean;
  readonly connectionState: ConnectionState;
  readonly averageLatency: number;
  readonly sub100msSuccessRate: number;
  readonly qualityScore: number;
  readonly pendingChanges: number;
  readonly lastSyncTimestamp: number | undefined;
  readonly subscribedTypes: readonly string[];
  readonly cursors: Readonly<Record<string, string>>;
}

/** What is kept per entity type: the resume cursor and the confirmed entities, saved together. */
interface PersistedType {
  readonly cursor: string | undefined;
  readonly entities: Array<[string, ConfirmedEntity]>;
}

interface Waiter {
  resolve(frame: ServerFrame): void;
  reject(error: Error): void;
}

const SAVE_DELAY_MS = 50;
const GAP_SYNC_DELAY_MS = 1000;
const SNAPSHOT_PAGE = 1000;

/**
 * The Syncline client: an optimistic local copy of the entity types it subscribes to, kept in
 * sync with the server through every network failure.
 *
 * Local changes apply at once, wait in a persisted offline queue, and are sent in order while
 * connected; a resent mutation keeps its id, so the server applies it once. The server's answer
 * confirms it (applied), rebases it (merged) or rolls it back (rejected): the visible state is
 * always the confirmed state with the still-pending mutations replayed on top. Each entity type
 * resumes from its cursor after any reconnect; a cursor the server can no longer serve leads to a
 * snapshot, and pending changes survive it.
 */
export class DifferentialSyncClient extends TypedEmitter<ClientEvents> {
  private readonly storage: KeyValueStorage;
  private readonly namespace: string;
  private readonly clock: HybridLogicalClock;
  private readonly quality = new QualityMonitor();
  private readonly stores = new Map<string, EntityStore>();
  private readonly cursors = new Map<string, string>();
  private readonly subscribed = new Set<string>();
  private readonly waiters = new Map<string, Waiter>();
  private readonly sentAt = new Map<string, number>();
  private readonly lanes = new SendLanes();
  /** Set once a (re)connection has resumed its subscriptions: mutations go out from then on. */
  private sending = false;
  /** While the server is overloaded, nothing is sent until this time (epoch ms). */
  private pausedUntil = 0;
  private resumeTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  /** How often each stored mutation has waited for its outcome in vain, and the current wait. */
  private readonly outcomeWaits = new Map<string, number>();
  private readonly outcomeTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly cleanups: Array<() => void> = [];
  private readonly saveQueue = new Set<string>();
  private readonly reportedStrategies = new Set<string>();
  private readonly debounceFlushes = new Set<() => Promise<void>>();
  /** The `qualityMonitoring` option: whether latencies and sync durations are recorded. */
  private readonly monitoring: boolean;
  private connection: SyncConnection | undefined;
  private queue: OfflineQueue | undefined;
  private opened: Promise<void> | undefined;
  private counter = 0;
  private lastSyncTimestamp: number | undefined;
  private saveTimer: ReturnType<typeof setTimeout> | undefined;
  private saving: Promise<void> = Promise.resolve();

  constructor(private readonly options: DifferentialSyncClientOptions) {
    super();
    if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(options.clientId)) {
      throw new Error('clientId must be 1-128 characters of A-Z, a-z, 0-9, "_", ".", ":" or "-"');
    }
    if (!options.token && !options.tokenProvider) throw new Error('a token or a tokenProvider is required');
    this.storage = options.storage ?? new MemoryStorage();
    this.namespace = `syncline/${options.clientId}`;
    this.clock = new HybridLogicalClock(options.clientId);
    this.monitoring = options.qualityMonitoring ?? true;
    for (const type of options.entityTypes) this.storeOf(type);
  }

  // ---------------------------------------------------------------------------------------------
  // Connection

  async connect(): Promise<void> {
    await this.open();
    this.connection ??= this.createConnection();
    await this.connection.connect();
  }

  /**
   * Loads the offline queue, cursors and confirmed state from storage without connecting, and
   * reports each type's state: an app that starts offline shows its data and pending edits at
   * once. `connect()` and `updateLocalState()` load it too.
   */
  async restore(): Promise<void> {
    await this.open();
    for (const type of this.stores.keys()) this.emitState(type);
  }

  /** Closes the connection and releases every timer, listener and socket the client holds. */
  async disconnect(): Promise<void> {
    await Promise.all([...this.debounceFlushes].map((flush) => flush()));
    this.connection?.dispose();
    this.connection = undefined;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.resumeTimer = undefined;
    this.outcomeTimers.clear();
    for (const waiter of this.waiters.values()) waiter.reject(new Error('client disconnected'));
    this.waiters.clear();
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    await this.flushSaves();
  }

  get clientId(): string {
    return this.options.clientId;
  }

  /** The entity types `subscribe()` subscribes to when called without arguments. */
  get entityTypes(): readonly string[] {
    return this.options.entityTypes;
  }

  isOnline(): boolean {
    return this.connection?.isConnected ?? false;
  }

  getSyncStatus(): SyncStatus {
    return {
      isConnected: this.isOnline(),
      connectionState: this.connection?.state ?? 'disconnected',
      averageLatency: this.quality.averageLatency,
      sub100msSuccessRate: this.quality.sub100msSuccessRate,
      qualityScore: this.quality.qualityScore,
      pendingChanges: this.getPendingChangesCount(),
      lastSyncTimestamp: this.lastSyncTimestamp,
      subscribedTypes: [...this.subscribed],
      cursors: Object.fromEntries(this.cursors),
    };
  }

  getHealthStatus(): ReturnType<QualityMonitor['health']> {
    return this.quality.health(this.isOnline(), this.getPendingChangesCount());
  }

  getPendingChangesCount(): number {
    return this.queue?.size ?? 0;
  }

  getLastSyncTimestamp(): number | undefined {
    return this.lastSyncTimestamp;
  }

  /** Runs `callback` when the client disconnects. */
  addCleanupCallback(callback: () => void): void {
    this.cleanups.push(callback);
  }

  /** Adds an event listener that `disconnect()` removes. */
  addManagedEventListener(
    target: {
      addEventListener(type: string, listener: (event: unknown) => void): void;
      removeEventListener(type: string, listener: (event: unknown) => void): void;
    },
    type: string,
    listener: (event: unknown) => void,
  ): void {
    target.addEventListener(type, listener);
    this.cleanups.push(() => target.removeEventListener(type, listener));
  }

  // ---------------------------------------------------------------------------------------------
  // Subscriptions and sync

  /** Subscribes to entity types (default: the `entityTypes` option), resuming from saved cursors. */
  async subscribe(entityTypes: readonly string[] = this.options.entityTypes): Promise<void> {
    for (const type of entityTypes) {
      this.storeOf(type);
      this.subscribed.add(type);
    }
    if (this.connection?.isConnected) await Promise.all(entityTypes.map((type) => this.startSubscription(type)));
  }

  async unsubscribe(entityType: string): Promise<void> {
    this.subscribed.delete(entityType);
    if (this.connection?.isConnected) await this.request('unsubscribe', { entityTypes: [entityType] });
    this.emit('unsubscribed', { entityType });
  }

  /** Fetches the changes since this client's cursor, applies them, and returns them. */
  async requestSync(entityType: string): Promise<DeltaPayload[]> {
    this.emit('sync:requested', { entityType });
    const started = Date.now();
    const deltas: DeltaPayload[] = [];
    try {
      for (;;) {
        const cursor = this.cursors.get(entityType);
        const reply = await this.request('sync', { entityType, ...(cursor ? { since: cursor } : {}) });
        if (reply.type === 'sync_required') {
          await this.resync(entityType);
          break;
        }
        const page = this.expectSync(reply, 'changes');
        for (const delta of page.changes) {
          this.applyRemote(delta);
          deltas.push(delta);
        }
        this.setCursor(entityType, page.cursor);
        if (!page.hasMore) break;
      }
    } catch (error) {
      this.emit('error', { code: 'SYNC_OPERATION_ERROR', message: (error as Error).message, entityType, cause: error });
      throw error;
    }
    this.recordSync(started);
    this.emit('sync:response', { entityType, deltas });
    return deltas;
  }

  getLocalState(entityType: string): Record<string, JsonObject> {
    return this.storeOf(entityType).view(this.pending());
  }

  // ---------------------------------------------------------------------------------------------
  // Local changes

  /**
   * Changes entities optimistically: each value is a JSON merge patch of that entity (`null` in
   * it removes a field), or `null` to delete the entity. Resolves once the changes are in the
   * offline queue; they are sent now if connected, or after the next connection.
   */
  async updateLocalState(state: Readonly<Record<string, JsonObject | null>>, entityType: string): Promise<void> {
    await this.open();
    const store = this.storeOf(entityType);
    for (const [entityId, value] of Object.entries(state)) {
      const previous = store.viewOf(entityId, this.pending());
      const mutation = this.newMutation(entityType, entityId, value);
      await this.requireQueue().enqueue(mutation);
      this.emit('mutation:queued', { mutationId: mutation.mutationId, entityType, entityId });
      this.emit('state:change', {
        entityType,
        entityId,
        previous,
        next: store.viewOf(entityId, this.pending()),
        source: 'local',
      });
      this.sendDue();
    }
    this.emitState(entityType);
  }

  async updateLocalStateBatch(
    updates: ReadonlyArray<{ state: Readonly<Record<string, JsonObject | null>>; entityType: string }>,
  ): Promise<void> {
    for (const { state, entityType } of updates) await this.updateLocalState(state, entityType);
  }

  /**
   * An `updateLocalState` that waits until calls stop for `delayMs`, then sends the combined
   * change: typing in a field makes one mutation, not one per keystroke.
   */
  createDebouncedUpdate(
    delayMs: number,
  ): (state: Readonly<Record<string, JsonObject | null>>, entityType: string) => void {
    const pending = new Map<string, Record<string, JsonObject | null>>();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const flush = (): Promise<void> => {
      if (timer) {
        clearTimeout(timer);
        this.timers.delete(timer);
      }
      timer = undefined;
      const updates = [...pending].map(([entityType, state]) => ({ entityType, state }));
      pending.clear();
      if (updates.length === 0) return Promise.resolve();
      return this.updateLocalStateBatch(updates).catch((error: unknown) =>
        this.emit('error', { code: 'SYNC_OPERATION_ERROR', message: (error as Error).message, cause: error }),
      );
    };
    // `disconnect()` sends what is waiting instead of dropping it.
    this.debounceFlushes.add(flush);
    return (state, entityType) => {
      // A delete followed by new fields is two changes; one merge patch cannot say both.
      if (Object.entries(state).some(([id, value]) => value !== null && pending.get(entityType)?.[id] === null))
        void flush();
      const combined = pending.get(entityType) ?? {};
      for (const [entityId, value] of Object.entries(state))
        combined[entityId] = combinePatches(combined[entityId], value);
      pending.set(entityType, combined);
      if (timer) {
        clearTimeout(timer);
        this.timers.delete(timer);
      }
      timer = this.track(setTimeout(flush, delayMs));
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Internals

  private open(): Promise<void> {
    this.opened ??= (async () => {
      this.queue = await OfflineQueue.open(this.storage, this.namespace);
      this.counter = (await this.storage.get<number>(`${this.namespace}/clock`)) ?? 0;
      for (const type of this.stores.keys()) await this.loadType(type);
    })();
    return this.opened;
  }

  private createConnection(): SyncConnection {
    const connection = this.options.transport === 'sse' ? this.createSseConnection() : this.createWebSocketConnection();
    this.listenTo(connection);
    return connection;
  }

  private createSseConnection(): SseConnection {
    return new SseConnection({
      httpUrl: this.options.httpUrl ?? httpUrlOf(this.options.websocketUrl),
      token: this.options.tokenProvider ?? (this.options.token as string),
      ...(this.options.fetch ? { fetch: this.options.fetch } : {}),
      ...(this.options.autoReconnect === undefined ? {} : { autoReconnect: this.options.autoReconnect }),
      ...(this.options.maxRetries === undefined ? {} : { maxRetries: this.options.maxRetries }),
      ...(this.options.retryDelay === undefined ? {} : { retryDelay: this.options.retryDelay }),
    });
  }

  private createWebSocketConnection(): Connection {
    const factory = this.options.webSocketFactory ?? globalWebSocketFactory();
    if (!factory)
      throw new Error('no WebSocket implementation: pass webSocketFactory (in Node, use @syncline/client/node)');
    const onlineSignal = this.options.onlineSignal ?? browserOnlineSignal();
    const connection = new Connection({
      url: this.options.websocketUrl,
      token: this.options.tokenProvider ?? (this.options.token as string),
      webSocketFactory: factory,
      autoReconnect: this.options.autoReconnect ?? true,
      ...(this.options.maxRetries === undefined ? {} : { maxRetries: this.options.maxRetries }),
      ...(this.options.retryDelay === undefined ? {} : { retryDelay: this.options.retryDelay }),
      ...(this.options.connectionTimeout === undefined ? {} : { connectionTimeout: this.options.connectionTimeout }),
      ...(this.options.heartbeatInterval === undefined ? {} : { heartbeatInterval: this.options.heartbeatInterval }),
      ...(this.options.heartbeatTimeout === undefined ? {} : { heartbeatTimeout: this.options.heartbeatTimeout }),
      ...(onlineSignal ? { onlineSignal } : {}),
      compression: this.options.enableCompression ?? false,
    });
    return connection;
  }

  private listenTo(connection: SyncConnection): void {
    connection.on('frame', (frame) => this.handleFrame(frame));
    connection.on('connected', (event) => void this.onConnected(event.welcome, event.reconnected));
    connection.on('disconnected', (event) => {
      this.sending = false;
      for (const waiter of this.waiters.values()) waiter.reject(new Error('connection lost'));
      this.waiters.clear();
      if (event.willReconnect) this.quality.recordReconnect();
      this.emit('disconnected', event);
    });
    connection.on('state', ({ state, previous }) => this.emit('connection:state', { state, previous }));
    connection.on('error', (error) => {
      this.quality.recordError();
      this.emit('error', error);
    });
    connection.on('reconnect:scheduled', (event) => this.emit('reconnect:scheduled', event));
    connection.on('reconnect:failed', (event) => this.emit('reconnect:failed', event));
    connection.on('pong', ({ rttMs }) => {
      if (!this.monitoring) return;
      this.quality.recordLatency(rttMs);
      this.emitQuality();
    });
  }

  /** After every (re)connection: resume each subscription, then resend what is still pending. */
  private async onConnected(welcome: ClientEvents['connected']['welcome'], reconnected: boolean): Promise<void> {
    this.clock.receive(`${String(welcome.serverTime).padStart(15, '0')}:00000:server`);
    this.sending = false;
    this.lanes.reset();
    this.emit('connected', { welcome, reconnected });
    try {
      await Promise.all([...this.subscribed].map((type) => this.startSubscription(type)));
    } catch (error) {
      this.emit('error', { code: 'SYNC_OPERATION_ERROR', message: (error as Error).message, cause: error });
    }
    this.sending = true;
    this.sendDue();
  }

  /** Subscribes one type from its cursor; without one (or with one the server refuses), from a snapshot. */
  private async startSubscription(entityType: string): Promise<void> {
    if (!this.cursors.has(entityType)) await this.loadSnapshot(entityType);
    const cursor = this.cursors.get(entityType);
    const reply = await this.request('subscribe', {
      entityTypes: [entityType],
      ...(cursor ? { cursors: { [entityType]: cursor } } : {}),
    });
    if (reply.type === 'sync_required') {
      this.emit('sync:required', { entityType, reason: reply.payload.reason });
      await this.resync(entityType);
      return;
    }
    if (reply.type === 'error' && reply.payload.code === 'INVALID_CURSOR' && cursor) {
      // A cursor the server does not recognise (another deployment, a corrupted store): start over.
      this.emit('sync:required', { entityType, reason: 'invalid_cursor' });
      await this.resync(entityType);
      return;
    }
    if (reply.type !== 'subscribed') throw new Error(`subscribe ${entityType}: ${describe(reply)}`);
    const state = reply.payload.subscriptions.find((s) => s.entityType === entityType);
    if (state) {
      this.setCursor(entityType, state.cursor);
      this.lastSyncTimestamp = Date.now();
      this.emit('subscribed', state);
    }
  }

  /** A snapshot replaces the confirmed state; pending local changes stay on top of it. */
  private async resync(entityType: string): Promise<void> {
    this.cursors.delete(entityType);
    await this.startSubscription(entityType);
  }

  private async loadSnapshot(entityType: string): Promise<void> {
    const store = this.storeOf(entityType);
    let pageToken: string | undefined;
    let cursor: string | undefined;
    do {
      const reply = await this.request('sync', {
        entityType,
        snapshot: true,
        limit: SNAPSHOT_PAGE,
        ...(pageToken ? { pageToken } : {}),
      });
      const page = this.expectSync(reply, 'snapshot');
      for (const entity of page.entities) {
        store.replace(entity.entityId, {
          version: entity.version,
          data: entity.deleted ? null : entity.data,
          vectorClock: entity.vectorClock,
        });
      }
      cursor ??= page.cursor;
      pageToken = page.hasMore ? page.nextPageToken : undefined;
    } while (pageToken);
    if (cursor) this.setCursor(entityType, cursor);
    this.emitState(entityType);
  }

  private handleFrame(frame: ServerFrame): void {
    const waiter = frame.id === undefined ? undefined : this.waiters.get(frame.id);
    switch (frame.type) {
      case 'delta':
        this.onDelta(frame.payload);
        return;
      case 'ack':
        if (frame.payload.status !== 'accepted') return this.onOutcome(frame.payload);
        this.lanes.accepted(frame.payload.mutationId);
        this.expectOutcome(frame.payload.mutationId);
        this.sendDue();
        if (waiter && frame.id) {
          this.waiters.delete(frame.id);
          waiter.resolve(frame);
        }
        return;
      case 'error':
        this.onError(frame);
        return;
      case 'auth_renewed':
        for (const entityType of frame.payload.revoked) this.subscribed.delete(entityType);
        this.emit('auth:renewed', frame.payload);
        return;
      default:
        if (waiter && frame.id) {
          this.waiters.delete(frame.id);
          waiter.resolve(frame);
        }
    }
  }

  private onDelta(delta: DeltaPayload): void {
    if (!this.subscribed.has(delta.entityType)) return;
    this.applyRemote(delta);
    if (delta.cursor) this.setCursor(delta.entityType, delta.cursor);
    this.lastSyncTimestamp = Date.now();
    this.emit('sync:delta', delta);
    this.emitState(delta.entityType);
  }

  private applyRemote(delta: DeltaPayload): void {
    const store = this.storeOf(delta.entityType);
    const previous = store.viewOf(delta.entityId, this.pending());
    const result = store.applyDelta(delta);
    if (result === 'gap') this.scheduleGapSync(delta.entityType, delta.entityId);
    if (result === 'duplicate') return;
    this.markDirty(delta.entityType);
    this.emit('delta:processed', delta);
    this.emit('state:change', {
      entityType: delta.entityType,
      entityId: delta.entityId,
      previous,
      next: store.viewOf(delta.entityId, this.pending()),
      source: 'remote',
    });
  }

  /** The final ack of one of this client's mutations: confirm, rebase or roll back. */
  private onOutcome(ack: OutcomeAckPayload): void {
    const queue = this.requireQueue();
    const mutation = queue.all().find((m) => m.mutationId === ack.mutationId);
    if (!mutation) return;
    const store = this.storeOf(mutation.entityType);
    const previous = store.viewOf(mutation.entityId, this.pending());
    if (ack.status === 'applied') {
      if (store.applyOwn(mutation, ack.version, ack.vectorClock) === 'gap')
        this.scheduleGapSync(mutation.entityType, mutation.entityId);
    } else if (ack.data !== undefined) {
      store.replace(mutation.entityId, { version: ack.version, data: ack.data, vectorClock: ack.vectorClock ?? {} });
    } else {
      this.scheduleGapSync(mutation.entityType, mutation.entityId);
    }
    this.checkStrategy(ack, mutation.entityType);
    const sent = this.sentAt.get(ack.mutationId);
    if (sent !== undefined) this.recordSync(sent);
    this.sentAt.delete(ack.mutationId);
    void queue.remove(ack.mutationId).then(() => {
      this.lanes.settled(ack.mutationId);
      this.stopExpectingOutcome(ack.mutationId);
      this.sendDue();
      this.markDirty(mutation.entityType);
      const next = store.viewOf(mutation.entityId, this.pending());
      this.emit('mutation:settled', { ...ack, entityType: mutation.entityType, entityId: mutation.entityId });
      this.emit('state:change', {
        entityType: mutation.entityType,
        entityId: mutation.entityId,
        previous,
        next,
        source: 'ack',
      });
      this.emitState(mutation.entityType);
    });
  }

  /**
   * The server's policy decides conflicts; an application that expects another strategy hears
   * about it once per entity type, as an `error` event it can log or show.
   */
  private checkStrategy(ack: OutcomeAckPayload, entityType: string): void {
    const expected = this.options.conflictResolution;
    if (!expected || !ack.strategy || ack.strategy === expected) return;
    const key = `${entityType}\u0000${ack.strategy}`;
    if (this.reportedStrategies.has(key)) return;
    this.reportedStrategies.add(key);
    this.emit('error', {
      code: 'CONFLICT_STRATEGY_MISMATCH',
      message: `the server resolved a conflict on ${entityType} with ${ack.strategy}; this client expects ${expected}`,
      mutationId: ack.mutationId,
      entityType,
    });
  }

  private onError(frame: Extract<ServerFrame, { type: 'error' }>): void {
    const ref = frame.payload.ref ?? frame.id;
    const waiter = ref === undefined ? undefined : this.waiters.get(ref);
    if (waiter && ref !== undefined) {
      this.waiters.delete(ref);
      waiter.resolve(frame);
      return;
    }
    const mutation = ref === undefined ? undefined : this.pending().find((m) => this.frameIdOf(m) === ref);
    if (mutation && !RETRYABLE.has(frame.payload.code)) {
      // The server will never take this mutation: drop it, which rolls the view back.
      void this.requireQueue()
        .remove(mutation.mutationId)
        .then(() => {
          this.lanes.settled(mutation.mutationId);
          this.stopExpectingOutcome(mutation.mutationId);
          this.sendDue();
          this.emitState(mutation.entityType);
        });
    } else if (mutation && frame.payload.code === 'OVERLOADED') {
      this.pauseSending(mutation, frame.payload.retryAfterMs ?? RETRY_DELAY_MS);
    } else if (mutation) {
      this.resendLater(mutation, frame.payload.retryAfterMs ?? RETRY_DELAY_MS);
    }
    this.emit('error', {
      code: frame.payload.code,
      message: frame.payload.message,
      ...(mutation ? { mutationId: mutation.mutationId, entityType: mutation.entityType } : {}),
    });
  }

  /** Sends a mutation again after the delay the server asked for; its entity's later ones wait for it. */
  private resendLater(mutation: PendingMutation, delayMs: number): void {
    this.lanes.hold(mutation.mutationId);
    const timer = this.track(
      setTimeout(() => {
        this.timers.delete(timer);
        this.lanes.release(mutation.mutationId);
        this.sendDue();
      }, delayMs),
    );
  }

  /**
   * The server refused a mutation because it has more work queued than it can take: every
   * mutation waits (not only this one's entity), for the time the server asked plus up to half
   * of it again, so clients refused together do not all come back at the same moment.
   */
  private pauseSending(mutation: PendingMutation, retryAfterMs: number): void {
    const until = Date.now() + retryAfterMs * (1 + Math.random() / 2);
    if (until > this.pausedUntil) this.pausedUntil = until;
    this.resendLater(mutation, this.pausedUntil - Date.now());
  }

  /** One timer sends what is due once the pause is over, whatever happened to the connection meanwhile. */
  private resumeAtPauseEnd(): void {
    if (this.resumeTimer) return;
    this.resumeTimer = this.track(
      setTimeout(() => {
        if (this.resumeTimer) this.timers.delete(this.resumeTimer);
        this.resumeTimer = undefined;
        this.sendDue();
      }, this.pausedUntil - Date.now()),
    );
  }

  /**
   * An outcome travels from the worker to the gateway without being stored, so losing a NATS
   * node at the wrong moment can lose it, and the mutation would wait forever. One still missing
   * after a while (doubling from 10 s to a minute, as a long PostgreSQL outage can explain it)
   * is sent again; the gateway answers a mutation it already has with its recorded outcome.
   */
  private expectOutcome(mutationId: string): void {
    const waited = this.outcomeWaits.get(mutationId) ?? 0;
    const delayMs = Math.min(OUTCOME_WAIT_MS * 2 ** waited, MAX_OUTCOME_WAIT_MS);
    this.outcomeWaits.set(mutationId, waited + 1);
    this.stopExpectingOutcome(mutationId, { keepCount: true });
    const timer = this.track(
      setTimeout(() => {
        this.timers.delete(timer);
        this.outcomeTimers.delete(mutationId);
        if (this.lanes.askAgain(mutationId)) this.sendDue();
      }, delayMs),
    );
    this.outcomeTimers.set(mutationId, timer);
  }

  private stopExpectingOutcome(mutationId: string, { keepCount = false } = {}): void {
    const timer = this.outcomeTimers.get(mutationId);
    if (timer) {
      clearTimeout(timer);
      this.timers.delete(timer);
      this.outcomeTimers.delete(mutationId);
    }
    if (!keepCount) this.outcomeWaits.delete(mutationId);
  }

  /** Sends what may go now: per entity, the next queued mutation once the one before is stored. */
  private sendDue(): void {
    if (!this.sending || !this.connection?.isConnected) return;
    if (Date.now() < this.pausedUntil) return this.resumeAtPauseEnd();
    for (const mutation of this.lanes.take(this.pending())) this.sendMutation(mutation);
  }

  private sendMutation(mutation: PendingMutation): void {
    const connection = this.connection;
    if (!connection) return;
    this.sentAt.set(mutation.mutationId, Date.now());
    const { queuedAt: _queuedAt, ...payload } = mutation;
    connection.send({ type: 'mutate', id: this.frameIdOf(mutation), payload });
  }

  /** A mutation's frame id is derived from its id, so errors can be traced back to it. */
  private frameIdOf(mutation: PendingMutation): string {
    return `mut:${mutation.mutationId}`;
  }

  private newMutation(entityType: string, entityId: string, value: JsonObject | null): PendingMutation {
    const confirmed = this.storeOf(entityType).get(entityId);
    this.counter += 1;
    void this.storage.set(`${this.namespace}/clock`, this.counter);
    const vectorClock: VectorClockRecord = VectorClocks.toRecord(
      VectorClocks.merge(
        VectorClocks.fromRecord(confirmed.vectorClock),
        new Map([[this.options.clientId, this.counter]]),
      ),
    );
    return {
      mutationId: `m-${this.options.clientId.replace(/[^A-Za-z0-9_-]/g, '_')}-${this.counter}-${randomSuffix()}`,
      entityType,
      entityId,
      op: value === null ? 'delete' : 'patch',
      ...(value === null ? {} : { data: value }),
      baseVersion: confirmed.version,
      vectorClock,
      hlc: this.clock.tick(),
      clientId: this.options.clientId,
      queuedAt: Date.now(),
    };
  }

  private request(type: string, payload: unknown): Promise<ServerFrame> {
    const connection = this.connection;
    if (!connection?.isConnected) return Promise.reject(new Error('not connected'));
    return new Promise<ServerFrame>((resolve, reject) => {
      const id = connection.send({ type, payload });
      if (id === undefined) {
        reject(new Error('not connected'));
        return;
      }
      this.waiters.set(id, { resolve, reject });
    });
  }

  private expectSync<M extends SyncResponsePayload['mode']>(
    reply: ServerFrame,
    mode: M,
  ): Extract<SyncResponsePayload, { mode: M }> {
    if (reply.type !== 'sync_response' || reply.payload.mode !== mode) throw new Error(`sync: ${describe(reply)}`);
    return reply.payload as Extract<SyncResponsePayload, { mode: M }>;
  }

  /** A version is missing after a while: fetch the entity's changes since the version we have. */
  private scheduleGapSync(entityType: string, entityId: string): void {
    const timer = this.track(
      setTimeout(() => {
        this.timers.delete(timer);
        const store = this.storeOf(entityType);
        if (!store.gaps().includes(entityId) && this.pending().every((m) => m.entityId !== entityId)) return;
        void this.request('sync', { entityType, entityId, sinceVersion: store.get(entityId).version })
          .then((reply) => {
            for (const delta of this.expectSync(reply, 'changes').changes) this.applyRemote(delta);
            this.emitState(entityType);
          })
          .catch(() => undefined);
      }, GAP_SYNC_DELAY_MS),
    );
  }

  private storeOf(entityType: string): EntityStore {
    let store = this.stores.get(entityType);
    if (!store) {
      store = new EntityStore(entityType);
      this.stores.set(entityType, store);
      if (this.queue) void this.loadType(entityType);
    }
    return store;
  }

  private pending(): readonly PendingMutation[] {
    return this.queue?.all() ?? [];
  }

  private requireQueue(): OfflineQueue {
    if (!this.queue) throw new Error('client not opened');
    return this.queue;
  }

  private setCursor(entityType: string, cursor: string): void {
    if (this.cursors.get(entityType) === cursor) return;
    this.cursors.set(entityType, cursor);
    this.markDirty(entityType);
  }

  private emitState(entityType: string): void {
    this.emit('state:updated', { entityType, state: this.getLocalState(entityType) });
  }

  private emitQuality(): void {
    this.emit('quality:updated', {
      averageLatency: this.quality.averageLatency,
      sub100msSuccessRate: this.quality.sub100msSuccessRate,
      qualityScore: this.quality.qualityScore,
    });
  }

  private recordSync(startedAt: number): void {
    const duration = Date.now() - startedAt;
    if (this.monitoring) {
      this.quality.recordSync(duration);
      this.quality.recordLatency(duration);
    }
    this.emit('sync:performance', { duration, sub100msRate: this.quality.sub100msSuccessRate });
  }

  private track(timer: ReturnType<typeof setTimeout>): ReturnType<typeof setTimeout> {
    this.timers.add(timer);
    return timer;
  }

  // Persistence of cursors and confirmed state: batched, cursor and state of a type saved together.

  private async loadType(entityType: string): Promise<void> {
    const saved = await this.storage.get<PersistedType>(`${this.namespace}/types/${entityType}`);
    if (!saved) return;
    const store = this.storeOf(entityType);
    for (const [entityId, entity] of saved.entities) store.replace(entityId, entity);
    if (saved.cursor) this.cursors.set(entityType, saved.cursor);
  }

  private markDirty(entityType: string): void {
    this.saveQueue.add(entityType);
    if (this.saveTimer) return;
    this.saveTimer = this.track(
      setTimeout(() => {
        if (this.saveTimer) this.timers.delete(this.saveTimer);
        this.saveTimer = undefined;
        void this.flushSaves();
      }, SAVE_DELAY_MS),
    );
  }

  private flushSaves(): Promise<void> {
    if (this.saveTimer) {
      clearTimeout(this.saveTimer);
      this.timers.delete(this.saveTimer);
      this.saveTimer = undefined;
    }
    const types = [...this.saveQueue];
    this.saveQueue.clear();
    this.saving = this.saving.then(async () => {
      for (const type of types) {
        const record: PersistedType = { cursor: this.cursors.get(type), entities: [...this.storeOf(type).entries()] };
        await this.storage.set(`${this.namespace}/types/${type}`, record);
      }
    });
    return this.saving;
  }
}

/** Error codes after which resending the same mutation can succeed. */
const RETRYABLE = new Set(['UNAVAILABLE', 'RATE_LIMITED', 'OVERLOADED', 'INTERNAL']);
/** When the server does not say when to retry. */
const RETRY_DELAY_MS = 1000;
/** How long an outcome may take before the mutation is sent again to ask for it (then doubling). */
const OUTCOME_WAIT_MS = 10_000;
const MAX_OUTCOME_WAIT_MS = 60_000;

function describe(frame: ServerFrame): string {
  return frame.type === 'error' ? `${frame.payload.code}: ${frame.payload.message}` : `unexpected ${frame.type}`;
}

function randomSuffix(): string {
  return Math.random().toString(36).slice(2, 10);
}

/** Two merge patches of one entity as one: the later wins field by field; `null` (delete) wins whole. */
function combinePatches(earlier: JsonObject | null | undefined, later: JsonObject | null): JsonObject | null {
  if (later === null || earlier === null || earlier === undefined) return later;
  const combined: JsonObject = { ...earlier };
  for (const [key, value] of Object.entries(later)) {
    const before = combined[key];
    combined[key] =
      value !== null &&
      typeof value === 'object' &&
      !Array.isArray(value) &&
      before &&
      typeof before === 'object' &&
      !Array.isArray(before)
        ? (combinePatches(before as JsonObject, value as JsonObject) as JsonObject)
        : value;
  }
  return combined;
}

/** `ws(s)://host/ws` → `http(s)://host`: where the same gateway serves HTTP. */
function httpUrlOf(websocketUrl: string): string {
  const url = new URL(websocketUrl);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  url.pathname = url.pathname.replace(/\/ws\/?$/, '') || '/';
  return url.toString().replace(/\/$/, '');
}
