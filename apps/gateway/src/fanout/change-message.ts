import type { JsMsg } from '@nats-io/jetstream';
import { Header } from '@syncline/contracts';

const decoder = new TextDecoder();

/** A change read from CHANGES, with the stream data the gateway adds to the delta it sends. */
export interface ChangeMessage {
  readonly seq: number;
  /** The JSON body as stored: the delta without `seq` and `cursor`. */
  readonly body: string;
  /** Connection that authored it (it gets an ack instead of this change). */
  readonly authorConnectionId: string | undefined;
  readonly receivedAt: number | undefined;
  readonly msg: JsMsg;
}

export function toChangeMessage(msg: JsMsg): ChangeMessage {
  const receivedAt = Number(msg.headers?.get(Header.receivedAt));
  return {
    seq: msg.seq,
    body: decoder.decode(msg.data),
    authorConnectionId: msg.headers?.get(Header.connectionId) || undefined,
    receivedAt: Number.isFinite(receivedAt) && receivedAt > 0 ? receivedAt : undefined,
    msg,
  };
}

/**
 * The `delta` frame for a change, built by splicing the stored body rather than parsing and
 * re-serializing it: the gateway does this once per change, whatever the number of recipients.
 */
export function deltaFrame(change: ChangeMessage, epoch: string, id?: string): string {
  const head =
    id === undefined ? '{"type":"delta","payload":' : `{"type":"delta","id":${JSON.stringify(id)},"payload":`;
  return `${head}${deltaPayloadJson(change, epoch)},"timestamp":${Date.now()}}`;
}

/** The `delta` payload as JSON: the stored body with the stream sequence and cursor put in front. */
export function deltaPayloadJson(change: ChangeMessage, epoch: string): string {
  return `{"seq":${change.seq},"cursor":"${epoch}:${change.seq}",${change.body.slice(1)}`;
}
