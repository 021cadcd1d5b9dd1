export interface BackoffOptions {
  /** The smallest delay, and the whole range of the first step (`attempt` 0). */
  readonly minDelayMs: number;
  /** No delay is ever longer than this. */
  readonly maxDelayMs: number;
}

/** The bounds the client uses unless told otherwise. */
export const DEFAULT_BACKOFF: BackoffOptions = { minDelayMs: 1_000, maxDelayMs: 30_000 };

/**
 * Exponential backoff with full jitter: the ceiling doubles with each attempt up to `maxDelayMs`,
 * and the delay is drawn uniformly between `minDelayMs` and that ceiling.
 *
 *   cap   = min(maxDelayMs, minDelayMs × 2^attempt)
 *   delay = minDelayMs + random() × (cap − minDelayMs)
 *
 * The jitter matters more than the growth: when a gateway restarts, all of its clients lose
 * their connection at the same instant, and without it they would all come back at the same
 * instants too. Keeping `minDelayMs` as the floor (rather than 0) spares a gateway that is
 * still starting an immediate wave of handshakes.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  // Inconsistent bounds (max below min) must still honour "never above max".
  const low = Math.min(options.minDelayMs, options.maxDelayMs);
  const exponent = Number.isFinite(attempt) ? Math.max(0, attempt) : 0;
  // 2 ** exponent overflows to Infinity for large attempts; min() then keeps maxDelayMs.
  const cap = Math.min(options.maxDelayMs, low * 2 ** exponent);
  return low + clamp01(random()) * Math.max(0, cap - low);
}

function clamp01(value: number): number {
  return Number.isFinite(value) ? Math.min(1, Math.max(0, value)) : 0;
}
