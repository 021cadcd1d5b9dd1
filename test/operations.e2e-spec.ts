import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { TestSystem } from './support/system.js';
import { TestClient, hlcNow, mutationId } from './support/ws-client.js';

/** What operators read: liveness, readiness with each dependency, Prometheus metrics, statistics. */
describe('operations endpoints', () => {
  let system: TestSystem;
  let http: string;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    system = await TestSystem.start({ gateways: 1 });
    http = system.gateways[0]!.httpUrl;
    const token = await system.mintToken({ sub: 'writer', tenant: 'acme' });
    const [writer, reader, other] = await Promise.all(
      ['w', 'r', 'o'].map((clientId) => TestClient.connect(system.gateways[0]!.url, token, { clientId })),
    );
    clients.push(writer!, reader!, other!);
    await reader!.request('subscribe', { entityTypes: ['items'] });
    await write(writer!, 'i-1', { n: 1 }, 0);
    await write(writer!, 'i-1', { n: 2 }, 1);
    await write(other!, 'i-1', { n: 3 }, 1); // concurrent with the second: a conflict
    await reader!.waitForType('delta', (frame) => frame.payload.version === 3);
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await system?.stop();
  });

  async function write(client: TestClient, entityId: string, data: Record<string, unknown>, baseVersion: number) {
    const id = mutationId();
    client.send('mutate', {
      mutationId: id,
      entityType: 'items',
      entityId,
      op: 'patch',
      data,
      baseVersion,
      vectorClock: { [client.clientId ?? 'c']: Date.now() },
      hlc: hlcNow(client.clientId ?? 'c'),
    });
    return client.waitForOutcome(id);
  }

  async function get(path: string, headers: Record<string, string> = {}) {
    const response = await fetch(`${http}${path}`, { headers });
    return { status: response.status, type: response.headers.get('content-type'), text: await response.text() };
  }

  it('answers liveness and readiness with the state of each dependency', async () => {
    expect(JSON.parse((await get('/health')).text)).toEqual({ status: 'ok' });
    const ready = await get('/ready');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.text)).toEqual({
      status: 'ready',
      checks: { nats: 'ok', changesStream: 'ok', mutationsStream: 'ok', workerConsumer: 'ok', postgres: 'ok' },
    });
  });

  it('exposes Prometheus metrics: connections, mutations, latency, conflicts, consumer backlog', async () => {
    const metrics = await get('/metrics');
    expect(metrics.type).toMatch(/^text\/plain/);
    const value = (pattern: RegExp) => Number(metrics.text.match(pattern)?.[1]);
    expect(value(/^syncline_connections\{transport="websocket"[^}]*\} (\d+)/m)).toBe(3);
    expect(value(/^syncline_mutations_total\{edge="websocket",result="accepted"[^}]*\} (\d+)/m)).toBe(3);
    expect(value(/^syncline_delivery_latency_seconds_count\{[^}]*\} (\d+)/m)).toBeGreaterThanOrEqual(3);
    expect(metrics.text).toMatch(/^syncline_conflicts_total\{strategy="merge",status="(merged|applied)"[^}]*\} 1$/m);
    expect(metrics.text).toMatch(/^syncline_worker_consumer_pending\{state="waiting"[^}]*\} \d+$/m);
    expect(metrics.text).toMatch(/^syncline_gateway_process_cpu_seconds_total/m);
  });

  it('gives administrators statistics of the platform and of their tenant', async () => {
    const plain = await system.mintToken({ sub: 'user', tenant: 'acme' });
    expect((await get('/stats', { authorization: `Bearer ${plain}` })).status).toBe(403);
    const admin = await system.mintToken({ sub: 'ops', tenant: 'acme', claims: { permissions: { admin: true } } });
    const stats = JSON.parse((await get('/stats', { authorization: `Bearer ${admin}` })).text);
    expect(stats).toEqual({
      mutations: { total: 3, pending: 0, synced: 3 },
      gateway: { activeConnections: 3, activeUsers: 1 },
      tenant: { name: 'acme', changes: 3, entities: 1, activeConnections: 3, activeUsers: 1 },
    });
  });

  it('serves probes and metrics of the worker and the conflict service on their monitoring port', async () => {
    const worker = String(system.instance('sync-worker', 0).ready['monitoringUrl']);
    const conflicts = String(system.instance('conflict-service', 0).ready['monitoringUrl']);
    const fetchText = async (url: string) => {
      const response = await fetch(url);
      return { status: response.status, text: await response.text() };
    };
    expect(await fetchText(`${worker}/health`)).toEqual({ status: 200, text: '{"status":"ok"}' });
    expect(JSON.parse((await fetchText(`${worker}/ready`)).text)).toEqual({
      status: 'ready',
      checks: { nats: 'ok', postgres: 'ok', mutationsConsumer: 'ok' },
    });
    expect(JSON.parse((await fetchText(`${conflicts}/ready`)).text)).toEqual({
      status: 'ready',
      checks: { nats: 'ok', postgres: 'ok' },
    });
    const workerMetrics = (await fetchText(`${worker}/metrics`)).text;
    const processed = [...workerMetrics.matchAll(/^syncline_worker_mutations_total\{status="(\w+)"[^}]*\} (\d+)$/gm)];
    expect(processed.reduce((sum, [, , n]) => sum + Number(n), 0)).toBe(3); // applied, or merged for the conflict
    expect(workerMetrics).toMatch(
      /^syncline_conflicts_resolved_total\{strategy="merge",status="(merged|applied)"[^}]*\} 1$/m,
    );
    expect(workerMetrics).toMatch(/^syncline_worker_batch_duration_seconds_count/m);
    expect(workerMetrics).toMatch(/^syncline_sync_worker_process_cpu_seconds_total/m);
    const conflictMetrics = (await fetchText(`${conflicts}/metrics`)).text;
    // The worker resolved it with the strategy it asked the conflict service for.
    expect(conflictMetrics).toMatch(/^syncline_conflict_policy_lookups_total\{strategy="merge"[^}]*\} 1$/m);
  });

  it('stays ready without workers, and says PostgreSQL is out of reach', async () => {
    await system.kill('sync-worker', 0, 'SIGKILL');
    try {
      const ready = await get('/ready');
      expect(ready.status).toBe(200);
      expect(JSON.parse(ready.text).checks.postgres).toMatch(/^no worker reached PostgreSQL/);
    } finally {
      await system.restart('sync-worker', 0);
    }
  });
});
