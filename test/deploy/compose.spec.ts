import { describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { validate as lintDockerfile } from 'dockerfile-utils';
import YAML from 'yaml';
import type { z } from 'zod';
import { loadConfig } from '@syncline/platform';
import { conflictServiceEnvSchema } from '../../apps/conflict-service/src/config.js';
import { gatewayEnvSchema } from '../../apps/gateway/src/config.js';
import { syncWorkerEnvSchema } from '../../apps/sync-worker/src/config.js';

/**
 * docker-compose.yml, the Dockerfile and their configuration files, checked without a Docker
 * engine: what `docker compose config` and a build would reject, and what would only show once
 * the stack runs (a variable a service needs, a health check nobody answers, a proxy that misses a
 * gateway, two services on one host port).
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (file: string): string => readFileSync(path.join(ROOT, file), 'utf8');

// ---------------------------------------------------------------------------------------------
// Dockerfile (parsed first: the compose checks read the image's CMD and HEALTHCHECK)

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

const DOCKERFILE_TEXT = read('Dockerfile');

/** Instructions in order, continuation lines joined, comments dropped. */
function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let pending = '';
  for (const line of text.split('\n')) {
    if (/^\s*#/.test(line)) continue;
    const continued = /\\\s*$/.test(line);
    pending += `${line.replace(/\\\s*$/, '')}${continued ? ' ' : ''}`;
    if (continued) continue;
    const match = /^\s*([A-Za-z]+)\s+(.*)$/s.exec(pending);
    if (match) instructions.push({ keyword: (match[1] ?? '').toUpperCase(), args: (match[2] ?? '').trim() });
    pending = '';
  }
  return instructions;
}

const INSTRUCTIONS = parseDockerfile(DOCKERFILE_TEXT);

interface Stage {
  readonly base: string;
  readonly name: string | undefined;
  readonly instructions: Instruction[];
}

const STAGES: Stage[] = [];
for (const instruction of INSTRUCTIONS) {
  if (instruction.keyword === 'FROM') {
    const [base = '', as, name] = instruction.args.replace(/--platform=\S+\s+/, '').split(/\s+/);
    STAGES.push({ base, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
  } else {
    STAGES.at(-1)?.instructions.push(instruction);
  }
}
const RUNTIME = STAGES.at(-1);

function finalInstruction(keyword: string): Instruction | undefined {
  return RUNTIME?.instructions.filter((instruction) => instruction.keyword === keyword).at(-1);
}

function imageCommand(): readonly string[] {
  return JSON.parse(finalInstruction('CMD')?.args ?? '[]') as string[];
}

function imageHealthcheck(): readonly string[] | undefined {
  const args = finalInstruction('HEALTHCHECK')?.args;
  const command = args && /(?:^|\s)CMD\s+(\[.*\])\s*$/.exec(args)?.[1];
  return command ? ['CMD', ...(JSON.parse(command) as string[])] : undefined;
}

/** `libs/*`, `apps/*`: the workspace folders package.json names. */
function workspaces(): string[] {
  const manifest = JSON.parse(read('package.json')) as { workspaces: string[] };
  return manifest.workspaces.flatMap((pattern) => {
    const parent = pattern.replace(/\/\*$/, '');
    return readdirSync(path.join(ROOT, parent), { withFileTypes: true })
      .filter((entry) => entry.isDirectory() && existsSync(path.join(ROOT, parent, entry.name, 'package.json')))
      .map((entry) => `${parent}/${entry.name}`);
  });
}

function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let at = 0; at < glob.length; at += 1) {
    if (glob.startsWith('**/', at)) {
      source += '(?:.*/)?';
      at += 2;
    } else if (glob.startsWith('**', at)) {
      source += '.*';
      at += 1;
    } else if (glob.charAt(at) === '*') {
      source += '[^/]*';
    } else if (glob.charAt(at) === '?') {
      source += '[^/]';
    } else {
      source += glob.charAt(at).replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
  }
  return new RegExp(`^${source}$`);
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

interface Dependency {
  readonly condition?: string;
}
interface Healthcheck {
  readonly test?: string | readonly string[];
  readonly disable?: boolean;
}
interface LongPort {
  readonly target: number | string;
  readonly published?: number | string;
  readonly host_ip?: string;
  readonly protocol?: string;
}
interface LongVolume {
  readonly type: string;
  readonly source?: string;
  readonly target: string;
}
interface Service {
  readonly image?: string;
  readonly build?: string | { readonly context?: string; readonly dockerfile?: string };
  readonly command?: string | readonly string[];
  readonly environment?: Readonly<Record<string, string | number | boolean | null>> | readonly string[];
  readonly depends_on?: readonly string[] | Readonly<Record<string, Dependency>>;
  readonly healthcheck?: Healthcheck;
  readonly ports?: readonly (string | number | LongPort)[];
  readonly volumes?: readonly (string | LongVolume)[];
  readonly stop_grace_period?: string;
}
interface ComposeFile {
  readonly name?: string;
  readonly services: Readonly<Record<string, Service>>;
}

const COMPOSE_TEXT = read('docker-compose.yml');
const COMPOSE_DOCUMENT = YAML.parseDocument(COMPOSE_TEXT, { merge: true });
/** Variables the file reads without a default; filled by {@link interpolate}. */
const UNSET = new Set<string>();
/** The file as Compose sees it with an empty environment (no .env): anchors merged, variables substituted. */
const COMPOSE = interpolate(COMPOSE_DOCUMENT.toJS(), UNSET) as ComposeFile;
const SERVICES = Object.entries(COMPOSE.services);

/** Compose's variable substitution (`$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, …) with no variable set. */
function interpolate(value: unknown, unset: Set<string>): unknown {
  if (typeof value === 'string') {
    return value.replace(
      /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
      (match: string, braced?: string, operator?: string, argument?: string, bare?: string) => {
        if (match === '$$') return '$';
        const name = braced ?? bare ?? '';
        if (operator === ':-' || operator === '-') return argument ?? '';
        if (operator === ':+' || operator === '+') return '';
        unset.add(name);
        return '';
      },
    );
  }
  if (Array.isArray(value)) return value.map((item) => interpolate(item, unset));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolate(item, unset)]));
  }
  return value;
}

function service(name: string): Service {
  const found = COMPOSE.services[name];
  if (!found) throw new Error(`docker-compose.yml has no service "${name}"`);
  return found;
}

function environmentOf(entry: Service): Record<string, string> {
  const environment = entry.environment ?? {};
  if (Array.isArray(environment)) {
    return Object.fromEntries(
      (environment as readonly string[]).map((line) => {
        const at = line.indexOf('=');
        return at < 0 ? [line, ''] : [line.slice(0, at), line.slice(at + 1)];
      }),
    );
  }
  return Object.fromEntries(
    Object.entries(environment as Readonly<Record<string, string | number | boolean | null>>)
      .filter(([, value]) => value !== null)
      .map(([key, value]) => [key, String(value)]),
  );
}

function commandOf(entry: Service): readonly string[] | undefined {
  if (entry.command === undefined) return undefined;
  return typeof entry.command === 'string' ? entry.command.split(/\s+/) : entry.command;
}

function buildsThisDockerfile(entry: Service): boolean {
  if (entry.build === undefined) return false;
  const build = typeof entry.build === 'string' ? { context: entry.build } : entry.build;
  return (
    path.resolve(ROOT, build.context ?? '.') === path.resolve(ROOT) &&
    (build.dockerfile ?? 'Dockerfile') === 'Dockerfile'
  );
}

/** The script a service built from the Dockerfile runs: its `node <file>` command, or the image's CMD. */
function entryOf(entry: Service): string | undefined {
  if (!buildsThisDockerfile(entry)) return undefined;
  const command = commandOf(entry) ?? imageCommand();
  return command[0] === 'node' ? command[1] : undefined;
}

function dependenciesOf(entry: Service): [string, string][] {
  const dependsOn = entry.depends_on ?? [];
  if (Array.isArray(dependsOn)) return (dependsOn as readonly string[]).map((name) => [name, 'service_started']);
  return Object.entries(dependsOn as Readonly<Record<string, Dependency>>).map(([name, dependency]) => [
    name,
    dependency.condition ?? 'service_started',
  ]);
}

/** The health check a service's containers run: its own, or the HEALTHCHECK of the image it builds. */
function healthcheckOf(entry: Service): readonly string[] | undefined {
  if (entry.healthcheck?.disable === true) return undefined;
  const test = entry.healthcheck?.test;
  if (test !== undefined) {
    const list = typeof test === 'string' ? ['CMD-SHELL', test] : test;
    return list[0] === 'NONE' ? undefined : list;
  }
  return buildsThisDockerfile(entry) ? imageHealthcheck() : undefined;
}

function durationSeconds(text: string): number {
  const units: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 0.001, us: 0.000001 };
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d+)?)(h|ms|us|m|s)/g)) {
    total += Number(amount) * (units[unit ?? 's'] ?? 0);
  }
  return total;
}

interface PublishedPort {
  readonly service: string;
  readonly hostIp: string;
  readonly published: string;
  readonly target: string;
  readonly protocol: string;
}

function publishedPorts(): PublishedPort[] {
  return SERVICES.flatMap(([name, entry]) =>
    (entry.ports ?? []).flatMap((port): PublishedPort[] => {
      if (typeof port === 'object') {
        if (port.published === undefined) return [];
        return [
          {
            service: name,
            hostIp: port.host_ip ?? '',
            published: String(port.published),
            target: String(port.target),
            protocol: port.protocol ?? 'tcp',
          },
        ];
      }
      const [mapping = '', protocol = 'tcp'] = String(port).split('/');
      const parts = mapping.split(':');
      if (parts.length < 2) return []; // container port only: nothing published on the host
      const target = parts.pop() ?? '';
      const published = parts.pop() ?? '';
      return [{ service: name, hostIp: parts.join(':'), published, target, protocol }];
    }),
  );
}

/** Bind mounts as [host path, container path]. */
function bindMountsOf(entry: Service): [string, string][] {
  return (entry.volumes ?? []).flatMap((volume): [string, string][] => {
    if (typeof volume === 'object') {
      return volume.type === 'bind' && volume.source ? [[volume.source, volume.target]] : [];
    }
    const [source = '', target = ''] = volume.split(':');
    return source.startsWith('.') || source.startsWith('/') ? [[source, target]] : [];
  });
}

function mountedFile(name: string, file: string): string {
  const mount = bindMountsOf(service(name)).find(([source]) => path.resolve(ROOT, source) === path.resolve(ROOT, file));
  if (!mount) throw new Error(`service "${name}" does not mount ${file}`);
  return mount[1];
}

const ENTRY_POINTS: Readonly<Record<string, { readonly schema: z.ZodType; readonly needs: readonly string[] }>> = {
  'apps/gateway/dist/main.js': { schema: gatewayEnvSchema, needs: ['JWT_SECRET', 'GATEWAY_PORT'] },
  'apps/sync-worker/dist/main.js': {
    schema: syncWorkerEnvSchema,
    needs: ['DATABASE_URL', 'MONITORING_PORT', 'MIGRATE_ON_BOOT'],
  },
  'apps/conflict-service/dist/main.js': {
    schema: conflictServiceEnvSchema,
    needs: ['DATABASE_URL', 'MONITORING_PORT'],
  },
};
/** Set on every Syncline service, even where the default would do: the stack does not depend on defaults. */
const EVERY_SERVICE_NEEDS = [
  'NODE_ENV',
  'NATS_URL',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'LOG_LEVEL',
  'INSTANCE_ID',
  'STREAM_REPLICAS',
  'HEALTH_PORT',
];

const synclineServices = SERVICES.filter(([, entry]) => (entryOf(entry) ?? '') in ENTRY_POINTS);
const servicesRunning = (entry: string) => SERVICES.filter(([, candidate]) => entryOf(candidate) === entry);
const servicesWithImage = (prefix: string) => SERVICES.filter(([, entry]) => entry.image?.startsWith(prefix));

/** The part of every service's configuration these checks read. */
interface CommonConfig {
  readonly NODE_ENV: string;
  readonly NATS_URL: readonly string[];
  readonly OTEL_EXPORTER_OTLP_ENDPOINT?: string;
  readonly STREAM_REPLICAS: number;
  readonly INSTANCE_ID?: string;
  readonly DATABASE_URL?: string;
}

describe('docker-compose.yml', () => {
  it('is a Compose file the Compose Specification schema accepts', () => {
    expect(COMPOSE_DOCUMENT.errors.map(String)).toEqual([]);
    expect(COMPOSE_DOCUMENT.warnings.map(String)).toEqual([]);
    // The current compose-spec schema, as dclint ships it (Compose validates files against the same schema).
    const require = createRequire(import.meta.url);
    const schemaFile = path.join(path.dirname(require.resolve('dclint/package.json')), 'schemas/compose.schema.json');
    // Its `$schema` names draft-07 by an https URL that Ajv does not know; Ajv's default is draft-07.
    const { $schema: _draft, ...schema } = JSON.parse(readFileSync(schemaFile, 'utf8')) as Record<string, unknown>;
    // Unknown keywords still fail; the upstream schema does not meet Ajv's stricter type rules.
    const ajv = new Ajv({ allErrors: true, strictTypes: false, strictTuples: false });
    const validate = ajv.compile(schema);
    const problems = (document: unknown) =>
      validate(document) ? [] : (validate.errors ?? []).map((error) => `${error.instancePath} ${error.message ?? ''}`);
    expect(problems(COMPOSE)).toEqual([]);
    // The validator does reject what Compose rejects.
    expect(
      problems({ ...COMPOSE, services: { ...COMPOSE.services, extra: { image: 'x', restart_policy: 'always' } } }),
    ).toEqual(['/services/extra must NOT have additional properties']);
  });

  it('is a Compose Specification file: no obsolete `version`, a project name', () => {
    expect(Object.keys(COMPOSE)).not.toContain('version');
    expect(COMPOSE.name).toBe('syncline');
  });

  it('comes up without a .env file: every variable it reads has a default', () => {
    expect([...UNSET]).toEqual([]);
  });

  it('publishes every host port once, on loopback unless PUBLISH_ADDRESS says otherwise', () => {
    const ports = publishedPorts();
    expect(ports.length).toBeGreaterThan(0);
    const keys = ports.map((port) => `${port.published}/${port.protocol}`);
    expect(keys.filter((key, index) => keys.indexOf(key) !== index)).toEqual([]);
    for (const port of ports)
      expect({ service: port.service, hostIp: port.hostIp }).toEqual({ service: port.service, hostIp: '127.0.0.1' });
    expect(COMPOSE_TEXT).toMatch(/\$\{PUBLISH_ADDRESS:-127\.0\.0\.1\}/);
  });

  it('mounts only files that exist', () => {
    const mounts = SERVICES.flatMap(([, entry]) => bindMountsOf(entry)).map(([source]) => source);
    expect(mounts.length).toBeGreaterThan(0);
    expect(mounts.filter((source) => !existsSync(path.resolve(ROOT, source)))).toEqual([]);
  });

  it('waits only for dependencies that report their health, without a cycle', () => {
    const waits = SERVICES.flatMap(([name, entry]) =>
      dependenciesOf(entry).map(([target, condition]) => ({ name, target, condition })),
    );
    expect(waits.filter(({ target }) => !(target in COMPOSE.services))).toEqual([]);
    const blind = waits
      .filter(({ condition }) => condition === 'service_healthy')
      .filter(({ target }) => healthcheckOf(service(target)) === undefined);
    expect(blind).toEqual([]);

    // Compose refuses circular dependencies: a topological order must exist.
    const placed = new Set<string>();
    let progress = true;
    while (progress) {
      progress = false;
      for (const [name, entry] of SERVICES) {
        if (!placed.has(name) && dependenciesOf(entry).every(([target]) => placed.has(target))) {
          placed.add(name);
          progress = true;
        }
      }
    }
    expect(SERVICES.map(([name]) => name).filter((name) => !placed.has(name))).toEqual([]);
  });

  it('starts the sync worker first: the others wait until it has migrated and created the streams', () => {
    const [[workerName, worker] = ['', {}]] = servicesRunning('apps/sync-worker/dist/main.js');
    expect(workerName).not.toBe('');
    expect(environmentOf(worker).MIGRATE_ON_BOOT).toBe('true');
    for (const [name, entry] of [
      ...servicesRunning('apps/gateway/dist/main.js'),
      ...servicesRunning('apps/conflict-service/dist/main.js'),
    ]) {
      expect({ name, dependencies: dependenciesOf(entry) }).toEqual({
        name,
        dependencies: expect.arrayContaining([[workerName, 'service_healthy']]),
      });
    }
    // The worker finishes and commits its batch on SIGTERM.
    expect(durationSeconds(worker.stop_grace_period ?? '10s')).toBeGreaterThanOrEqual(45);
  });

  it('gives every Syncline service the configuration it needs, and that configuration boots', () => {
    expect(synclineServices.map(([, entry]) => entryOf(entry)).sort()).toEqual(
      expect.arrayContaining(Object.keys(ENTRY_POINTS).sort()),
    );
    const [[natsName, nats] = ['', {}]] = servicesWithImage('nats:');
    const [[postgresName, postgres] = ['', {}]] = servicesWithImage('postgres:');
    const [[collectorName] = ['']] = servicesWithImage('otel/opentelemetry-collector');
    const postgresEnv = environmentOf(postgres);
    const instanceIds: string[] = [];

    for (const [name, entry] of synclineServices) {
      const entryPoint = ENTRY_POINTS[entryOf(entry) ?? ''];
      if (!entryPoint) continue;
      const env = environmentOf(entry);
      const missing = [...EVERY_SERVICE_NEEDS, ...entryPoint.needs].filter((key) => !env[key]);
      expect({ name, missing }).toEqual({ name, missing: [] });

      // The service's own schema, as at boot: a bad or missing value would stop it with exit code 78.
      const config = loadConfig(entryPoint.schema, env) as CommonConfig;
      expect({ name, NODE_ENV: config.NODE_ENV }).toEqual({ name, NODE_ENV: 'production' });
      expect(config.NATS_URL.map((url) => new URL(url).host)).toEqual([`${natsName}:4222`]);
      expect(new URL(config.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'http://unset').host).toBe(
        `${collectorName}:${collectorOtlpHttpPort()}`,
      );
      // One NATS server: a stream cannot have more replicas than there are servers.
      expect(config.STREAM_REPLICAS).toBe(1);
      instanceIds.push(config.INSTANCE_ID ?? '');

      // The image's HEALTHCHECK asks HEALTH_PORT: the port the service serves /health on.
      expect({ name, HEALTH_PORT: env.HEALTH_PORT }).toEqual({
        name,
        HEALTH_PORT: env.GATEWAY_PORT ?? env.MONITORING_PORT,
      });

      if (env.DATABASE_URL !== undefined) {
        const url = new URL(env.DATABASE_URL);
        expect({
          host: url.host,
          user: decodeURIComponent(url.username),
          password: decodeURIComponent(url.password),
          database: url.pathname.slice(1),
        }).toEqual({
          host: `${postgresName}:5432`,
          user: postgresEnv.POSTGRES_USER,
          password: postgresEnv.POSTGRES_PASSWORD,
          database: postgresEnv.POSTGRES_DB,
        });
      }
    }
    expect(instanceIds.filter((id, index) => instanceIds.indexOf(id) !== index)).toEqual([]);
    expect(commandOf(nats)).toEqual(expect.arrayContaining(['-js', '-sd']));
  });

  it('puts two gateways behind the proxy, which balances WebSockets and streams SSE unbuffered', () => {
    const gateways = servicesRunning('apps/gateway/dist/main.js');
    expect(gateways.length).toBeGreaterThanOrEqual(2);
    const [[proxyName, proxy] = ['', {}]] = servicesWithImage('caddy:');
    expect(mountedFile(proxyName, 'deploy/compose/Caddyfile')).toBe('/etc/caddy/Caddyfile');

    const caddyfile = read('deploy/compose/Caddyfile');
    const upstreams = [...caddyfile.matchAll(/^\s*to\s+(.+)$/gm)].flatMap((match) =>
      (match[1] ?? '').trim().split(/\s+/),
    );
    expect(upstreams.sort()).toEqual(
      gateways.map(([name, entry]) => `${name}:${environmentOf(entry).GATEWAY_PORT}`).sort(),
    );
    // Every reverse_proxy takes the same upstreams and their health checks.
    const proxies = caddyfile.match(/reverse_proxy\s*\{[^}]*\}/g) ?? [];
    expect(proxies.length).toBeGreaterThan(0);
    for (const block of proxies) expect(block).toMatch(/import gateways/);
    expect(caddyfile).toMatch(/health_uri \/ready/);
    expect(caddyfile).toMatch(
      /handle \/api\/v1\/sync\/events \{\s*reverse_proxy \{\s*import gateways\s*flush_interval -1/,
    );

    // The site listens on the container port the proxy publishes.
    const published = publishedPorts().filter((port) => port.service === proxyName);
    expect(published.map((port) => port.target)).toEqual(
      expect.arrayContaining([...caddyfile.matchAll(/^:(\d+) \{/gm)].map((match) => match[1])),
    );
    expect(dependenciesOf(proxy)).toEqual(
      expect.arrayContaining(gateways.map(([name]): [string, string] => [name, 'service_healthy'])),
    );
  });

  it('serves the demo page with the gateways’ secret and the proxy’s public WebSocket URL', () => {
    const [[demoName, demo] = ['', {}]] = servicesRunning('deploy/compose/demo.mjs');
    expect(demoName).not.toBe('');
    expect(existsSync(path.join(ROOT, 'deploy/compose/demo.mjs'))).toBe(true);
    const env = environmentOf(demo);
    for (const [, gateway] of servicesRunning('apps/gateway/dist/main.js')) {
      expect(env.JWT_SECRET).toBe(environmentOf(gateway).JWT_SECRET);
    }
    const wsUrl = new URL(env.DEMO_WS_URL ?? '');
    const [[proxyName] = ['']] = servicesWithImage('caddy:');
    const proxyPort = publishedPorts().find((port) => port.service === proxyName);
    expect({ protocol: wsUrl.protocol, port: wsUrl.port, path: wsUrl.pathname }).toEqual({
      protocol: 'ws:',
      port: proxyPort?.published,
      path: '/ws',
    });
    expect(publishedPorts().find((port) => port.service === demoName)?.target).toBe(env.DEMO_PORT);
  });
});

// ---------------------------------------------------------------------------------------------
// deploy/compose/otel-collector.yaml

interface CollectorConfig {
  readonly receivers: Readonly<Record<string, { readonly protocols?: Record<string, { readonly endpoint?: string }> }>>;
  readonly processors?: Readonly<Record<string, unknown>>;
  readonly exporters: Readonly<Record<string, { readonly endpoint?: string } | null>>;
  readonly service: {
    readonly pipelines: Readonly<
      Record<string, { readonly receivers: string[]; readonly processors?: string[]; readonly exporters: string[] }>
    >;
  };
}

const COLLECTOR = YAML.parse(read('deploy/compose/otel-collector.yaml')) as CollectorConfig;

function collectorOtlpHttpPort(): string {
  const endpoint = COLLECTOR.receivers.otlp?.protocols?.http?.endpoint ?? '';
  return endpoint.split(':').pop() ?? '';
}

describe('deploy/compose/otel-collector.yaml', () => {
  it('is the configuration the collector service starts with', () => {
    const [[collectorName, collector] = ['', {}]] = servicesWithImage('otel/opentelemetry-collector');
    const target = mountedFile(collectorName, 'deploy/compose/otel-collector.yaml');
    expect(commandOf(collector)).toEqual([`--config=${target}`]);
  });

  it('receives OTLP over HTTP from the other containers', () => {
    // The collector's default is localhost, which no other container reaches.
    expect(COLLECTOR.receivers.otlp?.protocols?.http?.endpoint).toMatch(/^0\.0\.0\.0:\d+$/);
  });

  it('builds its pipelines from components it defines', () => {
    const undefinedComponents = Object.entries(COLLECTOR.service.pipelines).flatMap(([name, pipeline]) => [
      ...pipeline.receivers.filter((id) => !(id in COLLECTOR.receivers)).map((id) => `${name}: receiver ${id}`),
      ...(pipeline.processors ?? [])
        .filter((id) => !(id in (COLLECTOR.processors ?? {})))
        .map((id) => `${name}: processor ${id}`),
      ...pipeline.exporters.filter((id) => !(id in COLLECTOR.exporters)).map((id) => `${name}: exporter ${id}`),
    ]);
    expect(undefinedComponents).toEqual([]);
    // The services export metrics too: without a metrics pipeline every export would fail.
    expect(Object.keys(COLLECTOR.service.pipelines).sort()).toEqual(['metrics', 'traces']);
  });

  it('batches traces and sends them to Jaeger over OTLP', () => {
    const traces = COLLECTOR.service.pipelines.traces;
    expect(traces?.processors).toContain('batch');
    const [[jaegerName, jaeger] = ['', {}]] = servicesWithImage('jaegertracing/');
    const exporters = (traces?.exporters ?? []).map((id) => ({ id, endpoint: COLLECTOR.exporters[id]?.endpoint }));
    expect(exporters).toEqual([{ id: expect.stringMatching(/^otlp_grpc(\/|$)/), endpoint: `${jaegerName}:4317` }]);
    expect((jaeger.ports ?? []).map(String).some((port) => port.endsWith(':16686:16686'))).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Dockerfile

describe('Dockerfile', () => {
  it('has no instruction a build would reject', () => {
    expect(
      lintDockerfile(DOCKERFILE_TEXT).map((problem) => `line ${problem.range.start.line + 1}: ${problem.message}`),
    ).toEqual([]);
  });

  it('builds in stages on one Node LTS image, pinned by major', () => {
    expect(STAGES.length).toBeGreaterThanOrEqual(2);
    const names = new Set(STAGES.map((stage) => stage.name));
    const external = STAGES.map((stage) => stage.base).filter((base) => !names.has(base));
    // Build and runtime on the same Node and libc: native modules installed in one run in the other.
    expect(new Set(external).size).toBe(1);
    expect(external[0]).toMatch(/^node:\d*[02468]-[a-z]+-slim$/);
  });

  it('installs with the lock through `npm install`, never `npm ci`', () => {
    const runs = INSTRUCTIONS.filter((instruction) => instruction.keyword === 'RUN').map((run) => run.args);
    expect(runs.filter((run) => /\bnpm\s+ci\b/.test(run))).toEqual([]);
    expect(DOCKERFILE_TEXT).not.toMatch(/^\s*RUN\b.*\bnpm\s+ci\b/m);
    const installs = runs.filter((run) => /\bnpm\s+install\b/.test(run));
    expect(installs.length).toBeGreaterThan(0);
    for (const install of installs) expect(install).toMatch(/--no-audit\b.*--no-fund\b|--no-fund\b.*--no-audit\b/);
    expect(installs.some((install) => /--omit=dev\b/.test(install))).toBe(true);
    expect(runs.some((run) => /\bnpm\s+run\s+build\b/.test(run))).toBe(true);
  });

  it('copies every workspace manifest before installing, so that npm links them all', () => {
    const first = STAGES[0]?.instructions ?? [];
    const install = first.findIndex(
      (instruction) => instruction.keyword === 'RUN' && /\bnpm\s+install\b/.test(instruction.args),
    );
    const copied = first
      .slice(0, install)
      .filter((instruction) => instruction.keyword === 'COPY')
      .flatMap((instruction) => instruction.args.split(/\s+/).slice(0, -1));
    expect(copied).toEqual(expect.arrayContaining(['package.json', 'package-lock.json']));
    expect(workspaces().length).toBeGreaterThan(0);
    expect(workspaces().filter((workspace) => !copied.includes(`${workspace}/package.json`))).toEqual([]);
  });

  it('puts every script docker-compose.yml runs into the runtime image', () => {
    const assemble = STAGES.flatMap((stage) => stage.instructions).find(
      (instruction) => instruction.keyword === 'RUN' && /\bcp -a --parents\b/.test(instruction.args),
    );
    const shipped = (assemble?.args.split(/\bcp -a --parents\b/)[1] ?? '').trim().split(/\s+/).slice(0, -1);
    const inImage = (file: string) =>
      shipped.some((pattern) => {
        const regexp = globToRegExp(pattern);
        const parts = file.split('/');
        return parts.some((_, index) => regexp.test(parts.slice(0, index + 1).join('/')));
      });
    const entries = [...new Set(SERVICES.map(([, entry]) => entryOf(entry)).filter((entry) => entry !== undefined))];
    expect(entries.length).toBeGreaterThan(0);
    expect(entries.filter((entry) => !inImage(entry))).toEqual([]);
    // Workspace links in node_modules/@syncline/ resolve through each package's manifest.
    expect(inImage('libs/platform/package.json') && inImage('libs/platform/dist/index.js')).toBe(true);
    expect(RUNTIME?.instructions.some((i) => i.keyword === 'COPY' && /--from=\S+\s+\S*node_modules/.test(i.args))).toBe(
      true,
    );
  });

  it('runs as a non-root user, stops on SIGTERM, checks its health, and starts the gateway by default', () => {
    const user = finalInstruction('USER')?.args ?? 'root';
    expect(user.split(':')[0]).not.toMatch(/^(root|0)$/);
    expect(user).toMatch(/^10001(:10001)?$/);
    expect(finalInstruction('STOPSIGNAL')?.args).toBe('SIGTERM');
    expect(RUNTIME?.instructions.some((i) => i.keyword === 'ENV' && /\bNODE_ENV=production\b/.test(i.args))).toBe(true);

    const healthcheck = imageHealthcheck();
    expect(healthcheck?.slice(0, 3)).toEqual(['CMD', 'node', '-e']);
    // Every service says where its /health is; the image's default is the gateway's port.
    expect(healthcheck?.[3]).toMatch(/process\.env\.HEALTH_PORT.*\/health/);
    expect(RUNTIME?.instructions.some((i) => i.keyword === 'ENV' && /\bHEALTH_PORT=3000\b/.test(i.args))).toBe(true);
    expect(imageCommand()).toEqual(['node', 'apps/gateway/dist/main.js']);
  });
});

// ---------------------------------------------------------------------------------------------
// .dockerignore

describe('.dockerignore', () => {
  const patterns = read('.dockerignore')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));

  /** Docker's rule: the last matching pattern decides; a pattern that matches a folder covers what is in it. */
  const ignored = (file: string) => {
    const parts = file.split('/');
    let result = false;
    for (const pattern of patterns) {
      const negated = pattern.startsWith('!');
      const regexp = globToRegExp(pattern.replace(/^!/, '').replace(/^\/|\/$/g, ''));
      if (parts.some((_, index) => regexp.test(parts.slice(0, index + 1).join('/')))) result = !negated;
    }
    return result;
  };

  it('keeps host installs and build output out of the build context', () => {
    for (const file of [
      'node_modules/yaml/package.json',
      'libs/platform/node_modules/x/index.js',
      'libs/platform/dist/index.js',
      'demo/dist/app.js',
      'apps/gateway/dist/.tsbuildinfo',
      '.git/HEAD',
      'coverage/lcov.info',
      'test-output/browser/a.png',
      '.bench/report.json',
    ]) {
      expect({ file, ignored: ignored(file) }).toEqual({ file, ignored: true });
    }
  });

  it('keeps everything the Dockerfile copies', () => {
    const sources = INSTRUCTIONS.filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
      .map((source) => source.replace(/\/$/, ''));
    expect(sources.length).toBeGreaterThan(0);
    const needed = [
      ...sources,
      'libs/platform/src/index.ts',
      'apps/gateway/src/main.ts',
      'scripts/build-browser.mjs',
      'demo/src/main.tsx',
      'demo/index.html',
    ];
    expect(needed.filter((file) => ignored(file))).toEqual([]);
  });
});
