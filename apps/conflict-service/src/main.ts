import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { createDataSource } from '@syncline/persistence';
import { bootRuntime, createMetricsRegistry, onShutdownSignal, startMonitoring } from '@syncline/platform';
import { AppModule } from './app.module.js';
import { conflictServiceEnvSchema } from './config.js';

const runtime = await bootRuntime({ service: 'conflict-service', schema: conflictServiceEnvSchema });
const { config, logger, nats, telemetry } = runtime;
const dataSource = createDataSource({
  url: config.DATABASE_URL,
  poolSize: config.DATABASE_POOL_SIZE,
  applicationName: config.INSTANCE_ID ?? 'conflict-service',
});
await dataSource.initialize();

const registry = createMetricsRegistry('conflict-service', config.INSTANCE_ID ?? 'conflict-service');
const app = await NestFactory.createApplicationContext(AppModule.register(runtime, dataSource, registry), {
  logger: ['error', 'warn'],
});
await app.init();
const monitoring = await startMonitoring({
  config,
  registry,
  checks: {
    nats: async () => {
      if (nats.isClosed()) throw new Error('NATS connection closed');
    },
    postgres: () => dataSource.query('SELECT 1'),
  },
});
logger.info({ monitoringUrl: monitoring.url }, 'conflict service ready');

onShutdownSignal(logger, async () => {
  await monitoring.close();
  await app.close();
  await nats.drain();
  await dataSource.destroy();
  await telemetry.shutdown();
});
