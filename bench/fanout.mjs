// The fan-out scenario of `npm run bench`: one gateway holds many open WebSockets (from a receiver
// lighter than the SDK, bench/light-receiver.mjs, in a process of its own), all subscribed to one
// entity type, and every mutation of that type is delivered to each of them. It measures the
// gateway's memory per idle subscribed socket, the deliveries per second that arrive, and the
// gateway's CPU per delivery.
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

function rssBytes(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function startReceiver() {
  const child = fork(join(here, 'light-receiver.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const call = (message) =>
    new Promise((resolve, reject) => {
      child.once('message', (reply) => (reply.ok ? resolve(reply.result) : reject(new Error(reply.error))));
      child.send(message);
    });
  return { child, exited, call };
}

/**
 * @param {{ url: string, pid: number, token: string, sockets: number, rate: number, seconds: number,
 *           log: (message: string) => void }} options
 */
export async function measureFanout({ url, pid, token, sockets, rate, seconds, log }) {
  const entityType = 'fanout';
  const receiver = startReceiver();
  try {
    const rssBefore = rssBytes(pid);
    const openedAt = performance.now();
    const opened = await receiver.call({ cmd: 'open', url, token, count: sockets, entityType });
    const openSeconds = (performance.now() - openedAt) / 1000;
    // Let allocation settle (the gateway's collector runs on its own schedule) before reading memory.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const rssAfter = rssBytes(pid);
    log(`  ${opened.subscribed} sockets subscribed in ${openSeconds.toFixed(1)} s; ${opened.failed} failed`);
    const ticksBefore = cpuTicks(pid);
    const startedAt = performance.now();
    const written = await receiver.call({ cmd: 'write', url, token, entityType, rate, seconds });
    const windowSeconds = (performance.now() - startedAt) / 1000;
    const gatewayCpuSeconds = (cpuTicks(pid) - ticksBefore) / 100;
    const expected = written.sent * opened.subscribed;
    return {
      sockets: opened.subscribed,
      failedToOpen: opened.failed,
      openSeconds: Math.round(openSeconds * 10) / 10,
      bytesPerIdleSocket: Math.round((rssAfter - rssBefore) / Math.max(1, opened.subscribed)),
      gatewayRssMiB: Math.round(rssAfter / 1024 / 1024),
      mutationsPerSecond: rate,
      sent: written.sent,
      delivered: written.delivered,
      deliveredRatio: expected > 0 ? Math.round((written.delivered / expected) * 10000) / 10000 : null,
      deliveriesPerSecond: Math.round(written.delivered / written.seconds),
      gatewayCpuPct: Math.round((gatewayCpuSeconds / windowSeconds) * 100),
      gatewayCpuMicrosPerDelivery:
        written.delivered > 0 ? Math.round(((gatewayCpuSeconds * 1e6) / written.delivered) * 100) / 100 : null,
    };
  } finally {
    await receiver.call({ cmd: 'close' }).catch(() => undefined);
    await Promise.race([receiver.exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
    receiver.child.kill('SIGKILL');
  }
}
