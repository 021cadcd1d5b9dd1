#!/usr/bin/env node
/**
 * `npm start` (after the build): one sync worker, one conflict service and one gateway on
 * GATEWAY_PORT (default 3000), with readable logs. Ctrl-C stops them gracefully.
 *
 * The worker starts first and alone: it applies migrations and creates the streams the others use.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { DEVELOPMENT_JWT_SECRET, mintToken } from './mint-token.mjs';
import { startDemoServer } from './demo-server.mjs';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;
const SERVICES = /** @type {const} */ ({
  'sync-worker': { ready: 'sync worker ready', color: 36 },
  'conflict-service': { ready: 'conflict service ready', color: 35 },
  gateway: { ready: 'gateway ready', color: 34 },
});
/** The gateway stops taking mutations first; the worker finishes its batch while conflicts still resolve. */
const STOP_ORDER = ['gateway', 'sync-worker', 'conflict-service'];
const NAME_WIDTH = Math.max(...Object.keys(SERVICES).map((name) => name.length));

const START_POSTGRES = 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start';
const START_NATS =
  'start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log';

/** Kills the child when this supervisor dies, however it dies (children run detached). */
const PARENT_WATCHDOG =
  "if (process.channel) { process.channel.unref(); process.once('disconnect', () => process.kill(process.pid, 'SIGKILL')); }";
const WATCHDOG_IMPORT = `data:text/javascript,${encodeURIComponent(PARENT_WATCHDOG)}`;

// ---------------------------------------------------------------------------------------------
// Output

const useColor = process.env.FORCE_COLOR
  ? process.env.FORCE_COLOR !== '0'
  : process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code, text) => (useColor ? `\x1b[${code}m${text}\x1b[0m` : text);
const red = (text) => paint(31, text);
const yellow = (text) => paint(33, text);
const dim = (text) => paint(2, text);
const bold = (text) => paint(1, text);

const LEVELS = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const HIDDEN_FIELDS = new Set(['level', 'time', 'pid', 'hostname', 'name', 'service', 'instance', 'msg', 'v', 'err']);
const MAX_FIELDS = 6;

function say(line) {
  process.stdout.write(`${line}\n`);
}

function prefix(name) {
  return paint(SERVICES[name]?.color ?? 37, name.padEnd(NAME_WIDTH));
}

function clock(time) {
  const date = typeof time === 'number' ? new Date(time) : new Date();
  return dim(date.toISOString().slice(11, 23));
}

function formatValue(value) {
  if (typeof value === 'string') return /^[^\s"=]{1,120}$/.test(value) ? value : JSON.stringify(value.slice(0, 200));
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/** One pino JSON line as `time service LEVEL msg key=value ...`; anything else as it is. */
function printLogLine(name, line, fromStderr) {
  let record;
  if (line.startsWith('{')) {
    try {
      record = JSON.parse(line);
    } catch {
      record = undefined;
    }
  }
  if (!record || typeof record !== 'object') {
    say(`${clock()} ${prefix(name)} ${fromStderr ? red(line) : line}`);
    return;
  }
  const level = typeof record.level === 'number' ? record.level : 30;
  const label = (LEVELS[level] ?? String(level)).padEnd(5);
  const fields = Object.entries(record).filter(([key]) => !HIDDEN_FIELDS.has(key));
  const shown = fields.slice(0, MAX_FIELDS).map(([key, value]) => `${key}=${formatValue(value)}`);
  if (fields.length > MAX_FIELDS) shown.push(`+${fields.length - MAX_FIELDS} more`);
  const err = record.err && typeof record.err === 'object' ? record.err : undefined;
  if (err) shown.unshift(`err=${formatValue(`${err.type ?? 'Error'}: ${err.message ?? ''}`)}`);
  const text = [record.msg ?? '', ...shown].join(' ');
  if (level >= 50) {
    say(`${clock(record.time)} ${prefix(name)} ${red(`${label} ${text}`)}`);
    if (typeof err?.stack === 'string')
      for (const stackLine of err.stack.split('\n').slice(1)) say(red(`      ${stackLine}`));
  } else if (level >= 40) {
    say(`${clock(record.time)} ${prefix(name)} ${yellow(label)} ${text}`);
  } else {
    say(`${clock(record.time)} ${prefix(name)} ${dim(label)} ${text}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Prerequisites

function endpoint(label, text, defaultPort) {
  try {
    const url = new URL(text);
    return {
      label,
      host: url.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
      port: Number(url.port) || defaultPort,
    };
  } catch {
    say(red(`${label} URL is not a URL: ${text}`));
    process.exit(78);
  }
}

function reachable({ host, port }, timeoutMs = 1500) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function checkPrerequisites() {
  const postgres = endpoint(
    'DATABASE_URL',
    process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    5432,
  );
  const nats = endpoint('NATS_URL', (process.env.NATS_URL ?? 'nats://127.0.0.1:4222').split(',')[0].trim(), 4222);
  const [postgresUp, natsUp] = await Promise.all([reachable(postgres), reachable(nats)]);
  if (!postgresUp)
    say(
      red(`PostgreSQL is not reachable at ${postgres.host}:${postgres.port}. Start it with:\n\n  ${START_POSTGRES}\n`),
    );
  if (!natsUp)
    say(
      red(`NATS is not reachable at ${nats.host}:${nats.port}. Start it (with JetStream) with:\n\n  ${START_NATS}\n`),
    );
  if (!postgresUp || !natsUp) process.exit(1);

  const missing = [...Object.keys(SERVICES).map((name) => `apps/${name}/dist/main.js`), 'demo/dist/app.js'].filter(
    (path) => !existsSync(new URL(`../${path}`, import.meta.url)),
  );
  if (missing.length > 0) {
    say(red(`not built: ${missing.join(', ')}; run "npm run build" (npm start builds first)`));
    process.exit(1);
  }
}

// ---------------------------------------------------------------------------------------------
// Services

/** @type {Map<string, {name: string, child: import('node:child_process').ChildProcess, running: boolean, exited: Promise<{code: number | null, signal: string | null}>, ready: Promise<Record<string, unknown>>}>} */
const services = new Map();
let stopping = false;

function startService(name, env) {
  const child = spawn(process.execPath, ['--import', WATCHDOG_IMPORT, `apps/${name}/dist/main.js`], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    // Its own process group: a terminal Ctrl-C reaches only this supervisor, which forwards one signal.
    // (A service takes a second signal as "exit now".)
    detached: true,
  });
  let markReady;
  let markFailed;
  const ready = new Promise((resolve, reject) => {
    markReady = resolve;
    markFailed = reject;
  });
  ready.catch(() => undefined);
  const service = { name, child, running: true, exited: undefined, ready };
  service.exited = new Promise((resolve) => {
    child.once('close', (code, signal) => {
      service.running = false;
      markFailed(new Error(`${name} exited (${describeExit({ code, signal })}) before it was ready`));
      resolve({ code, signal });
      if (!stopping)
        void shutdown(code && code !== 0 ? code : 1, `${name} exited unexpectedly (${describeExit({ code, signal })})`);
    });
    child.once('error', (error) => {
      say(red(`${prefix(name)} could not start: ${error.message}`));
      if (child.pid === undefined) {
        service.running = false;
        markFailed(error);
        resolve({ code: null, signal: null });
        if (!stopping) void shutdown(1, `${name} could not start`);
      }
    });
  });
  const readyMessage = SERVICES[name].ready;
  forEachLine(child.stdout, (line) => {
    printLogLine(name, line, false);
    if (line.includes(readyMessage)) {
      try {
        const record = JSON.parse(line);
        if (record.msg === readyMessage) markReady(record);
      } catch {
        // not a log record
      }
    }
  });
  forEachLine(child.stderr, (line) => printLogLine(name, line, true));
  services.set(name, service);
  return service;
}

function forEachLine(stream, onLine) {
  stream.setEncoding('utf8');
  let pending = '';
  stream.on('data', (chunk) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (line.trim() !== '') onLine(line.replace(/\r$/, ''));
  });
  stream.on('end', () => {
    if (pending.trim() !== '') onLine(pending);
  });
}

async function waitReady(service) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `${service.name} did not log "${SERVICES[service.name].ready}" within ${READY_TIMEOUT_MS / 1000} s`,
          ),
        ),
      READY_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([service.ready, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function describeExit({ code, signal }) {
  return signal ? `signal ${signal}` : `code ${code}`;
}

async function stopService(service) {
  if (!service.running) return service.exited;
  service.child.kill('SIGTERM');
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve('late'), STOP_TIMEOUT_MS);
  });
  const result = await Promise.race([service.exited, late]);
  clearTimeout(timer);
  if (result !== 'late') return result;
  say(yellow(`${service.name} did not stop within ${STOP_TIMEOUT_MS / 1000} s; killing it`));
  service.child.kill('SIGKILL');
  return service.exited;
}

let shuttingDown;
/** Stops every running service in order, then exits: with `exitCode`, or 1 if a service stopped badly. */
function shutdown(exitCode, reason) {
  if (shuttingDown) return shuttingDown;
  stopping = true;
  if (reason) say(exitCode === 0 ? dim(reason) : red(reason));
  shuttingDown = (async () => {
    let code = exitCode;
    for (const name of STOP_ORDER) {
      const service = services.get(name);
      if (!service?.running) continue;
      const result = await stopService(service);
      if (result.code !== 0 && result.signal !== 'SIGTERM') code ||= 1;
    }
    process.exit(code);
  })();
  return shuttingDown;
}

let signals = 0;
function onSignal(signal) {
  signals += 1;
  if (signals === 1) {
    void shutdown(0, `\n${signal}: stopping services (again to force)`);
    return;
  }
  say(red(`${signal} again: killing services`));
  for (const service of services.values()) if (service.running) service.child.kill('SIGKILL');
  process.exit(130);
}

// ---------------------------------------------------------------------------------------------
// Main

async function banner(gatewayReady, demoUrl, monitored) {
  const show = (url) => String(url).replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//127.0.0.1:');
  const tenant = 'acme';
  const user = 'dev';
  let token;
  try {
    token = await mintToken({ tenant, user, ttl: '12h', secret: process.env.JWT_SECRET ?? DEVELOPMENT_JWT_SECRET });
  } catch (error) {
    token = red(`(could not mint: ${error.message})`);
  }
  const rule = dim('─'.repeat(72));
  say('');
  say(rule);
  say(`  ${bold('Syncline is running')}`);
  say('');
  say(`  Demo page   ${bold(demoUrl)}   (open it in two windows)`);
  say(`  WebSocket   ${bold(show(gatewayReady.url))}`);
  say(`  HTTP        ${bold(show(gatewayReady.httpUrl))}   (/ready, /metrics, /api/v1/...)`);
  say(
    `  Monitoring  ${monitored.map((ready) => `${ready.service ?? ''} ${show(ready.monitoringUrl)}`.trim()).join(', ')}`,
  );
  say(`  Protocols   ["syncline.v1", "bearer.<token>"]`);
  say('');
  say(`  Dev token (tenant "${tenant}", user "${user}", valid 12 h):`);
  say(`  ${token}`);
  say('');
  say(`  Another one:  ${bold('npm run -s token -- --tenant acme --user alice')}`);
  say(`  Stop:         Ctrl-C`);
  say(rule);
  say('');
}

async function main() {
  await checkPrerequisites();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const env = {
    ...process.env,
    NODE_ENV: process.env.NODE_ENV ?? 'development',
    GATEWAY_PORT: process.env.GATEWAY_PORT ?? '3000',
  };
  say(dim('starting sync-worker (migrations, streams)...'));
  // On one host the services need their own monitoring ports (in containers each takes 9090).
  const workerReady = await waitReady(
    startService('sync-worker', { ...env, MONITORING_PORT: process.env.WORKER_MONITORING_PORT ?? '9091' }),
  );
  const others = [
    startService('conflict-service', { ...env, MONITORING_PORT: process.env.CONFLICT_MONITORING_PORT ?? '9092' }),
    startService('gateway', env),
  ];
  const [conflictReady, gatewayReady] = await Promise.all(others.map(waitReady));
  const demoPort = Number(process.env.DEMO_PORT ?? 3001);
  const secret = process.env.JWT_SECRET ?? DEVELOPMENT_JWT_SECRET;
  await startDemoServer({
    port: demoPort,
    host: '127.0.0.1',
    wsUrl: String(gatewayReady.url).replace('//0.0.0.0:', '//127.0.0.1:'),
    mintToken: (claims) => mintToken({ ...claims, secret }),
  });
  await banner(gatewayReady, `http://127.0.0.1:${demoPort}/`, [workerReady, conflictReady]);
}

main().catch((error) => {
  if (stopping) return; // the failure that stopped everything was already reported
  void shutdown(1, error instanceof Error ? error.message : String(error));
});
