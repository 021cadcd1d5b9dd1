// Load-generator process of the benchmark, forked by bench/run.mjs (one process for the writer
// clients, one for the reader clients, so sending and receiving do not starve each other).
// It is driven over IPC: every message {rid, cmd, args} is answered with {rid, result|error}.
//
// Times are epoch milliseconds with sub-millisecond precision (performance.timeOrigin +
// performance.now()), comparable across the processes of this machine.
import WebSocket from 'ws';
import { SignJWT } from 'jose';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';

const now = () => performance.timeOrigin + performance.now();
const role = process.argv[2] ?? 'clients';

if (!process.send) {
  process.stderr.write('bench/clients.mjs is started by bench/run.mjs\n');
  process.exit(2);
}

/** Growable Float64 buffer, cheap to fill and to send over IPC. */
class Samples {
  constructor(capacity = 1 << 14) {
    this.data = new Float64Array(capacity);
    this.length = 0;
  }
  push(value) {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = value;
  }
  take() {
    return this.data.slice(0, this.length);
  }
}

// ---------------------------------------------------------------------------------------------
// Open-loop schedule: message k is due at t0 + k / rate. Each timer tick sends everything that
// is due, so a late timer is caught up by a batch rather than lowering the rate.
function schedule(rate, t0, end, sendOne) {
  const interval = 1000 / rate;
  const total = Math.max(0, Math.floor(((end - t0) * rate) / 1000));
  let k = 0;
  return new Promise((resolve) => {
    const tick = () => {
      const t = now();
      const due = Math.min(total, Math.floor((t - t0) / interval) + 1);
      while (k < due) {
        sendOne(k, t0 + k * interval);
        k++;
      }
      if (k >= total) {
        resolve(k);
        return;
      }
      const wait = t0 + k * interval - now();
      setTimeout(tick, wait > 1 ? Math.floor(wait) : 0);
    };
    setTimeout(tick, Math.max(0, Math.floor(t0 - now())));
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Phase: the counters of one measured run (warm-up + window). Deltas are attributed to the
// phase by the send time they carry, so late deltas of the window still count and deltas of an
// earlier phase never do.
function newPhase(args) {
  return {
    id: args.id ?? 'idle',
    warmEnd: args.warmEnd ?? Infinity,
    end: args.end ?? Infinity,
    deltaLatency: new Samples(),
    /** Send time of each deltaLatency sample, for the timeline. */
    deltaSentAt: new Samples(),
    deltasInWindowByReceive: 0,
    deltasTotal: 0,
    deltasWithoutSentAt: 0,
    deltaSeqRegressions: 0,
    lastFrameAt: 0,
    // writers only
    sent: 0,
    sentInWindow: 0,
    sendFailed: 0,
    lag: new Samples(),
    acceptedInWindowByReceive: 0,
    finalInWindowByReceive: { applied: 0, merged: 0, rejected: 0 },
    finalOfWindowMutations: { applied: 0, merged: 0, rejected: 0 },
    acceptedLatency: new Samples(),
    finalLatency: new Samples(),
    pending: 0,
    finalWithoutFrameId: 0,
    finalBeforeAccepted: 0,
    lateAcksOfEarlierPhases: 0,
    errors: {},
    errorSamples: [],
  };
}

let phase = newPhase({});
const closes = [];

// ---------------------------------------------------------------------------------------------
// WebSocket clients

const clients = [];

class Client {
  constructor(index, url, clientId, token) {
    this.index = index;
    this.url = url;
    this.clientId = clientId;
    this.token = token;
    this.counter = 0;
    /** mutationId → {sentAt, phase, accepted} for mutations without their final ack yet. */
    this.pending = new Map();
    this.lastSeq = 0;
    this.open = false;
    this.ws = undefined;
  }

  async start() {
    const ws = new WebSocket(this.url, ['syncline.v1', `bearer.${this.token}`], { perMessageDeflate: false });
    this.ws = ws;
    const waiters = new Map();
    this.waiters = waiters;
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.clientId}: no welcome within 10 s`)), 10_000);
      ws.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      ws.on('message', (data) => {
        const text = data.toString();
        if (!this.open) {
          const frame = JSON.parse(text);
          if (frame.type === 'welcome') {
            this.open = true;
            clearTimeout(timer);
            resolve();
          } else {
            clearTimeout(timer);
            reject(new Error(`${this.clientId}: expected welcome, got ${text.slice(0, 200)}`));
          }
          return;
        }
        this.onFrame(text);
      });
    });
    ws.on('close', (code, reason) => {
      const wasOpen = this.open;
      this.open = false;
      if (wasOpen && !this.closing) closes.push({ client: this.clientId, code, reason: reason.toString(), at: now() });
    });
    ws.on('error', () => undefined);
    const subscribed = this.await('s1');
    this.sendFrame({ type: 'subscribe', id: 's1', payload: { entityTypes: ['items'] }, timestamp: Date.now() });
    const reply = await subscribed;
    if (reply.type !== 'subscribed')
      throw new Error(`${this.clientId}: subscribe failed: ${JSON.stringify(reply).slice(0, 300)}`);
  }

  await(id) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.clientId}: no reply to ${id} within 10 s`)), 10_000);
      this.waiters.set(id, (frame) => {
        clearTimeout(timer);
        resolve(frame);
      });
    });
  }

  sendFrame(frame) {
    this.ws.send(JSON.stringify(frame));
  }

  onFrame(text) {
    const t = now();
    const p = phase;
    p.lastFrameAt = t;
    // Fast path for the frame that dominates: the gateway splices deltas as
    // {"type":"delta","payload":{"seq":N,...,"changes":[{"field":"/sentAt",...,"newValue":X,...}]...}
    if (text.startsWith('{"type":"delta"')) {
      p.deltasTotal++;
      if (t >= p.warmEnd && t < p.end) p.deltasInWindowByReceive++;
      const seq = seqOf(text);
      if (seq <= this.lastSeq) p.deltaSeqRegressions++;
      else this.lastSeq = seq;
      const sentAt = sentAtOf(text);
      if (Number.isNaN(sentAt)) p.deltasWithoutSentAt++;
      else if (sentAt >= p.warmEnd && sentAt < p.end) {
        p.deltaLatency.push(t - sentAt);
        p.deltaSentAt.push(sentAt);
      }
      return;
    }
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      countError(p, 'UNPARSABLE', text);
      return;
    }
    if (frame.type === 'ack') this.onAck(frame, t, p);
    else if (frame.type === 'error') countError(p, frame.payload?.code ?? 'UNKNOWN', text);
    else if (frame.id && this.waiters.has(frame.id)) {
      const waiter = this.waiters.get(frame.id);
      this.waiters.delete(frame.id);
      waiter(frame);
    }
  }

  onAck(frame, t, p) {
    const { status, mutationId } = frame.payload ?? {};
    const entry = this.pending.get(mutationId);
    if (status === 'accepted') {
      if (t >= p.warmEnd && t < p.end) p.acceptedInWindowByReceive++;
      if (!entry) return;
      entry.accepted = true;
      if (entry.phase === p && entry.inWindow) p.acceptedLatency.push(t - entry.sentAt);
      return;
    }
    if (!entry) return;
    this.pending.delete(mutationId);
    if (entry.phase !== p) {
      p.lateAcksOfEarlierPhases++;
      return;
    }
    p.pending--;
    if (frame.id === undefined) p.finalWithoutFrameId++;
    if (!entry.accepted) p.finalBeforeAccepted++;
    if (t >= p.warmEnd && t < p.end && status in p.finalInWindowByReceive) p.finalInWindowByReceive[status]++;
    if (entry.inWindow) {
      if (status in p.finalOfWindowMutations) p.finalOfWindowMutations[status]++;
      p.finalLatency.push(t - entry.sentAt);
    }
  }

  mutate(entityId, n, intendedAt, p) {
    if (!this.open) {
      p.sendFailed++;
      return;
    }
    const counter = ++this.counter;
    const mutationId = `m-${runTag}-${this.clientId}-${counter}`;
    const sentAt = now();
    const frame =
      `{"type":"mutate","id":"${counter}","payload":{"mutationId":"${mutationId}","entityType":"items",` +
      `"entityId":"${entityId}","op":"patch","data":{"sentAt":${sentAt},"n":${n}},"baseVersion":0,` +
      `"vectorClock":{"${this.clientId}":${counter}},"hlc":"${String(Date.now()).padStart(15, '0')}:` +
      `${String(counter % 100000).padStart(5, '0')}:${this.clientId}","clientId":"${this.clientId}"},"timestamp":${Date.now()}}`;
    this.ws.send(frame);
    const windowed = sentAt >= p.warmEnd && sentAt < p.end;
    this.pending.set(mutationId, { sentAt, phase: p, inWindow: windowed, accepted: false });
    p.pending++;
    p.sent++;
    if (windowed) {
      p.sentInWindow++;
      p.lag.push(sentAt - intendedAt);
    }
  }

  async close() {
    if (!this.ws || this.ws.readyState === WebSocket.CLOSED) return;
    this.closing = true;
    const closed = new Promise((resolve) => this.ws.once('close', resolve));
    this.ws.close(1000, 'bench done');
    await Promise.race([closed, sleep(2000)]);
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
  }
}

function seqOf(text) {
  const i = text.indexOf('"seq":');
  if (i < 0) return 0;
  let j = i + 6;
  let value = 0;
  for (let c = text.charCodeAt(j); c >= 48 && c <= 57; c = text.charCodeAt(++j)) value = value * 10 + (c - 48);
  return value;
}

function sentAtOf(text) {
  const i = text.indexOf('"field":"/sentAt"');
  if (i < 0) return slowSentAtOf(text);
  const j = text.indexOf('"newValue":', i);
  const closing = text.indexOf('}', i);
  if (j < 0 || j > closing) return slowSentAtOf(text);
  let e = j + 11;
  while (e < text.length) {
    const c = text.charCodeAt(e);
    if (c === 44 /* , */ || c === 125 /* } */) break;
    e++;
  }
  const value = Number(text.slice(j + 11, e));
  return Number.isFinite(value) ? value : slowSentAtOf(text);
}

function slowSentAtOf(text) {
  try {
    const change = JSON.parse(text).payload?.changes?.find((c) => c.field === '/sentAt');
    return typeof change?.newValue === 'number' ? change.newValue : NaN;
  } catch {
    return NaN;
  }
}

function countError(p, code, text) {
  p.errors[code] = (p.errors[code] ?? 0) + 1;
  if (p.errorSamples.length < 5) p.errorSamples.push(text.slice(0, 300));
}

let runTag = 'x';

// ---------------------------------------------------------------------------------------------
// Floor: bare JetStream round trip

let floor;

const handlers = {
  async connect({ urls, count, prefix, secret, tag }) {
    runTag = tag;
    const key = new TextEncoder().encode(secret);
    const started = [];
    for (let i = 0; i < count; i++) {
      const clientId = `${prefix}${i}`;
      const token = await new SignJWT({ tenant: 'bench' })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(`user-${clientId}`)
        .setIssuedAt()
        .setExpirationTime('2h')
        .sign(key);
      // Clients alternate between the gateways, so keeping the first n stays balanced.
      const client = new Client(i, urls[i % urls.length], clientId, token);
      clients.push(client);
      started.push(client.start());
    }
    await Promise.all(started);
    return { connected: clients.length };
  },

  /** Closes every client beyond the first `count`. */
  async keep({ count }) {
    const extra = clients.splice(count);
    await Promise.all(extra.map((client) => client.close()));
    return { kept: clients.length };
  },

  phase(args) {
    phase = newPhase(args);
    return { ok: true };
  },

  /** Sends mutations at `rate` from t0 to end, then waits for their final acks (or drainMs). */
  async run({ rate, t0, end, entityBase, entityCount, entityMode, drainMs }) {
    const p = phase;
    const writers = clients.filter((c) => c.open);
    if (writers.length === 0) throw new Error('no open writer client');
    const w = writers.length;
    const perWriter = Math.max(1, Math.floor(entityCount / w));
    const sent = await schedule(rate, t0, end, (k, intendedAt) => {
      const slot = k % w;
      const n =
        entityMode === 'owned'
          ? entityBase + slot + w * Math.floor(Math.random() * perWriter)
          : entityBase + Math.floor(Math.random() * entityCount);
      writers[slot].mutate(`i-${n}`, k, intendedAt, p);
    });
    const sendEnd = now();
    while (p.pending > 0 && now() - sendEnd < drainMs) await sleep(25);
    return { scheduled: sent, drainMs: now() - sendEnd, unacked: p.pending };
  },

  /** Waits until no frame arrived for `quietMs` (at most `maxMs`), then returns the phase's data. */
  async collect({ quietMs = 300, maxMs = 5000 } = {}) {
    const p = phase;
    const start = now();
    while (now() - start < maxMs && now() - Math.max(p.lastFrameAt, start) < quietMs) await sleep(25);
    const result = {
      role,
      clients: clients.length,
      deltaLatency: p.deltaLatency.take(),
      deltaSentAt: p.deltaSentAt.take(),
      deltasInWindowByReceive: p.deltasInWindowByReceive,
      deltasTotal: p.deltasTotal,
      deltasWithoutSentAt: p.deltasWithoutSentAt,
      deltaSeqRegressions: p.deltaSeqRegressions,
      sent: p.sent,
      sentInWindow: p.sentInWindow,
      sendFailed: p.sendFailed,
      lag: p.lag.take(),
      acceptedInWindowByReceive: p.acceptedInWindowByReceive,
      finalInWindowByReceive: p.finalInWindowByReceive,
      finalOfWindowMutations: p.finalOfWindowMutations,
      acceptedLatency: p.acceptedLatency.take(),
      finalLatency: p.finalLatency.take(),
      unacked: p.pending,
      finalWithoutFrameId: p.finalWithoutFrameId,
      finalBeforeAccepted: p.finalBeforeAccepted,
      lateAcksOfEarlierPhases: p.lateAcksOfEarlierPhases,
      errors: p.errors,
      errorSamples: p.errorSamples,
      closes: closes.splice(0),
    };
    phase = newPhase({});
    return result;
  },

  async 'floor-sub'({ servers, stream, subject }) {
    const nc = await connect({ servers, noAsyncTraces: true, name: `bench-floor-sub-${process.pid}` });
    const consumer = await jetstream(nc).consumers.get(stream, { filter_subjects: subject });
    const messages = await consumer.consume();
    floor = { nc, messages, latency: new Samples(), received: 0, lastAt: 0 };
    const f = floor;
    void (async () => {
      for await (const msg of messages) {
        const t = now();
        f.received++;
        f.lastAt = t;
        const { sentAt } = msg.json();
        if (sentAt >= phase.warmEnd && sentAt < phase.end) f.latency.push(t - sentAt);
      }
    })();
    return { ok: true };
  },

  async 'floor-collect'({ expected, maxMs = 5000 }) {
    const f = floor;
    const start = now();
    while (f.received < expected && now() - start < maxMs) await sleep(20);
    await f.messages.close();
    await f.nc.close();
    floor = undefined;
    phase = newPhase({});
    return { received: f.received, latency: f.latency.take() };
  },

  async 'floor-pub'({ servers, subject, rate, t0, end }) {
    const nc = await connect({ servers, noAsyncTraces: true, name: `bench-floor-pub-${process.pid}` });
    const js = jetstream(nc);
    const p = phase;
    const inflight = new Set();
    const pubAck = new Samples();
    let ok = 0;
    let failed = 0;
    let firstError;
    const sent = await schedule(rate, t0, end, (k, intendedAt) => {
      const sentAt = now();
      const windowed = sentAt >= p.warmEnd && sentAt < p.end;
      if (windowed) p.lag.push(sentAt - intendedAt);
      const publish = js.publish(subject, `{"sentAt":${sentAt},"n":${k}}`).then(
        () => {
          ok++;
          if (windowed) pubAck.push(now() - sentAt);
        },
        (error) => {
          failed++;
          firstError ??= String(error?.message ?? error);
        },
      );
      inflight.add(publish);
      void publish.finally(() => inflight.delete(publish));
    });
    await Promise.allSettled([...inflight]);
    await nc.close();
    return { sent, ok, failed, firstError, pubAck: pubAck.take(), lag: p.lag.take() };
  },

  async shutdown() {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    return { ok: true };
  },
};

process.on('message', async (message) => {
  const { rid, cmd, args } = message ?? {};
  try {
    const handler = handlers[cmd];
    if (!handler) throw new Error(`unknown command ${cmd}`);
    const result = await handler(args ?? {});
    process.send({ rid, result });
  } catch (error) {
    process.send({ rid, error: String(error?.stack ?? error) });
  }
});

// The orchestrator went away: nothing else to do.
process.on('disconnect', () => process.exit(0));
