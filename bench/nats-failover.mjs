#!/usr/bin/env node
// How long JetStream itself takes to fail over, without Syncline: the floor under the pause a
// client sees when a NATS node dies.
//
// Starts three local nats-servers, a three-replica work-queue stream and a durable pull consumer
// shaped like the workers' (`sync-worker`), publishes 200 messages/s and consumes them (bound,
// 500 ms heartbeats, as the workers do), then kills the node that leads both the consumer and the
// stream, and reports when the stream and the consumer had new leaders and when publishing and
// delivery resumed.
//
//   node bench/nats-failover.mjs [--signal SIGKILL|SIGTERM] [--runs 5]
//
// With SIGKILL the others wait out nats-server's Raft election timeout before they campaign:
// 4-9 s, chosen at random, compiled into the server (minElectionTimeoutDefault and
// maxElectionTimeoutDefault in server/raft.go, the same from 2.9 to 2.11) with no setting to
// change it. With SIGTERM (or lame duck mode) the node hands its leaderships over first.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { AckPolicy, RetentionPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';

const { values } = parseArgs({
  options: { signal: { type: 'string', default: 'SIGKILL' }, runs: { type: 'string', default: '3' } },
});
const BINARY = process.env.NATS_SERVER_BIN ?? 'nats-server';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves with `check()`'s first truthy value, polling every 100 ms; rejects after `ms`. */
async function until(check, what, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function run(basePort) {
  const root = mkdtempSync(join(tmpdir(), 'nats-failover-'));
  const nodes = [0, 1, 2].map((i) => ({ name: `n${i + 1}`, port: basePort + i, cluster: basePort + 10 + i }));
  const processes = new Map();
  const start = (node) => {
    const routes = nodes.filter((other) => other !== node).map((other) => `nats://127.0.0.1:${other.cluster}`);
    const args = [
      ...['--server_name', node.name, '--cluster_name', 'failover', '--cluster', `nats://127.0.0.1:${node.cluster}`],
      ...[
        '--routes',
        routes.join(','),
        '-js',
        '-sd',
        join(root, node.name),
        '-p',
        String(node.port),
        '-a',
        '127.0.0.1',
      ],
    ];
    processes.set(node.name, spawn(BINARY, args, { stdio: 'ignore' }));
  };
  nodes.forEach(start);
  try {
    const nc = await until(
      () =>
        connect({
          servers: nodes.map((node) => `nats://127.0.0.1:${node.port}`),
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
        }),
      'the servers to listen',
    );
    // JetStream answers, and streams can be created, once the cluster has elected its meta leader.
    const jsm = await until(() => jetstreamManager(nc, { timeout: 1000 }), 'the JetStream cluster to form');
    await until(
      () => jsm.streams.add({ name: 'MUT', subjects: ['m.>'], retention: RetentionPolicy.Workqueue, num_replicas: 3 }),
      'the stream to be created',
    );
    await jsm.consumers.add('MUT', { durable_name: 'w', ack_policy: AckPolicy.Explicit, ack_wait: 30e9 });
    const js = jetstream(nc);
    const messages = await (
      await js.consumers.get('MUT', 'w')
    ).consume({
      max_messages: 1000,
      expires: 5000,
      idle_heartbeat: 500,
      bind: true,
    });
    let killedAt = Infinity;
    let delivered = 0;
    const firsts = {};
    const mark = (what) => {
      if (Date.now() - killedAt > 300 && firsts[what] === undefined) firsts[what] = Date.now() - killedAt;
    };
    void (async () => {
      for await (const msg of messages) {
        delivered += 1;
        mark('delivery');
        msg.ack();
      }
    })();
    const publisher = setInterval(() => {
      js.publish(`m.${Math.floor(Math.random() * 100)}`, 'x', { timeout: 2000 }).then(
        () => mark('publish'),
        () => undefined,
      );
    }, 5);
    // Make one node lead both the stream and the consumer: losing it costs the most.
    const consumerLeader = async () => (await jsm.consumers.info('MUT', 'w')).cluster?.leader;
    for (let i = 0; i < 20; i++) {
      const [current, stream] = await Promise.all([consumerLeader(), jsm.streams.info('MUT')]);
      if (current === stream.cluster?.leader) break;
      await nc.request('$JS.API.CONSUMER.LEADER.STEPDOWN.MUT.w', '', { timeout: 2000 }).catch(() => undefined);
      await until(async () => {
        const next = await consumerLeader();
        return next && next !== current;
      }, 'the consumer to have another leader');
    }
    // Steady flow before the fault.
    const before = delivered;
    await until(async () => delivered > before + 200, 'messages to flow');
    const leader = await consumerLeader();
    killedAt = Date.now();
    processes.get(leader).kill(values.signal);
    await until(async () => {
      const [consumer, stream] = await Promise.all([
        jsm.consumers.info('MUT', 'w').catch(() => undefined),
        jsm.streams.info('MUT').catch(() => undefined),
      ]);
      if (consumer?.cluster?.leader && consumer.cluster.leader !== leader)
        firsts.consumerLeader ??= Date.now() - killedAt;
      if (stream?.cluster?.leader && stream.cluster.leader !== leader) firsts.streamLeader ??= Date.now() - killedAt;
      return firsts.consumerLeader !== undefined && firsts.streamLeader !== undefined;
    }, 'new leaders');
    await until(async () => firsts.delivery !== undefined && firsts.publish !== undefined, 'delivery to resume');
    clearInterval(publisher);
    await nc.close();
    return { killed: leader, ...firsts };
  } finally {
    for (const child of processes.values()) child.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  }
}

console.log(`each run: ${values.signal} the node leading the stream and the consumer; ms after it`);
for (let i = 0; i < Number(values.runs); i++) {
  const result = await run(24_000 + i * 50);
  console.log(
    `run ${i + 1}: stream leader ${result.streamLeader ?? '-'}, consumer leader ${result.consumerLeader ?? '-'}, ` +
      `first publish ${result.publish ?? '-'}, first delivery ${result.delivery ?? '-'}`,
  );
}
