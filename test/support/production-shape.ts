import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect as connectNats } from '@nats-io/transport-node';
import { NatsCluster } from './nats-cluster.js';
import { TestSystem, type TestSystemOptions } from './system.js';

const FAILOVER_POLL_MS = 250;
/**
 * A JetStream API request sent while a consumer has no leader gets no answer even once one is
 * elected: a short timeout keeps the measured failover from running late by the default 5 s.
 */
const FAILOVER_REQUEST_TIMEOUT_MS = 500;

export interface ProductionShapeOptions {
  readonly gateways: number;
  /** How long a delivery whose ack was lost (with a worker or a consumer leader) waits to come back. */
  readonly workerAckWaitMs: number;
  readonly serviceEnv?: TestSystemOptions['serviceEnv'];
  /** The PostgreSQL server to create the system's database on (default: `DATABASE_URL`'s). */
  readonly databaseUrl?: string;
}

/**
 * The production shape of design §9 on one machine: a three-node JetStream cluster with
 * three-replica streams, the given gateways, two workers and two conflict services, all real
 * processes. Stopping stops the services first, then the NATS nodes.
 */
export class ProductionShape {
  private constructor(
    readonly cluster: NatsCluster,
    readonly system: TestSystem,
  ) {}

  static async start(options: ProductionShapeOptions): Promise<ProductionShape> {
    const cluster = await NatsCluster.start({ nodes: 3 });
    try {
      const system = await TestSystem.start({
        gateways: options.gateways,
        workers: 2,
        conflictServices: 2,
        // Three NATS nodes elect stream and consumer leaders before the services are ready.
        readyTimeoutMs: 30_000,
        env: {
          NATS_URL: cluster.urls,
          STREAM_REPLICAS: '3',
          WORKER_ACK_WAIT_MS: String(options.workerAckWaitMs),
          ...(options.databaseUrl ? { DATABASE_URL: options.databaseUrl } : {}),
        },
        ...(options.serviceEnv ? { serviceEnv: options.serviceEnv } : {}),
      });
      return new ProductionShape(cluster, system);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }

  async stop(): Promise<void> {
    try {
      await this.system.stop();
    } finally {
      await this.cluster.stop();
    }
  }

  /** The index of the NATS node that leads the workers' shared consumer now. */
  async workerConsumerLeader(): Promise<number> {
    return this.withJsm(async (jsm) => {
      const info = await jsm.consumers.info(this.system.streams.mutations, 'sync-worker');
      if (!info.cluster?.leader) throw new Error('the worker consumer has no leader');
      return this.cluster.indexOf(info.cluster.leader);
    });
  }

  /** Which of the system's streams and the workers' consumer the named node leads. */
  async whatNodeLeads(name: string): Promise<string[]> {
    return this.withJsm(async (jsm) => {
      const held: string[] = [];
      for (const stream of [this.system.streams.mutations, this.system.streams.changes]) {
        if ((await jsm.streams.info(stream)).cluster?.leader === name) held.push(`stream ${stream}`);
      }
      const consumer = await jsm.consumers.info(this.system.streams.mutations, 'sync-worker');
      if (consumer.cluster?.leader === name) held.push('the worker consumer');
      if ((await this.cluster.metaLeader()) === name) held.push('the JetStream meta group');
      return held;
    });
  }

  /**
   * Watches for `withinMs` whether the workers' consumer gets a leader other than `lost`, and
   * returns how long that took, or undefined when it did not happen in time.
   */
  async consumerFailover(lost: string, withinMs: number): Promise<number | undefined> {
    const started = Date.now();
    while (Date.now() - started < withinMs) {
      const leader = await this.withJsm(async (jsm) => {
        const info = await jsm.consumers.info(this.system.streams.mutations, 'sync-worker');
        return info.cluster?.leader;
      }, FAILOVER_REQUEST_TIMEOUT_MS).catch(() => undefined);
      if (leader && leader !== lost) return Date.now() - started;
      await new Promise((resolve) => setTimeout(resolve, FAILOVER_POLL_MS));
    }
    return undefined;
  }

  private async withJsm<T>(use: (jsm: JetStreamManager) => Promise<T>, timeoutMs?: number): Promise<T> {
    const nc = await connectNats({ servers: this.system.natsServers, name: 'production-shape-test' });
    try {
      return await use(await jetstreamManager(nc, timeoutMs === undefined ? {} : { timeout: timeoutMs }));
    } finally {
      await nc.close();
    }
  }
}
