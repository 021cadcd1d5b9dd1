/**
 * Load over the raw protocol for end-to-end tests: writers that resend like the SDK until they
 * have an outcome, an open-loop load on a fixed schedule, and what their checks read back.
 */
import type { JsonObject, OutcomeAckPayload } from '@syncline/contracts';
import type { SentMutation } from './replica.js';
import { hlcNow, mutationId, type Frame, type TestClient } from './ws-client.js';

const SECOND = 1000;
/** By default, a writer resends a mutation (same id) when neither an outcome nor an error came in this long. */
const RESEND_AFTER_MS = 4000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Refusals after which the protocol says to send the same mutation again, after `retryAfterMs`. */
const RETRYABLE = new Set(['UNAVAILABLE', 'RATE_LIMITED', 'OVERLOADED']);

/**
 * A client that writes like the SDK does through a failover: one mutation id per change, resent
 * unchanged after an `UNAVAILABLE` error or when no outcome came in time, until it has an outcome.
 * The gateway and JetStream deduplicate the resends; the ledger catches any that get through.
 */
export class Writer {
  readonly sent: SentMutation[] = [];
  /** Final outcomes, in the order they came. */
  readonly outcomes: OutcomeAckPayload[] = [];
  /** Version of each entity after this writer's last change to it. */
  private readonly versions = new Map<string, number>();
  private counter = 0;
  resends = 0;
  longestMs = 0;

  constructor(
    readonly client: TestClient,
    readonly name: string,
    private readonly resendAfterMs = RESEND_AFTER_MS,
  ) {}

  async write(
    entityType: string,
    entityId: string,
    data: JsonObject,
    options: { baseVersion?: number } = {},
  ): Promise<OutcomeAckPayload> {
    const key = `${entityType}/${entityId}`;
    const baseVersion = options.baseVersion ?? this.versions.get(key) ?? 0;
    const op = 'patch';
    const id = mutationId();
    this.counter += 1;
    const payload = {
      mutationId: id,
      entityType,
      entityId,
      op,
      data,
      baseVersion,
      vectorClock: { [this.name]: this.counter },
      hlc: hlcNow(this.name),
    };
    this.sent.push({ mutationId: id, entityId, op, data });
    const startedAt = Date.now();
    const since = this.client.mark();
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) this.resends += 1;
      const frameId = this.client.send('mutate', payload);
      const reply = await this.client
        .waitFor((f) => isOutcomeOf(f, id) || (f.type === 'error' && f.payload.ref === frameId), {
          since,
          timeoutMs: this.resendAfterMs,
          description: `the outcome of ${id}`,
        })
        .catch((error: unknown) => {
          if (!this.client.isOpen) throw error;
          return undefined;
        });
      if (reply?.type === 'ack' && reply.payload.status !== 'accepted') {
        this.versions.set(key, Math.max(reply.payload.version, this.versions.get(key) ?? 0));
        this.outcomes.push(reply.payload);
        this.longestMs = Math.max(this.longestMs, Date.now() - startedAt);
        return reply.payload;
      }
      if (reply?.type === 'error') {
        if (!RETRYABLE.has(reply.payload.code)) throw new Error(`${id} refused: ${JSON.stringify(reply.payload)}`);
        await sleep(reply.payload.retryAfterMs ?? 250);
      }
    }
  }
}

/**
 * Sends mutations on a fixed schedule whatever the acks say (open loop), spread over clients,
 * each client on its own entities. A mutation refused for the moment (`OVERLOADED` while the
 * workers' queue is long, `RATE_LIMITED`, `UNAVAILABLE`) is sent again, unchanged, after the
 * hinted delay, as the protocol asks. A window reports what was offered and persisted in it.
 */
export class OpenLoopLoad {
  /** The value `n` each mutation sets, by mutation id. */
  readonly values = new Map<string, number>();
  readonly ratePerSecond: number;
  sent = 0;
  /** Sent on the schedule (not in bursts). */
  private scheduled = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly counters: number[];
  /** Mutations refused for the moment and sent again. */
  resent = 0;
  /** Mutations sent and not yet answered, by frame id. */
  private readonly refusable = new Map<string, { client: TestClient; payload: object }>();
  private readonly listening = new Set<TestClient>();
  private readonly retries = new Set<NodeJS.Timeout>();

  constructor(
    private readonly clients: readonly TestClient[],
    private readonly entityType: string,
    private readonly options: { ratePerSecond: number; entitiesPerClient: number; hotEntities: number },
  ) {
    this.ratePerSecond = options.ratePerSecond;
    this.counters = clients.map(() => 0);
  }

  start(): void {
    const tickMs = 10;
    const startedAt = Date.now();
    this.timer = setInterval(() => {
      const due = Math.floor(((Date.now() - startedAt) * this.ratePerSecond) / SECOND);
      for (; this.scheduled < due; this.scheduled++) this.sendOne();
    }, tickMs);
  }

  /**
   * Stops the schedule. Refused mutations are still sent again until accepted, so that every
   * mutation offered is eventually stored.
   */
  stop(): void {
    clearInterval(this.timer);
  }

  /** Stops the schedule and the resending of refused mutations: what was refused stays refused. */
  close(): void {
    this.stop();
    for (const retry of this.retries) clearTimeout(retry);
    this.retries.clear();
  }

  /** Sends `count` more at once, on top of the schedule. */
  burst(count: number): void {
    for (let i = 0; i < count; i++) this.sendOne();
  }

  /** Mutations offered and persisted during the next `ms`. */
  async window(ms: number, persisted: () => Promise<number>): Promise<{ count: number; offered: number; ms: number }> {
    const [before, sentBefore, t0] = [await persisted(), this.sent, Date.now()];
    await sleep(ms);
    const [after, sentAfter, t1] = [await persisted(), this.sent, Date.now()];
    return { count: after - before, offered: sentAfter - sentBefore, ms: t1 - t0 };
  }

  /**
   * Most mutations spread over many entities, which is what lets a second worker help; one in ten
   * goes to a few hot entities, whose mutations both workers hold at once: those test the order.
   */
  private entityFor(client: number, counter: number): string {
    if (counter % 10 === 0) return `c${client + 1}-hot${(counter / 10) % this.options.hotEntities}`;
    return `c${client + 1}-e${counter % this.options.entitiesPerClient}`;
  }

  private sendOne(): void {
    const c = this.sent % this.clients.length;
    const client = this.clients[c]!;
    const node = client.clientId ?? `load-${c}`;
    const n = this.sent;
    const counter = (this.counters[c] = (this.counters[c] ?? 0) + 1);
    const entityId = this.entityFor(c, counter);
    const id = mutationId();
    this.values.set(id, n);
    this.send(client, {
      mutationId: id,
      entityType: this.entityType,
      entityId,
      op: 'patch',
      data: { n, [`by${n % 3}`]: n },
      baseVersion: 0,
      vectorClock: { [node]: counter },
      hlc: hlcNow(node),
    });
    this.sent += 1;
  }

  private send(client: TestClient, payload: object): void {
    this.listen(client);
    const frameId = client.send('mutate', payload);
    this.refusable.set(frameId, { client, payload });
  }

  /** Sends a refused mutation again after the delay its refusal names. */
  private listen(client: TestClient): void {
    if (this.listening.has(client)) return;
    this.listening.add(client);
    client.onFrame((frame) => {
      if (frame.type !== 'ack' && frame.type !== 'error') return;
      const frameId = frame.type === 'error' ? (frame.payload.ref ?? frame.id) : frame.id;
      const sent = frameId === undefined ? undefined : this.refusable.get(frameId);
      if (!sent || frameId === undefined) return;
      this.refusable.delete(frameId);
      if (frame.type !== 'error' || !RETRYABLE.has(frame.payload.code)) return;
      const retry = setTimeout(() => {
        this.retries.delete(retry);
        this.resent += 1;
        this.send(sent.client, sent.payload);
      }, frame.payload.retryAfterMs ?? 250);
      this.retries.add(retry);
    });
  }
}

/** The sum of a Prometheus counter's series (optionally only those whose labels contain `labels`), from a worker's monitoring URL (named in its ready line). */
export async function metricSum(ready: Record<string, unknown>, name: string, labels = ''): Promise<number> {
  const response = await fetch(`${String(ready['monitoringUrl'])}/metrics`);
  const text = await response.text();
  return text
    .split('\n')
    .filter((line) => (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) && line.includes(labels))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

export function isOutcomeOf(frame: Frame, id: string): boolean {
  return frame.type === 'ack' && frame.payload.mutationId === id && frame.payload.status !== 'accepted';
}

/** Mutation ids (of `entityType`, if given) the gateways acknowledged as stored (`accepted`), on these connections. */
export function acceptedIds(clients: readonly TestClient[], entityType?: string): Set<string> {
  const ids = new Set<string>();
  for (const client of clients) {
    for (const frame of client.frames) {
      if (frame.type !== 'ack' || frame.payload.status !== 'accepted') continue;
      if (entityType === undefined || frame.payload.entityType === entityType) ids.add(frame.payload.mutationId);
    }
  }
  return ids;
}

/** Rejects with `what` if `promise` has not settled by `deadline` (epoch ms). */
export async function withDeadline<T>(promise: Promise<T>, deadline: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Prints a test's measurements, one `key: value` per line under `[tag] title`. */
export function report(tag: string, title: string, lines: Record<string, string>): void {
  const body = Object.entries(lines)
    .map(([key, value]) => `  ${key}: ${value}`)
    .join('\n');
  process.stdout.write(`\n[${tag}] ${title}\n${body}\n`);
}
