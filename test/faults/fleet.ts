/**
 * Clients for fault tests: SDK clients, each behind its own network path to the gateways
 * (a {@link TcpProxy}), spread over the gateways, writing steadily. They record what the checks
 * need: every mutation's final outcome, and when each change from others arrived.
 */
import { DifferentialSyncClient, MemoryStorage, nodeWebSocketFactory } from '@syncline/client/node';
import type { JsonObject } from '@syncline/contracts';
import { eventually } from '../support/eventually.js';
import type { TestSystem } from '../support/system.js';
import { TcpProxy, portOf } from '../support/tcp-proxy.js';

/** How the SDK watches its connection here: a dead path is noticed within about 3 s. */
const SDK_TIMING = { heartbeatInterval: 1000, heartbeatTimeout: 2000, connectionTimeout: 3000, retryDelay: 250 };

export interface FleetOptions {
  readonly tenant: string;
  readonly entityType: string;
  readonly clients: number;
  /** Entities only one client writes, per client. */
  readonly ownEntities: number;
  /** Entities every client writes: their concurrent edits go through the conflict services. */
  readonly sharedEntities: number;
  /** Pause between one client's writes. */
  readonly pauseMs: number;
}

export class FleetClient {
  /** When each change made by another client arrived (epoch ms). */
  readonly deliveries: number[] = [];
  /** Final outcomes, by mutation id. */
  readonly outcomes = new Map<string, string>();
  /** When each change was made, until its outcome came. */
  private readonly madeAt = new Map<string, number>();
  /** The longest time from making a change to its final outcome, and when that outcome came. */
  longestOutcomeWait = { ms: 0, settledAt: 0 };
  /** Error codes the SDK reported, by code. */
  readonly errors = new Map<string, number>();
  writes = 0;
  reconnects = 0;

  constructor(
    readonly name: string,
    readonly sdk: DifferentialSyncClient,
    readonly path: TcpProxy,
  ) {
    sdk.on('sync:delta', () => this.deliveries.push(Date.now()));
    sdk.on('mutation:queued', ({ mutationId }) => this.madeAt.set(mutationId, Date.now()));
    sdk.on('mutation:settled', ({ mutationId, status }) => {
      this.outcomes.set(mutationId, status);
      const madeAt = this.madeAt.get(mutationId);
      this.madeAt.delete(mutationId);
      if (madeAt === undefined) return;
      const now = Date.now();
      if (now - madeAt > this.longestOutcomeWait.ms) this.longestOutcomeWait = { ms: now - madeAt, settledAt: now };
    });
    sdk.on('error', ({ code }) => this.errors.set(code, (this.errors.get(code) ?? 0) + 1));
    sdk.on('connected', ({ reconnected }) => reconnected && (this.reconnects += 1));
  }
}

export class Fleet {
  /**
   * Per entity, the last value written to each field only one client writes: the server must
   * end with exactly these, whatever order the edits arrived in (no write lost).
   */
  readonly lastWritten = new Map<string, Record<string, string | number>>();
  private running = false;
  private loops: Promise<void>[] = [];
  startedAt = 0;
  stoppedAt = 0;

  private constructor(
    readonly clients: readonly FleetClient[],
    private readonly options: FleetOptions,
  ) {}

  /** Connects `clients` SDK clients, client k preferring gateway k mod n, all subscribed. */
  static async start(system: TestSystem, options: FleetOptions): Promise<Fleet> {
    const clients = await Promise.all(
      Array.from({ length: options.clients }, async (_, k) => {
        const name = `${options.entityType}-client-${k + 1}`;
        const path = await TcpProxy.start(() => system.gateways.map((gateway) => portOf(gateway.url)), k);
        const sdk = new DifferentialSyncClient({
          clientId: name,
          websocketUrl: path.wsUrl,
          entityTypes: [options.entityType],
          tokenProvider: () => system.mintToken({ sub: name, tenant: options.tenant }),
          webSocketFactory: nodeWebSocketFactory,
          storage: new MemoryStorage(),
          ...SDK_TIMING,
        });
        await sdk.connect();
        await sdk.subscribe();
        return new FleetClient(name, sdk, path);
      }),
    );
    return new Fleet(clients, options);
  }

  get entityType(): string {
    return this.options.entityType;
  }

  /** Changes made so far, over all clients. */
  get writes(): number {
    return this.clients.reduce((sum, client) => sum + client.writes, 0);
  }

  start(): void {
    this.running = true;
    this.startedAt = Date.now();
    this.loops = this.clients.map((client, k) => this.writeSteadily(client, k));
  }

  /** Stops writing, then waits until every change made has its final outcome. */
  async stop(settleTimeoutMs: number): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.stoppedAt = Date.now();
    await eventually(
      () => this.clients.every((client) => client.sdk.getPendingChangesCount() === 0),
      'every client to have the outcome of every change it made',
      settleTimeoutMs,
    ).catch((error: unknown) => {
      const pending = this.clients.map((c) => `${c.name}: ${c.sdk.getPendingChangesCount()} pending`).join(', ');
      throw new Error(`${String(error)} (${pending})`);
    });
  }

  /** Mutation ids that ended applied or merged, over all clients. */
  storedMutationIds(): Set<string> {
    const ids = new Set<string>();
    for (const client of this.clients)
      for (const [id, status] of client.outcomes) if (status === 'applied' || status === 'merged') ids.add(id);
    return ids;
  }

  async close(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    await Promise.all(this.clients.map((client) => client.sdk.disconnect()));
    await Promise.all(this.clients.map((client) => client.path.close()));
  }

  private async writeSteadily(client: FleetClient, k: number): Promise<void> {
    const { entityType, ownEntities, sharedEntities, pauseMs } = this.options;
    // Spread the clients' first writes so the load is steady rather than bursts.
    await sleep((pauseMs * k) / this.clients.length);
    while (this.running) {
      const n = client.writes;
      const shared = n % 3 === 2;
      const entityId = shared ? `shared-${n % sharedEntities}` : `${client.name}-e${n % ownEntities}`;
      const change: JsonObject = { [`by-${client.name}`]: n, [`field${n % 4}`]: `${client.name}:${n}` };
      await client.sdk.updateLocalState({ [entityId]: change }, entityType);
      // On a shared entity, other clients write the `field`s too: only `by-<client>` is this one's.
      const own = shared ? { [`by-${client.name}`]: n } : (change as Record<string, string | number>);
      this.lastWritten.set(entityId, { ...this.lastWritten.get(entityId), ...own });
      client.writes += 1;
      await sleep(pauseMs);
    }
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
