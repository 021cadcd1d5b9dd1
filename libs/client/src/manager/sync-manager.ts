import type { JsonObject } from '@syncline/contracts';
import { DifferentialSyncClient } from '../client.js';
import type { ClientEvents } from '../client-events.js';
import type { ConnectionState } from '../connection/connection.js';
import type { DifferentialSyncClientOptions } from '../options.js';
import type { HealthReport } from '../quality/quality-monitor.js';
import { MemoryStorage } from '../storage/memory-storage.js';
import type { KeyValueStorage } from '../storage/storage.js';
import { changedFields, describeChange } from './describe.js';

export type SyncEventKind = 'change' | 'settled' | 'connection' | 'error';

/** One line of a manager's recent history: small, JSON-serializable, kept across reloads. */
export interface SyncEvent {
  /** Increases with every event, across reloads too: a stable React key. */
  readonly seq: number;
  readonly at: number;
  readonly kind: SyncEventKind;
  readonly message: string;
  readonly entityType?: string;
  readonly entityId?: string;
  /** Of a change: who made it (this client, another one, or the server's answer to this one). */
  readonly source?: 'local' | 'remote' | 'ack';
  /** Of a change: the top-level fields whose value changed. */
  readonly fields?: readonly string[];
  /** Of a settled mutation: applied, merged or rejected; of a connection event: the state; of an error: its code. */
  readonly status?: string;
}

export interface SyncMetrics {
  readonly averageLatency: number;
  readonly sub100msSuccessRate: number;
  readonly qualityScore: number;
  readonly pendingChanges: number;
  readonly lastSyncTimestamp: number | undefined;
  readonly changesReceived: number;
  readonly mutationsApplied: number;
  readonly mutationsMerged: number;
  readonly mutationsRejected: number;
  readonly errors: number;
  readonly reconnects: number;
}

export interface SyncManagerConfig {
  /** Stay disconnected, queueing local changes, until `connect()`; set by `disconnect()`. */
  readonly workOffline: boolean;
  /** How many recent events to keep. */
  readonly historyLimit: number;
}

/** What `getSnapshot()` returns: replaced, never mutated, whenever something in it changes. */
export interface SyncManagerSnapshot {
  readonly connectionState: ConnectionState;
  readonly isConnected: boolean;
  /** Newest first. */
  readonly recentEvents: readonly SyncEvent[];
  readonly metrics: SyncMetrics;
  readonly health: HealthReport;
  readonly config: SyncManagerConfig;
}

export interface SyncManagerOptions {
  /** The client to manage, or the options to create one with. */
  readonly client: DifferentialSyncClient | DifferentialSyncClientOptions;
  /**
   * Where recent events, metrics and configuration survive reloads (default: the client
   * options' `storage`, else memory).
   */
  readonly storage?: KeyValueStorage;
  /** Configuration for the first run; what was saved by an earlier run wins. */
  readonly config?: Partial<SyncManagerConfig>;
}

const DEFAULT_CONFIG: SyncManagerConfig = { workOffline: false, historyLimit: 100 };
const ZERO_METRICS: SyncMetrics = {
  averageLatency: 0,
  sub100msSuccessRate: 1,
  qualityScore: 100,
  pendingChanges: 0,
  lastSyncTimestamp: undefined,
  changesReceived: 0,
  mutationsApplied: 0,
  mutationsMerged: 0,
  mutationsRejected: 0,
  errors: 0,
  reconnects: 0,
};
const SAVE_DELAY_MS = 100;
const MAX_HISTORY = 10_000;

/** The entities of one type, by id. */
type EntitiesOfType = Readonly<Record<string, JsonObject>>;

/**
 * A framework-neutral store over a {@link DifferentialSyncClient}: connection state, recent
 * events, metrics, health and configuration as one immutable snapshot, and each entity type's
 * optimistic state, with change notification. The React hooks are thin `useSyncExternalStore`
 * adapters over it; other frameworks can subscribe the same way.
 */
export class SyncManager {
  readonly client: DifferentialSyncClient;
  private readonly storage: KeyValueStorage;
  private readonly storageKey: string;
  private readonly listeners = new Set<() => void>();
  private readonly eventListeners = new Set<(event: SyncEvent) => void>();
  private readonly entityStates = new Map<string, EntitiesOfType>();
  private connectionState: ConnectionState = 'disconnected';
  private events: SyncEvent[] = [];
  private metrics: SyncMetrics = ZERO_METRICS;
  private config: SyncManagerConfig;
  private seq = 0;
  private snapshot: SyncManagerSnapshot | undefined;
  private notifyScheduled = false;
  private saveTimer: ReturnType<typeof setTimeout> | undefined;
  private loaded: Promise<void> | undefined;
  /** Bumped by every start() and stop(): a start() that a later call overtook gives up. */
  private generation = 0;
  private stopWatchingPageHide: (() => void) | undefined;

  constructor(options: SyncManagerOptions) {
    const clientOptions = options.client instanceof DifferentialSyncClient ? undefined : options.client;
    this.client =
      options.client instanceof DifferentialSyncClient ? options.client : new DifferentialSyncClient(options.client);
    this.storage = options.storage ?? clientOptions?.storage ?? new MemoryStorage();
    this.storageKey = `syncline-manager/${this.client.clientId}`;
    this.config = { ...DEFAULT_CONFIG, ...options.config };
    this.listen();
  }

  get entityTypes(): readonly string[] {
    return this.client.entityTypes;
  }

  // ---------------------------------------------------------------------------------------------
  // Store interface (stable functions, so they can be handed to useSyncExternalStore as they are)

  /** Calls `listener` after anything in the snapshot or any entity state changed. */
  readonly watch = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  readonly getSnapshot = (): SyncManagerSnapshot => {
    this.snapshot ??= {
      connectionState: this.connectionState,
      isConnected: this.connectionState === 'connected',
      recentEvents: this.events,
      metrics: this.metrics,
      health: this.client.getHealthStatus(),
      config: this.config,
    };
    return this.snapshot;
  };

  /** The optimistic state of one entity type; the same object until that type changes. */
  readonly getEntities = (entityType: string): EntitiesOfType => {
    let state = this.entityStates.get(entityType);
    if (!state) {
      state = this.client.getLocalState(entityType);
      this.entityStates.set(entityType, state);
    }
    return state;
  };

  /** Calls `listener` with every event as it is recorded. */
  onEvent(listener: (event: SyncEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  // ---------------------------------------------------------------------------------------------
  // Lifecycle and actions

  /** Loads what was saved, restores the client's data, and connects unless configured to work offline. */
  async start(): Promise<void> {
    const run = ++this.generation;
    this.watchPageHide();
    await this.load();
    await this.client.restore();
    if (run === this.generation && !this.config.workOffline) await this.goOnline();
  }

  /** Disconnects and saves; the configuration is left as it is. `start()` may follow. */
  async stop(): Promise<void> {
    this.generation += 1;
    this.stopWatchingPageHide?.();
    this.stopWatchingPageHide = undefined;
    await this.client.disconnect();
    this.setConnectionState('disconnected');
    await this.save();
  }

  /** Connects and subscribes, and remembers to do so after a reload. */
  async connect(): Promise<void> {
    await this.load();
    this.setConfig({ workOffline: false });
    await this.goOnline();
  }

  /** Disconnects and stays offline, across reloads too, until `connect()`; local changes queue up. */
  async disconnect(): Promise<void> {
    await this.load();
    this.setConfig({ workOffline: true });
    await this.client.disconnect();
    this.setConnectionState('disconnected');
  }

  /** Drops the connection and makes a new one (with a fresh token from the provider). */
  async reconnect(): Promise<void> {
    await this.client.disconnect();
    await this.connect();
  }

  subscribe(entityTypes?: readonly string[]): Promise<void> {
    return this.client.subscribe(entityTypes);
  }

  unsubscribe(entityType: string): Promise<void> {
    return this.client.unsubscribe(entityType);
  }

  setConfig(change: Partial<SyncManagerConfig>): void {
    const next = { ...this.config, ...change };
    next.historyLimit = Math.min(MAX_HISTORY, Math.max(1, Math.floor(next.historyLimit)));
    if (next.workOffline === this.config.workOffline && next.historyLimit === this.config.historyLimit) return;
    this.config = next;
    if (this.events.length > next.historyLimit) this.events = this.events.slice(0, next.historyLimit);
    this.changed();
  }

  /** Forgets recent events and counters (not the data, nor the pending changes). */
  clearHistory(): void {
    this.events = [];
    this.metrics = { ...ZERO_METRICS };
    this.refreshMetrics();
  }

  // ---------------------------------------------------------------------------------------------
  // Internals

  /**
   * Subscribing first registers the types, so that however the connection comes (now, or
   * after reconnection attempts in the background) it subscribes them.
   */
  private async goOnline(): Promise<void> {
    await this.client.subscribe();
    await this.client.connect();
  }

  private listen(): void {
    const client = this.client;
    client.on('connection:state', ({ state }) => this.setConnectionState(state));
    client.on('state:updated', ({ entityType, state }) => {
      this.entityStates.set(entityType, state);
      this.refreshMetrics();
    });
    client.on('state:change', (change) => this.recordChange(change));
    client.on('mutation:settled', (settled) => this.recordSettled(settled));
    client.on('error', (error) => {
      this.bump({ errors: this.metrics.errors + 1 });
      this.record({ kind: 'error', status: error.code, message: `${error.code}: ${error.message}` });
    });
    client.on('quality:updated', () => this.refreshMetrics());
    client.on('sync:performance', () => this.refreshMetrics());
    client.on('reconnect:scheduled', ({ attempt, delay }) => {
      this.bump({ reconnects: this.metrics.reconnects + 1 });
      this.record({
        kind: 'connection',
        status: 'reconnecting',
        message: `reconnecting in ${(delay / 1000).toFixed(1)} s (attempt ${attempt})`,
      });
    });
  }

  private setConnectionState(state: ConnectionState): void {
    if (state === this.connectionState) return;
    this.connectionState = state;
    this.record({ kind: 'connection', status: state, message: state });
  }

  private recordChange(change: ClientEvents['state:change']): void {
    const fields = changedFields(change.previous, change.next);
    if (change.source === 'remote') this.bump({ changesReceived: this.metrics.changesReceived + 1 });
    if (fields.length === 0 && change.source === 'ack') return; // confirmed exactly as shown: nothing to tell
    this.record({
      kind: 'change',
      entityType: change.entityType,
      entityId: change.entityId,
      source: change.source,
      fields,
      message: describeChange(change, fields),
    });
  }

  private recordSettled(settled: ClientEvents['mutation:settled']): void {
    const counter =
      settled.status === 'merged'
        ? { mutationsMerged: this.metrics.mutationsMerged + 1 }
        : settled.status === 'rejected'
          ? { mutationsRejected: this.metrics.mutationsRejected + 1 }
          : { mutationsApplied: this.metrics.mutationsApplied + 1 };
    this.bump(counter);
    if (settled.status === 'applied') return; // the common case; its change event says enough
    this.record({
      kind: 'settled',
      entityType: settled.entityType,
      entityId: settled.entityId,
      status: settled.status,
      message: `${settled.entityType}/${settled.entityId}: your change was ${settled.status} (v${settled.version})`,
    });
  }

  private record(event: Omit<SyncEvent, 'seq' | 'at'>): void {
    this.seq += 1;
    const recorded: SyncEvent = { seq: this.seq, at: Date.now(), ...event };
    this.events = [recorded, ...this.events.slice(0, this.config.historyLimit - 1)];
    for (const listener of [...this.eventListeners]) listener(recorded);
    this.changed();
  }

  private bump(counters: Partial<SyncMetrics>): void {
    this.metrics = { ...this.metrics, ...counters };
    this.changed();
  }

  /** Takes the live figures from the client; latency figures keep their saved value until measured again. */
  private refreshMetrics(): void {
    const status = this.client.getSyncStatus();
    const measured = status.averageLatency > 0;
    this.bump({
      pendingChanges: status.pendingChanges,
      lastSyncTimestamp: status.lastSyncTimestamp ?? this.metrics.lastSyncTimestamp,
      ...(measured
        ? {
            averageLatency: status.averageLatency,
            sub100msSuccessRate: status.sub100msSuccessRate,
            qualityScore: status.qualityScore,
          }
        : {}),
    });
  }

  /** Marks the snapshot stale and notifies once per microtask, however many changes came in it. */
  private changed(): void {
    this.snapshot = undefined;
    this.scheduleSave();
    if (this.notifyScheduled) return;
    this.notifyScheduled = true;
    queueMicrotask(() => {
      this.notifyScheduled = false;
      for (const listener of [...this.listeners]) listener();
    });
  }

  // Persistence: events, metrics and configuration, saved a moment after they change.

  private load(): Promise<void> {
    this.loaded ??= (async () => {
      const [events, metrics, config] = await Promise.all([
        this.storage.get<SyncEvent[]>(`${this.storageKey}/events`),
        this.storage.get<SyncMetrics>(`${this.storageKey}/metrics`),
        this.storage.get<SyncManagerConfig>(`${this.storageKey}/config`),
      ]);
      if (config) this.config = { ...this.config, ...config };
      if (metrics) this.metrics = { ...ZERO_METRICS, ...metrics, pendingChanges: this.metrics.pendingChanges };
      if (events) {
        this.events = [...this.events, ...events].slice(0, this.config.historyLimit);
        this.seq = Math.max(this.seq, ...this.events.map((event) => event.seq));
      }
      this.changed();
    })();
    return this.loaded;
  }

  /** In a browser, a reload or a closed tab saves what the delay has not saved yet. */
  private watchPageHide(): void {
    const scope = globalThis as Partial<Pick<Window, 'addEventListener' | 'removeEventListener'>>;
    if (this.stopWatchingPageHide || !scope.addEventListener || !scope.removeEventListener) return;
    const onPageHide = (): void => void this.save();
    scope.addEventListener('pagehide', onPageHide);
    this.stopWatchingPageHide = () => scope.removeEventListener?.('pagehide', onPageHide);
  }

  private scheduleSave(): void {
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => void this.save(), SAVE_DELAY_MS);
  }

  private async save(): Promise<void> {
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    await this.load(); // never overwrite what an earlier run saved before reading it
    await Promise.all([
      this.storage.set(`${this.storageKey}/events`, this.events),
      this.storage.set(`${this.storageKey}/metrics`, this.metrics),
      this.storage.set(`${this.storageKey}/config`, this.config),
    ]);
  }
}
