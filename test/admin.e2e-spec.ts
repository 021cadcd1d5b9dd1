import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { OutcomeAckPayload } from '@syncline/contracts';
import { TestSystem } from './support/system.js';
import { TestClient, hlcNow, mutationId } from './support/ws-client.js';

/** Conflict policies and recorded conflicts over HTTP: admin only, per tenant. */
describe('administration', () => {
  let system: TestSystem;
  let http: string;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    system = await TestSystem.start({ gateways: 1 });
    http = system.gateways[0]!.httpUrl;
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await system?.stop();
  });

  async function headers(tenant = 'acme', admin = true) {
    const token = await system.mintToken({
      sub: 'ops',
      tenant,
      claims: { permissions: { read: ['*'], write: ['*'], admin } },
    });
    return { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  }

  async function call(method: string, path: string, init: { tenant?: string; admin?: boolean; body?: unknown } = {}) {
    const response = await fetch(`${http}/api/v1${path}`, {
      method,
      headers: await headers(init.tenant, init.admin ?? true),
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  async function write(client: TestClient, entityId: string, data: Record<string, unknown>, baseVersion: number) {
    const id = mutationId();
    client.send('mutate', {
      mutationId: id,
      entityType: 'docs',
      entityId,
      op: 'patch',
      data,
      baseVersion,
      vectorClock: { [client.clientId ?? 'c']: Date.now() },
      hlc: hlcNow(client.clientId ?? 'c'),
    });
    return (await client.waitForOutcome(id)).payload as OutcomeAckPayload;
  }

  it('is for admins only', async () => {
    for (const [method, path] of [
      ['GET', '/policies/docs'],
      ['PUT', '/policies/docs'],
      ['GET', '/conflicts'],
    ] as const) {
      const answer = await call(method, path, {
        admin: false,
        body: method === 'PUT' ? { strategy: 'merge' } : undefined,
      });
      expect([method, path, answer.status, answer.body['code']]).toEqual([method, path, 403, 'FORBIDDEN']);
    }
  });

  it('sets a policy that decides the next conflict, which is recorded for inspection', async () => {
    expect(await call('GET', '/policies/docs')).toEqual({
      status: 200,
      body: { entityType: 'docs', strategy: 'merge', source: 'default' },
    });
    expect(await call('PUT', '/policies/docs', { body: { strategy: 'bogus' } })).toMatchObject({
      status: 400,
      body: { code: 'VALIDATION_FAILED' },
    });
    const set = await call('PUT', '/policies/docs', { body: { strategy: 'server-wins' } });
    expect(set).toMatchObject({ status: 200, body: { strategy: 'server-wins', source: 'policy' } });

    const token = await system.mintToken({ sub: 'writer', tenant: 'acme' });
    const client = await TestClient.connect(system.gateways[0]!.url, token, { clientId: 'writer' });
    clients.push(client);
    expect((await write(client, 'd-1', { title: 'first' }, 0)).status).toBe('applied');
    expect((await write(client, 'd-1', { title: 'second' }, 1)).status).toBe('applied');
    // Another client, which only saw version 1: its edit is concurrent with the second one.
    const other = await TestClient.connect(system.gateways[0]!.url, token, { clientId: 'other' });
    clients.push(other);
    const stale = await write(other, 'd-1', { title: 'stale' }, 1);
    expect(stale).toMatchObject({ status: 'rejected', strategy: 'server-wins', data: { title: 'second' } });

    const page = await call('GET', '/conflicts?entityType=docs');
    expect(page.status).toBe(200);
    expect(page.body['conflicts']).toEqual([
      expect.objectContaining({
        entityId: 'd-1',
        mutationId: stale.mutationId,
        strategy: 'server-wins',
        winner: 'server',
        base: { title: 'first' },
        serverData: { title: 'second' },
        clientData: { title: 'stale' },
        result: { title: 'second' },
      }),
    ]);
    expect((await call('GET', '/conflicts', { tenant: 'globex' })).body['conflicts']).toEqual([]);
    expect((await call('GET', '/policies/docs', { tenant: 'globex' })).body).toMatchObject({ source: 'default' });
  });

  it('pages conflicts backwards', async () => {
    const token = await system.mintToken({ sub: 'pager', tenant: 'acme' });
    const client = await TestClient.connect(system.gateways[0]!.url, token, { clientId: 'pager' });
    clients.push(client);
    const other = await TestClient.connect(system.gateways[0]!.url, token, { clientId: 'pager-2' });
    clients.push(other);
    await write(client, 'd-2', { n: 1 }, 0);
    await write(client, 'd-2', { n: 2 }, 1);
    await write(other, 'd-2', { n: 3 }, 1);
    const first = await call('GET', '/conflicts?limit=1');
    expect(first.body['conflicts']).toHaveLength(1);
    const second = await call('GET', `/conflicts?limit=1&before=${first.body['nextBefore']}`);
    expect(second.body['conflicts']).toHaveLength(1);
    expect(second.body['nextBefore']).toBeUndefined();
  });
});
