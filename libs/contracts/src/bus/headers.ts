/** NATS header names the services agree on. W3C `traceparent` / `tracestate` travel as they are. */
export const Header = {
  /** JetStream de-duplication id. */
  msgId: 'Nats-Msg-Id',
  /** Gateway that received the mutation; its outcome is sent back there. */
  gatewayId: 'Sync-Gateway',
  /** Connection that sent the mutation; it gets an `ack` instead of its own echo. */
  connectionId: 'Sync-Connection',
  mutationId: 'Sync-Mutation',
  /** Outcome of the mutation behind a change: applied or merged. */
  status: 'Sync-Status',
  /** Entity version a change produced; lets the outbox relay find what CHANGES already holds. */
  version: 'Sync-Version',
  /** Epoch ms at which the gateway received the mutation, for the end-to-end latency histogram. */
  receivedAt: 'Sync-Received-At',
} as const;
