import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { z } from 'zod';

/** Where a service without an HTTP API of its own serves its probes and metrics. */
export const monitoringEnvSchema = z.object({
  /** `/health`, `/ready` and `/metrics`; 0 picks a free port (the ready log line names it). */
  MONITORING_PORT: z.coerce.number().int().min(0).max(65535).default(9090),
  MONITORING_HOST: z.string().default('0.0.0.0'),
});
export type MonitoringConfig = z.infer<typeof monitoringEnvSchema>;

/** A dependency's state: `ok`, or what is wrong. */
export type Check = string;
export type ReadinessChecks = Record<string, () => Promise<unknown>>;

/** How long readiness waits for each dependency: probes must answer quickly. */
const CHECK_TIMEOUT_MS = 2000;

/** A Prometheus registry with the process metrics, prefixed by service (`syncline_sync_worker_…`). */
export function createMetricsRegistry(service: string, instanceId: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ instance: instanceId });
  collectDefaultMetrics({ register: registry, prefix: `syncline_${service.replaceAll('-', '_')}_` });
  return registry;
}

export interface MonitoringServer {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * A small HTTP server for orchestrators and Prometheus: `/health` (the process answers),
 * `/ready` (every check passes within 2 s; the body names each dependency's state) and
 * `/metrics`. Plain `node:http`: it must keep answering whatever the application is doing.
 */
export async function startMonitoring(options: {
  readonly config: MonitoringConfig;
  readonly registry: Registry;
  readonly checks: ReadinessChecks;
}): Promise<MonitoringServer> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    const reply = (status: number, type: string, body: string) =>
      response.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
    if (request.method !== 'GET') return reply(405, 'application/json', '{"code":"NOT_FOUND","message":"GET only"}');
    if (path === '/health') return reply(200, 'application/json', '{"status":"ok"}');
    if (path === '/ready') {
      void readiness(options.checks).then(({ ready, checks }) =>
        reply(ready ? 200 : 503, 'application/json', JSON.stringify({ status: ready ? 'ready' : 'not ready', checks })),
      );
      return;
    }
    if (path === '/metrics') {
      void options.registry.metrics().then(
        (body) => reply(200, options.registry.contentType, body),
        (error: unknown) => reply(500, 'text/plain', String(error)),
      );
      return;
    }
    reply(404, 'application/json', '{"code":"NOT_FOUND","message":"no such route"}');
  });
  await listen(server, options.config.MONITORING_PORT, options.config.MONITORING_HOST);
  const { port } = server.address() as AddressInfo;
  const host = options.config.MONITORING_HOST === '0.0.0.0' ? '127.0.0.1' : options.config.MONITORING_HOST;
  return {
    url: `http://${host}:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function readiness(checks: ReadinessChecks): Promise<{ ready: boolean; checks: Record<string, Check> }> {
  const names = Object.keys(checks);
  const states = await Promise.all(names.map((name) => runCheck(checks[name] as () => Promise<unknown>)));
  return {
    ready: states.every((state) => state === 'ok'),
    checks: Object.fromEntries(names.map((n, i) => [n, states[i] as Check])),
  };
}

async function runCheck(check: () => Promise<unknown>): Promise<Check> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
  });
  try {
    await Promise.race([check(), timeout]);
    return 'ok';
  } catch (error) {
    return (error as Error).message || 'failed';
  } finally {
    clearTimeout(timer);
  }
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
