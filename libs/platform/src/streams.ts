import {
  DiscardPolicy,
  jetstreamManager,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import bytes from 'bytes';
import ms from 'ms';
import {
  CHANGES_SETTINGS,
  MUTATIONS_SETTINGS,
  Subjects,
  type StreamNames,
  type StreamSettings,
} from '@syncline/contracts';
import type { CommonConfig } from './config.js';
import type { Logger } from './logger.js';

const NS_PER_MS = 1_000_000;

/** One of the two streams: what it is called, what it captures, and the settings that shape it. */
export interface StreamPlan {
  readonly name: string;
  readonly subject: string;
  readonly settings: StreamSettings;
  readonly replicas: number;
  /** MUTATIONS is a work queue; CHANGES keeps messages until their age or size limit. */
  readonly workQueue: boolean;
  /** The environment variables an operator changes to make the stream fit. */
  readonly variables: readonly string[];
}

/** The two streams as this configuration wants them. */
export function streamPlans(config: CommonConfig): StreamPlan[] {
  const subjects = new Subjects(config.SYNC_NAMESPACE);
  const names: StreamNames = { mutations: config.MUTATIONS_STREAM, changes: config.CHANGES_STREAM };
  return [
    {
      name: names.mutations,
      subject: subjects.allMutations(),
      settings: {
        ...MUTATIONS_SETTINGS,
        maxBytes: config.MUTATIONS_STREAM_MAX_BYTES,
        maxAgeNs: config.MUTATIONS_STREAM_MAX_AGE * NS_PER_MS,
      },
      replicas: config.STREAM_REPLICAS,
      workQueue: true,
      variables: ['MUTATIONS_STREAM_MAX_BYTES', 'STREAM_REPLICAS'],
    },
    {
      name: names.changes,
      subject: subjects.allChanges(),
      settings: {
        ...CHANGES_SETTINGS,
        maxBytes: config.CHANGES_STREAM_MAX_BYTES,
        maxAgeNs: config.CHANGES_STREAM_MAX_AGE * NS_PER_MS,
      },
      replicas: config.STREAM_REPLICAS,
      workQueue: false,
      variables: ['CHANGES_STREAM_MAX_BYTES', 'STREAM_REPLICAS'],
    },
  ];
}

/** A stream the NATS server refused to create or update; the message is the one line an operator needs. */
export class StreamSetupError extends Error {
  override readonly name = 'StreamSetupError';
}

/**
 * Creates the streams, or brings existing ones' settings up to date. Safe to run from every
 * replica at boot. If one cannot be made, the streams this call created are deleted again, so a
 * failed boot leaves nothing behind that holds a reservation on the server.
 */
export async function ensureStreams(jsm: JetStreamManager, plans: readonly StreamPlan[]): Promise<void> {
  const created: string[] = [];
  try {
    for (const plan of plans) {
      if (await ensureStream(jsm, plan)) created.push(plan.name);
    }
  } catch (error) {
    for (const name of created.reverse()) await jsm.streams.delete(name).catch(() => undefined);
    throw error;
  }
}

/** Whether the stream was created (rather than found and updated). */
async function ensureStream(jsm: JetStreamManager, plan: StreamPlan): Promise<boolean> {
  const config: Partial<StreamConfig> & { name: string } = {
    name: plan.name,
    subjects: [plan.subject],
    retention: plan.workQueue ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: plan.settings.maxAgeNs,
    max_bytes: plan.settings.maxBytes,
    duplicate_window: plan.settings.duplicateWindowNs,
    num_replicas: plan.replicas,
    // Direct get serves the outbox relay's "last message of this entity" lookups.
    allow_direct: true,
  };
  let exists = true;
  try {
    await jsm.streams.info(plan.name);
  } catch (error) {
    if (!isStreamNotFound(error)) throw error;
    exists = false;
  }
  try {
    if (exists) {
      const { retention: _fixed, storage: _alsoFixed, ...updatable } = config;
      await jsm.streams.update(plan.name, updatable);
    } else {
      await jsm.streams.add(config);
    }
  } catch (error) {
    throw new StreamSetupError(refusal(plan, exists, error), { cause: error });
  }
  return !exists;
}

function refusal(plan: StreamPlan, exists: boolean, error: unknown): string {
  const reason = error instanceof Error ? error.message : String(error);
  const { maxBytes, maxAgeNs } = plan.settings;
  const shape = [
    `max_bytes ${bytes.format(maxBytes, { unitSeparator: ' ' })}`,
    `max_age ${ms(maxAgeNs / NS_PER_MS, { long: true })}`,
    `${plan.replicas} replica${plan.replicas === 1 ? '' : 's'}`,
  ].join(', ');
  return (
    `NATS refused to ${exists ? 'update' : 'create'} stream ${plan.name} (${shape}): ${reason}. ` +
    `Lower ${plan.variables.join(' or ')}, or give the NATS server more JetStream storage (max_file_store).`
  );
}

function isStreamNotFound(error: unknown): boolean {
  return error instanceof Error && /stream not found/i.test(error.message);
}

/**
 * The streams step of every service's boot. A refusal is a deployment mistake, not a passing
 * fault: the service stops with one line that names the limit, and exit code 78 (EX_CONFIG).
 */
export async function prepareStreams(nats: NatsConnection, config: CommonConfig, logger: Logger): Promise<void> {
  try {
    await ensureStreams(await jetstreamManager(nats), streamPlans(config));
  } catch (error) {
    if (!(error instanceof StreamSetupError)) throw error;
    logger.fatal(error.message);
    process.stderr.write(`${error.message}\n`);
    await nats.close();
    process.exit(78);
  }
}
