#!/usr/bin/env node
// End-to-end benchmark of Syncline on this machine (`npm run bench`).
//
// Starts a private deployment (fresh PostgreSQL database, fresh JetStream streams, namespace of
// its own): one sync worker, one conflict service, two gateways. Then measures, open loop:
//   1. floor      bare JetStream publish → ordered consumer round trip, 1,000 msg/s
//   2. e2e        WebSocket mutate → delta at every other subscribed client, 1,000 mutations/s,
//                 8 writers + 8 readers over the two gateways
//   3. ladder     2k…8k mutations/s with 4 writers + 2 readers: latency, accepted and persisted rates,
//                 the worker's batches, and CPU per persisted mutation per process
//   4. fan-out    one gateway, 10,000 idle sockets subscribed to one type (bench/light-receiver.mjs):
//                 memory per socket, deliveries per second, CPU per delivery
// The report is printed and written to .bench/report.json; service logs go to .bench/logs/.
//
// Flags: --quick (3 s windows, ladder 2k/4k), --rates 1000,3000 (ladder rates),
//        --entities owned|shared (owned, the default: the 1,000 ids are split among the writers, so
//        each entity has one author and no mutation is concurrent; shared: every writer picks any
//        of the 1,000 ids, and since every mutation is made on baseVersion 0 with only its
//        author's vector clock, nearly all of them take the conflict-resolution path),
//        --profile (V8 CPU profiles of the services in .bench/profiles/, for diagnosis only).
import { execFileSync, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import pg from 'pg';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { measureFanout } from './fanout.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = dirname(here);
const benchDir = join(root, '.bench');
const logDir = join(benchDir, 'logs');

const NATS_URL = 'nats://127.0.0.1:4222';
const PG_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const JWT_SECRET = 'syncline-development-secret-change-me-0123456789';
const P99_TARGET_MS = 50;
const PERSISTED_TARGET = 0.95;

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const hex = (bytes) => randomBytes(bytes).toString('hex');

// ---------------------------------------------------------------------------------------------
// Options

function parseArgs(argv) {
  const options = { quick: false, rates: undefined, entities: 'owned', profile: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [name, inline] = arg.split('=', 2);
    const value = () => inline ?? argv[++i];
    if (name === '--quick') options.quick = true;
    else if (name === '--rates') options.rates = value();
    else if (name === '--entities') options.entities = value();
    else if (name === '--profile') options.profile = true;
    else if (name === '--help' || name === '-h') {
      console.log('usage: node bench/run.mjs [--quick] [--rates 2000,4000] [--entities owned|shared] [--profile]');
      process.exit(0);
    } else {
      console.error(`unknown argument ${arg}`);
      process.exit(2);
    }
  }
  if (options.rates !== undefined) {
    const rates = String(options.rates)
      .split(',')
      .map((r) => Number(r.trim()))
      .filter((r) => r > 0);
    if (rates.length === 0 || rates.some((r) => !Number.isFinite(r))) {
      console.error(`--rates needs positive numbers, got "${options.rates}"`);
      process.exit(2);
    }
    options.rates = rates;
  }
  if (!['shared', 'owned'].includes(options.entities)) {
    console.error('--entities is shared or owned');
    process.exit(2);
  }
  return options;
}

const options = parseArgs(process.argv.slice(2));
const plan = options.quick
  ? {
      floor: { rate: 1000, warmMs: 1000, durMs: 3000 },
      e2e: { rate: 1000, warmMs: 1000, durMs: 3000, writers: 8, readers: 8 },
      ladder: { rates: options.rates ?? [2000, 4000], warmMs: 1000, durMs: 3000, writers: 4, readers: 2 },
      fanout: { sockets: 2000, rate: 12, seconds: 3 },
    }
  : {
      floor: { rate: 1000, warmMs: 2000, durMs: 10_000 },
      // Services just started run their first seconds of load slowly (most likely code the JIT has
      // not optimized yet): about 4 s here, in which the worker's queue grows to a second. The
      // window measures the steady state after it; the report's per-second timeline shows more.
      e2e: { rate: 1000, warmMs: 8000, durMs: 10_000, writers: 8, readers: 8 },
      // Each step up starts with a backlog while the worker's batches grow to the new rate.
      ladder: { rates: options.rates ?? [2000, 4000, 6000, 8000], warmMs: 3000, durMs: 6000, writers: 4, readers: 2 },
      // One gateway, many idle sockets subscribed to one type, every mutation delivered to each.
      fanout: { sockets: 10_000, rate: 12, seconds: 10 },
    };
const ENTITY_COUNT = 1000;
const DRAIN_MS = 10_000;
/** Foreign CPU (other processes of the machine) above this share of one core marks a window as disturbed. */
const DISTURBED_PCT = 10;
const QUIET_PCT = 15;
const QUIET_BUDGET_MS = 60_000;

// ---------------------------------------------------------------------------------------------
// Resources this run creates, and their cleanup (also on errors and SIGINT)

const run = {
  tag: hex(4),
  dbName: `syncline_bench_${hex(6)}`,
  namespace: `b${hex(6)}`,
  mutationsStream: `BMUT_${hex(6)}`,
  changesStream: `BCHG_${hex(6)}`,
};
const services = [];
const clientProcs = [];
let dbCreated = false;
let nc;
let jsm;
let db;
let floorStream;
let cleaning;

function log(message) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 23)}] ${message}\n`);
}

function alive(child) {
  return child.exitCode === null && child.signalCode === null;
}

async function stopChild(child, exited) {
  if (!alive(child)) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (alive(child)) child.kill('SIGKILL');
  }, 5000);
  await exited;
  clearTimeout(timer);
}

function cleanup() {
  cleaning ??= (async () => {
    for (const { child, rpc } of clientProcs) {
      if (alive(child)) await Promise.race([rpc('shutdown').catch(() => undefined), sleep(3000)]);
    }
    await Promise.all(clientProcs.map(({ child, exited }) => stopChild(child, exited)));
    // Services shut down gracefully on SIGTERM (SIGKILL after 5 s), in dependency order: the
    // gateways stop taking mutations, the worker finishes its batch, then the conflict service goes.
    for (const app of ['gateway', 'sync-worker', 'conflict-service']) {
      await Promise.all(services.filter((s) => s.app === app).map(({ child, exited }) => stopChild(child, exited)));
    }
    await db?.end().catch(() => undefined);
    if (jsm) {
      for (const stream of [run.mutationsStream, run.changesStream, floorStream]) {
        if (stream) await jsm.streams.delete(stream).catch(() => undefined);
      }
    }
    await nc?.close().catch(() => undefined);
    if (dbCreated) {
      const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
      try {
        await admin.connect();
        await admin.query(`DROP DATABASE IF EXISTS ${run.dbName} WITH (FORCE)`);
      } catch (error) {
        log(`could not drop database ${run.dbName}: ${error.message}`);
      } finally {
        await admin.end().catch(() => undefined);
      }
    }
  })();
  return cleaning;
}

let aborting = false;
async function abort(reason, code = 1) {
  if (aborting) return;
  aborting = true;
  log(`aborting: ${reason}`);
  await cleanup().catch((error) => log(`cleanup failed: ${error.message}`));
  process.exit(code);
}

process.on('SIGINT', () => void abort('interrupted (SIGINT)', 130));
process.on('SIGTERM', () => void abort('terminated (SIGTERM)', 143));
process.on('uncaughtException', (error) => void abort(error.stack ?? String(error)));
process.on('unhandledRejection', (error) => void abort(error?.stack ?? String(error)));
// Last resort if we exit without cleanup having finished: no child survives us.
process.on('exit', () => {
  for (const { child } of [...services, ...clientProcs]) if (alive(child)) child.kill('SIGKILL');
});

// ---------------------------------------------------------------------------------------------
// Services

const LEVELS = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

function startService(app, instanceId, readyMsg, extraEnv = {}) {
  const env = { ...process.env };
  for (const key of ['OTEL_EXPORTER_OTLP_ENDPOINT', 'NODE_OPTIONS', 'JWT_ISSUER', 'JWT_AUDIENCE']) delete env[key];
  Object.assign(env, {
    NODE_ENV: 'development',
    NATS_URL,
    DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${run.dbName}`,
    SYNC_NAMESPACE: run.namespace,
    MUTATIONS_STREAM: run.mutationsStream,
    CHANGES_STREAM: run.changesStream,
    INSTANCE_ID: instanceId,
    GATEWAY_PORT: '0',
    GATEWAY_HOST: '127.0.0.1',
    MONITORING_PORT: '0',
    MONITORING_HOST: '127.0.0.1',
    JWT_SECRET,
    // The benchmark measures the data path at rates above the abuse limits' defaults.
    RATE_LIMIT_FRAMES_PER_SECOND: '100000',
    RATE_LIMIT_TENANT_MUTATIONS_PER_SECOND: '1000000',
    // info only so that the readiness line shows; later info lines are only written to the log file.
    LOG_LEVEL: 'info',
    ...extraEnv,
  });
  const profiling = options.profile
    ? ['--cpu-prof', `--cpu-prof-dir=${join(benchDir, 'profiles')}`, `--cpu-prof-name=${instanceId}.cpuprofile`]
    : [];
  const child = spawn(process.execPath, [...profiling, join(root, 'apps', app, 'dist', 'main.js')], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const logFile = createWriteStream(join(logDir, `${instanceId}.log`));
  const service = {
    app,
    instanceId,
    child,
    exited,
    logFile: join('.bench', 'logs', `${instanceId}.log`),
    ready: false,
    counts: {},
    samples: [],
    stderrTail: [],
  };
  let settle;
  const readyPromise = new Promise((resolve, reject) => (settle = { resolve, reject }));
  const timer = setTimeout(() => settle.reject(new Error(`${instanceId}: not ready within 60 s`)), 60_000);
  createInterface({ input: child.stdout }).on('line', (line) => {
    logFile.write(`${line}\n`);
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      entry = { level: 30, msg: line };
    }
    if (!service.ready) {
      if (entry.msg === readyMsg) {
        service.ready = true;
        clearTimeout(timer);
        settle.resolve(entry);
      }
      return;
    }
    // After readiness only what deserves attention is kept for the report.
    const level = LEVELS[entry.level] ?? String(entry.level);
    if (entry.level < 40 && !/outbox relay|redeliver|retry/i.test(entry.msg ?? '')) return;
    const key = `${level}: ${entry.msg}`;
    service.counts[key] = (service.counts[key] ?? 0) + 1;
    if (service.samples.length < 5 && entry.level >= 40) service.samples.push(line.slice(0, 600));
  });
  createInterface({ input: child.stderr }).on('line', (line) => {
    logFile.write(`[stderr] ${line}\n`);
    service.stderrTail.push(line);
    if (service.stderrTail.length > 20) service.stderrTail.shift();
  });
  child.once('exit', (code, signal) => {
    clearTimeout(timer);
    logFile.end();
    const why = `${instanceId} exited (code ${code}, signal ${signal})\n${service.stderrTail.join('\n')}`;
    if (!service.ready) settle.reject(new Error(why));
    else if (!cleaning) void abort(why);
  });
  services.push(service);
  return readyPromise;
}

// ---------------------------------------------------------------------------------------------
// Client processes

function startClientProcess(role) {
  const child = fork(join(here, 'clients.mjs'), [role], {
    cwd: root,
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const waiting = new Map();
  let nextRid = 0;
  child.on('message', (message) => {
    const waiter = waiting.get(message.rid);
    if (!waiter) return;
    waiting.delete(message.rid);
    if (message.error) waiter.reject(new Error(`${role}: ${message.error}`));
    else waiter.resolve(message.result);
  });
  child.once('exit', (code, signal) => {
    for (const waiter of waiting.values()) waiter.reject(new Error(`${role} process exited (${code ?? signal})`));
    waiting.clear();
    if (!cleaning) void abort(`${role} client process exited (${code ?? signal})`);
  });
  const rpc = (cmd, args = {}) =>
    new Promise((resolve, reject) => {
      const rid = ++nextRid;
      waiting.set(rid, { resolve, reject });
      child.send({ rid, cmd, args });
    });
  const proc = { role, child, exited, rpc };
  clientProcs.push(proc);
  return proc;
}

// ---------------------------------------------------------------------------------------------
// Statistics

function sortedOf(arrays) {
  let length = 0;
  for (const a of arrays) length += a.length;
  const all = new Float64Array(length);
  let offset = 0;
  for (const a of arrays) {
    all.set(a, offset);
    offset += a.length;
  }
  return all.sort();
}

function pct(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

function summary(sorted) {
  if (sorted.length === 0) return { samples: 0, p50: null, p99: null, p999: null, max: null, mean: null };
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    samples: sorted.length,
    p50: round(pct(sorted, 0.5)),
    p90: round(pct(sorted, 0.9)),
    p99: round(pct(sorted, 0.99)),
    p999: round(pct(sorted, 0.999)),
    max: round(sorted[sorted.length - 1]),
    mean: round(sum / sorted.length),
  };
}

/** Latency by second of the window (by send time): shows whether a tail comes from a few stalls. */
function timeline(parts, warmEnd, end) {
  const seconds = Math.ceil((end - warmEnd) / 1000);
  const buckets = Array.from({ length: seconds }, () => []);
  for (const { sentAt, latency } of parts) {
    for (let i = 0; i < latency.length; i++) {
      const b = Math.floor((sentAt[i] - warmEnd) / 1000);
      if (b >= 0 && b < seconds) buckets[b].push(latency[i]);
    }
  }
  return buckets.map((values, second) => {
    const sorted = Float64Array.from(values).sort();
    return {
      second,
      samples: sorted.length,
      p50: round(pct(sorted, 0.5), 2),
      p99: round(pct(sorted, 0.99), 2),
      max: round(sorted[sorted.length - 1] ?? null, 2),
    };
  });
}

function round(value, digits = 3) {
  if (value === null || value === undefined || !Number.isFinite(value)) return value ?? null;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc, per process of the deployment, over a measured window

const CLK_TCK = 100;

function machineTicks() {
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  return { total: f.reduce((a, b) => a + b, 0), idle: f[3] + f[4], softirq: f[5] + f[6], steal: f[7] };
}

function allProcessTicks() {
  const ticks = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks.set(Number(entry), { comm, ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // gone
    }
  }
  return ticks;
}

function cpuSnapshot() {
  return { at: now(), procs: allProcessTicks(), machine: machineTicks() };
}

/** CPU of each process of the deployment, and of anything else that ran on the machine meanwhile. */
function cpuUsage(before, after) {
  const seconds = (after.at - before.at) / 1000;
  const groupOf = new Map();
  for (const s of services) groupOf.set(s.child.pid, s.instanceId.replace(/-[0-9a-f]+$/, ''));
  for (const c of clientProcs) groupOf.set(c.child.pid, `clients-${c.role}`);
  groupOf.set(process.pid, 'bench-orchestrator');
  const perProcess = {};
  for (const name of groupOf.values()) perProcess[name] = 0;
  perProcess['nats-server'] = 0;
  perProcess.postgres = 0;
  const others = {};
  for (const [pid, { comm, ticks }] of after.procs) {
    const used = ticks - (before.procs.get(pid)?.ticks ?? 0);
    if (used <= 0) continue;
    const group = groupOf.get(pid) ?? (comm === 'nats-server' || comm === 'postgres' ? comm : undefined);
    if (group) perProcess[group] += used;
    else others[`${comm}[${pid}]`] = used;
  }
  const pctOf = (ticks) => Math.round((ticks / CLK_TCK / seconds) * 100);
  for (const name of Object.keys(perProcess)) perProcess[name] = pctOf(perProcess[name]);
  const m = (key) => after.machine[key] - before.machine[key];
  const total = m('total');
  const busy = total - m('idle');
  const otherPct = pctOf(Object.values(others).reduce((a, b) => a + b, 0));
  const attributed = Object.values(perProcess).reduce((a, b) => a + b, 0) + otherPct;
  perProcess['other processes'] = otherPct;
  // Busy time no process shows: interrupts, and processes that started and ended within the window.
  perProcess.unattributed = Math.max(0, pctOf(busy) - attributed);
  return {
    /** CPU that was not the deployment's nor the benchmark's (interrupt time excluded). */
    foreignPct: otherPct + Math.max(0, perProcess.unattributed - pctOf(m('softirq'))),
    machineBusyPct: Math.round((busy / total) * 100),
    cores: round(total / CLK_TCK / seconds, 2),
    softirqPct: pctOf(m('softirq')),
    stealPct: pctOf(m('steal')),
    perProcessPct: perProcess,
    topOtherProcesses: Object.entries(others)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([name, ticks]) => ({ process: name, pct: pctOf(ticks) })),
  };
}

/**
 * The machine has 2 cores and other work (tests, builds) may run on it. Before each window, wait
 * until the CPU used by anything but this deployment and its clients stays under QUIET_PCT of
 * a core for half a second; the waits of a run share one budget (QUIET_BUDGET_MS), after which
 * the benchmark measures anyway and the report marks disturbed windows.
 */
let quietBudgetMs = QUIET_BUDGET_MS;
async function waitForQuiet(what) {
  const start = now();
  let foreign;
  for (;;) {
    const before = cpuSnapshot();
    await sleep(500);
    foreign = cpuUsage(before, cpuSnapshot()).foreignPct;
    if (foreign <= QUIET_PCT) break;
    if (now() - start > quietBudgetMs) {
      log(`other work still uses ${foreign}% of a core; measuring ${what} anyway`);
      break;
    }
    if (now() - start < 600) log(`other work uses ${foreign}% of a core; waiting for quiet before ${what}`);
  }
  const waited = now() - start;
  quietBudgetMs = Math.max(0, quietBudgetMs - Math.max(0, waited - 500));
  return { foreignPctBefore: foreign, waitedS: round(waited / 1000, 1) };
}

async function sampleCpuOver(warmEnd, end) {
  await sleep(Math.max(0, warmEnd - now()));
  const before = cpuSnapshot();
  await sleep(Math.max(0, end - now()));
  return cpuUsage(before, cpuSnapshot());
}

// ---------------------------------------------------------------------------------------------
// Measurements

async function measureFloor(writerProc, readerProc) {
  const { rate, warmMs, durMs } = plan.floor;
  floorStream = `BFLOOR_${hex(6)}`;
  const subject = `bfloor${hex(6)}.lat`;
  await jsm.streams.add({ name: floorStream, subjects: [subject], storage: StorageType.File });
  const quiet = await waitForQuiet('the floor');
  const t0 = now() + 500;
  const window = { id: 'floor', warmEnd: t0 + warmMs, end: t0 + warmMs + durMs };
  await Promise.all([writerProc.rpc('phase', window), readerProc.rpc('phase', window)]);
  await readerProc.rpc('floor-sub', { servers: NATS_URL, stream: floorStream, subject });
  const cpu = sampleCpuOver(window.warmEnd, window.end);
  const pub = await writerProc.rpc('floor-pub', { servers: NATS_URL, subject, rate, t0, end: window.end });
  const sub = await readerProc.rpc('floor-collect', { expected: pub.ok, maxMs: 5000 });
  await jsm.streams.delete(floorStream).catch(() => undefined);
  floorStream = undefined;
  const latency = summary(sortedOf([sub.latency]));
  return {
    rate,
    warmupS: warmMs / 1000,
    windowS: durMs / 1000,
    published: pub.sent,
    stored: pub.ok,
    publishFailed: pub.failed,
    ...(pub.firstError ? { firstError: pub.firstError } : {}),
    received: sub.received,
    latencyMs: latency,
    publishAckMs: summary(sortedOf([pub.pubAck])),
    generatorLagMs: summary(sortedOf([pub.lag])),
    cpu: await cpu,
    quiet,
  };
}

let phaseNumber = 0;

async function measurePhase(name, { rate, warmMs, durMs }, writerProc, readerProc, activeClients) {
  phaseNumber++;
  const backlogAtStart = await waitForWorkerBacklog(0);
  const quiet = await waitForQuiet(name);
  const t0 = now() + 300;
  const window = { id: name, warmEnd: t0 + warmMs, end: t0 + warmMs + durMs };
  await Promise.all([writerProc.rpc('phase', window), readerProc.rpc('phase', window)]);
  const cpu = sampleCpuOver(window.warmEnd, window.end);
  const batches = sampleBatchesOver(window.warmEnd, window.end);
  const sending = writerProc.rpc('run', {
    rate,
    t0,
    end: window.end,
    entityBase: phaseNumber * 10_000,
    entityCount: ENTITY_COUNT,
    entityMode: options.entities,
    drainMs: DRAIN_MS,
  });
  sending.catch(() => undefined); // awaited below; a failure meanwhile is not "unhandled"
  const cpuUsed = await cpu;
  const sent = await sending;
  const backlog = await waitForWorkerBacklog(Math.max(0, DRAIN_MS - sent.drainMs));
  const [w, r] = await Promise.all([writerProc.rpc('collect'), readerProc.rpc('collect')]);
  const windowS = durMs / 1000;
  const persistedSql = await countChanges(window.warmEnd, window.end);
  const stages = await serverStages(window.warmEnd, window.end, await batches);

  const deltaLatency = summary(sortedOf([w.deltaLatency, r.deltaLatency]));
  const finalByReceive = w.finalInWindowByReceive;
  const ofWindow = w.finalOfWindowMutations;
  const changed = ofWindow.applied + ofWindow.merged;
  const expectedDeltas = changed * (activeClients - 1);
  const persistedPerS = (finalByReceive.applied + finalByReceive.merged) / windowS;
  return {
    offeredRate: rate,
    writers: w.clients,
    readers: r.clients,
    warmupS: warmMs / 1000,
    windowS,
    sentInWindow: w.sentInWindow,
    sentRate: round(w.sentInWindow / windowS, 1),
    deltaLatencyMs: deltaLatency,
    deltaLatencyBySecond: timeline(
      [
        { sentAt: w.deltaSentAt, latency: w.deltaLatency },
        { sentAt: r.deltaSentAt, latency: r.deltaLatency },
      ],
      window.warmEnd,
      window.end,
    ),
    deltasPerS: round((w.deltasInWindowByReceive + r.deltasInWindowByReceive) / windowS, 1),
    acceptedPerS: round(w.acceptedInWindowByReceive / windowS, 1),
    persistedPerS: round(persistedPerS, 1),
    persistedPerSSql: round(persistedSql / windowS, 1),
    persistedRatio: round(persistedPerS / rate, 3),
    outcomesOfWindowMutations: ofWindow,
    deltaDelivery: {
      expected: expectedDeltas,
      received: deltaLatency.samples,
      ratio: expectedDeltas > 0 ? round(deltaLatency.samples / expectedDeltas, 4) : null,
      withoutSentAt: w.deltasWithoutSentAt + r.deltasWithoutSentAt,
      seqRegressions: w.deltaSeqRegressions + r.deltaSeqRegressions,
    },
    serverStages: stages,
    acceptedAckMs: summary(sortedOf([w.acceptedLatency])),
    finalAckMs: summary(sortedOf([w.finalLatency])),
    generatorLagMs: summary(sortedOf([w.lag])),
    drain: {
      workerBacklogAtStart: backlogAtStart,
      finalAcksWaitMs: Math.round(sent.drainMs),
      unackedAfterDrain: w.unacked,
      workerBacklogAfterDrain: backlog,
    },
    anomalies: {
      finalAckWithoutFrameId: w.finalWithoutFrameId,
      finalAckBeforeAccepted: w.finalBeforeAccepted,
      lateAcksOfEarlierPhases: w.lateAcksOfEarlierPhases,
      sendFailed: w.sendFailed,
      errors: mergeCounts(w.errors, r.errors),
      errorSamples: [...w.errorSamples, ...r.errorSamples].slice(0, 5),
      closedConnections: [...w.closes, ...r.closes],
    },
    cpu: cpuUsed,
    quiet,
  };
}

function mergeCounts(a, b) {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** Waits until the workers' consumer has nothing pending or unacknowledged (or the time is up). */
async function waitForWorkerBacklog(maxMs) {
  const start = now();
  let info;
  do {
    info = await jsm.consumers.info(run.mutationsStream, 'sync-worker').catch(() => undefined);
    if (!info || (info.num_pending === 0 && info.num_ack_pending === 0)) return 0;
    await sleep(100);
  } while (now() - start < maxMs);
  return info.num_pending + info.num_ack_pending;
}

/**
 * Where the time went on the server: from the change log of the mutations received in the window,
 * gateway receipt (received_at, ms) → the worker's statement (created_at); from the worker's
 * metrics over the window, its batches: how many, how many mutations each, how long each took to
 * compute and commit.
 */
async function serverStages(from, to, batches) {
  const { rows } = await db.query(
    `SELECT count(*)::int AS changes,
            percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (
              ORDER BY extract(epoch FROM created_at) * 1000 - received_at) AS queued
       FROM changes WHERE received_at >= $1 AND received_at < $2`,
    [Math.floor(from), Math.floor(to)],
  );
  const r = rows[0];
  return {
    changes: r.changes,
    receivedToStatementMs: r.queued ? { p50: round(r.queued[0], 2), p99: round(r.queued[1], 2) } : null,
    batches: batches.count,
    meanMutationsPerBatch: batches.count > 0 ? round(batches.mutations / batches.count, 1) : null,
    meanBatchMs: batches.count > 0 ? round((batches.seconds / batches.count) * 1000, 2) : null,
    batchRetries: batches.retries,
  };
}

/** The worker's batch counters (its Prometheus metrics). */
async function workerBatchCounters() {
  const text = await fetch(`${run.workerMonitoringUrl}/metrics`).then((r) => r.text());
  const sum = (name) =>
    text
      .split('\n')
      .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
      .reduce((total, line) => total + Number(line.split(' ').at(-1)), 0);
  return {
    count: sum('syncline_worker_batch_size_count'),
    mutations: sum('syncline_worker_batch_size_sum'),
    seconds: sum('syncline_worker_batch_duration_seconds_sum'),
    retries: sum('syncline_worker_batch_retries_total'),
  };
}

async function sampleBatchesOver(warmEnd, end) {
  await sleep(Math.max(0, warmEnd - now()));
  const before = await workerBatchCounters();
  await sleep(Math.max(0, end - now()));
  const after = await workerBatchCounters();
  return Object.fromEntries(Object.keys(after).map((key) => [key, after[key] - before[key]]));
}

async function countChanges(from, to) {
  const { rows } = await db.query(
    'SELECT count(*)::int AS n FROM changes WHERE created_at >= to_timestamp($1 / 1000.0) AND created_at < to_timestamp($2 / 1000.0)',
    [from, to],
  );
  return rows[0].n;
}

/** How PostgreSQL read the tables over the whole run: sequential scans of growing tables show up here. */
async function databaseActivity() {
  const { rows } = await db.query(
    `SELECT relname AS table, n_live_tup::int AS rows, seq_scan::int, seq_tup_read::bigint::text AS seq_rows_read,
            coalesce(idx_scan, 0)::int AS idx_scan, n_tup_ins::int AS inserted, n_tup_upd::int AS updated,
            autovacuum_count::int AS autovacuums, autoanalyze_count::int AS autoanalyzes
       FROM pg_stat_user_tables ORDER BY seq_tup_read DESC`,
  );
  return rows.map((row) => ({ ...row, seq_rows_read: Number(row.seq_rows_read) }));
}

// ---------------------------------------------------------------------------------------------
// Report

const fmt = (v, digits = 2) => (v === null || v === undefined ? '—' : Number(v).toFixed(digits));
const int = (v) => (v === null || v === undefined ? '—' : Math.round(v).toLocaleString('en-US'));

function table(headers, rows) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padStart(widths[i])).join(' | ')} |`;
  return [line(headers), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

function printReport(report) {
  const { floor, e2e, ladder, ratios } = report;
  const out = [];
  out.push('');
  out.push(
    `Syncline benchmark — ${report.meta.date} — ${report.meta.cpus} cores, node ${report.meta.node}, ` +
      `nats-server ${report.meta.natsServer}, ${report.meta.postgres}${report.meta.quick ? ' — QUICK' : ''}`,
  );
  out.push(
    `commit ${report.meta.commit ?? '?'}; entities: ${report.meta.entities}; 1 sync-worker, 1 conflict-service, 2 gateways`,
  );
  out.push('');
  out.push(
    `Latency (ms), open loop at ${int(e2e.offeredRate)}/s, ${e2e.windowS} s window after ${e2e.warmupS} s warm-up`,
  );
  out.push(
    table(
      ['measurement', 'p50', 'p99', 'p99.9', 'max', 'samples', 'rate/s'],
      [
        [
          'JetStream floor (publish → ordered consumer)',
          fmt(floor.latencyMs.p50),
          fmt(floor.latencyMs.p99),
          fmt(floor.latencyMs.p999),
          fmt(floor.latencyMs.max),
          int(floor.latencyMs.samples),
          `${int(floor.rate)} msg`,
        ],
        [
          `end to end (mutate → delta, ${e2e.writers}w+${e2e.readers}r)`,
          fmt(e2e.deltaLatencyMs.p50),
          fmt(e2e.deltaLatencyMs.p99),
          fmt(e2e.deltaLatencyMs.p999),
          fmt(e2e.deltaLatencyMs.max),
          int(e2e.deltaLatencyMs.samples),
          `${int(e2e.deltasPerS)} deltas`,
        ],
        [
          '  accepted ack (JetStream stored)',
          fmt(e2e.acceptedAckMs.p50),
          fmt(e2e.acceptedAckMs.p99),
          fmt(e2e.acceptedAckMs.p999),
          fmt(e2e.acceptedAckMs.max),
          int(e2e.acceptedAckMs.samples),
          `${int(e2e.acceptedPerS)} acks`,
        ],
        [
          '  final ack (committed in PostgreSQL)',
          fmt(e2e.finalAckMs.p50),
          fmt(e2e.finalAckMs.p99),
          fmt(e2e.finalAckMs.p999),
          fmt(e2e.finalAckMs.max),
          int(e2e.finalAckMs.samples),
          `${int(e2e.persistedPerS)} persisted`,
        ],
      ],
    ),
  );
  out.push(
    `ratio e2e/floor: p50 ×${fmt(ratios.p50, 1)}, p99 ×${fmt(ratios.p99, 1)}` +
      (floor.disturbed || e2e.disturbed ? '   (DISTURBED by other processes: see notes)' : ''),
  );
  out.push(
    `e2e: sent ${int(e2e.sentRate)}/s, persisted ${int(e2e.persistedPerS)}/s (acks) / ${int(e2e.persistedPerSSql)}/s (changes rows), ` +
      `outcomes ${JSON.stringify(e2e.outcomesOfWindowMutations)}, deltas received ${int(e2e.deltaDelivery.received)} of ${int(e2e.deltaDelivery.expected)} expected, ` +
      `machine CPU ${e2e.cpu.machineBusyPct}%`,
  );
  const st = e2e.serverStages;
  if (st.receivedToStatementMs) {
    out.push(
      `e2e server stages: gateway receipt → worker statement p50 ${fmt(st.receivedToStatementMs.p50)} / p99 ${fmt(st.receivedToStatementMs.p99)} ms; ` +
        `worker: ${int(st.batches)} batches of ${fmt(st.meanMutationsPerBatch, 1)} mutations, ${fmt(st.meanBatchMs)} ms each (compute + commit), ${int(st.batchRetries)} retried`,
    );
  }
  out.push('');
  out.push(
    `Throughput ladder (${ladder.steps[0]?.writers ?? '?'} writers + ${ladder.steps[0]?.readers ?? '?'} readers, ${ladder.steps[0]?.windowS ?? '?'} s windows; holds = p99 ≤ ${P99_TARGET_MS} ms and ≥ ${PERSISTED_TARGET * 100}% persisted)`,
  );
  out.push(
    table(
      [
        'offered/s',
        'sent/s',
        'p50 ms',
        'p99 ms',
        'accepted/s',
        'persisted/s',
        'persisted %',
        'deltas/s',
        'delivered',
        'batch',
        'backlog',
        'CPU %',
        'holds',
      ],
      ladder.steps.map((s) => [
        int(s.offeredRate),
        int(s.sentRate),
        fmt(s.deltaLatencyMs.p50),
        fmt(s.deltaLatencyMs.p99),
        int(s.acceptedPerS),
        int(s.persistedPerS),
        fmt(s.persistedRatio * 100, 1),
        int(s.deltasPerS),
        s.deltaDelivery.ratio === null ? '—' : `${fmt(s.deltaDelivery.ratio * 100, 1)}%`,
        fmt(s.serverStages.meanMutationsPerBatch, 1),
        int(s.drain.unackedAfterDrain + s.drain.workerBacklogAfterDrain),
        s.cpu.machineBusyPct,
        `${s.holds ? 'yes' : 'NO'}${s.disturbed ? ' (disturbed)' : ''}`,
      ]),
    ),
  );
  out.push(
    `highest rate that held: ${ladder.maxHeldRate === null ? 'none' : `${int(ladder.maxHeldRate)} mutations/s`}` +
      (ladder.peakPersisted
        ? `; peak persisted ${int(ladder.peakPersisted.persistedPerS)}/s (offered ${int(ladder.peakPersisted.offeredRate)}/s)`
        : ''),
  );
  const cpuRows = [
    ['floor', floor.cpu],
    ['e2e', e2e.cpu],
    ...ladder.steps.map((s) => [`${int(s.offeredRate)}/s`, s.cpu]),
  ];
  const names = Object.keys(e2e.cpu.perProcessPct);
  out.push('');
  out.push('CPU per process during each window (% of one core)');
  out.push(
    table(
      ['window', 'machine %', ...names],
      cpuRows.map(([n, c]) => [n, `${c.machineBusyPct}`, ...names.map((p) => c.perProcessPct[p] ?? '—')]),
    ),
  );
  const servers = names.filter(
    (p) => /^bench-(worker|conflicts|gw\d)$/.test(p) || p === 'nats-server' || p === 'postgres',
  );
  const perMutation = (c, rate) => {
    const us = (pct) => (rate > 0 ? Math.round((((pct ?? 0) / 100) * 1e6) / rate) : null);
    const cells = servers.map((p) => us(c.perProcessPct[p]));
    return [...cells, us(servers.reduce((total, p) => total + (c.perProcessPct[p] ?? 0), 0))];
  };
  out.push('');
  out.push('CPU per persisted mutation (µs, all cores; the servers only)');
  out.push(
    table(
      ['window', 'persisted/s', ...servers, 'servers'],
      [
        ['e2e', int(e2e.persistedPerS), ...perMutation(e2e.cpu, e2e.persistedPerS).map(int)],
        ...ladder.steps.map((step) => [
          `${int(step.offeredRate)}/s`,
          int(step.persistedPerS),
          ...perMutation(step.cpu, step.persistedPerS).map(int),
        ]),
      ],
    ),
  );
  const fan = report.fanout;
  out.push('');
  out.push(
    `Fan-out: one gateway, ${int(fan.sockets)} open sockets subscribed to one type (${fan.failedToOpen} failed to open, ` +
      `${fan.openSeconds} s to open), ${fan.mutationsPerSecond} mutations/s`,
  );
  out.push(
    table(
      ['memory per idle socket', 'gateway RSS', 'deliveries/s', 'delivered', 'gateway CPU %', 'CPU per delivery'],
      [
        [
          `${fmt(fan.bytesPerIdleSocket / 1024, 1)} KB`,
          `${int(fan.gatewayRssMiB)} MiB`,
          int(fan.deliveriesPerSecond),
          fan.deliveredRatio === null ? '—' : `${fmt(fan.deliveredRatio * 100, 1)}%`,
          fan.gatewayCpuPct,
          `${fmt(fan.gatewayCpuMicrosPerDelivery)} µs`,
        ],
      ],
    ),
  );
  const notes = report.notes;
  if (notes.length > 0) {
    out.push('');
    out.push('Notes:');
    for (const note of notes) out.push(`  - ${note}`);
  }
  out.push('');
  out.push(`report: .bench/report.json, service logs: .bench/logs/`);
  console.log(out.join('\n'));
}

function collectNotes(report) {
  const notes = [];
  const windows = [
    ['floor', report.floor],
    ['e2e', report.e2e],
    ...report.ladder.steps.map((s) => [`ladder ${s.offeredRate}/s`, s]),
  ];
  for (const [name, w] of windows) {
    const foreign = w.cpu.foreignPct;
    if (foreign > DISTURBED_PCT) {
      w.disturbed = true;
      const top = w.cpu.topOtherProcesses.map((p) => `${p.process} ${p.pct}%`).join(', ');
      notes.push(
        `${name}: DISTURBED — other work on the machine used ${foreign}% of a core during the window (${top || 'short-lived processes'})`,
      );
    }
  }
  const phases = [['e2e', report.e2e], ...report.ladder.steps.map((s) => [`ladder ${s.offeredRate}/s`, s])];
  for (const [name, p] of phases) {
    const a = p.anomalies;
    if (Object.keys(a.errors).length > 0)
      notes.push(`${name}: error frames ${JSON.stringify(a.errors)} e.g. ${a.errorSamples[0] ?? ''}`);
    if (a.closedConnections.length > 0)
      notes.push(
        `${name}: ${a.closedConnections.length} client connection(s) closed by the server, e.g. ${JSON.stringify(a.closedConnections[0])}`,
      );
    if (a.finalAckWithoutFrameId > 0)
      notes.push(
        `${name}: ${a.finalAckWithoutFrameId} final acks came without the mutate frame id (${a.finalAckBeforeAccepted} before their "accepted" ack)`,
      );
    if (p.deltaDelivery.ratio !== null && p.deltaDelivery.ratio < 0.999)
      notes.push(`${name}: only ${p.deltaDelivery.received} of ${p.deltaDelivery.expected} expected deltas arrived`);
    if (p.deltaDelivery.seqRegressions > 0)
      notes.push(`${name}: ${p.deltaDelivery.seqRegressions} deltas arrived out of order or repeated`);
    if (p.drain.workerBacklogAtStart > 0)
      notes.push(`${name}: started with ${p.drain.workerBacklogAtStart} mutations of the previous step still queued`);
    if (p.drain.unackedAfterDrain > 0 || p.drain.workerBacklogAfterDrain > 0)
      notes.push(
        `${name}: not drained after ${DRAIN_MS / 1000} s: ${p.drain.unackedAfterDrain} mutations without final ack, ${p.drain.workerBacklogAfterDrain} in the worker backlog`,
      );
    if (p.generatorLagMs.p99 !== null && p.generatorLagMs.p99 > 5)
      notes.push(
        `${name}: the load generator ran late (send lag p99 ${fmt(p.generatorLagMs.p99)} ms, max ${fmt(p.generatorLagMs.max)} ms)`,
      );
  }
  for (const [service, info] of Object.entries(report.serviceLogs)) {
    for (const [msg, count] of Object.entries(info.counts)) notes.push(`${service} logged ${count}× "${msg}"`);
  }
  return notes;
}

// ---------------------------------------------------------------------------------------------
// Main

function versionOf(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

async function main() {
  const started = now();
  rmSync(logDir, { recursive: true, force: true });
  mkdirSync(logDir, { recursive: true });
  if (!existsSync(join(root, 'apps', 'gateway', 'dist', 'main.js'))) {
    log('building (apps/gateway/dist/main.js is missing)');
    execFileSync('npx', ['tsc', '-b', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  }

  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  const pgVersion = (await admin.query('SHOW server_version')).rows[0].server_version;
  await admin.query(`CREATE DATABASE ${run.dbName}`);
  dbCreated = true;
  await admin.end();

  nc = await connect({ servers: NATS_URL, noAsyncTraces: true, name: 'bench-orchestrator' });
  jsm = await jetstreamManager(nc);

  log(`deployment: db ${run.dbName}, namespace ${run.namespace}, streams ${run.mutationsStream}/${run.changesStream}`);
  const worker = await startService('sync-worker', `bench-worker-${run.tag}`, 'sync worker ready');
  run.workerMonitoringUrl = worker.monitoringUrl;
  await Promise.all([
    startService('conflict-service', `bench-conflicts-${run.tag}`, 'conflict service ready'),
    startService('gateway', `bench-gw1-${run.tag}`, 'gateway ready'),
    startService('gateway', `bench-gw2-${run.tag}`, 'gateway ready'),
  ]).then(([, gw1, gw2]) => {
    run.gatewayUrls = [gw1.url, gw2.url];
  });
  log(`services ready; gateways ${run.gatewayUrls.join(' ')}`);

  db = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:5432/${run.dbName}` });
  await db.connect();

  const writers = startClientProcess('writers');
  const readers = startClientProcess('readers');

  log(`floor: JetStream round trip at ${plan.floor.rate}/s for ${plan.floor.durMs / 1000} s`);
  const floor = await measureFloor(writers, readers);
  log(`floor p50 ${fmt(floor.latencyMs.p50)} ms, p99 ${fmt(floor.latencyMs.p99)} ms`);

  const connectArgs = { urls: run.gatewayUrls, secret: JWT_SECRET, tag: run.tag };
  await Promise.all([
    writers.rpc('connect', { ...connectArgs, count: plan.e2e.writers, prefix: 'w' }),
    readers.rpc('connect', { ...connectArgs, count: plan.e2e.readers, prefix: 'r' }),
  ]);
  log(`e2e: ${plan.e2e.rate} mutations/s, ${plan.e2e.writers} writers + ${plan.e2e.readers} readers`);
  const e2e = await measurePhase('e2e', plan.e2e, writers, readers, plan.e2e.writers + plan.e2e.readers);
  log(
    `e2e p50 ${fmt(e2e.deltaLatencyMs.p50)} ms, p99 ${fmt(e2e.deltaLatencyMs.p99)} ms, ${int(e2e.deltasPerS)} deltas/s`,
  );

  await Promise.all([
    writers.rpc('keep', { count: plan.ladder.writers }),
    readers.rpc('keep', { count: plan.ladder.readers }),
  ]);
  const steps = [];
  for (const rate of plan.ladder.rates) {
    log(`ladder: ${rate} mutations/s`);
    const step = await measurePhase(
      `ladder-${rate}`,
      { ...plan.ladder, rate },
      writers,
      readers,
      plan.ladder.writers + plan.ladder.readers,
    );
    step.holds =
      step.deltaLatencyMs.p99 !== null &&
      step.deltaLatencyMs.p99 <= P99_TARGET_MS &&
      step.persistedRatio >= PERSISTED_TARGET;
    steps.push(step);
    log(
      `  p50 ${fmt(step.deltaLatencyMs.p50)} ms, p99 ${fmt(step.deltaLatencyMs.p99)} ms, persisted ${int(step.persistedPerS)}/s, holds: ${step.holds}`,
    );
  }
  const held = steps.filter((s) => s.holds).map((s) => s.offeredRate);

  log(`fan-out: ${plan.fanout.sockets} sockets on one gateway, ${plan.fanout.rate} mutations/s`);
  await waitForQuiet('fanout');
  const gateway = services.find((s) => s.app === 'gateway');
  const fanout = await measureFanout({
    url: run.gatewayUrls[0],
    pid: gateway.child.pid,
    token: await new SignJWT({ tenant: 'bench-fanout' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('fanout')
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(JWT_SECRET)),
    ...plan.fanout,
    log,
  });
  log(`  ${int(fanout.deliveriesPerSecond)} deliveries/s, ${int(fanout.bytesPerIdleSocket)} bytes per idle socket`);
  const database = await databaseActivity();

  const report = {
    meta: {
      date: new Date().toISOString(),
      quick: options.quick,
      entities: options.entities,
      plan: { ...plan, entityIds: ENTITY_COUNT, drainMs: DRAIN_MS },
      node: process.versions.node,
      cpus: cpus().length,
      natsServer: (versionOf('nats-server', ['--version']) ?? '?').replace(/^nats-server:\s*/, ''),
      postgres: `PostgreSQL ${pgVersion}`,
      commit: versionOf('git', ['-C', root, 'rev-parse', '--short', 'HEAD']),
      durationS: null,
    },
    floor,
    e2e,
    ratios: {
      p50: floor.latencyMs.p50 ? round(e2e.deltaLatencyMs.p50 / floor.latencyMs.p50, 2) : null,
      p99: floor.latencyMs.p99 ? round(e2e.deltaLatencyMs.p99 / floor.latencyMs.p99, 2) : null,
    },
    ladder: {
      criteria: { p99MaxMs: P99_TARGET_MS, minPersistedRatio: PERSISTED_TARGET },
      steps,
      maxHeldRate: held.length > 0 ? Math.max(...held) : null,
      peakPersisted: steps.reduce(
        (best, s) =>
          s.persistedPerS > (best?.persistedPerS ?? -1)
            ? { persistedPerS: s.persistedPerS, offeredRate: s.offeredRate }
            : best,
        null,
      ),
    },
    fanout,
    database,
    serviceLogs: Object.fromEntries(
      services.map((s) => [s.instanceId, { app: s.app, logFile: s.logFile, counts: s.counts, samples: s.samples }]),
    ),
    notes: [],
  };
  report.notes = collectNotes(report);

  log('stopping the deployment');
  await cleanup();
  // Shutdown may log too.
  report.serviceLogs = Object.fromEntries(
    services.map((s) => [s.instanceId, { app: s.app, logFile: s.logFile, counts: s.counts, samples: s.samples }]),
  );
  report.meta.durationS = round((now() - started) / 1000, 1);
  writeFileSync(join(benchDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  printReport(report);
}

main().then(
  () => process.exit(0),
  (error) => abort(error?.stack ?? String(error)),
);
