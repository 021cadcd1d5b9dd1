import { describe, expect, it } from '@jest/globals';
import { QualityMonitor } from './quality-monitor.js';

function monitorAt(start = 1_795_567_430_000) {
  let now = start;
  const monitor = new QualityMonitor({ now: () => now });
  return {
    monitor,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe('QualityMonitor: measurements', () => {
  it('starts with neutral values', () => {
    const { monitor } = monitorAt();
    expect(monitor.averageLatency).toBe(0);
    expect(monitor.sub100msSuccessRate).toBe(1);
    expect(monitor.qualityScore).toBe(100);
    expect(monitor.health(true, 0)).toEqual({ status: 'healthy', recommendations: [] });
  });

  it('averages the last 100 latencies', () => {
    const { monitor } = monitorAt();
    for (let i = 0; i < 50; i++) monitor.recordLatency(1_000);
    for (let i = 0; i < 100; i++) monitor.recordLatency(20);
    expect(monitor.averageLatency).toBe(20);
    monitor.recordLatency(120);
    expect(monitor.averageLatency).toBe(21);
  });

  it('ignores latencies that are not durations', () => {
    const { monitor } = monitorAt();
    monitor.recordLatency(40);
    for (const bad of [Number.NaN, -5, Infinity]) monitor.recordLatency(bad);
    expect(monitor.averageLatency).toBe(40);
  });

  it('computes the share of syncs under 100 ms over the last 100', () => {
    const { monitor } = monitorAt();
    for (const ms of [20, 99, 100, 250]) monitor.recordSync(ms);
    expect(monitor.sub100msSuccessRate).toBe(0.5);
    for (let i = 0; i < 100; i++) monitor.recordSync(10);
    expect(monitor.sub100msSuccessRate).toBe(1);
  });

  it('counts errors and reconnects of the last 5 minutes only', () => {
    const { monitor, advance } = monitorAt();
    monitor.recordError();
    monitor.recordReconnect();
    advance(4 * 60_000);
    monitor.recordError();
    expect(monitor.recentErrors).toBe(2);
    expect(monitor.recentReconnects).toBe(1);
    advance(60_000);
    expect(monitor.recentErrors).toBe(1);
    expect(monitor.recentReconnects).toBe(0);
  });
});

describe('QualityMonitor: quality score', () => {
  it('weighs latency 40, sub-100 ms syncs 30 and stability 30', () => {
    const { monitor } = monitorAt();
    monitor.recordLatency(550); // latencyScore = 1 - 450/900 = 0.5 → 20
    for (const ms of [50, 150]) monitor.recordSync(ms); // rate 0.5 → 15
    monitor.recordError();
    monitor.recordReconnect(); // stability = 1 - 3/10 = 0.7 → 21
    expect(monitor.qualityScore).toBe(56);
  });

  it('gives full latency marks up to 100 ms and none from 1000 ms', () => {
    const good = monitorAt().monitor;
    good.recordLatency(100);
    expect(good.qualityScore).toBe(100);
    const bad = monitorAt().monitor;
    bad.recordLatency(5_000);
    expect(bad.qualityScore).toBe(60);
  });

  it('loses the stability part after 5 reconnects and regains it 5 minutes later', () => {
    const { monitor, advance } = monitorAt();
    for (let i = 0; i < 8; i++) monitor.recordReconnect();
    expect(monitor.qualityScore).toBe(70);
    advance(5 * 60_000);
    expect(monitor.qualityScore).toBe(100);
  });

  it('stays within 0-100', () => {
    const { monitor } = monitorAt();
    for (let i = 0; i < 100; i++) {
      monitor.recordLatency(60_000);
      monitor.recordSync(60_000);
      monitor.recordError();
      monitor.recordReconnect();
    }
    expect(monitor.qualityScore).toBe(0);
  });
});

describe('QualityMonitor: health', () => {
  it('is offline when not connected and says what happens to pending changes', () => {
    const { monitor } = monitorAt();
    expect(monitor.health(false, 12)).toEqual({
      status: 'offline',
      recommendations: ['12 changes are waiting to be sent when the connection is back'],
    });
    expect(monitor.health(false, 1).recommendations).toEqual([
      '1 change is waiting to be sent when the connection is back',
    ]);
    expect(monitor.health(false, 0).recommendations).toEqual([
      'The client is not connected: changes made now are kept and sent when the connection is back',
    ]);
  });

  it('names a high average latency', () => {
    const { monitor } = monitorAt();
    monitor.recordLatency(400);
    monitor.recordLatency(500);
    expect(monitor.health(true, 0)).toEqual({
      status: 'degraded',
      recommendations: ['Average latency is 450 ms: check the network or use a gateway closer to the users'],
    });
  });

  it('names slow syncs once there are enough of them', () => {
    const { monitor } = monitorAt();
    for (const ms of [40, 300, 300, 300]) monitor.recordSync(ms);
    expect(monitor.health(true, 0).recommendations).toEqual([]);
    monitor.recordSync(300);
    expect(monitor.health(true, 0).recommendations).toEqual([
      'Only 20% of syncs finished within 100 ms: the gateway or its database may be overloaded; ' +
        'check their load, or sync fewer entity types at once',
    ]);
  });

  it('names repeated drops and errors of the last 5 minutes', () => {
    const { monitor, advance } = monitorAt();
    for (let i = 0; i < 4; i++) monitor.recordReconnect();
    for (let i = 0; i < 5; i++) monitor.recordError();

    const report = monitor.health(true, 0);
    expect(report.status).toBe('degraded'); // 40 + 30 + 0: fast, but unstable
    expect(report.recommendations).toEqual([
      'The connection dropped 4 times in 5 minutes: ' +
        'check the network, and proxies or load balancers that close idle or long-lived WebSockets',
      "5 errors in 5 minutes: listen to the client's error events to see their codes",
    ]);

    advance(5 * 60_000);
    expect(monitor.health(true, 0)).toEqual({ status: 'healthy', recommendations: [] });
  });

  it('names a large backlog while connected, but not a small one', () => {
    const { monitor } = monitorAt();
    expect(monitor.health(true, 3)).toEqual({ status: 'healthy', recommendations: [] });
    expect(monitor.health(true, 250)).toEqual({
      status: 'degraded',
      recommendations: [
        "250 changes are waiting for the server's acknowledgement: changes are made faster than they are " +
          'confirmed; combine edits (debounce them) or check the server load',
      ],
    });
  });

  it('grades by score: healthy from 80, unhealthy below 50', () => {
    const { monitor } = monitorAt();
    monitor.recordLatency(280); // 40 × 0.8 = 32 → 92, no recommendation below 300 ms
    expect(monitor.health(true, 0).status).toBe('healthy');
    monitor.recordLatency(5_000); // average 2640 ms → 60
    expect(monitor.health(true, 0).status).toBe('degraded');
    for (let i = 0; i < 3; i++) monitor.recordReconnect(); // stability 0.4 → 12 → 42
    expect(monitor.health(true, 0).status).toBe('unhealthy');
  });
});
