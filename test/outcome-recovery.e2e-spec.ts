import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { eventually } from './support/eventually.js';
import { TestSystem } from './support/system.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { TestClient, hlcNow, mutationId } from './support/ws-client.js';

const NATS_PORT = Number(new URL(process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222').port || 4222);

/**
 * The final outcome reaches its author even when the message carrying it is lost. Outcomes go
 * from the worker to the author's gateway over core NATS; here the gateway's link to NATS is cut
 * exactly while the worker publishes one, so that message is gone for good. The gateway fetches
 * the outcome from the mutations ledger and sends the same `ack`, to a raw protocol client that
 * does nothing to ask for it.
 */
describe('outcome recovery', () => {
  let system: TestSystem;
  let natsPath: TcpProxy;
  let client: TestClient | undefined;

  beforeAll(async () => {
    natsPath = await TcpProxy.start(() => [NATS_PORT]);
    system = await TestSystem.start({
      gateways: 1,
      serviceEnv: { gateway: { NATS_URL: `nats://127.0.0.1:${natsPath.port}` } },
    });
  });

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    natsPath?.heal();
    await system?.stop();
    await natsPath?.close();
  });

  it('sends the author the outcome that was published while its gateway was cut off from NATS', async () => {
    client = await TestClient.connect(system.gateways[0]!.url, await system.mintToken({ sub: 'ann', tenant: 'acme' }));
    const worker = system.instance('sync-worker', 0).pid!;
    // The worker holds still while the mutation is stored, so the outcome comes only after the cut.
    process.kill(worker, 'SIGSTOP');
    const id = mutationId();
    try {
      client.send('mutate', {
        mutationId: id,
        entityType: 'notes',
        entityId: 'n-1',
        op: 'upsert',
        data: { title: 'kept' },
        baseVersion: 0,
        vectorClock: { ann: 1 },
        hlc: hlcNow('ann'),
      });
      await client.waitFor((frame) => frame.type === 'ack' && frame.payload.status === 'accepted');
      // The gateway loses NATS: its subscription to outcomes is gone, and it cannot reconnect yet.
      natsPath.partition();
      natsPath.reset();
    } finally {
      process.kill(worker, 'SIGCONT');
    }
    // The worker applies the mutation and publishes the outcome to nobody.
    await eventually(async () => {
      const rows = await system.query(`SELECT status FROM mutations WHERE tenant = 'acme' AND mutation_id = $1`, [id]);
      return rows.length === 1;
    }, 'the mutation to be applied');
    expect(client.frames.some((frame) => frame.type === 'ack' && frame.payload.status === 'applied')).toBe(false);

    natsPath.heal();
    const outcome = await client.waitForOutcome(id, { timeoutMs: 15_000 });
    expect(outcome.payload).toMatchObject({
      mutationId: id,
      status: 'applied',
      version: 1,
      duplicate: true,
    });
  });
});
