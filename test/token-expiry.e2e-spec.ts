import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DifferentialSyncClient, MemoryStorage, nodeWebSocketFactory } from '@syncline/client/node';
import { eventually } from './support/eventually.js';
import { TestSystem } from './support/system.js';

const TOKEN_LIFETIME_S = 3;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Tokens that expire while the SDK is connected: nothing is lost or applied twice. */
describe('token expiry with the SDK', () => {
  let system: TestSystem;
  const clients: DifferentialSyncClient[] = [];

  beforeAll(async () => {
    system = await TestSystem.start({ gateways: 1 });
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.disconnect()));
    await system?.stop();
  });

  function client(clientId: string, entityType: string, tokenProvider: () => Promise<string>) {
    const sdk = new DifferentialSyncClient({
      clientId,
      websocketUrl: system.gateways[0]!.url,
      entityTypes: [entityType],
      tokenProvider,
      webSocketFactory: nodeWebSocketFactory,
      storage: new MemoryStorage(),
      retryDelay: 100,
    });
    clients.push(sdk);
    return sdk;
  }

  const shortLived = (sub: string) => () => system.mintToken({ sub, tenant: 'acme', expiresIn: TOKEN_LIFETIME_S });
  const longLived = (sub: string) => () => system.mintToken({ sub, tenant: 'acme' });

  /** Writes `count` notes, one every `everyMs`, and checks each reached the reader and the server once. */
  async function writeThrough(writer: DifferentialSyncClient, reader: DifferentialSyncClient, type: string) {
    const count = 30;
    for (let i = 0; i < count; i++) {
      await writer.updateLocalState({ [`n-${i}`]: { i } }, type);
      await sleep(250);
    }
    await eventually(() => writer.getPendingChangesCount() === 0, 'the writer to settle');
    await eventually(() => Object.keys(reader.getLocalState(type)).length === count, 'the reader to see every note');
    const ledger = await system.query<{ n: string }>(`SELECT count(*) AS n FROM changes WHERE entity_type = $1`, [
      type,
    ]);
    expect(Number(ledger[0]?.n)).toBe(count);
  }

  it('renews the token on the open connection, without a reconnect', async () => {
    const writer = client('writer-1', 'notes', shortLived('writer'));
    const reader = client('reader-1', 'notes', longLived('reader'));
    const renewals: unknown[] = [];
    const drops: unknown[] = [];
    writer.on('auth:renewed', (event) => renewals.push(event));
    writer.on('disconnected', (event) => drops.push(event));
    for (const sdk of [writer, reader]) {
      await sdk.subscribe();
      await sdk.connect();
    }
    await writeThrough(writer, reader, 'notes'); // 7.5 s: more than two token lifetimes
    expect(renewals.length).toBeGreaterThanOrEqual(2);
    expect(drops).toEqual([]);
  });

  it('reconnects with a fresh token when renewing failed, and resumes', async () => {
    let calls = 0;
    const writer = client('writer-2', 'memos', async () => {
      calls += 1;
      if (calls === 2) throw new Error('identity provider unavailable'); // the in-place renewal fails
      return shortLived('writer')();
    });
    const reader = client('reader-2', 'memos', longLived('reader'));
    const closes: number[] = [];
    writer.on('disconnected', (event) => closes.push(event.code));
    for (const sdk of [writer, reader]) {
      await sdk.subscribe();
      await sdk.connect();
    }
    await writeThrough(writer, reader, 'memos');
    expect(closes[0]).toBe(4402);
    expect(writer.isOnline()).toBe(true);
  });
});
