import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { JsonObject, OutcomeAckPayload } from '@syncline/contracts';
import { eventually } from '../support/eventually.js';
import { metricSum, report } from '../support/protocol-load.js';
import { TestSystem } from '../support/system.js';
import { TestClient, hlcNow, mutationId, type Frame } from '../support/ws-client.js';

const TENANT = 'acme';
const ENTITIES = 3;
const WRITERS = 4;
/** Short, so that what the killed worker held comes back within the run, after the writers stopped. */
const ACK_WAIT_MS = 2000;
/** `npm run test:faults` repeats the drill twenty times; `npm test` twice. */
const RUNS = process.env['FAULT_SUITE'] === 'full' ? 20 : 2;

function isOutcome(frame: Frame): frame is Frame & { type: 'ack'; payload: OutcomeAckPayload } {
  return frame.type === 'ack' && frame.payload.status !== 'accepted';
}

/**
 * Per-entity order through a worker crash (I3), the drill of `npm start`'s single worker. Writers
 * each own a field of a few shared entities and send their next value once the previous one is
 * accepted. The worker is SIGKILLed while it holds fetched mutations and restarted at once; the
 * restarted worker applies the newer values meanwhile, and JetStream sends it the ones the dead
 * worker held (or had asked for) only after their ack wait. Those late ones must not undo the
 * newer ones (the strategy is client-wins, which would let them): every field ends at its
 * writer's last value, and a late mutation whose field was written again since is answered
 * `rejected` with code `SUPERSEDED`.
 */
describe('per-entity order when a worker dies holding work', () => {
  let system: TestSystem;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    system = await TestSystem.start({
      gateways: 2,
      workers: 1,
      env: { WORKER_ACK_WAIT_MS: String(ACK_WAIT_MS), DEFAULT_CONFLICT_STRATEGY: 'client-wins' },
      serviceEnv: { gateway: { RATE_LIMIT_FRAMES_PER_SECOND: '100000' } },
    });
    for (let k = 0; k < WRITERS; k++) {
      const url = system.gateways[k % 2]!.url;
      clients.push(await TestClient.connect(url, await system.mintToken({ sub: `w${k}`, tenant: TENANT })));
    }
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await system?.stop();
  });

  /** Writes the writer's field of each entity in turn, the next value once the previous is accepted. */
  async function writeUntil(client: TestClient, k: number, entities: string[], stop: () => boolean) {
    const last = new Map<string, number>();
    const sent: string[] = [];
    for (let value = 1; !stop(); value++) {
      const entityId = entities[value % entities.length]!;
      const id = mutationId();
      const payload = {
        mutationId: id,
        entityType: 'boards',
        entityId,
        op: 'patch',
        data: { [`w${k}`]: value },
        baseVersion: 0,
        vectorClock: { [`w${k}`]: value },
        hlc: hlcNow(`w${k}`),
      };
      for (;;) {
        const reply = await client.waitForReply(client.send('mutate', payload), { timeoutMs: 20_000 });
        if (reply.type === 'ack') break;
        // Refused for the moment (the gateway lost sight of JetStream, or load): the same mutation again.
        const retryAfterMs = reply.type === 'error' ? reply.payload.retryAfterMs : undefined;
        await new Promise((resolve) => setTimeout(resolve, retryAfterMs ?? 250));
      }
      sent.push(id);
      last.set(entityId, value);
    }
    return { last, sent };
  }

  it(
    `keeps every writer's last value, and answers late mutations SUPERSEDED (${RUNS} runs)`,
    async () => {
      const superseded: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        const entities = Array.from({ length: ENTITIES }, (_, i) => `r${run}-b${i}`);
        let stopped = false;
        const writing = clients.map((client, k) => writeUntil(client, k, entities, () => stopped));

        // Kill the worker at a moment it holds fetched mutations it has not acknowledged.
        await new Promise((resolve) => setTimeout(resolve, 500));
        await eventually(
          async () => (await metricSum(system.instance('sync-worker', 0).ready, 'syncline_worker_backlog')) > 0,
          'the worker to hold mutations',
          10_000,
        );
        await system.kill('sync-worker', 0, 'SIGKILL');
        await system.restart('sync-worker', 0);
        // The writers go on for less than the ack wait: what the dead worker held comes back later.
        await new Promise((resolve) => setTimeout(resolve, ACK_WAIT_MS / 4));
        stopped = true;
        const written = await Promise.all(writing);

        // Every mutation gets its final outcome.
        const outcomes = await eventually(
          () => {
            const byId = new Map<string, OutcomeAckPayload>();
            for (const client of clients)
              for (const frame of client.frames)
                if (isOutcome(frame)) byId.set(frame.payload.mutationId, frame.payload);
            const all = written.flatMap((w) => w.sent);
            return all.every((id) => byId.has(id)) && all.map((id) => byId.get(id)!);
          },
          'every mutation of the run to have its final outcome',
          30_000,
        );

        const rows = await system.query<{ entity_id: string; data: JsonObject }>(
          `SELECT entity_id, data FROM entities WHERE tenant = $1 AND entity_type = 'boards' AND entity_id = ANY($2)`,
          [TENANT, entities],
        );
        const stored = new Map(rows.map((row) => [row.entity_id, row.data]));
        written.forEach(({ last }, k) => {
          for (const [entityId, value] of last) {
            expect({ run, entityId, writer: k, value: stored.get(entityId)?.[`w${k}`] }).toEqual({
              run,
              entityId,
              writer: k,
              value,
            });
          }
        });
        const late = outcomes.filter((outcome) => outcome.code === 'SUPERSEDED');
        expect(late.every((outcome) => outcome.status === 'rejected')).toBe(true);
        // Client-wins refuses nothing else: every other mutation stands, wholly or in part.
        expect(outcomes.filter((outcome) => outcome.status === 'rejected')).toHaveLength(late.length);
        superseded.push(late.length);
      }
      report('worker-crash-order', `${RUNS} runs`, {
        'late mutations answered SUPERSEDED, per run': superseded.join(', '),
      });
    },
    60_000 + RUNS * 20_000,
  );
});
