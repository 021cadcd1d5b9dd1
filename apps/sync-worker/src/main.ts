import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { WORKER_CONSUMER } from '@syncline/contracts';
import { createDataSource, runMigrations } from '@syncline/persistence';
import {
  bootRuntime,
  createMetricsRegistry,
  jetstreamManager,
  onShutdownSignal,
  prepareStreams,
  startMonitoring,
} from '@syncline/platform';
import { AppModule } from './app.module.js';
import { syncWorkerEnvSchema } from './config.js';

const runtime = await bootRuntime({ service: 'sync-worker', schema: syncWorkerEnvSchema });
const { config, logger, nats, telemetry } = runtime;

await prepareStreams(nats, config, logger);

const dataSource = createDataSource({
  url: config.DATABASE_URL,
  poolSize: config.DATABASE_POOL_SIZE,
  applicationName: config.INSTANCE_ID ?? 'sync-worker',
});
await dataSource.initialize();
if (config.MIGRATE_ON_BOOT) {
  const applied = await runMigrations(dataSource);
  if (applied.length > 0) logger.info({ applied }, 'migrations applied');
}

const registry = createMetricsRegistry('sync-worker', config.INSTANCE_ID ?? 'sync-worker');
const app = await NestFactory.createApplicationContext(AppModule.register(runtime, dataSource, registry), {
  logger: ['error', 'warn'],
});
await app.init();
const jsm = await jetstreamManager(nats);
const monitoring = await startMonitoring({
  config,
  registry,
  checks: {
    nats: async () => {
      if (nats.isClosed()) throw new Error('NATS connection closed');
    },
    postgres: () => dataSource.query('SELECT 1'),
    mutationsConsumer: () => jsm.consumers.info(config.MUTATIONS_STREAM, WORKER_CONSUMER.durableName),
  },
});
logger.info({ monitoringUrl: monitoring.url }, 'sync worker ready');

onShutdownSignal(logger, async () => {
  await monitoring.close();
  await app.close();
  await nats.drain();
  await dataSource.destroy();
  await telemetry.shutdown();
});
