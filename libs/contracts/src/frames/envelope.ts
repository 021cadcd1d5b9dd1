import { z } from 'zod';

/** Correlates a reply with its request: the client chooses it, the server echoes it as `ref`. */
export const frameIdSchema = z.string().min(1).max(128);

/** Every frame, both ways: `{type, id?, payload, timestamp}` with `timestamp` in epoch ms. */
export const envelopeSchema = z.object({
  type: z.string().min(1).max(64),
  id: frameIdSchema.optional(),
  payload: z.unknown(),
  timestamp: z.number().finite().nonnegative(),
});
export type Envelope = z.infer<typeof envelopeSchema>;
