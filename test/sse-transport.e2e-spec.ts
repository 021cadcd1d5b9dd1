import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer } from 'node:net';
import { DifferentialSyncClient, MemoryStorage, nodeWebSocketFactory } from '@syncline/client/node';
import type { JsonObject } from '@syncline/contracts';
import { jsonEqual } from '@syncline/delta';
import { eventually } from './support/eventually.js';
import { TestSystem } from './support/system.js';

/** The SDK over Server-Sent Events and HTTP: the same state and guarantees as over WebSocket. */
describe('SDK over SSE', () => {
  let system: TestSystem;
  const clients: DifferentialSyncClient[] = [];

  beforeAll(async () => {
    system = await TestSystem.start({
      gateways: 1,
      serviceEnv: { gateway: { GATEWAY_PORT: String(await freePort()) } },
    });
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.disconnect()));
    await system?.stop();
  });

  function client(clientId: string, transport: 'websocket' | 'sse') {
    const sdk = new DifferentialSyncClient({
      clientId,
      websocketUrl: system.gateways[0]!.url,
      entityTypes: ['cards'],
      transport,
      tokenProvider: () => system.mintToken({ sub: clientId, tenant: 'acme' }),
      webSocketFactory: nodeWebSocketFactory,
      storage: new MemoryStorage(),
      retryDelay: 100,
    });
    clients.push(sdk);
    return sdk;
  }

  async function serverDocument(entityId: string): Promise<JsonObject | undefined> {
    const rows = await system.query<{ data: JsonObject }>(
      `SELECT data FROM entities WHERE tenant = 'acme' AND entity_type = 'cards' AND entity_id = $1`,
      [entityId],
    );
    return rows[0]?.data;
  }

  it('converges with a WebSocket client, both ways', async () => {
    const viaSse = client('kiosk', 'sse');
    const viaWs = client('desk', 'websocket');
    for (const sdk of [viaSse, viaWs]) {
      await sdk.subscribe();
      await sdk.connect();
    }
    await viaWs.updateLocalState({ 'c-1': { title: 'from the desk', done: false } }, 'cards');
    await eventually(() => viaSse.getLocalState('cards')['c-1'], 'the SSE client to see c-1');

    await viaSse.updateLocalState({ 'c-1': { done: true }, 'c-2': { title: 'from the kiosk' } }, 'cards');
    await eventually(() => viaSse.getPendingChangesCount() === 0, 'the SSE client’s writes to settle');
    await eventually(() => viaWs.getLocalState('cards')['c-2'], 'the WebSocket client to see c-2');
    expect(await serverDocument('c-1')).toEqual({ title: 'from the desk', done: true });
    for (const id of ['c-1', 'c-2']) {
      const server = await serverDocument(id);
      await eventually(
        () =>
          jsonEqual(viaSse.getLocalState('cards')[id], server) && jsonEqual(viaWs.getLocalState('cards')[id], server),
        `both clients to hold the server's ${id}`,
      );
    }
    const changes = await system.query<{ n: string }>(`SELECT count(*) AS n FROM changes WHERE entity_type = 'cards'`);
    expect(Number(changes[0]?.n)).toBe(3);
  });

  it('resumes its streams after a gateway restart, and sends what was written meanwhile', async () => {
    const reader = client('wall', 'sse');
    await reader.subscribe();
    await reader.connect();
    const reconnected = new Promise((resolve) =>
      reader.on('connected', (event) => event.reconnected && resolve(event)),
    );
    const writer = client('phone', 'websocket');
    await writer.subscribe();
    await writer.connect();

    await system.kill('gateway', 0, 'SIGKILL');
    await reader.updateLocalState({ 'c-9': { title: 'written while the gateway was down' } }, 'cards');
    await system.restart('gateway', 0);
    await reconnected;
    await writer.updateLocalState({ 'c-10': { title: 'after the restart' } }, 'cards');

    await eventually(() => reader.getLocalState('cards')['c-10'], 'the reader to see c-10');
    await eventually(() => reader.getPendingChangesCount() === 0, 'the queued write to land');
    await eventually(() => writer.getLocalState('cards')['c-9'], 'the writer to see c-9');
    expect(await serverDocument('c-9')).toEqual({ title: 'written while the gateway was down' });
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
