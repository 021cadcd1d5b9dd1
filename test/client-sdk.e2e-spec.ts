import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import type WebSocket from 'ws';
import { connect as connectNats } from '@nats-io/transport-node';
import {
  DifferentialSyncClient,
  FileStorage,
  MemoryStorage,
  nodeWebSocketFactory,
  type DifferentialSyncClientOptions,
  type KeyValueStorage,
  type WebSocketFactory,
} from '@syncline/client/node';
import type { JsonObject } from '@syncline/contracts';
import { jsonEqual } from '@syncline/delta';
import { eventually } from './support/eventually.js';
import { TestSystem } from './support/system.js';
import { hlcNow } from './support/ws-client.js';

/** The SDK against the real services: convergence, offline edits across a restart, rollback, rebase, resume. */
describe('client SDK', () => {
  let system: TestSystem;
  let directory: string;
  const clients: DifferentialSyncClient[] = [];

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'syncline-sdk-'));
    // One gateway on a fixed port, so that a restarted gateway is found at the same address.
    system = await TestSystem.start({
      gateways: 1,
      serviceEnv: { gateway: { GATEWAY_PORT: String(await freePort()), WS_COMPRESSION_MIN_BYTES: '256' } },
    });
    await system.query(
      `INSERT INTO conflict_policies (tenant, entity_type, strategy) VALUES ('acme', 'locked', 'server-wins')`,
    );
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.disconnect()));
    await system?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  async function client(
    clientId: string,
    entityTypes: string[],
    storage: KeyValueStorage = new MemoryStorage(),
    options: Partial<DifferentialSyncClientOptions> = {},
  ) {
    const sdk = new DifferentialSyncClient({
      clientId,
      websocketUrl: system.gateways[0]!.url,
      entityTypes,
      tokenProvider: () => system.mintToken({ sub: clientId, tenant: 'acme' }),
      webSocketFactory: nodeWebSocketFactory,
      storage,
      retryDelay: 100,
      ...options,
    });
    clients.push(sdk);
    return sdk;
  }

  async function serverDocument(entityType: string, entityId: string): Promise<JsonObject | null | undefined> {
    const rows = await system.query<{ data: JsonObject | null; deleted: boolean }>(
      `SELECT data, deleted FROM entities WHERE tenant = 'acme' AND entity_type = $1 AND entity_id = $2 AND version > 0`,
      [entityType, entityId],
    );
    return rows[0] ? (rows[0].deleted ? null : rows[0].data) : undefined;
  }

  // First, while no other client holds sockets or timers.
  it('leaves no timer or socket behind after disconnect()', async () => {
    const before = resources();
    const sdk = await client('kiosk', ['orders']);
    await sdk.connect();
    await sdk.subscribe();
    sdk.createDebouncedUpdate(10_000)({ x: { a: 1 } }, 'orders');
    await sdk.disconnect();
    await eventually(
      () => resources().sockets <= before.sockets && resources().timers <= before.timers,
      'resources to be released',
    );
  });
  it('keeps two clients converged on concurrent edits', async () => {
    const a = await client('web-a', ['orders']);
    const b = await client('web-b', ['orders']);
    await a.connect();
    await b.connect();
    await a.subscribe();
    await b.subscribe();

    await a.updateLocalState({ 'o-1': { stage: 'new', qty: 1 } }, 'orders');
    await eventually(() => b.getLocalState('orders')['o-1'], 'b to see o-1');
    await Promise.all([
      a.updateLocalState({ 'o-1': { stage: 'packed' } }, 'orders'),
      b.updateLocalState({ 'o-1': { qty: 3 } }, 'orders'),
    ]);
    await eventually(() => a.getPendingChangesCount() + b.getPendingChangesCount() === 0, 'both to settle');
    const server = await serverDocument('orders', 'o-1');
    expect(server).toEqual({ stage: 'packed', qty: 3 });
    await eventually(
      () => jsonEqual(a.getLocalState('orders')['o-1'], server) && jsonEqual(b.getLocalState('orders')['o-1'], server),
      'both clients to hold the server document',
    );
  });

  it('keeps offline edits across a restart and lands each exactly once', async () => {
    const path = join(directory, 'offline.json');
    const first = await client('laptop', ['notes'], await FileStorage.open(path));
    // Never connected: the edits wait in the file-backed queue.
    await first.updateLocalState({ 'n-1': { title: 'draft' } }, 'notes');
    await first.updateLocalState({ 'n-1': { body: 'written offline' }, 'n-2': { title: 'second' } }, 'notes');
    expect(first.getPendingChangesCount()).toBe(3);
    await first.disconnect();

    const restarted = await client('laptop', ['notes'], await FileStorage.open(path));
    await restarted.connect();
    await restarted.subscribe();
    await eventually(() => restarted.getPendingChangesCount() === 0, 'the queue to drain');
    expect(await serverDocument('notes', 'n-1')).toEqual({ title: 'draft', body: 'written offline' });
    expect(await serverDocument('notes', 'n-2')).toEqual({ title: 'second' });
    const ledger = await system.query<{ n: string }>(`SELECT count(*) AS n FROM mutations WHERE entity_type = 'notes'`);
    expect(Number(ledger[0]?.n)).toBe(3);
    const changes = await system.query<{ n: string }>(`SELECT count(*) AS n FROM changes WHERE entity_type = 'notes'`);
    expect(Number(changes[0]?.n)).toBe(3);
    expect(restarted.getLocalState('notes')).toEqual({
      'n-1': { title: 'draft', body: 'written offline' },
      'n-2': { title: 'second' },
    });
  });

  it('rolls a rejected mutation back and rebases a merged one', async () => {
    const desk = await client('desk', ['locked', 'shared']);
    await desk.connect();
    await desk.subscribe();
    await desk.updateLocalState({ l: { owner: 'desk' } }, 'locked');
    await desk.updateLocalState({ s: { a: 1, b: 1 } }, 'shared');
    await eventually(() => desk.getPendingChangesCount() === 0, 'setup to settle');

    const phoneStorage = new MemoryStorage();
    const phone = await client('phone', ['locked', 'shared'], phoneStorage);
    await phone.connect();
    await phone.subscribe();
    await eventually(() => phone.getLocalState('shared')['s'], 'the phone to load the snapshot');
    await phone.disconnect();

    // Offline, the phone edits its copies; then the desk edits the same fields, later.
    const offline = await client('phone', ['locked', 'shared'], phoneStorage, { conflictResolution: 'merge' });
    const errors: string[] = [];
    offline.on('error', (event) => errors.push(`${event.code} ${event.entityType}`));
    await offline.updateLocalState({ l: { owner: 'phone' } }, 'locked');
    await offline.updateLocalState({ s: { a: 5, b: 2 } }, 'shared');
    expect(offline.getLocalState('shared')['s']).toEqual({ a: 5, b: 2 });
    // The desk's edit must be later by the clock: last-write-wins compares HLCs at millisecond grain.
    const editedAt = Date.now();
    await eventually(() => Date.now() > editedAt + 2, 'the clock to move past the phone edit');
    await desk.updateLocalState({ l: { owner: 'desk-2' } }, 'locked');
    await desk.updateLocalState({ s: { a: 2 } }, 'shared');
    await eventually(() => desk.getPendingChangesCount() === 0, 'the desk to settle');

    const settled: string[] = [];
    offline.on('mutation:settled', (event) => settled.push(`${event.entityType}:${event.status}`));
    await offline.connect();
    await offline.subscribe();
    await eventually(() => offline.getPendingChangesCount() === 0, 'the phone to settle');

    // server-wins keeps the desk's owner: the phone's edit is rolled back.
    expect(await serverDocument('locked', 'l')).toEqual({ owner: 'desk-2' });
    expect(offline.getLocalState('locked')['l']).toEqual({ owner: 'desk-2' });
    // merge keeps the desk's later `a` and the phone's `b`: the phone's view is rebased on it.
    expect(await serverDocument('shared', 's')).toEqual({ a: 2, b: 2 });
    expect(offline.getLocalState('shared')['s']).toEqual({ a: 2, b: 2 });
    expect(settled.sort()).toEqual(['locked:rejected', 'shared:merged']);
    // It expected `merge`; `locked` was decided by its server-wins policy, and the client says so.
    expect(errors).toEqual(['CONFLICT_STRATEGY_MISMATCH locked']);
  });

  it('compresses frames when the client asks and the gateway allows it', async () => {
    const sockets: WebSocket[] = [];
    const keepSocket: WebSocketFactory = (url, protocols, options) => {
      const socket = nodeWebSocketFactory(url, protocols, options);
      sockets.push(socket as unknown as WebSocket);
      return socket;
    };
    const packer = await client('packer', ['bulky'], new MemoryStorage(), {
      enableCompression: true,
      webSocketFactory: keepSocket,
    });
    await packer.connect();
    const plain = await client('plain', ['bulky'], new MemoryStorage(), { webSocketFactory: keepSocket });
    await plain.connect();
    await Promise.all([packer.subscribe(), plain.subscribe()]);
    expect(sockets.map((socket) => socket.extensions)).toEqual([expect.stringContaining('permessage-deflate'), '']);

    const document = { text: `${'lorem ipsum '.repeat(500)}${Math.random()}` };
    await packer.updateLocalState({ manual: document }, 'bulky');
    await eventually(() => jsonEqual(plain.getLocalState('bulky')['manual'], document), 'the plain client to see it');
    await eventually(() => packer.getPendingChangesCount() === 0, 'the compressed mutation to be acknowledged');
  });

  it('resumes after a gateway restart with nothing lost', async () => {
    const reader = await client('tablet', ['feed']);
    await reader.connect();
    await reader.subscribe();
    const reconnected = new Promise((resolve) =>
      reader.on('connected', (event) => event.reconnected && resolve(event)),
    );

    await system.kill('gateway', 0, 'SIGKILL');
    await publishDirectly(system, 'feed', ['f-1', 'f-2', 'f-3']);
    await system.restart('gateway', 0);
    await reconnected;

    await eventually(() => Object.keys(reader.getLocalState('feed')).length === 3, 'the missed changes to arrive');
    expect(reader.getLocalState('feed')).toEqual({ 'f-1': { n: 'f-1' }, 'f-2': { n: 'f-2' }, 'f-3': { n: 'f-3' } });
  });
});

function resources(): { sockets: number; timers: number } {
  const info = process.getActiveResourcesInfo();
  return {
    sockets: info.filter((kind) => kind === 'TCPSocketWrap').length,
    timers: info.filter((kind) => kind === 'Timeout').length,
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Mutations from a backend service, straight onto MUTATIONS, while no gateway is up. */
async function publishDirectly(system: TestSystem, entityType: string, ids: string[]): Promise<void> {
  const nc = await connectNats({ servers: process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222' });
  try {
    const js = jetstream(nc);
    for (const [i, entityId] of ids.entries()) {
      const mutation = {
        mutationId: `backend-${entityId}`,
        tenant: 'acme',
        userId: 'backend',
        clientId: 'backend',
        entityType,
        entityId,
        op: 'upsert',
        data: { n: entityId },
        baseVersion: 0,
        vectorClock: { backend: i + 1 },
        hlc: hlcNow('backend'),
      };
      await js.publish(`${system.namespace}.mut.acme.${entityType}.${entityId}`, JSON.stringify(mutation));
    }
  } finally {
    await nc.close();
  }
}
