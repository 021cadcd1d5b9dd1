import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstream, jetstreamManager, type JetStreamClient, type PubAck } from '@nats-io/jetstream';
import { PermissionViolationError, RequestError, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { createPublisher } from '@syncline/publisher';
import { eventually } from './support/eventually.js';
import { SseClient } from './support/sse-client.js';
import { TestSystem } from './support/system.js';
import { TestClient, hlcNow } from './support/ws-client.js';

const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';

/**
 * Backend services publish mutations straight onto NATS, as docs/publishing.md shows, and get
 * what clients get: validation, isolation, per-entity order and exactly-once effect.
 */
describe('ingest: mutations published by backend services over NATS', () => {
  let system: TestSystem;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let watcher: TestClient;

  beforeAll(async () => {
    system = await TestSystem.start({ gateways: 1 });
    nc = await connect({ servers: NATS_URL, name: 'ingest-test-service' });
    js = jetstream(nc);
    watcher = await TestClient.connect(
      system.gateways[0]!.url,
      await system.mintToken({ sub: 'watcher', tenant: 'acme' }),
    );
    const reply = await watcher.request('subscribe', { entityTypes: ['invoices', 'tickets'] });
    expect(reply.type).toBe('subscribed');
  });

  afterAll(async () => {
    await watcher?.close().catch(() => undefined);
    await nc?.close();
    await system?.stop();
  });

  function invoiceMutation(entityId: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
    return serviceMutation({ tenant: 'acme', entityType: 'invoices', entityId, ...overrides });
  }

  function invoiceSubject(entityId: string): string {
    return `${system.namespace}.mut.acme.invoices.${entityId}`;
  }

  function publish(subject: string, body: unknown, msgID?: string): Promise<PubAck> {
    const data = typeof body === 'string' ? body : JSON.stringify(body);
    return js.publish(subject, data, msgID === undefined ? {} : { msgID });
  }

  /** Resolves once the sync worker has acknowledged (applied or terminated) the message at `seq`. */
  async function processed(seq: number): Promise<void> {
    const jsm = await jetstreamManager(nc);
    await eventually(async () => {
      const info = await jsm.consumers.info(system.streams.mutations, 'sync-worker');
      return info.ack_floor.stream_seq >= seq;
    }, `the worker to finish MUTATIONS message ${seq}`);
  }

  async function entityRow(tenant: string, entityType: string, entityId: string) {
    const rows = await system.query<{ version: string; data: unknown; deleted: boolean }>(
      'SELECT version, data, deleted FROM entities WHERE tenant = $1 AND entity_type = $2 AND entity_id = $3',
      [tenant, entityType, entityId],
    );
    return rows[0];
  }

  async function changeCount(mutationId: string): Promise<number> {
    const rows = await system.query<{ count: string }>('SELECT count(*) FROM changes WHERE mutation_id = $1', [
      mutationId,
    ]);
    return Number(rows[0]?.count);
  }

  async function rejectionsOf(subject: string): Promise<{ reason: string }[]> {
    return system.query<{ reason: string }>('SELECT reason FROM rejected_messages WHERE subject = $1', [subject]);
  }

  it('delivers a mutation published with a plain NATS client to WebSocket and SSE subscribers', async () => {
    const token = await system.mintToken({
      sub: 'dashboard',
      tenant: 'acme',
      claims: { permissions: { read: ['invoices'] } },
    });
    const sse = await SseClient.open(`${system.gateways[0]!.httpUrl}/api/v1/sync/events?entityTypes=invoices`, {
      authorization: `Bearer ${token}`,
    });
    const body = invoiceMutation('inv-1');
    const ack = await publish(invoiceSubject('inv-1'), body, `acme:${String(body['mutationId'])}`);
    expect(ack.duplicate).toBe(false);

    const delta = await watcher.waitForType('delta', (f) => f.payload.entityId === 'inv-1');
    expect(delta.payload).toMatchObject({ entityType: 'invoices', version: 1, op: 'upsert', deleted: false });
    expect(delta.payload.changes.map((c) => c.field).sort()).toEqual(['/amount', '/currency']);
    expect(await entityRow('acme', 'invoices', 'inv-1')).toEqual({
      version: '1',
      data: { amount: 120, currency: 'EUR' },
      deleted: false,
    });
    try {
      await eventually(() => sse.deltas().find((d) => d.entityId === 'inv-1'), 'the SSE subscriber to see inv-1');
      expect(sse.deltas()[0]).toMatchObject({ entityType: 'invoices', entityId: 'inv-1', version: 1 });
    } finally {
      await sse.close();
    }
  });

  it('applies a mutation once, whether JetStream or the ledger catches the copy', async () => {
    const body = invoiceMutation('inv-2');
    const mutationId = String(body['mutationId']);
    const msgId = `acme:${mutationId}`;
    const first = await publish(invoiceSubject('inv-2'), body, msgId);
    const resent = await publish(invoiceSubject('inv-2'), body, msgId);
    expect(resent).toMatchObject({ duplicate: true, seq: first.seq });
    await watcher.waitForType('delta', (f) => f.payload.entityId === 'inv-2');

    // After JetStream's duplicate window a copy is stored again; the worker's ledger drops it.
    const late = await publish(invoiceSubject('inv-2'), body);
    expect(late.duplicate).toBe(false);
    await processed(late.seq);

    expect(await changeCount(mutationId)).toBe(1);
    expect((await entityRow('acme', 'invoices', 'inv-2'))?.version).toBe('1');
    expect(watcher.deltas('invoices').filter((d) => d.entityId === 'inv-2')).toHaveLength(1);
  });

  it.each([
    ['another tenant', 'inv-3', { tenant: 'globex' }],
    ['another entity type', 'inv-4', { entityType: 'payments' }],
    ['another entity', 'inv-5', { entityId: 'inv-6' }],
  ])('refuses and records a body naming %s than its subject', async (_what, entityId, lie) => {
    const subject = invoiceSubject(entityId);
    const body = invoiceMutation(entityId, lie);
    const ack = await publish(subject, body, `acme:${String(body['mutationId'])}`);
    await processed(ack.seq);

    expect(await rejectionsOf(subject)).toEqual([
      { reason: "subject does not match the mutation's tenant, entity type and id" },
    ]);
    expect(await changeCount(String(body['mutationId']))).toBe(0);
    const named = { tenant: 'acme', entityType: 'invoices', entityId, ...lie };
    expect(await entityRow(named.tenant, named.entityType, named.entityId)).toBeUndefined();
    expect(await entityRow('acme', 'invoices', entityId)).toBeUndefined();
  });

  it('refuses and records a malformed body, and keeps applying the next mutation', async () => {
    const subject = invoiceSubject('inv-7');
    const malformed = await publish(subject, { ...invoiceMutation('inv-7'), baseVersion: -1 });
    const notJson = await publish(subject, '{"mutationId": ');
    await processed(notJson.seq);

    const reasons = (await rejectionsOf(subject)).map((r) => r.reason);
    // Recorded as they are refused, concurrently: in either order.
    expect(reasons.sort()).toEqual(['not valid JSON', expect.stringMatching(/^schema: baseVersion: /)]);
    expect(malformed.seq).toBeLessThan(notJson.seq);
    expect(await entityRow('acme', 'invoices', 'inv-7')).toBeUndefined();

    await publish(subject, invoiceMutation('inv-7'));
    await watcher.waitForType('delta', (f) => f.payload.entityId === 'inv-7' && f.payload.version === 1);
    expect(system.isRunning('sync-worker', 0)).toBe(true);
  });

  it('refuses a timestamp from the future, which would win every last-write-wins comparison', async () => {
    const subject = invoiceSubject('inv-8');
    const tenMinutesAhead = `${String(Date.now() + 600_000).padStart(15, '0')}:00000:billing`;
    const future = await publish(subject, { ...invoiceMutation('inv-8'), hlc: tenMinutesAhead });
    await processed(future.seq);
    expect((await rejectionsOf(subject)).map((r) => r.reason)).toEqual([expect.stringMatching(/^clock skew: /)]);
    expect(await entityRow('acme', 'invoices', 'inv-8')).toBeUndefined();
  });

  it("lists a tenant's refused messages to its administrators over HTTP, and to nobody else", async () => {
    const subject = invoiceSubject('inv-9');
    const refused = await publish(subject, { ...invoiceMutation('inv-9'), op: 'explode' });
    const otherTenant = await publish(`${system.namespace}.mut.globex.invoices.inv-9`, '{"not": "a mutation"}');
    await processed(Math.max(refused.seq, otherTenant.seq));

    const list = async (tenant: string, permissions: Record<string, unknown>, query = '') => {
      const token = await system.mintToken({ sub: 'ops', tenant, claims: { permissions } });
      const response = await fetch(`${system.gateways[0]!.httpUrl}/api/v1/rejected-messages${query}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const admin = { admin: true };
    const { status, body } = await list('acme', admin);
    expect(status).toBe(200);
    const messages = body['messages'] as Array<Record<string, unknown>>;
    expect(messages[0]).toEqual({
      id: expect.any(String),
      stream: system.streams.mutations,
      streamSeq: refused.seq,
      subject,
      reason: expect.stringMatching(/^schema: op: /),
      payload: expect.stringContaining('"op":"explode"'),
      rejectedAt: expect.any(String),
    });
    expect(messages.map((m) => m['subject'])).not.toContain(`${system.namespace}.mut.globex.invoices.inv-9`);

    // Paged newest first.
    const first = await list('acme', admin, '?limit=1');
    expect(first.body['messages']).toEqual([messages[0]]);
    const second = await list('acme', admin, `?limit=1&before=${String(first.body['nextBefore'])}`);
    expect(second.body['messages']).toEqual([messages[1]]);

    const globex = await list('globex', admin);
    expect((globex.body['messages'] as Array<Record<string, unknown>>).map((m) => m['streamSeq'])).toEqual([
      otherTenant.seq,
    ]);
    expect(await list('acme', { read: ['*'], write: ['*'] })).toMatchObject({
      status: 403,
      body: { code: 'FORBIDDEN' },
    });
  });

  it('publishes upsert, patch and delete with @syncline/publisher, seen in version order', async () => {
    const publisher = createPublisher({
      jetstream: js,
      namespace: system.namespace,
      tenant: 'acme',
      source: 'helpdesk',
    });
    const published = [
      await publisher.upsert('tickets', 't-1', { title: 'Printer on fire', state: 'open' }),
      await publisher.patch('tickets', 't-1', { state: 'closed' }),
      await publisher.delete('tickets', 't-1'),
    ];
    expect(new Set(published.map((p) => p.mutationId)).size).toBe(3);
    expect(published.map((p) => p.seq)).toEqual([...published.map((p) => p.seq)].sort((a, b) => a - b));

    await watcher.waitForType('delta', (f) => f.payload.entityId === 't-1' && f.payload.version === 3);
    const deltas = watcher.deltas('tickets').filter((d) => d.entityId === 't-1');
    expect(deltas.map((d) => [d.version, d.op, d.deleted])).toEqual([
      [1, 'upsert', false],
      [2, 'patch', false],
      [3, 'delete', true],
    ]);
    expect(deltas[1]?.changes).toEqual([
      expect.objectContaining({ field: '/state', oldValue: 'open', newValue: 'closed', changeType: 'modified' }),
    ]);
    const log = await system.query<{ version: string; mutation_id: string }>(
      `SELECT version, mutation_id FROM changes WHERE tenant = 'acme' AND entity_type = 'tickets' ORDER BY version`,
    );
    expect(log).toEqual(published.map((p, i) => ({ version: String(i + 1), mutation_id: p.mutationId })));
  });
});

const NATS_SERVER = '/usr/sbin/nats-server';
const SAMPLE_CONFIG = fileURLToPath(new URL('../deploy/nats/ingest-permissions.conf', import.meta.url));

/** The sample permissions, enforced by a nats-server of their own. */
describe('sample NATS permissions for ingest (deploy/nats/ingest-permissions.conf)', () => {
  const passwords = {
    SYNC_SERVICES_PASSWORD: `pw${randomBytes(12).toString('hex')}`,
    BILLING_PASSWORD: `pw${randomBytes(12).toString('hex')}`,
    WAREHOUSE_PASSWORD: `pw${randomBytes(12).toString('hex')}`,
  };
  let dir: string;
  let server: ChildProcess | undefined;
  let url: string;
  const connections: NatsConnection[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'syncline-nats-'));
    const port = await freePort();
    url = `nats://127.0.0.1:${port}`;
    const config = join(dir, 'nats.conf');
    await writeFile(config, withPortAndStore(await readFile(SAMPLE_CONFIG, 'utf8'), port, join(dir, 'store')));
    server = spawn(NATS_SERVER, ['-c', config], {
      env: { ...process.env, ...passwords },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    await serverReady(server);
  });

  afterAll(async () => {
    for (const connection of connections) await connection.close().catch(() => undefined);
    if (server) await killProcess(server);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function connectAs(user: 'sync-services' | 'billing', password: string): Promise<NatsConnection> {
    const connection = await connect({ servers: url, user, pass: password });
    connections.push(connection);
    return connection;
  }

  it('lets billing publish its own tenant and entity type, and refuses every other subject', async () => {
    const services = await connectAs('sync-services', passwords.SYNC_SERVICES_PASSWORD);
    const jsm = await jetstreamManager(services);
    await jsm.streams.add({ name: 'MUTATIONS', subjects: ['sync.mut.>'] });

    const billing = await connectAs('billing', passwords.BILLING_PASSWORD);
    const statusErrors = collectStatusErrors(billing);
    const billingJs = jetstream(billing);

    const own = serviceMutation({ tenant: 'acme', entityType: 'invoices', entityId: 'inv-1' });
    const ack = await billingJs.publish('sync.mut.acme.invoices.inv-1', JSON.stringify(own), {
      msgID: `acme:${String(own['mutationId'])}`,
    });
    expect(ack).toMatchObject({ stream: 'MUTATIONS', seq: 1, duplicate: false });

    for (const subject of ['sync.mut.globex.invoices.inv-1', 'sync.mut.acme.orders.o-1']) {
      const [, tenant, entityType, entityId] = subject.split('.').slice(1);
      const body = serviceMutation({ tenant: tenant!, entityType: entityType!, entityId: entityId! });
      const refused = billingJs.publish(subject, JSON.stringify(body));
      // nats.js v3 fails the publish request with the server's violation as its cause, and also
      // reports the violation on the connection's status stream; the connection stays open.
      await expect(refused).rejects.toBeInstanceOf(RequestError);
      const cause = await refused.catch((error: unknown) => (error as RequestError).cause);
      expect(cause).toBeInstanceOf(PermissionViolationError);
      expect(cause).toMatchObject({ operation: 'publish', subject });
    }
    await eventually(() => statusErrors.length >= 2, 'two permission violations on the status stream');
    expect(statusErrors.map((e) => e instanceof PermissionViolationError && e.subject)).toEqual([
      'sync.mut.globex.invoices.inv-1',
      'sync.mut.acme.orders.o-1',
    ]);
    expect(billing.isClosed()).toBe(false);
    expect((await jsm.streams.info('MUTATIONS')).state.messages).toBe(1);
  });
});

/** A mutation body written by hand, as a service without project code writes it. */
function serviceMutation(
  fields: { tenant: string; entityType: string; entityId: string } & Record<string, unknown>,
): Record<string, unknown> {
  return {
    mutationId: `billing-${randomUUID()}`,
    userId: 'billing',
    clientId: 'billing',
    op: 'upsert',
    data: { amount: 120, currency: 'EUR' },
    baseVersion: 0,
    vectorClock: { billing: Date.now() },
    hlc: hlcNow('billing'),
    ...fields,
  };
}

/** The sample configuration with only its listen address and JetStream store replaced. */
function withPortAndStore(config: string, port: number, storeDir: string): string {
  const replaced = config
    .replace(/^listen: .*$/m, `listen: 127.0.0.1:${port}`)
    .replace(/^(\s*)store_dir: .*$/m, `$1store_dir: ${JSON.stringify(storeDir)}`);
  if (!replaced.includes(`listen: 127.0.0.1:${port}`) || !replaced.includes(JSON.stringify(storeDir))) {
    throw new Error(`${SAMPLE_CONFIG} has no "listen:" or "store_dir:" line to replace`);
  }
  return replaced;
}

/** Errors the connection reports on its status iterator (nats.js v3: `{ type: 'error', error }`). */
function collectStatusErrors(connection: NatsConnection): Error[] {
  const errors: Error[] = [];
  void (async () => {
    for await (const status of connection.status()) {
      if (status.type === 'error') errors.push(status.error);
    }
  })();
  return errors;
}

/** Resolves when nats-server logs that it is ready; rejects with its output if it exits first. */
function serverReady(server: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => fail(new Error(`nats-server not ready within 10 s:\n${output}`)), 10_000);
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(error);
    };
    server.stderr?.setEncoding('utf8');
    server.stderr?.on('data', (chunk: string) => {
      output += chunk;
      if (output.includes('Server is ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    server.once('error', fail);
    server.once('exit', (code) => fail(new Error(`nats-server exited with ${String(code)}:\n${output}`)));
  });
}

async function killProcess(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
