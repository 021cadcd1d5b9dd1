import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { OtlpReceiver, type ReceivedSpan } from './support/otlp-receiver.js';
import { eventually } from './support/eventually.js';
import { TestSystem } from './support/system.js';
import { TestClient, hlcNow, mutationId } from './support/ws-client.js';

/** One change is one trace: gateway → worker (and its conflict resolution) → CHANGES → delivery on another gateway. */
describe('tracing', () => {
  let receiver: OtlpReceiver;
  let system: TestSystem;

  beforeAll(async () => {
    receiver = await OtlpReceiver.start();
    system = await TestSystem.start({
      gateways: 2,
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_METRIC_EXPORT_INTERVAL: '300' },
    });
  });

  afterAll(async () => {
    await system?.stop();
    await receiver?.stop();
  });

  it('links every hop of a conflicting change into one trace', async () => {
    const author = await TestClient.connect(
      system.gateways[0]!.url,
      await system.mintToken({ sub: 'a', tenant: 'acme' }),
    );
    const reader = await TestClient.connect(
      system.gateways[1]!.url,
      await system.mintToken({ sub: 'b', tenant: 'acme' }),
    );
    await reader.request('subscribe', { entityTypes: ['docs'] });
    const send = async (id: string, data: Record<string, string>, baseVersion: number, node: string) => {
      author.send('mutate', {
        mutationId: id,
        entityType: 'docs',
        entityId: 'd-1',
        op: 'patch',
        data,
        baseVersion,
        vectorClock: { [node]: 1 },
        hlc: hlcNow(node),
      });
      return author.waitForOutcome(id);
    };
    await send(mutationId(), { a: '1' }, 0, 'x');
    await send(mutationId(), { b: '1' }, 1, 'y');
    // Made on version 1 by a third node that has not seen version 2: concurrent, so it is resolved.
    const conflicting = mutationId();
    await send(conflicting, { c: '1' }, 1, 'z');
    await reader.waitForType('delta', (f) => f.payload.version === 3);

    const trace = await waitForTrace(receiver, conflicting);
    const services = new Set(trace.map((span) => span.service));
    expect(services).toEqual(new Set(['gateway', 'sync-worker']));
    const names = trace.map((span) => `${span.service}/${span.name}`);
    expect(names).toEqual(
      expect.arrayContaining([
        'gateway/mutation.receive',
        'sync-worker/mutation.process',
        'sync-worker/conflict.resolve',
        'sync-worker/changes.publish',
        'gateway/changes.deliver',
      ]),
    );
    // Every span but the root has its parent in the same trace.
    const ids = new Set(trace.map((span) => span.spanId));
    const roots = trace.filter((span) => !span.parentSpanId || !ids.has(span.parentSpanId));
    expect(roots.map((span) => span.name)).toEqual(['mutation.receive']);
  });

  it('exports the end-to-end latency histogram: gateway receipt to delivery on another client', async () => {
    const metric = await eventually(
      () => receiver.metrics.find((m) => m.name === 'syncline.delivery.latency' && m.service === 'gateway'),
      'the delivery latency histogram',
    );
    const points = (metric.data['histogram'] as { dataPoints: { count: string | number }[] }).dataPoints;
    expect(points.reduce((sum, point) => sum + Number(point.count), 0)).toBeGreaterThan(0);
  });
});

function waitForTrace(receiver: OtlpReceiver, mutation: string): Promise<ReceivedSpan[]> {
  return eventually(() => {
    const root = receiver.spans.find(
      (span) => span.name === 'mutation.receive' && span.attributes['sync.mutation_id'] === mutation,
    );
    const trace = root ? receiver.spans.filter((span) => span.traceId === root.traceId) : [];
    const complete = ['mutation.process', 'conflict.resolve', 'changes.publish', 'changes.deliver'].every((name) =>
      trace.some((span) => span.name === name),
    );
    return complete && trace;
  }, `every span of the trace of ${mutation}`);
}
