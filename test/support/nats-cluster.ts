/**
 * A JetStream cluster of local `nats-server` processes for end-to-end tests: each node on free
 * loopback ports (client, route, monitoring) with its own store directory under one temp dir.
 *
 *   const cluster = await NatsCluster.start({ nodes: 3 });
 *   try {
 *     const system = await TestSystem.start({ env: { NATS_URL: cluster.urls, STREAM_REPLICAS: '3' } });
 *     await cluster.kill(1);      // SIGKILL node n2
 *     await cluster.restart(1);   // same ports and store; resolves once it rejoined and caught up
 *   } finally {
 *     await cluster.stop();       // kills every node, removes the store directories
 *   }
 *
 * By hand: `cluster.commands` holds one command line per node (run the test with
 * TEST_SERVICE_LOGS=1 to have them printed, with every node's log). Run each line in its own
 * terminal, then point the services at the cluster, e.g. for nodes on 4301-4303:
 *
 *   nats-server --server_name n1 --cluster_name syncline-test --cluster nats://127.0.0.1:6301 \
 *     --routes nats://127.0.0.1:6302,nats://127.0.0.1:6303 -js -sd /tmp/n1 -p 4301 -a 127.0.0.1 -m 8301
 *   (n2 and n3 alike, each with the other two routes)
 *   NATS_URL=nats://127.0.0.1:4301,nats://127.0.0.1:4302,nats://127.0.0.1:4303 STREAM_REPLICAS=3 npm start
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePorts } from './free-ports.js';
import { makeOwnedTempDir, removeOrphanedTempDirs } from './owned-temp-dirs.js';

export interface NatsClusterOptions {
  /** Nodes to start (default 3: the smallest cluster that survives losing one; 1 runs a standalone server). */
  readonly nodes?: number;
  /** The server binary (default `NATS_SERVER_BIN` or `/usr/sbin/nats-server`). */
  readonly binary?: string;
  /** How long the cluster may take to elect its JetStream meta leader (default 20 s). */
  readonly readyTimeoutMs?: number;
  /**
   * JetStream file storage each node may reserve, in nats-server's notation (`256MB`); default:
   * the server's own (most of the free disk). Lets a test fill a server up.
   */
  readonly maxFileStore?: string;
}

export interface NatsNodeInfo {
  /** `n1`, `n2`, …: the `server_name`, as JetStream reports stream and consumer leaders. */
  readonly name: string;
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  readonly clusterPort: number;
  readonly monitorPort: number;
  readonly storeDir: string;
}

/** The parts of `/jsz` that tell whether a node takes part in the JetStream cluster. */
interface Jsz {
  readonly meta_cluster?: { readonly leader?: string; readonly cluster_size?: number };
}

const CLUSTER_NAME = 'syncline-test';
const DEFAULT_BINARY = '/usr/sbin/nats-server';
/**
 * Makes the kernel SIGKILL the server when the test process dies, however it dies. Jest gives
 * tests a copy of `process` whose `exit` event never fires, so an exit handler alone would leave
 * servers behind after a crashed or interrupted run.
 */
const SETPRIV = '/usr/bin/setpriv';
const STOP_GRACE_MS = 3000;
const POLL_MS = 50;
const LOG_RING_SIZE = 100;
/** Store directories are `<tmp>/syncline-nats-<pid of the test process>-<random>`. */
const DIR_PREFIX = 'syncline-nats-';

// Servers still running, killed on `exit` where that event fires (outside Jest's sandbox).
const liveServers = new Set<ChildProcess>();
let exitHookInstalled = false;
function trackServer(child: ChildProcess): void {
  liveServers.add(child);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const live of liveServers) live.kill('SIGKILL');
  });
}

/** One node: its fixed ports and directory, and the process that runs it now. */
class NatsNode {
  private child: ChildProcess | undefined;
  private exitedPromise: Promise<void> = Promise.resolve();
  private alive = false;
  /** Started and not stopped on purpose since. */
  private wanted = false;
  private readonly ring: string[] = [];

  constructor(
    readonly info: NatsNodeInfo,
    private readonly binary: string,
    private readonly routes: readonly string[],
    /** A configuration file with what has no command-line flag (the JetStream storage limit). */
    private readonly configFile: string | undefined,
  ) {}

  /** A node without routes runs standalone: a single server, as most development machines have. */
  get args(): string[] {
    const { name, clusterPort, storeDir, port, monitorPort } = this.info;
    return [
      ...(this.configFile ? ['-c', this.configFile] : []),
      ...['--server_name', name],
      ...(this.routes.length > 0
        ? [
            ...['--cluster_name', CLUSTER_NAME, '--cluster', `nats://127.0.0.1:${clusterPort}`],
            ...['--routes', this.routes.join(',')],
          ]
        : []),
      ...['-js', '-sd', storeDir, '-p', String(port), '-a', '127.0.0.1', '-m', String(monitorPort)],
    ];
  }

  get command(): string {
    return [this.binary, ...this.args].join(' ');
  }

  get running(): boolean {
    return this.alive;
  }

  /** Gone although nobody stopped it: a bad argument, a port taken, a crash. */
  get crashed(): boolean {
    return this.wanted && !this.alive;
  }

  start(): void {
    if (this.running) throw new Error(`${this.info.name} is already running`);
    const [file, args] = existsSync(SETPRIV)
      ? [SETPRIV, ['--pdeathsig', 'SIGKILL', this.binary, ...this.args]]
      : [this.binary, this.args];
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.alive = true;
    this.wanted = true;
    trackServer(child);
    this.exitedPromise = new Promise<void>((resolve) => {
      const gone = () => {
        this.alive = false;
        liveServers.delete(child);
        resolve();
      };
      child.once('close', (code, signal) => {
        this.remember(`[exited ${signal ?? `code ${String(code)}`}]`);
        gone();
      });
      child.once('error', (error) => {
        this.remember(`[spawn error] ${error.message}`);
        if (child.pid === undefined) gone();
      });
    });
    this.pipeLines(child.stdout);
    this.pipeLines(child.stderr);
  }

  /** Sends `signal` and resolves once the process is gone; SIGKILL after a grace for any other signal. */
  async kill(signal: NodeJS.Signals): Promise<void> {
    this.wanted = false;
    const child = this.child;
    if (!child || !this.alive) return this.exitedPromise;
    child.kill(signal);
    if (signal === 'SIGKILL') return this.exitedPromise;
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    try {
      await this.exitedPromise;
    } finally {
      clearTimeout(timer);
    }
  }

  /** A monitoring endpoint's JSON, or undefined while the node does not answer. */
  async monitor<T>(path: string): Promise<{ status: number; body: T } | undefined> {
    try {
      const response = await fetch(`http://127.0.0.1:${this.info.monitorPort}${path}`, {
        signal: AbortSignal.timeout(1000),
      });
      return { status: response.status, body: (await response.json()) as T };
    } catch {
      return undefined;
    }
  }

  tail(count = 30): string[] {
    return this.ring.slice(-count);
  }

  private pipeLines(stream: NodeJS.ReadableStream | null): void {
    if (!stream) return;
    stream.setEncoding('utf8');
    let pending = '';
    stream.on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) this.remember(line);
    });
  }

  private remember(line: string): void {
    if (line.length === 0) return;
    if (process.env['TEST_SERVICE_LOGS'] === '1') process.stderr.write(`[nats ${this.info.name}] ${line}\n`);
    this.ring.push(line);
    if (this.ring.length > LOG_RING_SIZE) this.ring.splice(0, this.ring.length - LOG_RING_SIZE);
  }
}

export class NatsCluster {
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly nodeList: readonly NatsNode[],
    private readonly rootDir: string,
    private readonly readyTimeoutMs: number,
  ) {}

  /** Starts the nodes and resolves once every node answers and all agree on a JetStream meta leader. */
  static async start(options: NatsClusterOptions = {}): Promise<NatsCluster> {
    const count = options.nodes ?? 3;
    if (count < 1) throw new Error('a cluster needs at least one node');
    const binary = options.binary ?? process.env['NATS_SERVER_BIN'] ?? DEFAULT_BINARY;
    if (!existsSync(binary)) {
      throw new Error(
        `no nats-server at ${binary}: install it with "apt-get install nats-server" (or set NATS_SERVER_BIN)`,
      );
    }
    await removeOrphanedTempDirs(DIR_PREFIX);
    const rootDir = await makeOwnedTempDir(DIR_PREFIX);
    const ports = await freePorts(count * 3);
    const infos = Array.from({ length: count }, (_, i): NatsNodeInfo => {
      const name = `n${i + 1}`;
      const port = ports[i * 3] as number;
      return {
        name,
        url: `nats://127.0.0.1:${port}`,
        port,
        clusterPort: ports[i * 3 + 1] as number,
        monitorPort: ports[i * 3 + 2] as number,
        storeDir: join(rootDir, name),
      };
    });
    let configFile: string | undefined;
    if (options.maxFileStore) {
      configFile = join(rootDir, 'jetstream.conf');
      await writeFile(configFile, `jetstream {\n  max_file_store: ${options.maxFileStore}\n}\n`);
    }
    const nodes = infos.map((info) => {
      const routes = infos.filter((other) => other !== info).map((other) => `nats://127.0.0.1:${other.clusterPort}`);
      return new NatsNode(info, binary, routes, configFile);
    });
    const cluster = new NatsCluster(nodes, rootDir, options.readyTimeoutMs ?? 20_000);
    if (process.env['TEST_SERVICE_LOGS'] === '1') process.stderr.write(`${cluster.commands.join('\n')}\n`);
    try {
      for (const node of nodes) node.start();
      await cluster.waitUntil(() => cluster.isFormed(), 'the JetStream meta leader to be elected');
    } catch (error) {
      await cluster.stop().catch(() => undefined);
      throw error;
    }
    return cluster;
  }

  /** Every node's client URL, comma-joined: the value of `NATS_URL`. */
  get urls(): string {
    return this.servers.join(',');
  }

  /** Every node's client URL, for a client's `servers` option. */
  get servers(): string[] {
    return this.nodeList.map((node) => node.info.url);
  }

  get nodes(): NatsNodeInfo[] {
    return this.nodeList.map((node) => node.info);
  }

  /** One command line per node: what starts the same cluster by hand. */
  get commands(): string[] {
    return this.nodeList.map((node) => node.command);
  }

  /** The index of the node with this `server_name` (as JetStream names leaders). */
  indexOf(name: string): number {
    const index = this.nodeList.findIndex((node) => node.info.name === name);
    if (index === -1) throw new Error(`no node named ${name}`);
    return index;
  }

  isRunning(index: number): boolean {
    return this.node(index).running;
  }

  /** Sends `signal` to a node (SIGKILL by default, like a machine lost) and resolves once it is gone. */
  async kill(index: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.node(index).kill(signal);
  }

  /**
   * Starts a stopped node again on its ports and store, and resolves once it rejoined: it agrees
   * with the others on the meta leader and reports itself healthy, which nats-server does only
   * when the streams and consumers it holds replicas of have caught up.
   */
  async restart(index: number): Promise<void> {
    if (this.stopping) throw new Error('the cluster is stopping');
    const node = this.node(index);
    await node.kill('SIGTERM');
    node.start();
    await this.waitUntil(() => this.isFormed(), `${node.info.name} to rejoin the cluster`);
  }

  /** The node the running nodes name as JetStream meta leader, if they name one. */
  async metaLeader(): Promise<string | undefined> {
    for (const node of this.nodeList.filter((n) => n.running)) {
      const leader = (await node.monitor<Jsz>('/jsz'))?.body.meta_cluster?.leader;
      if (leader) return leader;
    }
    return undefined;
  }

  /** The last output lines of a node (nats-server logs to stderr). */
  logs(index: number, count?: number): string[] {
    return this.node(index).tail(count);
  }

  /** Kills every node (SIGTERM, SIGKILL after a grace) and removes the store directories. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all(this.nodeList.map((node) => node.kill('SIGTERM')));
      await rm(this.rootDir, { recursive: true, force: true });
    })();
    return this.stopping;
  }

  /**
   * Every running node is healthy and they all name the same meta leader, itself a running node.
   * A standalone server has no meta leader: healthy is enough.
   */
  private async isFormed(): Promise<boolean> {
    const running = this.nodeList.filter((node) => node.running);
    if (running.length === 0) return false;
    if (this.nodeList.length === 1) return (await running[0]?.monitor('/healthz'))?.status === 200;
    const states = await Promise.all(
      running.map(async (node) => {
        const [health, jsz] = await Promise.all([node.monitor('/healthz'), node.monitor<Jsz>('/jsz')]);
        return health?.status === 200 ? jsz?.body.meta_cluster?.leader : undefined;
      }),
    );
    const leader = states[0];
    if (!leader || states.some((state) => state !== leader)) return false;
    return running.some((node) => node.info.name === leader);
  }

  private async waitUntil(check: () => Promise<boolean>, what: string): Promise<void> {
    const deadline = Date.now() + this.readyTimeoutMs;
    for (;;) {
      if (await check()) return;
      const crashed = this.nodeList.find((node) => node.crashed);
      if (crashed) throw new Error(`${crashed.info.name} exited before ${what}; last output:\n${this.outputs()}`);
      if (Date.now() > deadline)
        throw new Error(
          `timed out after ${this.readyTimeoutMs} ms waiting for ${what}; last output:\n${this.outputs()}`,
        );
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  private outputs(): string {
    return this.nodeList
      .map((node) => {
        const lines = node.tail(15).map((line) => `  | ${line}`);
        return `${node.info.name}:\n${lines.join('\n') || '  (no output)'}`;
      })
      .join('\n');
  }

  private node(index: number): NatsNode {
    const node = this.nodeList[index];
    if (!node) throw new Error(`no node #${index} (there are ${this.nodeList.length})`);
    return node;
  }
}
