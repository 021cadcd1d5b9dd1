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

  function client(
    clientId: string,
    transport: 'websocket' | 'sse',
    entityTypes = ['cards'],
    claims: Record<string, unknown> = {},
  ) {
    const sdk = new DifferentialSyncClient({
      clientId,
      websocketUrl: system.gateways[0]!.url,
      entityTypes,
      transport,
      tokenProvider: () => system.mintToken({ sub: clientId, tenant: 'acme', claims }),
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

  /** Event streams open on the gateway, from its metrics. */
  async function openEventStreams(): Promise<number> {
    const text = await (await fetch(`${system.gateways[0]!.httpUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('syncline_connections{') && l.includes('transport="sse"'));
    return Number(line?.split(' ').at(-1));
  }

  it('carries every subscribed type on one event stream, so a browser’s six connections per host are no limit', async () => {
    const types = ['t1', 't2', 't3', 't4', 't5', 't6', 't7', 't8'];
    const before = await openEventStreams();
    const reader = client('wallboard', 'sse', types);
    const subscribed = new Set<string>();
    reader.on('subscribed', (state) => subscribed.add(state.entityType));
    await reader.subscribe();
    await reader.connect();
    await eventually(() => subscribed.size === types.length, 'every type to be subscribed');

    const writer = client('desk-8', 'websocket', types);
    await writer.subscribe();
    await writer.connect();
    for (const type of types) await writer.updateLocalState({ [`${type}-1`]: { title: type } }, type);
    for (const type of types) {
      await eventually(() => reader.getLocalState(type)[`${type}-1`], `the SSE client to see ${type}-1`);
    }
    // A stream closed by a reopening may take a moment to be noticed on the gateway.
    await eventually(async () => (await openEventStreams()) === before + 1, 'one event stream for all eight types');
  });

  it('resumes each type from its own cursor: what one type already has is not delivered again', async () => {
    const types = ['notes', 'tasks'];
    const reader = client('tablet', 'sse', types);
    const writer = client('laptop', 'websocket', types);
    for (const sdk of [reader, writer]) {
      await sdk.subscribe();
      await sdk.connect();
    }
    const delivered: string[] = [];
    reader.on('sync:delta', (delta) => delivered.push(`${delta.entityType}/${delta.entityId}@${delta.version}`));
    // The reader's notes cursor ends up older than its tasks cursor.
    await writer.updateLocalState({ 'n-1': { text: 'one' } }, 'notes');
    await writer.updateLocalState({ 't-1': { text: 'one' } }, 'tasks');
    await eventually(() => reader.getLocalState('tasks')['t-1'], 'the reader to see t-1');
    await reader.disconnect();

    await writer.updateLocalState({ 'n-1': { text: 'two' } }, 'notes');
    await writer.updateLocalState({ 't-1': { text: 'two' } }, 'tasks');
    await writer.updateLocalState({ 'n-2': { text: 'new' } }, 'notes');
    await eventually(() => writer.getPendingChangesCount() === 0, 'the writes to land');
    await reader.connect();
    await eventually(() => reader.getLocalState('notes')['n-2'], 'the reader to catch up');
    await eventually(() => (reader.getLocalState('tasks')['t-1'] as JsonObject)['text'] === 'two', 't-1 version 2');

    // Resumed from the notes cursor, the stream replayed t-1@1 too: the tasks subscription already had it.
    expect(delivered.sort()).toEqual(['notes/n-1@1', 'notes/n-1@2', 'notes/n-2@1', 'tasks/t-1@1', 'tasks/t-1@2']);
  });

  it('keeps streaming the allowed types when one type is refused', async () => {
    const reader = client('intern', 'sse', ['memos', 'salaries'], { permissions: { read: ['memos'] } });
    const refusals: string[] = [];
    reader.on('error', (error) => refusals.push(error.message));
    await reader.subscribe();
    await reader.connect();
    await eventually(() => refusals.some((message) => message.includes('salaries')), 'salaries to be refused');

    const writer = client('ceo', 'websocket', ['memos', 'salaries']);
    await writer.subscribe();
    await writer.connect();
    await writer.updateLocalState({ 's-1': { amount: 1 } }, 'salaries');
    await writer.updateLocalState({ 'm-1': { text: 'hello' } }, 'memos');
    await eventually(() => reader.getLocalState('memos')['m-1'], 'the reader to see m-1');
    expect(reader.getLocalState('salaries')).toEqual({});
    expect(reader.isOnline()).toBe(true);
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
