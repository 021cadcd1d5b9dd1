import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { createDataSource } from '@syncline/persistence';
import { bootRuntime, onShutdownSignal } from '@syncline/platform';
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

const app = await NestFactory.createApplicationContext(AppModule.register(runtime, dataSource), {
  logger: ['error', 'warn'],
});
await app.init();
logger.info('conflict service ready');

onShutdownSignal(logger, async () => {
  await app.close();
  await nats.drain();
  await dataSource.destroy();
  await telemetry.shutdown();
});
