export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy' | 'offline';

export interface HealthReport {
  readonly status: HealthStatus;
  readonly recommendations: string[];
}

export interface QualityMonitorOptions {
  /** Clock in epoch ms (default `Date.now`); tests pass their own. */
  readonly now?: () => number;
}

/** Latency and sync samples kept: enough to smooth noise, few enough to follow a change quickly. */
const MAX_SAMPLES = 100;
/** Errors and reconnects count against the score for this long. */
const WINDOW_MS = 5 * 60_000;
/** Bound on remembered events, so an error storm cannot grow memory (the score is 0 long before). */
const MAX_EVENTS = 1_000;

/** Average latency (ms) that still scores full marks, and the one that scores nothing. */
const GOOD_LATENCY_MS = 100;
const BAD_LATENCY_MS = 1_000;

/** Thresholds above which `health()` says something. */
const SLOW_LATENCY_MS = 300;
const SLOW_SYNC_RATE = 0.8;
const MIN_SYNC_SAMPLES = 5;
const MANY_RECONNECTS = 3;
const MANY_ERRORS = 5;
const LARGE_BACKLOG = 100;

const HEALTHY_SCORE = 80;
const DEGRADED_SCORE = 50;

/**
 * Connection quality from what the client observes: round-trip latencies (pongs, acks), sync
 * round trips, and the errors and reconnects of the last five minutes.
 */
export class QualityMonitor {
  private readonly latencies: number[] = [];
  private readonly syncs: number[] = [];
  private readonly errors: number[] = [];
  private readonly reconnects: number[] = [];
  private readonly now: () => number;

  constructor(options: QualityMonitorOptions = {}) {
    this.now = options.now ?? Date.now;
  }

  /** A round trip in ms (ping → pong, mutate → ack). */
  recordLatency(ms: number): void {
    if (isDuration(ms)) pushBounded(this.latencies, ms, MAX_SAMPLES);
  }

  /** How long a sync took, from request to applied response, in ms. */
  recordSync(durationMs: number): void {
    if (isDuration(durationMs)) pushBounded(this.syncs, durationMs, MAX_SAMPLES);
  }

  recordError(): void {
    pushBounded(this.errors, this.now(), MAX_EVENTS);
  }

  recordReconnect(): void {
    pushBounded(this.reconnects, this.now(), MAX_EVENTS);
  }

  /** Mean of the last 100 latencies in ms; 0 before the first one. */
  get averageLatency(): number {
    return this.latencies.length === 0 ? 0 : sum(this.latencies) / this.latencies.length;
  }

  /** Share (0–1) of the last 100 syncs that took less than 100 ms; 1 before the first one. */
  get sub100msSuccessRate(): number {
    if (this.syncs.length === 0) return 1;
    return this.syncs.filter((ms) => ms < 100).length / this.syncs.length;
  }

  /** Errors recorded in the last five minutes. */
  get recentErrors(): number {
    return this.countRecent(this.errors);
  }

  /** Reconnects recorded in the last five minutes. */
  get recentReconnects(): number {
    return this.countRecent(this.reconnects);
  }

  /**
   * 0–100, higher is better:
   *
   *   qualityScore   = round(40 × latencyScore + 30 × sub100msSuccessRate + 30 × stabilityScore)
   *   latencyScore   = 1 at an average latency ≤ 100 ms, 0 at ≥ 1000 ms, linear between
   *                    (1 without samples)
   *   stabilityScore = max(0, 1 − (errors + 2 × reconnects) / 10), over the last 5 minutes
   *
   * Latency weighs most because every change waits for it; a reconnect counts twice an error
   * because it interrupts every subscription, not one request. Five reconnects (or ten errors)
   * in five minutes use up the whole stability part.
   */
  get qualityScore(): number {
    const score = 40 * this.latencyScore() + 30 * this.sub100msSuccessRate + 30 * this.stabilityScore();
    return Math.round(Math.min(100, Math.max(0, score)));
  }

  /**
   * A status and what to do about it. Offline when not connected; otherwise healthy from a score
   * of 80 with nothing to recommend, unhealthy below 50, degraded between.
   */
  health(connected: boolean, pendingChanges: number): HealthReport {
    const recommendations = [
      ...this.latencyAdvice(),
      ...this.syncAdvice(),
      ...this.stabilityAdvice(),
      ...backlogAdvice(connected, pendingChanges),
    ];
    return { status: this.statusOf(connected, recommendations.length), recommendations };
  }

  private statusOf(connected: boolean, concerns: number): HealthStatus {
    if (!connected) return 'offline';
    const score = this.qualityScore;
    if (score < DEGRADED_SCORE) return 'unhealthy';
    return score < HEALTHY_SCORE || concerns > 0 ? 'degraded' : 'healthy';
  }

  private latencyScore(): number {
    if (this.latencies.length === 0) return 1;
    const excess = (this.averageLatency - GOOD_LATENCY_MS) / (BAD_LATENCY_MS - GOOD_LATENCY_MS);
    return 1 - Math.min(1, Math.max(0, excess));
  }

  private stabilityScore(): number {
    return Math.max(0, 1 - (this.recentErrors + 2 * this.recentReconnects) / 10);
  }

  private latencyAdvice(): string[] {
    const average = Math.round(this.averageLatency);
    if (average <= SLOW_LATENCY_MS) return [];
    return [`Average latency is ${average} ms: check the network or use a gateway closer to the users`];
  }

  private syncAdvice(): string[] {
    const rate = this.sub100msSuccessRate;
    if (this.syncs.length < MIN_SYNC_SAMPLES || rate >= SLOW_SYNC_RATE) return [];
    return [
      `Only ${Math.round(rate * 100)}% of syncs finished within 100 ms: ` +
        'the gateway or its database may be overloaded; check their load, or sync fewer entity types at once',
    ];
  }

  private stabilityAdvice(): string[] {
    const advice: string[] = [];
    const reconnects = this.recentReconnects;
    if (reconnects >= MANY_RECONNECTS) {
      advice.push(
        `The connection dropped ${reconnects} times in 5 minutes: ` +
          'check the network, and proxies or load balancers that close idle or long-lived WebSockets',
      );
    }
    const errors = this.recentErrors;
    if (errors >= MANY_ERRORS) {
      advice.push(`${errors} errors in 5 minutes: listen to the client's error events to see their codes`);
    }
    return advice;
  }

  private countRecent(times: number[]): number {
    const since = this.now() - WINDOW_MS;
    // Times are recorded in order: drop the expired ones from the front.
    while (times.length > 0 && (times[0] ?? Infinity) <= since) times.shift();
    return times.length;
  }
}

function backlogAdvice(connected: boolean, pendingChanges: number): string[] {
  if (pendingChanges <= 0) {
    return connected
      ? []
      : ['The client is not connected: changes made now are kept and sent when the connection is back'];
  }
  const waiting = pendingChanges === 1 ? '1 change is' : `${pendingChanges} changes are`;
  if (!connected) return [`${waiting} waiting to be sent when the connection is back`];
  if (pendingChanges < LARGE_BACKLOG) return [];
  return [
    `${waiting} waiting for the server's acknowledgement: ` +
      'changes are made faster than they are confirmed; combine edits (debounce them) or check the server load',
  ];
}

function isDuration(ms: number): boolean {
  return Number.isFinite(ms) && ms >= 0;
}

function pushBounded(values: number[], value: number, max: number): void {
  values.push(value);
  if (values.length > max) values.splice(0, values.length - max);
}

function sum(values: readonly number[]): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}
