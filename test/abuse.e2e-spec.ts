import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import WebSocket from 'ws';
import { DifferentialSyncClient, MemoryStorage, nodeWebSocketFactory } from '@syncline/client/node';
import type { DeltaPayload, ServerFrame } from '@syncline/contracts';
import { eventually } from './support/eventually.js';
import { TestSystem } from './support/system.js';
import { TestClient, hlcNow, mutationId, type Frame } from './support/ws-client.js';

const FRAMES_PER_SECOND = 50;
// Low enough that refilling during a burst, however slow the machine, cannot hide the limit.
const TENANT_MUTATIONS_PER_SECOND = 20;
const MAX_BUFFERED_BYTES = 256 * 1024;

/**
 * Abuse (I7): floods are refused with RATE_LIMITED and a retry hint without slowing anyone else
 * down, and a client that stops reading is cut off and later resumes without losing a change.
 */
describe('abuse limits', () => {
  let system: TestSystem;
  const clients: TestClient[] = [];
  const sdks: DifferentialSyncClient[] = [];

  beforeAll(async () => {
    system = await TestSystem.start({
      gateways: 2,
      serviceEnv: {
        gateway: {
          RATE_LIMIT_FRAMES_PER_SECOND: String(FRAMES_PER_SECOND),
          RATE_LIMIT_TENANT_MUTATIONS_PER_SECOND: String(TENANT_MUTATIONS_PER_SECOND),
          MAX_BUFFERED_BYTES: String(MAX_BUFFERED_BYTES),
        },
      },
    });
  });

  afterAll(async () => {
    await Promise.all(sdks.map((sdk) => sdk.disconnect()));
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await system?.stop();
  });

  async function connect(user: string, tenant: string, gateway = 0): Promise<TestClient> {
    const token = await system.mintToken({ sub: user, tenant });
    const client = await TestClient.connect(system.gateways[gateway]!.url, token, {
      clientId: `${user}-${clients.length}`,
    });
    clients.push(client);
    return client;
  }

  function sendMutation(client: TestClient, entityType: string, entityId: string, data: Record<string, unknown>) {
    const node = client.clientId ?? 'client';
    const id = mutationId();
    const frameId = client.send('mutate', {
      mutationId: id,
      entityType,
      entityId,
      op: 'upsert',
      data,
      baseVersion: 0,
      vectorClock: { [node]: 1 },
      hlc: hlcNow(node),
    });
    return { mutationId: id, frameId };
  }

  /** Writes one mutation and waits for its outcome, resending after the retry hint when limited. */
  async function writeRespectingLimits(
    client: TestClient,
    entityType: string,
    entityId: string,
    data: Record<string, unknown>,
  ) {
    for (;;) {
      const since = client.mark();
      const { mutationId: id, frameId } = sendMutation(client, entityType, entityId, data);
      const answer = await client.waitFor(
        (frame) =>
          (frame.type === 'error' && frame.payload.ref === frameId) ||
          (frame.type === 'ack' && frame.payload.mutationId === id && frame.payload.status !== 'accepted'),
        { since, timeoutMs: 20_000 },
      );
      if (answer.type !== 'error') return;
      if (answer.payload.code !== 'RATE_LIMITED') throw new Error(`write refused: ${answer.payload.code}`);
      await new Promise((resolve) => setTimeout(resolve, answer.payload.retryAfterMs ?? 100));
    }
  }

  const isRateLimited = (frame: Frame): frame is Extract<Frame, { type: 'error' }> =>
    frame.type === 'error' && frame.payload.code === 'RATE_LIMITED';

  async function pingMedian(client: TestClient, samples = 15): Promise<number> {
    const times: number[] = [];
    for (let i = 0; i < samples; i++) {
      const started = performance.now();
      await client.request('ping', {});
      times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(samples / 2)] as number;
  }

  it('answers a flood with RATE_LIMITED and a retry hint, and others keep their latency', async () => {
    const calm = await connect('calm', 'quiet');
    const before = await pingMedian(calm);

    const flooder = await connect('flooder', 'loud');
    const sent = Array.from({ length: 400 }, (_, i) => sendMutation(flooder, 'spam', `s-${i}`, { i }));
    const during = await pingMedian(calm);
    await flooder.waitFor((frame) => isRateLimited(frame) && frame.payload.ref === sent.at(-1)?.frameId, {
      description: 'the last flood frame to be refused',
    });

    const refusedFrames = () => flooder.framesOf('error').filter(isRateLimited);
    const acceptedCount = () => flooder.framesOf('ack').filter((frame) => frame.payload.status === 'accepted').length;
    await eventually(
      () => refusedFrames().length + acceptedCount() === sent.length,
      'every flood frame to be answered',
    );
    const refused = refusedFrames();
    expect(refused.length).toBeGreaterThan(250); // a burst passes, the rest is refused
    for (const frame of refused) expect(frame.payload.retryAfterMs).toBeGreaterThan(0);
    // Every refused frame is named, and none of them was carried out.
    expect(new Set(refused.map((frame) => frame.payload.ref)).size).toBe(refused.length);
    const accepted = acceptedCount();
    await eventually(async () => {
      const rows = await system.query<{ n: string }>(`SELECT count(*) AS n FROM entities WHERE tenant = 'loud'`);
      return Number(rows[0]?.n) === accepted;
    }, 'exactly the accepted mutations to be stored');

    // Noise on a shared 2-core machine is a few ms; a gateway stalled by the flood would be far above it.
    expect(during).toBeLessThan(before + 25);
  });

  it('limits a tenant across its connections, not other tenants', async () => {
    const busy = await Promise.all([connect('b1', 'busy'), connect('b2', 'busy'), connect('b3', 'busy')]);
    const other = await connect('o1', 'other');
    // Each connection stays within its own burst (100); together they exceed the tenant's (40).
    const started = performance.now();
    busy.forEach((client, c) => {
      for (let i = 0; i < 90; i++) sendMutation(client, 'jobs', `j-${c}-${i}`, { i });
    });
    const others = Array.from({ length: 10 }, (_, i) => sendMutation(other, 'jobs', `x-${i}`, { i }));
    const acceptedOf = (client: TestClient) =>
      client.framesOf('ack').filter((frame) => frame.payload.status === 'accepted').length;
    const refusedOf = (client: TestClient) => client.framesOf('error').filter(isRateLimited);
    await eventually(
      () => busy.every((client) => acceptedOf(client) + refusedOf(client).length === 90),
      'every busy frame to be answered',
    );
    const elapsedS = (performance.now() - started) / 1000;
    const accepted = busy.reduce((sum, client) => sum + acceptedOf(client), 0);
    const refused = busy.flatMap(refusedOf);
    // A token bucket lets through its burst, plus its rate over the time the frames took to arrive.
    expect(accepted).toBeLessThanOrEqual(2 * TENANT_MUTATIONS_PER_SECOND + TENANT_MUTATIONS_PER_SECOND * elapsedS + 1);
    expect(refused.length).toBeGreaterThan(0);
    for (const frame of refused) expect(frame.payload.message).toMatch(/tenant/);
    for (const { mutationId: id } of others) expect((await other.waitForOutcome(id)).payload.status).toBe('applied');
  });

  it("holds a tenant's rate across gateways, not once per gateway", async () => {
    // Two connections on each gateway, each at 25 mutations/s (under its frame limit) for 4 s:
    // 100/s offered against the tenant's 20/s.
    const writers = await Promise.all([0, 0, 1, 1].map((gateway, i) => connect(`w${i}`, 'spread', gateway)));
    const perWriter = 100;
    const started = performance.now();
    await Promise.all(
      writers.map(async (client, c) => {
        for (let i = 0; i < perWriter; i++) {
          sendMutation(client, 'jobs', `g-${c}-${i}`, { i });
          await new Promise((resolve) => setTimeout(resolve, 40));
        }
      }),
    );
    const elapsedS = (performance.now() - started) / 1000;
    const acceptedOf = (client: TestClient) =>
      client.framesOf('ack').filter((frame) => frame.payload.status === 'accepted').length;
    const refusedOf = (client: TestClient) => client.framesOf('error').filter(isRateLimited).length;
    await eventually(
      () => writers.every((client) => acceptedOf(client) + refusedOf(client) === perWriter),
      'every frame to be answered',
    );
    const accepted = writers.reduce((sum, client) => sum + acceptedOf(client), 0);
    // Gateways learn what the other accepted within 100 ms, so at most the other's burst gets
    // through twice. Limits enforced once per gateway would let through 2 × (burst + rate × time).
    const burst = 2 * TENANT_MUTATIONS_PER_SECOND;
    expect(accepted).toBeLessThanOrEqual(2 * burst + TENANT_MUTATIONS_PER_SECOND * elapsedS);
    expect(accepted).toBeGreaterThanOrEqual(TENANT_MUTATIONS_PER_SECOND * (elapsedS - 2));
  });

  it('lands every change of an SDK client that writes faster than allowed, once', async () => {
    const sdk = new DifferentialSyncClient({
      clientId: 'eager',
      websocketUrl: system.gateways[0]!.url,
      entityTypes: ['drafts'],
      tokenProvider: () => system.mintToken({ sub: 'eager', tenant: 'patient' }),
      webSocketFactory: nodeWebSocketFactory,
      storage: new MemoryStorage(),
    });
    sdks.push(sdk);
    await sdk.connect();
    const limited: string[] = [];
    sdk.on('error', (event) => limited.push(event.code));
    for (let i = 0; i < 160; i++) await sdk.updateLocalState({ [`d-${i}`]: { i } }, 'drafts');
    await eventually(() => sdk.getPendingChangesCount() === 0, 'every draft to be stored', 30_000);
    expect(limited).toContain('RATE_LIMITED');
    const rows = await system.query<{ n: string }>(`SELECT count(*) AS n FROM changes WHERE tenant = 'patient'`);
    expect(Number(rows[0]?.n)).toBe(160);
  });

  it('disconnects a client that stops reading, which then resumes without a gap', async () => {
    const token = await system.mintToken({ sub: 'sleepy', tenant: 'bulk' });
    const sleepy = new WebSocket(system.gateways[0]!.url, ['syncline.v1', `bearer.${token}`], {
      perMessageDeflate: false,
    });
    const received: ServerFrame[] = [];
    sleepy.on('message', (data: Buffer) => received.push(JSON.parse(data.toString('utf8')) as ServerFrame));
    const closed = new Promise<number>((resolve) => sleepy.on('close', (code: number) => resolve(code)));
    await eventually(() => received.some((frame) => frame.type === 'welcome'), 'welcome');
    sleepy.send(JSON.stringify({ type: 'subscribe', id: 's1', payload: { entityTypes: ['reports'] }, timestamp: 0 }));
    await eventually(() => received.find((frame) => frame.type === 'subscribed'), 'subscribed');
    // Stop reading from the TCP socket: the gateway's send buffer for it can only grow.
    (sleepy as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();

    const writer = await connect('writer', 'bulk');
    const count = 150;
    const body = 'x'.repeat(48 * 1024);
    for (let i = 0; i < count; i++) await writeRespectingLimits(writer, 'reports', `r-${i}`, { i, body });

    (sleepy as unknown as { _socket: { resume(): void } })._socket.resume();
    expect(await closed).toBe(4001);
    const seen = received.filter((frame): frame is Extract<ServerFrame, { type: 'delta' }> => frame.type === 'delta');
    expect(seen.length).toBeLessThan(count); // it was cut off before it got everything

    const resumed = await connect('sleepy', 'bulk');
    const cursor =
      seen.at(-1)?.payload.cursor ??
      (received.find((f) => f.type === 'subscribed') as Extract<ServerFrame, { type: 'subscribed' }>).payload
        .subscriptions[0]!.cursor;
    await resumed.request('subscribe', { entityTypes: ['reports'], cursors: { reports: cursor } });
    await eventually(() => seen.length + resumed.deltas('reports').length >= count, 'the rest to be replayed');
    const ids = [...seen.map((frame) => frame.payload), ...resumed.deltas('reports')].map(
      (d: DeltaPayload) => d.entityId,
    );
    expect(ids).toEqual(Array.from({ length: count }, (_, i) => `r-${i}`));
  });
});
