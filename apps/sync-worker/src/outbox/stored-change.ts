import type { JetStreamManager, MsgRequest } from '@nats-io/jetstream';
import { Header } from '@syncline/contracts';

/** The header JetStream keeps a message's deduplication id in. */
const MSG_ID_HEADER = 'Nats-Msg-Id';

export interface StoredChangeQuery {
  /** The entity's subject on CHANGES. */
  readonly subject: string;
  /** The stream sequence of the version before the change. */
  readonly predecessorSeq: number;
  /** The change's message id. */
  readonly msgID: string;
}

/**
 * The stream sequence of a change already stored right after its predecessor, if it is.
 *
 * A publication that expects the predecessor's sequence is refused as out of order when the
 * change itself is already there and the duplicate check did not catch it: a replicated stream
 * checks the expected sequence first, and any stream forgets ids after its duplicate window.
 * That happens when a first ack was lost (a leader change, a timeout) and the change is
 * published again. The message that follows the predecessor on the subject settles it: if it
 * carries the change's id, it is the change.
 */
export async function sequenceStoredAfter(
  jsm: JetStreamManager,
  stream: string,
  { subject, predecessorSeq, msgID }: StoredChangeQuery,
): Promise<number | undefined> {
  // nats-server 2.9's message get serves `next_by_subj`; the client's types name it only for
  // direct gets.
  const query = { seq: predecessorSeq + 1, next_by_subj: subject } as unknown as MsgRequest;
  const stored = await jsm.streams.getMessage(stream, query).catch(() => null);
  return stored?.header?.get(MSG_ID_HEADER) === msgID ? stored.seq : undefined;
}

/** Where an entity's feed ends in CHANGES: its latest stored version and that message's sequence. */
export interface FeedEnd {
  readonly version: number;
  readonly seq: number;
}

/**
 * The last change of an entity stored in CHANGES (asked of the stream's leader, so it is never
 * behind), or undefined when the stream holds none: the entity has no published version, or they
 * all aged out of the stream's window.
 */
export async function lastStoredChange(
  jsm: JetStreamManager,
  stream: string,
  subject: string,
): Promise<FeedEnd | undefined> {
  const stored = await jsm.streams.getMessage(stream, { last_by_subj: subject });
  if (!stored) return undefined;
  const version = Number(stored.header?.get(Header.version));
  if (!Number.isSafeInteger(version) || version < 1) throw new Error(`change ${stored.seq} has no version header`);
  return { version, seq: stored.seq };
}
