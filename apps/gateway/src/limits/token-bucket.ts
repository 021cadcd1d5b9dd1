/**
 * A token bucket: refills at `ratePerSecond` up to `burst` tokens; each request takes one. It
 * allows short bursts and holds a sustained rate, and costs two numbers per bucket.
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    now: number = Date.now(),
  ) {
    this.tokens = burst;
    this.updatedAt = now;
  }

  /** Takes a token and returns 0, or takes nothing and returns the ms until one is available. */
  take(now: number = Date.now()): number {
    this.refill(now);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) * 1000) / this.ratePerSecond);
  }

  /**
   * Takes `count` tokens that were spent elsewhere (another gateway's share of the same limit).
   * The bucket may go into debt, down to one burst, and admits nothing until it is paid back.
   */
  debit(count: number, now: number = Date.now()): void {
    this.refill(now);
    this.tokens = Math.max(-this.burst, this.tokens - count);
  }

  /** Whether the bucket has refilled completely: forgetting it then changes nothing. */
  isFull(now: number = Date.now()): boolean {
    this.refill(now);
    return this.tokens >= this.burst;
  }

  private refill(now: number): void {
    const elapsed = Math.max(0, now - this.updatedAt);
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.ratePerSecond) / 1000);
    this.updatedAt = now;
  }
}
