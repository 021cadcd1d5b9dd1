import {
  context,
  propagation,
  trace,
  metrics,
  type Context,
  type Span,
  type Tracer,
  SpanKind,
  SpanStatusCode,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, TracerProvider, type SpanProcessor } from '@opentelemetry/sdk-trace';
import { MeterProvider, PeriodicExportingMetricReader, type MetricReader } from '@opentelemetry/sdk-metrics';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import type { MsgHdrs } from '@nats-io/nats-core';

export { SpanKind, SpanStatusCode, context, trace, type Span, type Tracer, type Context };

export interface TelemetryOptions {
  readonly serviceName: string;
  readonly instanceId: string;
  /** OTLP/HTTP endpoint, e.g. `http://collector:4318`; without it spans are not exported. */
  readonly otlpEndpoint?: string | undefined;
  readonly metricExportIntervalMs?: number;
  /** Extra span processors (tests add an in-memory exporter). */
  readonly spanProcessors?: SpanProcessor[];
  readonly metricReaders?: MetricReader[];
}

export interface Telemetry {
  readonly tracer: Tracer;
  shutdown(): Promise<void>;
}

/**
 * Sets up tracing and metrics for one service: W3C trace context propagation, async context,
 * and OTLP export when an endpoint is configured.
 */
export function initTelemetry(options: TelemetryOptions): Telemetry {
  const resource = resourceFromAttributes({
    'service.name': options.serviceName,
    'service.instance.id': options.instanceId,
  });
  const spanProcessors: SpanProcessor[] = [...(options.spanProcessors ?? [])];
  const metricReaders: MetricReader[] = [...(options.metricReaders ?? [])];
  if (options.otlpEndpoint) {
    const base = options.otlpEndpoint.replace(/\/$/, '');
    spanProcessors.push(
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter({ url: `${base}/v1/traces` }),
        scheduledDelayMillis: 500,
      }),
    );
    metricReaders.push(
      new PeriodicExportingMetricReader({
        exporter: new OTLPMetricExporter({ url: `${base}/v1/metrics` }),
        exportIntervalMillis: options.metricExportIntervalMs ?? 10_000,
      }),
    );
  }
  context.setGlobalContextManager(new AsyncLocalStorageContextManager());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  // Without an exporter the API's no-op tracer and meter stay in place: recording spans and
  // measurements nobody reads would cost every message CPU for nothing.
  const tracerProvider = spanProcessors.length > 0 ? new TracerProvider({ resource, spanProcessors }) : undefined;
  const meterProvider = metricReaders.length > 0 ? new MeterProvider({ resource, readers: metricReaders }) : undefined;
  if (tracerProvider) trace.setGlobalTracerProvider(tracerProvider);
  if (meterProvider) metrics.setGlobalMeterProvider(meterProvider);

  return {
    tracer: trace.getTracer(options.serviceName),
    async shutdown() {
      await Promise.allSettled([tracerProvider?.shutdown(), meterProvider?.shutdown()]);
    },
  };
}

const headerSetter = {
  set(carrier: MsgHdrs, key: string, value: string) {
    carrier.set(key, value);
  },
};

const headerGetter = {
  get(carrier: MsgHdrs | undefined, key: string) {
    return carrier?.get(key) || undefined;
  },
  keys(carrier: MsgHdrs | undefined) {
    return carrier ? [...carrier.keys()] : [];
  },
};

/** Writes the trace context of `ctx` (default: the active one) into NATS headers. */
export function injectTraceContext(headers: MsgHdrs, ctx: Context = context.active()): MsgHdrs {
  propagation.inject(ctx, headers, headerSetter);
  return headers;
}

/** Reads the trace context a producer put into NATS headers. */
export function extractTraceContext(headers: MsgHdrs | undefined): Context {
  return propagation.extract(context.active(), headers, headerGetter);
}

/** Trace context from a stored `traceparent` string (the outbox keeps it with the change row). */
export function contextFromTraceparent(traceparent: string | null | undefined): Context {
  if (!traceparent) return context.active();
  return propagation.extract(
    context.active(),
    { traceparent },
    {
      get: (carrier: Record<string, string>, key: string) => carrier[key],
      keys: (carrier: Record<string, string>) => Object.keys(carrier),
    },
  );
}

/** The `traceparent` of a context, to store with a row the outbox relay will publish later. */
export function traceparentOf(ctx: Context): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier['traceparent'];
}

/** Ends a span, recording an error if there was one. */
export function endSpan(span: Span, error?: unknown): void {
  if (error !== undefined) {
    span.recordException(error instanceof Error ? error : new Error(String(error)));
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}
