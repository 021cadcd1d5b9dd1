import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { Subjects } from '@syncline/contracts';
import { createDataSource, runMigrations } from '@syncline/persistence';
import { bootRuntime, ensureStreams, jetstreamManager, onShutdownSignal } from '@syncline/platform';
import { AppModule } from './app.module.js';
import { syncWorkerEnvSchema } from './config.js';

const runtime = await bootRuntime({ service: 'sync-worker', schema: syncWorkerEnvSchema });
const { config, logger, nats, telemetry } = runtime;

await ensureStreams(await jetstreamManager(nats), {
  subjects: new Subjects(config.SYNC_NAMESPACE),
  names: { mutations: config.MUTATIONS_STREAM, changes: config.CHANGES_STREAM },
  replicas: config.STREAM_REPLICAS,
});

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

const app = await NestFactory.createApplicationContext(AppModule.register(runtime, dataSource), {
  logger: ['error', 'warn'],
});
await app.init();
logger.info('sync worker ready');

onShutdownSignal(logger, async () => {
  await app.close();
  await nats.drain();
  await dataSource.destroy();
  await telemetry.shutdown();
});
