import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { bootRuntime, onShutdownSignal, prepareStreams } from '@syncline/platform';
import type { AddressInfo } from 'node:net';
import { AppModule } from './app.module.js';
import { gatewayEnvSchema } from './config.js';
import { SyncWsAdapter } from './connections/ws-adapter.js';
import { HttpErrorsFilter } from './http/http-errors.filter.js';
import { StreamPositionService } from './fanout/stream-position.service.js';

const runtime = await bootRuntime({ service: 'gateway', schema: gatewayEnvSchema });
const { config, logger, nats, telemetry } = runtime;

await prepareStreams(nats, config, logger);

const app = await NestFactory.create<NestExpressApplication>(AppModule.register(runtime), {
  logger: ['error', 'warn'],
});
app.useWebSocketAdapter(new SyncWsAdapter(app, config));
app.useGlobalFilters(new HttpErrorsFilter(logger));
const corsOrigins = (config.CORS_ORIGINS ?? (config.NODE_ENV === 'production' ? '' : '*'))
  .split(',')
  .map((origin) => origin.trim())
  .filter(Boolean);
if (corsOrigins.length > 0) {
  app.enableCors({
    origin: corsOrigins.includes('*') ? true : corsOrigins,
    allowedHeaders: ['authorization', 'content-type', 'last-event-id'],
    maxAge: 600,
  });
}
app.useBodyParser('json', { limit: config.MAX_HTTP_BODY_BYTES });
await app.get(StreamPositionService).load();
await app.listen(config.GATEWAY_PORT, config.GATEWAY_HOST);

const address = app.getHttpServer().address() as AddressInfo;
const host = config.GATEWAY_HOST === '0.0.0.0' ? '127.0.0.1' : config.GATEWAY_HOST;
logger.info({ url: `ws://${host}:${address.port}/ws`, httpUrl: `http://${host}:${address.port}` }, 'gateway ready');

onShutdownSignal(logger, async () => {
  await app.close();
  await nats.drain();
  await telemetry.shutdown();
});
