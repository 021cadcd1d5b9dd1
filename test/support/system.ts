/**
 * End-to-end harness: runs the real services (built `apps/<name>/dist/main.js`) as child
 * processes against a fresh PostgreSQL database and private JetStream streams, so tests in
 * parallel or after a crash never see each other's data.
 *
 *   const system = await TestSystem.start({ gateways: 2 });
 *   try { ... } finally { await system.stop(); }
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { SignJWT } from 'jose';
import pg from 'pg';
import type { Pool, QueryResultRow } from 'pg';
import { DEVELOPMENT_JWT_SECRET } from '../../apps/gateway/src/config.js';

export type ServiceName = 'sync-worker' | 'conflict-service' | 'gateway';

/** A parsed pino line of a service's stdout. */
export type LogRecord = Record<string, unknown> & { msg?: string; level?: number };

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface GatewayInfo {
  /** WebSocket endpoint, e.g. `ws://127.0.0.1:43121/ws`. */
  readonly url: string;
  /** HTTP base, e.g. `http://127.0.0.1:43121`. */
  readonly httpUrl: string;
  readonly instanceId: string;
}

export interface ServiceInstance {
  readonly service: ServiceName;
  readonly index: number;
  readonly instanceId: string;
  readonly pid: number | undefined;
  /** The readiness log line. */
  readonly ready: LogRecord;
}

export interface TestSystemOptions {
  /** Gateways to start (default 2). */
  readonly gateways?: number;
  /** Sync workers to start (default 1, at least 1: the first one migrates and creates streams). */
  readonly workers?: number;
  /** Conflict services to start (default 1). */
  readonly conflictServices?: number;
  /** Environment for every service, e.g. `{ DEFAULT_CONFLICT_STRATEGY: 'merge' }`. */
  readonly env?: Readonly<Record<string, string>>;
  /** Environment for the processes of one service only; applied after `env`. */
  readonly serviceEnv?: Readonly<Partial<Record<ServiceName, Readonly<Record<string, string>>>>>;
  /** How long each process may take to log its readiness line (default 20 s). */
  readonly readyTimeoutMs?: number;
}

export interface MintTokenOptions {
  readonly sub: string;
  readonly tenant: string;
  /** A jose time span (`'1h'`, `'30 s'`) or seconds from now; negative mints an expired token. Default `'1h'`. */
  readonly expiresIn?: string | number;
  /** Extra claims, e.g. to test claim validation. */
  readonly claims?: Readonly<Record<string, unknown>>;
}

export interface TestDatabase {
  readonly name: string;
  readonly url: string;
  /** Terminates every connection to the database and drops it. Safe to call twice. */
  drop(): Promise<void>;
}

const READY_MESSAGES: Record<ServiceName, string> = {
  'sync-worker': 'sync worker ready',
  'conflict-service': 'conflict service ready',
  gateway: 'gateway ready',
};
const INSTANCE_PREFIXES: Record<ServiceName, string> = {
  'sync-worker': 'worker',
  'conflict-service': 'conflict',
  gateway: 'gw',
};
const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';
const WORKER_DURABLE = 'sync-worker';
const LOG_RING_SIZE = 200;
const STOP_GRACE_MS = 5000;

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Loaded into every child with `--import`: when this process (its parent) dies, however it dies,
 * the IPC channel closes and the child kills itself. Jest runs tests with a copy of `process`
 * whose `exit` event never fires, so this is what keeps services from outliving a test run.
 */
const PARENT_WATCHDOG = [
  'if (process.channel) {',
  '  process.channel.unref();',
  "  process.once('disconnect', () => process.kill(process.pid, 'SIGKILL'));",
  '}',
].join('\n');
const WATCHDOG_IMPORT = `data:text/javascript,${encodeURIComponent(PARENT_WATCHDOG)}`;

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

// Children still running, killed on `exit` where that event fires (outside Jest's sandbox).
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function trackChild(child: ChildProcess): void {
  liveChildren.add(child);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const live of liveChildren) live.kill('SIGKILL');
  });
}

/** Creates `syncline_test_<random>` on the server of `adminUrl` (default: `DATABASE_URL`). */
export async function createTestDatabase(
  adminUrl: string = process.env['DATABASE_URL'] ?? DEFAULT_DATABASE_URL,
): Promise<TestDatabase> {
  const name = `syncline_test_${hex(6)}`;
  await withAdminClient(adminUrl, (client) => client.query(`CREATE DATABASE ${quoteIdent(name)}`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  let dropped: Promise<void> | undefined;
  return {
    name,
    url: url.toString(),
    drop() {
      dropped ??= withAdminClient(adminUrl, async (client) => {
        await client.query(
          'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
          [name],
        );
        await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`);
      });
      return dropped;
    },
  };
}

async function withAdminClient<T>(adminUrl: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl, application_name: 'syncline-test-harness' });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** One spawned service process: its output, its readiness, its exit. */
class ServiceProcess {
  /** Last {@link LOG_RING_SIZE} output lines, stderr ones prefixed with `[stderr] `. */
  private readonly ring: string[] = [];
  private readonly listeners = new Set<(record: LogRecord) => void>();
  private readonly exitListeners = new Set<(info: ExitInfo) => void>();
  private readonly child: ChildProcess;
  private exitInfo: ExitInfo | undefined;
  readonly exited: Promise<ExitInfo>;

  constructor(
    readonly service: ServiceName,
    readonly index: number,
    readonly instanceId: string,
    readonly env: Readonly<Record<string, string>>,
  ) {
    this.child = spawn(process.execPath, ['--import', WATCHDOG_IMPORT, `apps/${service}/dist/main.js`], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    trackChild(this.child);
    this.exited = new Promise<ExitInfo>((resolve) => {
      const finish = (info: ExitInfo) => {
        if (this.exitInfo) return;
        this.exitInfo = info;
        liveChildren.delete(this.child);
        for (const listener of this.exitListeners) listener(info);
        resolve(info);
      };
      // `close` comes after the output streams ended, so the ring holds every last line.
      this.child.once('close', (code, signal) => finish({ code, signal }));
      this.child.once('error', (error) => {
        this.remember(`[spawn error] ${error.message}`);
        if (this.child.pid === undefined) finish({ code: null, signal: null });
      });
    });
    this.pipeLines(this.child.stdout, false);
    this.pipeLines(this.child.stderr, true);
  }

  get label(): string {
    return `${this.service} #${this.index} (${this.instanceId})`;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  /** The last `count` output lines, oldest first. */
  tail(count = LOG_RING_SIZE): string[] {
    return this.ring.slice(-count);
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Sends `signal` and waits for the exit; SIGKILL after `graceMs` if it is still running. */
  async terminate(signal: NodeJS.Signals = 'SIGTERM', graceMs = STOP_GRACE_MS): Promise<ExitInfo> {
    if (!this.running) return this.exited;
    this.signal(signal);
    if (signal === 'SIGKILL') return this.exited;
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The first stdout log record (already logged, within the ring, or future) that matches.
   * Rejects when the process exits first or after `timeoutMs`, with the process's last output.
   */
  waitForLog(predicate: (record: LogRecord) => boolean, timeoutMs: number, description: string): Promise<LogRecord> {
    for (const line of this.ring) {
      const record = parseLogLine(line);
      if (record && predicate(record)) return Promise.resolve(record);
    }
    if (!this.running)
      return Promise.reject(this.failure(`exited (${describeExit(this.exitInfo)}) before ${description}`));
    return new Promise<LogRecord>((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        this.listeners.delete(onRecord);
        this.exitListeners.delete(onExit);
      };
      const onRecord = (record: LogRecord) => {
        if (!predicate(record)) return;
        cleanup();
        resolve(record);
      };
      const onExit = (info: ExitInfo) => {
        cleanup();
        reject(this.failure(`exited (${describeExit(info)}) before ${description}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(this.failure(`did not log ${description} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.listeners.add(onRecord);
      this.exitListeners.add(onExit);
    });
  }

  failure(what: string, lines = 40): Error {
    const tail = this.tail(lines);
    const output = tail.length > 0 ? tail.map((line) => `  | ${line}`).join('\n') : '  (no output)';
    return new Error(`${this.label} ${what}; last output:\n${output}`);
  }

  private pipeLines(stream: NodeJS.ReadableStream | null, isStderr: boolean): void {
    if (!stream) return;
    stream.setEncoding('utf8');
    let pending = '';
    const emit = (line: string) => {
      if (line.length === 0) return;
      this.remember(isStderr ? `[stderr] ${line}` : line);
      if (process.env['TEST_SERVICE_LOGS'] === '1')
        process.stderr.write(`[${this.instanceId}${isStderr ? ' stderr' : ''}] ${line}\n`);
      if (isStderr) return;
      const record = parseLogLine(line);
      if (record) for (const listener of [...this.listeners]) listener(record);
    };
    stream.on('data', (chunk: string) => {
      pending += chunk;
      let newline = pending.indexOf('\n');
      while (newline !== -1) {
        emit(pending.slice(0, newline).replace(/\r$/, ''));
        pending = pending.slice(newline + 1);
        newline = pending.indexOf('\n');
      }
    });
    stream.on('end', () => {
      emit(pending);
      pending = '';
    });
  }

  private remember(line: string): void {
    this.ring.push(line);
    if (this.ring.length > LOG_RING_SIZE) this.ring.splice(0, this.ring.length - LOG_RING_SIZE);
  }
}

function parseLogLine(line: string): LogRecord | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as LogRecord) : undefined;
  } catch {
    return undefined;
  }
}

function describeExit(info: ExitInfo | undefined): string {
  if (!info) return 'still running';
  if (info.signal) return `signal ${info.signal}`;
  return `code ${String(info.code)}`;
}

/** A position in the system: one service's replica, the process it runs now and how it was started. */
interface Slot {
  readonly service: ServiceName;
  readonly index: number;
  process: ServiceProcess;
  ready: LogRecord | undefined;
}

export class TestSystem {
  readonly pg: Pool;
  private readonly slots: Record<ServiceName, Slot[]> = { 'sync-worker': [], 'conflict-service': [], gateway: [] };
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly database: TestDatabase,
    readonly namespace: string,
    readonly streams: { readonly mutations: string; readonly changes: string },
    /** Environment every process gets (before its own `INSTANCE_ID`). */
    private readonly baseEnv: Readonly<Record<string, string>>,
    private readonly options: TestSystemOptions,
    private readonly readyTimeoutMs: number,
  ) {
    this.pg = new pg.Pool({ connectionString: database.url, max: 4, application_name: 'syncline-test' });
    // A terminated idle client must not crash the test process.
    this.pg.on('error', () => undefined);
  }

  /**
   * Creates a database and private streams, starts one sync worker (it migrates and creates the
   * streams), waits for it, then starts every other process in parallel and waits for all of them.
   */
  static async start(options: TestSystemOptions = {}): Promise<TestSystem> {
    const counts: Record<ServiceName, number> = {
      'sync-worker': options.workers ?? 1,
      'conflict-service': options.conflictServices ?? 1,
      gateway: options.gateways ?? 2,
    };
    if (counts['sync-worker'] < 1) throw new Error('TestSystem needs at least one sync worker');

    const adminUrl = options.env?.['DATABASE_URL'] ?? process.env['DATABASE_URL'] ?? DEFAULT_DATABASE_URL;
    const database = await createTestDatabase(adminUrl);
    const namespace = `t${hex(6)}`;
    const streams = { mutations: `MUT_${hex(6)}`, changes: `CHG_${hex(6)}` };
    const baseEnv: Record<string, string> = {
      LOG_LEVEL: 'info',
      GATEWAY_PORT: '0',
      GATEWAY_HOST: '127.0.0.1',
      // Any free port: several workers and conflict services run side by side.
      MONITORING_PORT: '0',
      MONITORING_HOST: '127.0.0.1',
      NODE_ENV: 'test',
      OUTBOX_RELAY_GRACE_MS: '500',
      ...options.env,
      // Owned by the harness: what isolates this system from every other.
      DATABASE_URL: database.url,
      SYNC_NAMESPACE: namespace,
      MUTATIONS_STREAM: streams.mutations,
      CHANGES_STREAM: streams.changes,
    };
    const system = new TestSystem(database, namespace, streams, baseEnv, options, options.readyTimeoutMs ?? 20_000);
    try {
      await system.launch('sync-worker', 0);
      const rest: Promise<unknown>[] = [];
      for (let i = 1; i < counts['sync-worker']; i++) rest.push(system.launch('sync-worker', i));
      for (let i = 0; i < counts['conflict-service']; i++) rest.push(system.launch('conflict-service', i));
      for (let i = 0; i < counts.gateway; i++) rest.push(system.launch('gateway', i));
      const results = await Promise.allSettled(rest);
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed.length === 1) throw failed[0]?.reason;
      if (failed.length > 1) {
        const reasons: unknown[] = failed.map((r) => r.reason);
        throw new AggregateError(
          reasons,
          `${failed.length} services failed to start:\n${reasons.map(String).join('\n')}`,
        );
      }
    } catch (error) {
      await system.stop().catch(() => undefined);
      throw error;
    }
    return system;
  }

  get databaseUrl(): string {
    return this.database.url;
  }

  get databaseName(): string {
    return this.database.name;
  }

  /** The gateways as they run now (a restarted gateway has a new port and instance id). */
  get gateways(): GatewayInfo[] {
    return this.slots.gateway.map((slot) => {
      const url = slot.ready?.['url'];
      const httpUrl = slot.ready?.['httpUrl'];
      if (typeof url !== 'string' || typeof httpUrl !== 'string') {
        throw new Error(`${slot.process.label} is not ready (or its ready line has no url/httpUrl)`);
      }
      return { url, httpUrl, instanceId: slot.process.instanceId };
    });
  }

  /** The NATS servers the services use (`NATS_URL` of `env`, else of this process, else the local default). */
  get natsServers(): string[] {
    return (this.baseEnv['NATS_URL'] ?? process.env['NATS_URL'] ?? DEFAULT_NATS_URL).split(',').map((s) => s.trim());
  }

  /** The JWT secret the gateways verify with. */
  get jwtSecret(): string {
    return this.baseEnv['JWT_SECRET'] ?? process.env['JWT_SECRET'] ?? DEVELOPMENT_JWT_SECRET;
  }

  /** Runs SQL on the test database and returns the rows. */
  async query<R extends QueryResultRow = Record<string, unknown>>(
    sql: string,
    params: readonly unknown[] = [],
  ): Promise<R[]> {
    const result = await this.pg.query<R>(sql, [...params]);
    return result.rows;
  }

  /** Number of processes configured for `service`. */
  count(service: ServiceName): number {
    return this.slots[service].length;
  }

  instance(service: ServiceName, index: number): ServiceInstance {
    const slot = this.slot(service, index);
    if (!slot.ready) throw new Error(`${slot.process.label} is not ready`);
    return { service, index, instanceId: slot.process.instanceId, pid: slot.process.pid, ready: slot.ready };
  }

  isRunning(service: ServiceName, index: number): boolean {
    return this.slot(service, index).process.running;
  }

  /** Resolves when the current process of this slot exits (for tests of crashes and shutdowns). */
  exited(service: ServiceName, index: number): Promise<ExitInfo> {
    return this.slot(service, index).process.exited;
  }

  /** The last output lines of a process (stderr lines prefixed `[stderr] `). */
  logs(service: ServiceName, index: number, count = LOG_RING_SIZE): string[] {
    return this.slot(service, index).process.tail(count);
  }

  /** The first log record of a process (within its last lines, or future) matching `predicate`. */
  waitForLog(
    service: ServiceName,
    index: number,
    predicate: (record: LogRecord) => boolean,
    { timeoutMs = 10_000, description = 'the expected log line' }: { timeoutMs?: number; description?: string } = {},
  ): Promise<LogRecord> {
    return this.slot(service, index).process.waitForLog(predicate, timeoutMs, description);
  }

  /** Sends `signal` to a process and resolves once it has exited. */
  async kill(service: ServiceName, index: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<ExitInfo> {
    const { process: proc } = this.slot(service, index);
    proc.signal(signal);
    return proc.exited;
  }

  /**
   * Starts the process of a slot again (stopping it gracefully first if it still runs) and waits
   * until it is ready. Gateways get a new instance id (and port); other services keep theirs.
   */
  async restart(service: ServiceName, index: number): Promise<ServiceInstance> {
    const slot = this.slot(service, index);
    if (this.stopping) throw new Error('TestSystem is stopping');
    await slot.process.terminate('SIGTERM');
    const instanceId = service === 'gateway' ? newInstanceId(service, index) : slot.process.instanceId;
    await this.launch(service, index, instanceId);
    return this.instance(service, index);
  }

  /**
   * Starts one more process of `service` in a new slot (index `count(service)`) with the same
   * environment, and waits until it is ready: a worker joins the shared consumer, a gateway
   * gets its own port.
   */
  async add(service: ServiceName): Promise<ServiceInstance> {
    if (this.stopping) throw new Error('TestSystem is stopping');
    const index = this.slots[service].length;
    await this.launch(service, index);
    return this.instance(service, index);
  }

  /** A token the gateways accept: HS256 with the system's secret, `sub` and `tenant` claims. */
  async mintToken({ sub, tenant, expiresIn = '1h', claims = {} }: MintTokenOptions): Promise<string> {
    const jwt = new SignJWT({ ...claims, tenant })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(sub)
      .setIssuedAt();
    const issuer = this.baseEnv['JWT_ISSUER'];
    const audience = this.baseEnv['JWT_AUDIENCE'];
    if (issuer) jwt.setIssuer(issuer);
    if (audience) jwt.setAudience(audience);
    jwt.setExpirationTime(typeof expiresIn === 'number' ? Math.floor(Date.now() / 1000) + expiresIn : expiresIn);
    return jwt.sign(new TextEncoder().encode(this.jwtSecret));
  }

  /**
   * SIGTERMs every process (SIGKILL after 5 s), deletes the streams and the worker consumer,
   * closes the pool and drops the database. Idempotent; every step runs even if one fails.
   */
  stop(): Promise<void> {
    this.stopping ??= this.teardown();
    return this.stopping;
  }

  private async teardown(): Promise<void> {
    const errors: unknown[] = [];
    const attempt = async (step: () => Promise<unknown>) => {
      try {
        await step();
      } catch (error) {
        errors.push(error);
      }
    };
    const all = Object.values(this.slots).flat();
    await Promise.all(all.map((slot) => attempt(() => slot.process.terminate('SIGTERM', STOP_GRACE_MS))));
    await attempt(() => this.deleteStreams());
    await attempt(() => this.pg.end());
    await attempt(() => this.database.drop());
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1)
      throw new AggregateError(errors, `TestSystem.stop failed:\n${errors.map(String).join('\n')}`);
  }

  private async deleteStreams(): Promise<void> {
    const nc = await connect({ servers: this.natsServers, name: `syncline-test-cleanup-${this.namespace}` });
    try {
      const jsm = await jetstreamManager(nc);
      await ignoreNotFound(jsm.consumers.delete(this.streams.mutations, WORKER_DURABLE));
      await ignoreNotFound(jsm.streams.delete(this.streams.mutations));
      await ignoreNotFound(jsm.streams.delete(this.streams.changes));
    } finally {
      await nc.close();
    }
  }

  /** Spawns the process of a slot (creating the slot on first launch) and waits for its ready line. */
  private async launch(service: ServiceName, index: number, instanceId = newInstanceId(service, index)): Promise<void> {
    const env = { ...this.baseEnv, ...this.options.serviceEnv?.[service], INSTANCE_ID: instanceId };
    const proc = new ServiceProcess(service, index, instanceId, env);
    const slots = this.slots[service];
    const existing = slots[index];
    if (existing) {
      existing.process = proc;
      existing.ready = undefined;
    } else {
      slots[index] = { service, index, process: proc, ready: undefined };
    }
    const slot = slots[index] as Slot;
    const message = READY_MESSAGES[service];
    const ready = await proc.waitForLog((record) => record.msg === message, this.readyTimeoutMs, `"${message}"`);
    if (slot.process === proc) slot.ready = ready;
  }

  private slot(service: ServiceName, index: number): Slot {
    const slot = this.slots[service][index];
    if (!slot) throw new Error(`no ${service} #${index} (there are ${this.slots[service].length})`);
    return slot;
  }
}

function newInstanceId(service: ServiceName, index: number): string {
  return `${INSTANCE_PREFIXES[service]}-${index + 1}-${hex(4)}`;
}

async function ignoreNotFound(operation: Promise<unknown>): Promise<void> {
  try {
    await operation;
  } catch (error) {
    if (!(error instanceof Error && /not found/i.test(error.message))) throw error;
  }
}
