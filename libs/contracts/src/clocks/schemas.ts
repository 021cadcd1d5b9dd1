import { z } from 'zod';
import { HLC_PATTERN } from './hlc.js';

// The clocks' wire schemas live apart from the clocks, so that a browser bundle using only the
// clocks (the client SDK) leaves the validation library out.

export const hlcSchema = z
  .string()
  .regex(HLC_PATTERN, 'expected an HLC timestamp "<15-digit ms>:<5-digit counter>:<node>"');

export const vectorClockRecordSchema = z
  .record(z.string().min(1).max(128), z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER))
  .refine((record) => Object.keys(record).length <= 1024, 'vector clock has more than 1024 entries');
