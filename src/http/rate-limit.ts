// Per API key token buckets, held in this process's memory: no I/O on the hot path.
import type { MiddlewareHandler } from 'hono';
import { RATE_LIMIT_KEYS_MAX } from '../config/limits';
import type { AuthEnv } from './auth';
import { ApiError } from './problem';

/** One token bucket per key: `perSecond` refill, `burst` capacity. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();

  constructor(readonly opts: { perSecond: number; burst: number }) {}

  /** Takes a token for `key`: undefined when it had one, else the seconds to wait for one. */
  take(key: string): number | undefined {
    const now = Date.now();
    if (this.buckets.size > RATE_LIMIT_KEYS_MAX) this.buckets.clear();
    const b = this.buckets.get(key) ?? { tokens: this.opts.burst, atMs: now };
    b.tokens = Math.min(this.opts.burst, b.tokens + ((now - b.atMs) / 1000) * this.opts.perSecond);
    b.atMs = now;
    this.buckets.set(key, b);
    if (b.tokens < 1) return Math.max(1, Math.ceil((1 - b.tokens) / this.opts.perSecond));
    b.tokens -= 1;
    return undefined;
  }
}

export function rateLimited(limiter: RateLimiter, retryAfterS: number): ApiError {
  return new ApiError(
    429,
    'rate_limited',
    `limit is ${limiter.opts.perSecond} requests per second`,
    undefined,
    { 'Retry-After': String(retryAfterS) },
  );
}

export function rateLimit(limiter: RateLimiter): MiddlewareHandler<AuthEnv> {
  return async function rateLimitByKey(c, next) {
    const retryAfterS = limiter.take(c.get('principal').keyId);
    if (retryAfterS !== undefined) throw rateLimited(limiter, retryAfterS);
    await next();
  };
}
