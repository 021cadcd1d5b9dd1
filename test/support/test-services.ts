/**
 * Where the tests get the servers they may break: a PostgreSQL to stop, a NATS server to fill.
 * The shared services (`DATABASE_URL`, `NATS_URL`) are never stopped or reconfigured; these are
 * started for the test and removed after it.
 *
 * Two sources, with one interface:
 * - `binaries`: the machine's `nats-server` and PostgreSQL server binaries, as child processes
 *   on free loopback ports (what CI and a developer machine with the README's prerequisites use);
 * - `containers`: testcontainers, where a Docker engine answers and the binaries are missing.
 *
 * `SYNCLINE_TEST_SERVICES=binaries|containers` chooses; by default the binaries when both are
 * installed, else containers when `DOCKER_HOST` is set or `/var/run/docker.sock` exists. With
 * neither, the test fails with the command that installs what is missing: it never skips.
 */
import { existsSync } from 'node:fs';
import { NatsCluster } from './nats-cluster.js';
import { PrivatePostgres, postgresBinDir } from './private-postgres.js';

export type ServiceSource = 'binaries' | 'containers';

/** What the machine offers, as `chooseServiceSource` weighs it. */
export interface MachineProbe {
  readonly natsServer: boolean;
  readonly postgresServer: boolean;
  readonly docker: boolean;
}

export const INSTALL_HINT =
  'install the server binaries (apt-get install nats-server postgresql), or run a Docker engine for testcontainers';

/** The source to use, from the override or what the machine has. Pure, so it is tested as such. */
export function chooseServiceSource(env: NodeJS.ProcessEnv, probe: MachineProbe): ServiceSource {
  const override = env['SYNCLINE_TEST_SERVICES'];
  if (override === 'binaries' || override === 'containers') return override;
  if (override !== undefined && override !== '') {
    throw new Error(`SYNCLINE_TEST_SERVICES="${override}": use "binaries" or "containers"`);
  }
  if (probe.natsServer && probe.postgresServer) return 'binaries';
  if (probe.docker) return 'containers';
  const missing = [!probe.natsServer && 'nats-server', !probe.postgresServer && 'the PostgreSQL server'].filter(
    Boolean,
  );
  throw new Error(`the tests need ${missing.join(' and ')}: ${INSTALL_HINT}`);
}

export function probeMachine(env: NodeJS.ProcessEnv = process.env): MachineProbe {
  return {
    natsServer: existsSync(env['NATS_SERVER_BIN'] ?? '/usr/sbin/nats-server'),
    postgresServer: postgresBinDir(env) !== undefined,
    docker: Boolean(env['DOCKER_HOST']) || existsSync('/var/run/docker.sock'),
  };
}

/** A PostgreSQL server a test may stop. */
export interface DisposablePostgres {
  readonly url: string;
  /**
   * Makes it unavailable for about `ms`, closing every connection, then waits until it answers
   * again. With containers the outage lasts as long as a container restart takes.
   */
  outage(ms: number): Promise<void>;
  destroy(): Promise<void>;
}

/** A standalone NATS server with JetStream that a test may fill. */
export interface DisposableNats {
  readonly url: string;
  destroy(): Promise<void>;
}

export async function startPostgres(
  source = chooseServiceSource(process.env, probeMachine()),
): Promise<DisposablePostgres> {
  if (source === 'containers') return startPostgresContainer();
  const server = await PrivatePostgres.start();
  return {
    url: server.url,
    async outage(ms) {
      await server.stop();
      await new Promise((resolve) => setTimeout(resolve, ms));
      await server.start();
    },
    destroy: () => server.destroy(),
  };
}

/** `maxFileStore` in nats-server's notation (`96MB`): what JetStream may reserve in all. */
export async function startNats(
  options: { maxFileStore?: string } = {},
  source = chooseServiceSource(process.env, probeMachine()),
): Promise<DisposableNats> {
  if (source === 'containers') return startNatsContainer(options);
  const cluster = await NatsCluster.start({ nodes: 1, ...options });
  return { url: cluster.urls, destroy: () => cluster.stop() };
}

// testcontainers is loaded only on this path: without a Docker engine it is never imported.
async function startPostgresContainer(): Promise<DisposablePostgres> {
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  const container = await new PostgreSqlContainer('postgres:16-alpine')
    .withUsername('postgres')
    .withPassword('postgres')
    .withDatabase('postgres')
    .start();
  return {
    url: container.getConnectionUri(),
    async outage() {
      await container.restart();
    },
    async destroy() {
      await container.stop();
    },
  };
}

async function startNatsContainer(options: { maxFileStore?: string }): Promise<DisposableNats> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const config = `jetstream {\n  store_dir: /data\n${options.maxFileStore ? `  max_file_store: ${options.maxFileStore}\n` : ''}}\n`;
  const container = await new GenericContainer('nats:2.9-alpine')
    .withCopyContentToContainer([{ content: config, target: '/etc/nats/test.conf' }])
    .withCommand(['-c', '/etc/nats/test.conf', '-js'])
    .withExposedPorts(4222)
    .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
    .start();
  return {
    url: `nats://${container.getHost()}:${container.getMappedPort(4222)}`,
    async destroy() {
      await container.stop();
    },
  };
}
