import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { eventually } from './support/eventually.js';
import {
  describeDivergence,
  expectLastStoredWins,
  expectLedgerAndOrder,
  longestPause,
  sameState,
  serverState,
} from './support/invariants.js';
import { ProductionShape } from './support/production-shape.js';
import { Replica, type SentMutation } from './support/replica.js';
import { OpenLoopLoad, Writer, acceptedIds, metricSum, report, withDeadline } from './support/protocol-load.js';
import { type TestSystem } from './support/system.js';
import { TestClient, type FrameOf } from './support/ws-client.js';

/**
 * The production shape (§9): a three-node JetStream cluster with three-replica streams, three
 * gateways, two workers and two conflict services. Clients on different gateways see each
 * other's changes and resume anywhere; workers added under load keep every entity in order; and
 * the loss of one NATS node under a steady stream of mutations keeps I1–I5.
 */

const TENANT = 'acme';
/** How long after losing a NATS node every writer must have its outcomes again. */
const RECOVERY_LIMIT_MS = 65_000;
const SECOND = 1000;
/** How long throughput is measured before and after a worker joins. */
const WINDOW_MS = 2500;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('a three-node JetStream cluster', () => {
  let shape: ProductionShape;
  let system: TestSystem;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    shape = await ProductionShape.start({
      gateways: 3,
      // A delivery whose ack died with a consumer leader comes back after this. Not shorter:
      // a worker that fell behind holds its prefetched messages for seconds before it acks.
      workerAckWaitMs: 10_000,
      // The load of one test client per gateway is far above the per-connection default.
      serviceEnv: {
        gateway: { RATE_LIMIT_FRAMES_PER_SECOND: '100000', RATE_LIMIT_TENANT_MUTATIONS_PER_SECOND: '100000' },
      },
    });
    system = shape.system;
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await shape?.stop();
  });

  async function connect(gateway: number, user: string): Promise<TestClient> {
    const token = await system.mintToken({ sub: user, tenant: TENANT });
    const client = await TestClient.connect(system.gateways[gateway]!.url, token, { clientId: user });
    clients.push(client);
    return client;
  }

  async function subscribe(client: TestClient, entityTypes: string[], cursor?: string): Promise<FrameOf<'subscribed'>> {
    const reply = await client.request('subscribe', {
      entityTypes,
      ...(cursor ? { cursors: { [entityTypes[0]!]: cursor } } : {}),
    });
    if (reply.type !== 'subscribed') throw new Error(`subscribe failed: ${JSON.stringify(reply.payload)}`);
    return reply;
  }

  async function writerOn(gateway: number, user: string, entityTypes: string[]): Promise<Writer> {
    const client = await connect(gateway, user);
    await subscribe(client, entityTypes);
    return new Writer(client, user);
  }

  async function readerOn(gateway: number, user: string, entityType: string): Promise<TestClient> {
    const client = await connect(gateway, user);
    await subscribe(client, [entityType]);
    return client;
  }

  /** I5: a client's copy, rebuilt from the frames it received, equals the server's state. */
  async function expectConverged(
    entityType: string,
    copies: readonly { name: string; client: TestClient; sent?: readonly SentMutation[] }[],
    timeoutMs = 20_000,
  ): Promise<void> {
    const server = await serverState(system, TENANT, entityType);
    for (const { name, client, sent } of copies) {
      await eventually(
        () => sameState(Replica.fromFrames(client.frames, entityType, sent).entities, server),
        `${name} to converge on ${entityType}`,
        timeoutMs,
      ).catch((error: unknown) => {
        const copy = Replica.fromFrames(client.frames, entityType, sent).entities;
        throw new Error(`${String(error)}\n${describeDivergence(copy, server)}`);
      });
    }
  }

  it('delivers changes between all three gateways and resumes on another gateway without loss', async () => {
    const writers = await Promise.all([0, 1, 2].map((g) => writerOn(g, `writer-${g + 1}`, ['notes', 'drafts'])));
    await Promise.all(writers.map((writer, g) => writer.write('notes', `from-gw${g + 1}`, { author: g + 1 })));
    for (const [g, writer] of writers.entries()) {
      for (const other of [1, 2, 3].filter((n) => n !== g + 1)) {
        await writer.client.waitForType('delta', (f) => f.payload.entityId === `from-gw${other}`);
      }
    }

    // A reader leaves gateway 1 with its cursor, misses changes made through gateways 2, 3 and 1,
    // and resumes on gateway 3: each missed change exactly once, every entity in version order,
    // then live ones. (Across entities CHANGES need not follow commit order: a change whose first
    // publication lost a race between the workers is published by the outbox relay a moment later.)
    const reader = await readerOn(0, 'reader', 'notes');
    await writers[1]!.write('notes', 'from-gw2', { step: 1 });
    const seen = await reader.waitForType('delta', (f) => f.payload.entityId === 'from-gw2' && f.payload.version === 2);
    await reader.close();
    await writers[1]!.write('notes', 'from-gw2', { step: 2 });
    await writers[2]!.write('notes', 'from-gw3', { step: 1 });
    await writers[0]!.write('notes', 'from-gw1', { step: 1 });
    const back = await connect(2, 'reader');
    await subscribe(back, ['notes'], seen.payload.cursor);
    await writers[1]!.write('notes', 'from-gw2', { step: 3 });
    await back.waitForType('delta', (f) => f.payload.entityId === 'from-gw2' && f.payload.version === 4);
    const received = back.deltas('notes').map((d) => `${d.entityId}@${d.version}`);
    expect([...received].sort()).toEqual(['from-gw1@2', 'from-gw2@3', 'from-gw2@4', 'from-gw3@2']);
    expect(received.indexOf('from-gw2@3')).toBeLessThan(received.indexOf('from-gw2@4'));

    // Concurrent edits through two gateways meet in a conflict service, and the third gateway's
    // client sees the merged result.
    await writers[0]!.write('drafts', 'shared', { title: 'draft', body: 'x' });
    await writers[1]!.client.waitForType('delta', (f) => f.payload.entityId === 'shared' && f.payload.version === 1);
    const [first, second] = await Promise.all([
      writers[0]!.write('drafts', 'shared', { title: 'final' }, { baseVersion: 1 }),
      writers[1]!.write('drafts', 'shared', { body: 'from gw2' }, { baseVersion: 1 }),
    ]);
    expect([first.version, second.version].sort()).toEqual([2, 3]);
    expect((await serverState(system, TENANT, 'drafts')).get('shared')).toEqual({
      version: 3,
      data: { title: 'final', body: 'from gw2' },
    });
    await writers[2]!.client.waitForType('delta', (f) => f.payload.entityId === 'shared' && f.payload.version === 3);
    const conflicts = await system.query(`SELECT strategy FROM conflicts WHERE entity_type = 'drafts'`);
    expect(conflicts).toEqual([{ strategy: 'merge' }]);

    await expectConverged(
      'notes',
      writers.map((writer) => ({ name: writer.name, client: writer.client, sent: writer.sent })),
    );
    await expectLedgerAndOrder(system, TENANT, 'notes', acceptedIds(writers.map((w) => w.client)));
  });

  it('keeps every entity in order and applies each mutation once when a worker joins under load', async () => {
    // Start from one worker, so the one that joins doubles the consumers of the shared durable.
    await system.kill('sync-worker', 1, 'SIGTERM');
    const loaders = await Promise.all([0, 1, 2].map((g) => connect(g, `load-${g + 1}`)));
    // Above what one worker persists here while the gateways and this load share its two cores.
    const load = new OpenLoopLoad(loaders, 'counters', {
      ratePerSecond: 1100,
      entitiesPerClient: 2000,
      hotEntities: 5,
    });
    load.start();
    await sleep(SECOND); // past the first batches, which start from an empty queue
    const alone = await load.window(WINDOW_MS, () => persistedCount(system, 'counters'));
    const addStarted = Date.now();
    const added = await system.add('sync-worker');
    const joinMs = Date.now() - addStarted;
    await sleep(SECOND / 2); // let the new worker's first pulls land
    const joined = await load.window(WINDOW_MS, () => persistedCount(system, 'counters'));
    // Mutations refused for load are still sent again until they are stored.
    load.stop();
    const conflicts = await system.query<{ n: string }>(
      `SELECT count(*) AS n FROM conflicts WHERE entity_type = 'counters'`,
    );

    report('cluster', 'worker joining under load', {
      offered: `${load.ratePerSecond}/s over ${loaders.length} gateways, ${load.sent} mutations`,
      'one worker': `${rate(alone)} persisted/s (${rate({ ...alone, count: alone.offered })}/s offered)`,
      'two workers': `${rate(joined)} persisted/s (${rate({ ...joined, count: joined.offered })}/s offered)`,
      'new worker ready after': `${joinMs} ms`,
      'mutations met out of order (resolved as conflicts)': conflicts[0]?.n ?? '0',
    });

    const accepted = await eventually(
      () => {
        const ids = acceptedIds(loaders);
        return ids.size === load.sent && ids;
      },
      'every offered mutation to be accepted',
      30_000,
    ).finally(() => load.close());
    await expectLedgerAndOrder(system, TENANT, 'counters', accepted);
    await expectLastStoredWins(system, TENANT, 'counters', load.values);
    // The new worker took a share of the shared consumer. Whether two persist more than one is
    // for benchmarks: NATS, PostgreSQL, three gateways and this load share two cores here.
    expect(await metricSum(added.ready, 'syncline_worker_mutations_total')).toBeGreaterThan(0);
  }, 80_000);

  it('keeps I1–I5 when a NATS node is killed under load and restarts', async () => {
    const entityType = 'orders';
    const writers = await Promise.all([0, 1, 2].map((g) => writerOn(g, `orders-writer-${g + 1}`, [entityType])));
    const readers = await Promise.all([0, 1, 2].map((g) => readerOn(g, `orders-reader-${g + 1}`, entityType)));
    // Of the three nodes, losing the one that leads the workers' shared consumer hurts the write
    // path most: it also takes the workers' outstanding pull requests with it.
    const { cluster } = shape;
    const victim = await shape.workerConsumerLeader();
    const held = await shape.whatNodeLeads(cluster.nodes[victim]!.name);

    const chains = new SteadyWrites(writers, entityType, { entitiesPerWriter: 15, pauseMs: 40 });
    chains.start();
    await sleep(1.5 * SECOND);
    const killedAt = Date.now();
    await cluster.kill(victim, 'SIGKILL');
    await sleep(4 * SECOND);
    const restartStarted = Date.now();
    await cluster.restart(victim);
    const rejoinMs = Date.now() - restartStarted;
    await sleep(SECOND);
    await withDeadline(
      chains.stop(),
      killedAt + RECOVERY_LIMIT_MS,
      `every writer's last mutation to have an outcome ${RECOVERY_LIMIT_MS / SECOND} s after the kill`,
    );

    const pauses = readers.map((client) => longestGap(client, entityType, chains.startedAt, chains.stoppedAt));
    report('cluster', 'NATS node killed under load', {
      killed: `${cluster.nodes[victim]!.name} (leader of ${held.join(', ')}) at ${new Date(killedAt).toISOString()}`,
      'node rejoined after': `${rejoinMs} ms`,
      mutations: `${chains.count} in ${((chains.stoppedAt - chains.startedAt) / SECOND).toFixed(1)} s, ${writers.reduce((n, w) => n + w.resends, 0)} resends`,
      'longest wait for an outcome': `${Math.max(...writers.map((w) => w.longestMs))} ms`,
      'longest pause in deltas': pauses
        .map((p, g) => `gw${g + 1} ${p.ms} ms (ended ${((p.at - killedAt) / SECOND).toFixed(1)} s after the kill)`)
        .join(', '),
    });

    await expectLedgerAndOrder(system, TENANT, entityType, acceptedIds(writers.map((w) => w.client)));
    // One writer per entity, each change on the version before it: one version per change.
    const server = await serverState(system, TENANT, entityType);
    for (const [entityId, steps] of chains.written)
      expect({ entityId, version: server.get(entityId)?.version }).toEqual({ entityId, version: steps });
    await expectConverged(entityType, [
      ...writers.map((writer) => ({ name: writer.name, client: writer.client, sent: writer.sent })),
      ...readers.map((client, g) => ({ name: `orders-reader-${g + 1}`, client })),
    ]);
  }, 85_000);
});

/** Each writer keeps a few entities changing: one change in flight per entity, a pause between. */
class SteadyWrites {
  /** Changes made per entity id. */
  readonly written = new Map<string, number>();
  count = 0;
  startedAt = 0;
  stoppedAt = 0;
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly writers: readonly Writer[],
    private readonly entityType: string,
    private readonly options: { entitiesPerWriter: number; pauseMs: number },
  ) {}

  start(): void {
    this.running = true;
    this.startedAt = Date.now();
    this.loops = this.writers.flatMap((writer, w) =>
      Array.from({ length: this.options.entitiesPerWriter }, (_, e) => this.loop(writer, `w${w + 1}-e${e + 1}`)),
    );
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.stoppedAt = Date.now();
  }

  private async loop(writer: Writer, entityId: string): Promise<void> {
    // Spread the first writes so the load is steady from the start rather than one burst.
    await sleep(Math.random() * this.options.pauseMs);
    while (this.running) {
      const step = (this.written.get(entityId) ?? 0) + 1;
      await writer.write(this.entityType, entityId, { step, [`field${step % 4}`]: Date.now() });
      this.written.set(entityId, step);
      this.count += 1;
      await sleep(this.options.pauseMs);
    }
  }
}

async function persistedCount(system: TestSystem, entityType: string): Promise<number> {
  const [row] = await system.query<{ n: string }>(`SELECT count(*) AS n FROM mutations WHERE entity_type = $1`, [
    entityType,
  ]);
  return Number(row?.n);
}

/** The longest pause between deltas of `entityType` a client got within [from, to] (frame times are send times). */
function longestGap(client: TestClient, entityType: string, from: number, to: number): { ms: number; at: number } {
  const times = client
    .framesOf('delta')
    .filter((frame) => frame.payload.entityType === entityType)
    .map((frame) => frame.timestamp);
  const { ms, endedAt } = longestPause(times, from, to);
  return { ms, at: endedAt };
}

function rate({ count, ms }: { count: number; ms: number }): number {
  return Math.round((count * SECOND) / ms);
}
