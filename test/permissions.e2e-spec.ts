import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import type { JsonObject, Permissions } from '@syncline/contracts';
import { TestSystem } from './support/system.js';
import { TestClient, hlcNow, mutationId, type Frame } from './support/ws-client.js';

/**
 * Isolation (I6) over the WebSocket edge: a token reaches only its tenant, and within it only
 * the entity types its `permissions` claim grants, whatever frame it sends.
 */
describe('permissions', () => {
  let system: TestSystem;
  let directory: string;
  let signWithPublicKeyPair: (claims: Record<string, unknown>) => Promise<string>;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'syncline-jwks-'));
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'test-key', alg: 'ES256', use: 'sig' };
    const jwksFile = join(directory, 'jwks.json');
    await writeFile(jwksFile, JSON.stringify({ keys: [jwk] }));
    signWithPublicKeyPair = (claims) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'ES256', kid: 'test-key' })
        .setSubject(String(claims['sub'] ?? 'service'))
        .setIssuedAt()
        .setExpirationTime('10m')
        .sign(privateKey);
    system = await TestSystem.start({ gateways: 1, serviceEnv: { gateway: { JWT_JWKS_FILE: jwksFile } } });

    const writer = await connect('writer', 'acme');
    await write(writer, 'orders', 'o-1', { total: 10 });
    await write(writer, 'invoices', 'i-1', { amount: 99 });
    const other = await connect('writer', 'globex');
    await write(other, 'orders', 'o-1', { total: 666, secret: 'globex only' });
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await system?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  async function connect(user: string, tenant: string, permissions?: Partial<Permissions>): Promise<TestClient> {
    const token = await system.mintToken({ sub: user, tenant, ...(permissions ? { claims: { permissions } } : {}) });
    const client = await TestClient.connect(system.gateways[0]!.url, token, { clientId: `${user}-${clients.length}` });
    clients.push(client);
    return client;
  }

  function mutateFrame(client: TestClient, entityType: string, entityId: string, data: JsonObject, baseVersion = 0) {
    const node = client.clientId ?? 'client';
    return {
      mutationId: mutationId(),
      entityType,
      entityId,
      op: 'patch',
      data,
      baseVersion,
      vectorClock: { [node]: Date.now() },
      hlc: hlcNow(node),
    };
  }

  async function write(client: TestClient, entityType: string, entityId: string, data: JsonObject): Promise<void> {
    const payload = mutateFrame(client, entityType, entityId, data);
    client.send('mutate', payload);
    const outcome = await client.waitForOutcome(payload.mutationId);
    expect(outcome.payload.status).toBe('applied');
  }

  const codeOf = (frame: Frame) => (frame.type === 'error' ? frame.payload.code : frame.type);

  it('refuses every read of a type the token may not read, and every write without the right', async () => {
    const reader = await connect('auditor', 'acme', { read: ['orders'] });
    const attempts: Array<[string, unknown]> = [
      ['subscribe', { entityTypes: ['invoices'] }],
      ['subscribe', { entityTypes: ['orders', 'invoices'] }],
      ['subscribe', { entityTypes: ['invoices'], cursors: { invoices: 'x:0' } }],
      ['sync', { entityType: 'invoices' }],
      ['sync', { entityType: 'invoices', snapshot: true }],
      ['sync', { entityType: 'invoices', entityId: 'i-1', sinceVersion: 0 }],
      ['mutate', mutateFrame(reader, 'orders', 'o-1', { total: 0 }, 1)],
      ['mutate', mutateFrame(reader, 'invoices', 'i-2', { amount: 1 })],
    ];
    for (const [type, payload] of attempts) {
      const reply = await reader.request(type, payload);
      expect([type, codeOf(reply)]).toEqual([type, 'FORBIDDEN']);
    }
    // What it may do still works, and shows only its tenant's orders.
    const snapshot = await reader.request('sync', { entityType: 'orders', snapshot: true });
    expect(
      snapshot.type === 'sync_response' && snapshot.payload.mode === 'snapshot' && snapshot.payload.entities,
    ).toEqual([expect.objectContaining({ entityId: 'o-1', data: { total: 10 } })]);
    expect(codeOf(await reader.request('subscribe', { entityTypes: ['orders'] }))).toBe('subscribed');

    const writer = await connect('clerk', 'acme');
    await write(writer, 'invoices', 'i-3', { amount: 5 });
    await write(writer, 'orders', 'o-2', { total: 20 });
    await reader.waitForType('delta', (frame) => frame.payload.entityId === 'o-2');
    expect(reader.deltas().map((delta) => `${delta.entityType}/${delta.entityId}`)).toEqual(['orders/o-2']);
    const stored = await system.query(
      `SELECT version FROM entities WHERE tenant = 'acme' AND entity_id IN ('o-1', 'i-2')`,
    );
    expect(stored).toEqual([{ version: '1' }]); // o-1 untouched, i-2 never created
  });

  it('keeps tenants apart: the same entity id in another tenant is another entity', async () => {
    const acme = await connect('alice', 'acme');
    const snapshot = await acme.request('sync', { entityType: 'orders', snapshot: true });
    const entities =
      snapshot.type === 'sync_response' && snapshot.payload.mode === 'snapshot' ? snapshot.payload.entities : [];
    expect(entities.map((entity) => entity.data)).not.toContainEqual(
      expect.objectContaining({ secret: 'globex only' }),
    );
    await acme.request('subscribe', { entityTypes: ['orders'] });
    const globex = await connect('mallory', 'globex');
    await write(globex, 'orders', 'o-1', { total: 667 });
    await write(await connect('bob', 'acme'), 'orders', 'o-3', { total: 30 });
    await acme.waitForType('delta', (frame) => frame.payload.entityId === 'o-3');
    expect(acme.deltas().map((delta) => delta.entityId)).toEqual(['o-3']);
  });

  it('lets an admin read and write every type', async () => {
    const admin = await connect('root', 'acme', { admin: true });
    expect(codeOf(await admin.request('subscribe', { entityTypes: ['invoices', 'orders'] }))).toBe('subscribed');
    await write(admin, 'settings', 's-1', { theme: 'dark' });
  });

  it('refuses a token whose permissions claim is malformed', async () => {
    const token = await system.mintToken({ sub: 'odd', tenant: 'acme', claims: { permissions: { read: 'orders' } } });
    await expect(TestClient.connect(system.gateways[0]!.url, token)).rejects.toMatchObject({ code: 'AUTH_INVALID' });
  });

  it('verifies tokens signed with a key from the JWKS, and refuses unknown keys', async () => {
    const token = await signWithPublicKeyPair({
      sub: 'billing-service',
      tenant: 'acme',
      permissions: { read: ['invoices'] },
    });
    const service = await TestClient.connect(system.gateways[0]!.url, token);
    clients.push(service);
    expect(service.welcome.userId).toBe('billing-service');
    expect(codeOf(await service.request('subscribe', { entityTypes: ['invoices'] }))).toBe('subscribed');
    expect(codeOf(await service.request('subscribe', { entityTypes: ['orders'] }))).toBe('FORBIDDEN');

    const { privateKey: stranger } = await generateKeyPair('ES256');
    const forged = await new SignJWT({ tenant: 'acme' })
      .setProtectedHeader({ alg: 'ES256', kid: 'test-key' })
      .setSubject('intruder')
      .setExpirationTime('10m')
      .sign(stranger);
    await expect(TestClient.connect(system.gateways[0]!.url, forged)).rejects.toMatchObject({ code: 'AUTH_INVALID' });
  });

  it('renews a token in place, withdrawing what the new one no longer grants', async () => {
    const client = await connect('carol', 'acme');
    await client.request('subscribe', { entityTypes: ['orders', 'invoices'] });
    const narrower = await system.mintToken({
      sub: 'carol',
      tenant: 'acme',
      claims: { permissions: { read: ['invoices'] } },
    });
    const renewed = await client.request('auth', { token: narrower });
    expect(renewed).toMatchObject({ type: 'auth_renewed', payload: { revoked: ['orders'] } });

    const mark = client.mark();
    const writer = await connect('dave', 'acme');
    await write(writer, 'orders', 'o-4', { total: 40 });
    await write(writer, 'invoices', 'i-4', { amount: 4 });
    await client.waitForType('delta', (frame) => frame.payload.entityId === 'i-4', { since: mark });
    expect(client.deltas().filter((delta) => delta.entityId === 'o-4')).toEqual([]);
    expect(codeOf(await client.request('mutate', mutateFrame(client, 'orders', 'o-5', { total: 1 })))).toBe(
      'FORBIDDEN',
    );

    const someoneElse = await system.mintToken({ sub: 'eve', tenant: 'acme' });
    expect(codeOf(await client.request('auth', { token: someoneElse }))).toBe('FORBIDDEN');
    expect(codeOf(await client.request('auth', { token: 'not-a-token' }))).toBe('AUTH_INVALID');
    expect(client.isOpen).toBe(true);
  });

  it('warns before a token expires, then closes with 4402 when it was not renewed', async () => {
    const token = await system.mintToken({ sub: 'frank', tenant: 'acme', expiresIn: 3 });
    const client = await TestClient.connect(system.gateways[0]!.url, token);
    clients.push(client);
    const warning = await client.waitForType('auth_expiring', () => true, { timeoutMs: 5000 });
    expect(warning.payload.expiresAt).toBeGreaterThan(Date.now());
    const expired = await client.waitFor((frame) => codeOf(frame) === 'AUTH_EXPIRED', { timeoutMs: 5000 });
    expect(expired.type).toBe('error');
    expect(await client.closed).toMatchObject({ code: 4402 });
  });
});
