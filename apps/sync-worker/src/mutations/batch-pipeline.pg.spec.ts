import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { context } from '@opentelemetry/api';
import type { ConflictStrategy, JsonObject, MutationMessage } from '@syncline/contracts';
import { initTelemetry } from '@syncline/platform';
import { migratedDatabase, type MigratedDatabase } from '../../../../test/support/migrated-database.js';
import { ConflictResolver } from '../conflicts/conflict-resolver.js';
import { EntityCache } from '../entities/entity-cache.js';
import { BatchPipeline, type PipelineItem } from './batch-pipeline.js';
import type { BatchPlan } from './batch-processor.service.js';
import { BatchProcessor } from './batch-processor.service.js';
import { EntityStoreRepository } from './entity-store.repository.js';

const TENANT = 'acme';
const telemetry = initTelemetry({ serviceName: 'pg-spec', instanceId: 'pg-spec' });

interface Item extends PipelineItem {
  readonly seq: number;
}

/** A pipeline on the real database, recording what it commits and refuses. */
class Harness {
  readonly pipeline: BatchPipeline<Item>;
  readonly committed: { items: readonly Item[]; plan: BatchPlan }[] = [];
  readonly refused: Item[] = [];
  readonly retries: string[] = [];

  constructor(
    db: MigratedDatabase,
    options: { batchSize: number; maxInFlight: number; strategy?: ConflictStrategy; mutationStream?: string },
  ) {
    const resolver = new ConflictResolver({ strategyFor: () => options.strategy ?? 'merge' }, telemetry);
    this.pipeline = new BatchPipeline<Item>(
      new BatchProcessor(resolver),
      new EntityStoreRepository(db.dataSource),
      new EntityCache(10_000),
      {
        committed: (items, plan) => this.committed.push({ items, plan }),
        refused: async (item) => {
          this.refused.push(item);
        },
        retrying: (_size, _error, _attempt, kind) => this.retries.push(kind),
      },
      {
        mutationStream: options.mutationStream ?? 'first-epoch',
        batchSize: options.batchSize,
        maxInFlight: options.maxInFlight,
      },
    );
  }
}

let db: MigratedDatabase;
let seq = 0;

function mutation(entityType: string, entityId: string, data: Record<string, unknown>, redelivered = false): Item {
  seq += 1;
  const message: MutationMessage = {
    mutationId: `m-${randomUUID()}`,
    tenant: TENANT,
    userId: 'u',
    clientId: 'c',
    entityType,
    entityId,
    op: 'patch',
    data: { ...data, seq } as MutationMessage['data'],
    baseVersion: 0,
    // One writer whose clock always moves forward: no mutation is concurrent with an earlier one.
    vectorClock: { writer: seq },
    hlc: `${String(1_700_000_000_000 + seq).padStart(15, '0')}:00000:writer`,
  };
  return {
    seq,
    redelivered,
    incoming: {
      mutation: message,
      streamSeq: seq,
      gatewayId: null,
      connectionId: null,
      receivedAt: null,
      trace: context.active(),
      traceparent: null,
    },
  };
}

async function changeLog(entityType: string) {
  return db.dataSource.query<{ entity_id: string; version: string; seq: number }[]>(
    `SELECT c.entity_id, c.version, (e.data->>'/seq')::int AS seq
       FROM changes c JOIN LATERAL (
         SELECT jsonb_object_agg(ch->>'field', ch->'newValue') AS data FROM jsonb_array_elements(c.changes) ch
       ) e ON true
      WHERE c.tenant = $1 AND c.entity_type = $2 ORDER BY c.entity_id, c.version`,
    [TENANT, entityType],
  );
}

beforeAll(async () => {
  db = await migratedDatabase({ poolSize: 8 });
});

afterAll(async () => {
  await db?.drop();
  await telemetry.shutdown();
});

describe('BatchPipeline on PostgreSQL', () => {
  it('I3: with several batches in flight, each entity takes its mutations in stream order, versions 1, 2, 3 …', async () => {
    const harness = new Harness(db, { batchSize: 7, maxInFlight: 4 });
    const pushed: Item[] = [];
    // Few entities, many small batches pushed in bursts: batches in flight would share entities
    // all the time if the pipeline let them.
    for (let burst = 0; burst < 40; burst++) {
      const items = Array.from({ length: 25 }, (_, i) => mutation('orders', `o-${(burst * 7 + i * 3) % 6}`, {}));
      pushed.push(...items);
      harness.pipeline.push(items);
      if (burst % 5 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await harness.pipeline.idle();

    expect(harness.committed.flatMap((c) => c.items).length).toBe(pushed.length);
    expect(harness.retries).toEqual([]);
    const log = await changeLog('orders');
    const byEntity = new Map<string, { version: number; seq: number }[]>();
    for (const row of log) {
      const list = byEntity.get(row.entity_id) ?? [];
      list.push({ version: Number(row.version), seq: row.seq });
      byEntity.set(row.entity_id, list);
    }
    for (const [entityId, list] of byEntity) {
      const expectedSeqs = pushed.filter((item) => item.incoming.mutation.entityId === entityId).map((i) => i.seq);
      expect({ entityId, versions: list.map((r) => r.version) }).toEqual({
        entityId,
        versions: expectedSeqs.map((_, k) => k + 1),
      });
      expect({ entityId, seqs: list.map((r) => r.seq) }).toEqual({ entityId, seqs: expectedSeqs });
    }
  });

  it('I2: a redelivered mutation already in the ledger is answered from it, not applied again', async () => {
    const harness = new Harness(db, { batchSize: 10, maxInFlight: 2 });
    const first = mutation('notes', 'n-1', { text: 'a' });
    harness.pipeline.push([first]);
    await harness.pipeline.idle();
    harness.pipeline.push([{ ...first, redelivered: true }]);
    await harness.pipeline.idle();

    const [again] = harness.committed[1]!.plan.outcomes;
    expect(again).toMatchObject({ status: 'applied', version: 1, duplicate: true });
    expect((await changeLog('notes')).filter((row) => row.entity_id === 'n-1')).toHaveLength(1);
  });

  it('a resend past the duplicate window (not flagged as redelivered) is caught by the ledger and answered', async () => {
    const harness = new Harness(db, { batchSize: 10, maxInFlight: 2 });
    const first = mutation('notes', 'n-2', { text: 'a' });
    harness.pipeline.push([first]);
    await harness.pipeline.idle();
    harness.pipeline.push([first]);
    await harness.pipeline.idle();

    expect(harness.retries).toEqual(['repeated-mutation']);
    expect(harness.committed[1]!.plan.outcomes[0]).toMatchObject({ version: 1, duplicate: true });
    expect((await changeLog('notes')).filter((row) => row.entity_id === 'n-2')).toHaveLength(1);
  });

  it('a stale cache (another worker wrote the entity) makes the batch compute again on what is stored', async () => {
    const one = new Harness(db, { batchSize: 5, maxInFlight: 2 });
    const two = new Harness(db, { batchSize: 5, maxInFlight: 2 });
    for (let round = 0; round < 10; round++) {
      const harness = round % 2 === 0 ? one : two;
      harness.pipeline.push([mutation('shared', 's-1', { round })]);
      await harness.pipeline.idle();
    }
    const log = await changeLog('shared');
    expect(log.map((row) => Number(row.version))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // Each pipeline found its cached version outdated every time after its first write.
    expect([...one.retries, ...two.retries].filter((kind) => kind === 'stale').length).toBeGreaterThanOrEqual(8);
    const [entity] = await db.dataSource.query<{ data: { round: number } }[]>(
      `SELECT data FROM entities WHERE tenant = $1 AND entity_type = 'shared'`,
      [TENANT],
    );
    expect(entity?.data.round).toBe(9);
  });

  it('bad data: the one mutation PostgreSQL refuses is isolated and refused, the rest of its batch commits', async () => {
    const harness = new Harness(db, { batchSize: 10, maxInFlight: 1 });
    const items = [
      mutation('bins', 'b-1', { v: 1 }),
      mutation('bins', 'b-2', { v: 'a\u0000b' }),
      mutation('bins', 'b-3', { v: 3 }),
      mutation('bins', 'b-4', { v: 4 }),
    ];
    harness.pipeline.push(items);
    await harness.pipeline.idle();

    expect(harness.refused.map((item) => item.incoming.mutation.entityId)).toEqual(['b-2']);
    const committed = harness.committed.flatMap((c) => c.items.map((item) => item.incoming.mutation.entityId));
    expect(committed.sort()).toEqual(['b-1', 'b-3', 'b-4']);
  });

  describe('I3: one entity ends as stream order makes it, however late a mutation arrives', () => {
    /** A mutation of `entityId` with exactly this op and data, stored at the next stream sequence. */
    function write(entityId: string, op: MutationMessage['op'], data: JsonObject): Item {
      const item = mutation('order', entityId, {});
      return { ...item, incoming: { ...item.incoming, mutation: { ...item.incoming.mutation, op, data } } };
    }
    const outcomeOf = (harness: Harness, item: Item) =>
      harness.committed
        .flatMap((batch) => batch.plan.outcomes)
        .find((outcome) => outcome.incoming.mutation.mutationId === item.incoming.mutation.mutationId);
    async function entity(entityId: string) {
      const [row] = await db.dataSource.query<{ data: Record<string, unknown>; version: string }[]>(
        `SELECT data, version FROM entities WHERE entity_type = 'order' AND entity_id = $1`,
        [entityId],
      );
      return { data: row?.data, version: Number(row?.version) };
    }
    /** Applies `first`, then `late`: as when the worker holding `late` died and JetStream sent it again. */
    async function lateAfter(harness: Harness, first: Item[], late: Item) {
      harness.pipeline.push(first);
      await harness.pipeline.idle();
      harness.pipeline.push([{ ...late, redelivered: true }]);
      await harness.pipeline.idle();
    }

    it('keeps the fields later mutations wrote and applies the rest, under every strategy', async () => {
      for (const strategy of ['client-wins', 'server-wins', 'last-write-wins', 'merge'] as const) {
        const harness = new Harness(db, { batchSize: 10, maxInFlight: 2, strategy });
        const id = `fields-${strategy}`;
        const late = write(id, 'patch', { title: 'old', note: 'only mine' });
        const later = write(id, 'patch', { title: 'new' });
        await lateAfter(harness, [later], late);

        expect({ strategy, ...(await entity(id)) }).toEqual({
          strategy,
          data: { title: 'new', note: 'only mine' },
          version: 2,
        });
        expect(outcomeOf(harness, late)).toMatchObject({ status: 'merged', version: 2 });
      }
    });

    it('resolves a late mutation with the strategy, and records the conflict, when another client wrote since', async () => {
      const harness = new Harness(db, { batchSize: 10, maxInFlight: 1, strategy: 'merge' });
      const created = write('two-clients', 'patch', { title: 'draft', body: 'x' });
      harness.pipeline.push([created]);
      await harness.pipeline.idle();
      // Both edit version 1; the second stored is applied first, by another worker say.
      const fromA = write('two-clients', 'patch', { title: 'final' });
      const fromB = write('two-clients', 'patch', { body: 'from b' });
      const onBase = (item: Item, clientId: string): Item => ({
        ...item,
        incoming: {
          ...item.incoming,
          mutation: { ...item.incoming.mutation, clientId, baseVersion: 1, vectorClock: { [clientId]: 1 } },
        },
      });
      await lateAfter(harness, [onBase(fromB, 'b')], onBase(fromA, 'a'));

      expect(await entity('two-clients')).toEqual({ data: { title: 'final', body: 'from b' }, version: 3 });
      expect(outcomeOf(harness, fromA)).toMatchObject({ status: 'applied', strategy: 'merge' });
      const conflicts = await db.dataSource.query<{ mutation_id: string }[]>(
        `SELECT mutation_id FROM conflicts WHERE entity_type = 'order' AND entity_id = 'two-clients'`,
      );
      expect(conflicts.map((row) => row.mutation_id)).toEqual([fromA.incoming.mutation.mutationId]);
    });

    it('applies a late mutation as asked when later ones wrote none of its fields', async () => {
      const harness = new Harness(db, { batchSize: 10, maxInFlight: 1, strategy: 'client-wins' });
      const late = write('disjoint', 'patch', { a: 1 });
      await lateAfter(harness, [write('disjoint', 'patch', { b: 2 })], late);
      expect((await entity('disjoint')).data).toEqual({ a: 1, b: 2 });
      expect(outcomeOf(harness, late)).toMatchObject({ status: 'applied', version: 2 });
    });

    it('answers SUPERSEDED when later mutations wrote everything it changes, and the same to a resend', async () => {
      const harness = new Harness(db, { batchSize: 10, maxInFlight: 1, strategy: 'client-wins' });
      const late = write('overwritten', 'patch', { title: 'old' });
      await lateAfter(harness, [write('overwritten', 'patch', { title: 'new' })], late);

      expect(await entity('overwritten')).toEqual({ data: { title: 'new' }, version: 1 });
      expect(outcomeOf(harness, late)).toMatchObject({
        status: 'rejected',
        code: 'SUPERSEDED',
        version: 1,
        data: { title: 'new' },
      });
      const [ledger] = await db.dataSource.query<{ status: string; code: string }[]>(
        `SELECT status, code FROM mutations WHERE mutation_id = $1`,
        [late.incoming.mutation.mutationId],
      );
      expect(ledger).toEqual({ status: 'rejected', code: 'SUPERSEDED' });
    });

    it('answers SUPERSEDED when a later upsert replaced the whole document', async () => {
      const harness = new Harness(db, { batchSize: 10, maxInFlight: 1, strategy: 'client-wins' });
      const late = write('replaced', 'patch', { note: 'gone' });
      await lateAfter(harness, [write('replaced', 'upsert', { title: 'fresh' })], late);
      expect((await entity('replaced')).data).toEqual({ title: 'fresh' });
      expect(outcomeOf(harness, late)).toMatchObject({ status: 'rejected', code: 'SUPERSEDED' });
    });

    it('gives a late upsert or delete the later fields on top, as stream order would', async () => {
      const harness = new Harness(db, { batchSize: 10, maxInFlight: 1, strategy: 'client-wins' });
      const upsert = write('late-upsert', 'upsert', { title: 'old', extra: 1 });
      await lateAfter(harness, [write('late-upsert', 'patch', { title: 'new' })], upsert);
      expect((await entity('late-upsert')).data).toEqual({ title: 'new', extra: 1 });

      // Stored: a patch, the delete, a patch; the delete arrives last. In stream order the entity is
      // deleted, then made again by the last patch.
      const created = write('late-delete', 'patch', { title: 'first', n: 1 });
      const remove = write('late-delete', 'delete', {});
      await lateAfter(harness, [created, write('late-delete', 'patch', { n: 2 })], remove);
      expect((await entity('late-delete')).data).toEqual({ n: 2 });
    });

    it('applies in stream order what arrives together out of order', async () => {
      const harness = new Harness(db, { batchSize: 10, maxInFlight: 1, strategy: 'client-wins' });
      const early = write('together', 'patch', { title: 'old' });
      const later = write('together', 'patch', { title: 'new' });
      harness.pipeline.push([later, { ...early, redelivered: true }]);
      await harness.pipeline.idle();
      expect(await entity('together')).toEqual({ data: { title: 'new' }, version: 2 });
      expect([outcomeOf(harness, early)?.status, outcomeOf(harness, later)?.status]).toEqual(['applied', 'applied']);
    });
  });

  it('a mutation of a recreated MUTATIONS stream is not compared with sequences of the old one', async () => {
    const old = new Harness(db, { batchSize: 10, maxInFlight: 1 });
    old.pipeline.push([mutation('epochs', 'e-1', { n: 1 })]);
    await old.pipeline.idle();
    // The same entity, from a stream created anew: its sequences start again, below the old ones.
    const renewed = new Harness(db, { batchSize: 10, maxInFlight: 1, mutationStream: 'second-epoch' });
    const next = mutation('epochs', 'e-1', { n: 2 });
    renewed.pipeline.push([{ ...next, incoming: { ...next.incoming, streamSeq: 1 } }]);
    await renewed.pipeline.idle();
    expect(renewed.committed[0]!.plan.outcomes[0]).toMatchObject({ status: 'applied', version: 2 });
  });

  it('records one outbox entry per committed batch that changed something', async () => {
    const harness = new Harness(db, { batchSize: 3, maxInFlight: 1 });
    harness.pipeline.push(['x', 'y', 'z', 'w'].map((id) => mutation('boxes', id, {})));
    await harness.pipeline.idle();
    const [row] = await db.dataSource.query<{ n: string; changes: string }[]>(
      `SELECT count(*) AS n, sum(cardinality(change_ids)) AS changes FROM outbox o
        WHERE EXISTS (SELECT 1 FROM changes c WHERE c.id = ANY(o.change_ids) AND c.entity_type = 'boxes')`,
    );
    expect({ batches: Number(row?.n), changes: Number(row?.changes) }).toEqual({ batches: 2, changes: 4 });
  });
});
