import type { z } from 'zod';
import { ConfigError, loadConfig, type CommonConfig } from './config.js';
import { randomInstanceId } from './instance.js';
import { createLogger } from './logger.js';
import { connectNats } from './nats.js';
import type { Runtime } from './nest.js';
import { initTelemetry, type TelemetryOptions } from './telemetry.js';

export interface BootOptions<S extends z.ZodType<CommonConfig>> {
  readonly service: string;
  readonly schema: S;
  readonly env?: NodeJS.ProcessEnv;
  readonly telemetry?: Partial<TelemetryOptions>;
}

/**
 * The first steps of every service: validated configuration (a bad value stops here, named),
 * logger, telemetry, NATS. What a service needs beyond that, it adds itself.
 */
export async function bootRuntime<S extends z.ZodType<CommonConfig>>(
  options: BootOptions<S>,
): Promise<Runtime<z.infer<S>>> {
  const config = loadOrExit(options.service, options.schema, options.env);
  const instanceId = config.INSTANCE_ID ?? randomInstanceId(options.service);
  const logger = createLogger(options.service, config.LOG_LEVEL, instanceId);
  const telemetry = initTelemetry({
    serviceName: options.service,
    instanceId,
    otlpEndpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT,
    metricExportIntervalMs: config.OTEL_METRIC_EXPORT_INTERVAL,
    ...options.telemetry,
  });
  const nats = await connectNats({ servers: config.NATS_URL, name: instanceId });
  logger.info({ nats: nats.getServer() }, 'connected to NATS');
  return { config: { ...config, INSTANCE_ID: instanceId }, logger, telemetry, nats };
}

// Exit code 78 (EX_CONFIG): the process supervisor should not restart into the same mistake.
function loadOrExit<S extends z.ZodType<CommonConfig>>(
  service: string,
  schema: S,
  env?: NodeJS.ProcessEnv,
): z.infer<S> {
  try {
    return loadConfig(schema, env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${service}: ${error.message}\n`);
    process.exit(78);
  }
}
