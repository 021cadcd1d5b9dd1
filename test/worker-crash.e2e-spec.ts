import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect as connectNats } from '@nats-io/transport-node';
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { eventually } from './support/eventually.js';
import { report } from './support/protocol-load.js';
import { TestSystem } from './support/system.js';
import { TestClient, hlcNow, mutationId } from './support/ws-client.js';

const ENTITIES = 40;
const MUTATIONS = 1500;

/**
 * I1–I3 under a crash: two workers share the stream of mutations; one is killed with SIGKILL
 * mid-stream and restarted. Every accepted mutation must be in PostgreSQL exactly once, every
 * entity's versions must run 1, 2, 3 … without gaps, and CHANGES must hold each version once, in order.
 */
describe('a worker killed under load', () => {
  let system: TestSystem;
  let client: TestClient;

  beforeAll(async () => {
    system = await TestSystem.start({
      gateways: 1,
      workers: 2,
      env: { WORKER_ACK_WAIT_MS: '2000', WORKER_BATCH_SIZE: '50' },
      // One client sends the whole load as fast as it can: above the per-connection rate limit.
      serviceEnv: { gateway: { RATE_LIMIT_FRAMES_PER_SECOND: '100000' } },
    });
    client = await TestClient.connect(
      system.gateways[0]!.url,
      await system.mintToken({ sub: 'load', tenant: 'acme' }),
      {
        clientId: 'load',
      },
    );
  });

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    await system?.stop();
  });

  it('loses nothing, applies nothing twice, and keeps every entity in order', async () => {
    const accepted = new Set<string>();
    const lastValue = new Map<string, number>();
    let killed = false;
    let restarted: Promise<unknown> | undefined;
    // A mutation the gateway refuses for the moment (OVERLOADED while one worker is down) is sent
    // again after the delay the refusal names, as the SDK does.
    const sent = new Map<string, unknown>();
    let refusals = 0;
    const send = (payload: unknown) => sent.set(client.send('mutate', payload), payload);
    const stopResending = client.onFrame((frame) => {
      const payload = frame.type === 'error' && frame.id ? sent.get(frame.id) : undefined;
      if (!payload || frame.type !== 'error') return;
      refusals += 1;
      setTimeout(() => send(payload), frame.payload.retryAfterMs ?? 250);
    });

    for (let i = 0; i < MUTATIONS; i++) {
      const entityId = `e-${i % ENTITIES}`;
      const id = mutationId();
      send({
        mutationId: id,
        entityType: 'counters',
        entityId,
        op: 'patch',
        data: { n: i, [`by${i % 3}`]: i },
        baseVersion: 0,
        vectorClock: { load: i + 1 },
        hlc: hlcNow('load'),
      });
      lastValue.set(entityId, i);
      if (i % 25 === 24) {
        // Keep a steady stream rather than one burst: wait for this slice to be stored.
        await client.waitForType('ack', (f) => f.payload.mutationId === id && f.payload.status === 'accepted', {
          timeoutMs: 30_000,
        });
      }
      if (!killed && i >= MUTATIONS / 4) {
        killed = true;
        await system.kill('sync-worker', 0, 'SIGKILL');
      }
      if (!restarted && i >= MUTATIONS / 2) restarted = system.restart('sync-worker', 0);
    }
    await restarted;
    await eventually(
      async () => {
        for (const frame of client.frames) {
          if (frame.type === 'ack' && frame.payload.status === 'accepted') accepted.add(frame.payload.mutationId);
        }
        return accepted.size === MUTATIONS;
      },
      'every mutation to be accepted',
      45_000,
    );
    stopResending();
    report('worker-crash', `${MUTATIONS} mutations`, { 'refused for the moment, then resent': String(refusals) });

    // Every accepted mutation ends in the ledger exactly once (the primary key forbids twice).
    await eventually(
      async () => {
        const [row] = await system.query<{ n: string }>(
          `SELECT count(*) AS n FROM mutations WHERE mutation_id = ANY($1)`,
          [[...accepted]],
        );
        return Number(row?.n) === accepted.size;
      },
      'every accepted mutation in the ledger',
      45_000,
    );
    const duplicates = await system.query(`SELECT mutation_id FROM changes GROUP BY mutation_id HAVING count(*) > 1`);
    expect(duplicates).toEqual([]);

    // Versions 1..n per entity, no gaps, and the entity row agrees.
    const versions = await system.query<{ entity_id: string; versions: string[]; current: string }>(
      `SELECT c.entity_id, array_agg(c.version ORDER BY c.version) AS versions, max(e.version) AS current
         FROM changes c JOIN entities e USING (tenant, entity_type, entity_id)
        GROUP BY c.entity_id`,
    );
    expect(versions).toHaveLength(ENTITIES);
    for (const { entity_id, versions: list, current } of versions) {
      expect({ entity_id, versions: list.map(Number) }).toEqual({
        entity_id,
        versions: Array.from({ length: list.length }, (_, k) => k + 1),
      });
      expect(Number(current)).toBe(list.length);
    }

    // The latest write wins on every entity, whatever order the crash made the workers see them in.
    const finals = await system.query<{ entity_id: string; n: number }>(
      `SELECT entity_id, (data->>'n')::int AS n FROM entities WHERE entity_type = 'counters'`,
    );
    expect(new Map(finals.map((f) => [f.entity_id, f.n]))).toEqual(lastValue);

    // Every committed change reached CHANGES exactly once, in version order per entity.
    await eventually(
      async () => {
        const [row] = await system.query<{ n: string }>(`SELECT count(*) AS n FROM outbox`);
        return Number(row?.n) === 0;
      },
      'the outbox to drain',
      45_000,
    );
    const [total] = await system.query<{ n: string }>(`SELECT count(*) AS n FROM changes`);
    const published = await readChanges(system, Number(total?.n));
    for (const { entity_id, versions: list } of versions) {
      expect({ entity_id, published: published.get(entity_id) }).toEqual({ entity_id, published: list.map(Number) });
    }
  });
});

/** Versions per entity id, in stream order, as CHANGES holds them. */
async function readChanges(system: TestSystem, expected: number): Promise<Map<string, number[]>> {
  const nc = await connectNats({ servers: process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222' });
  const byEntity = new Map<string, number[]>();
  try {
    const consumer = await jetstream(nc).consumers.get(system.streams.changes, { deliver_policy: DeliverPolicy.All });
    const messages = await consumer.consume();
    let seen = 0;
    for await (const msg of messages) {
      const entityId = msg.subject.split('.').at(-1) as string;
      byEntity.set(entityId, [...(byEntity.get(entityId) ?? []), Number(msg.headers?.get('Sync-Version'))]);
      if (++seen === expected || msg.info.pending === 0) break;
    }
    await messages.close();
  } finally {
    await nc.close();
  }
  return byEntity;
}
