// Per-API-key token bucket, in process memory: each web instance enforces its own share.
import type { MiddlewareHandler } from 'hono';
import { RATE_LIMIT_KEYS_MAX } from '../config/limits';
import type { AuthEnv } from './auth';
import { ApiError } from './problem';

export function rateLimit(opts: { perSecond: number; burst: number }): MiddlewareHandler<AuthEnv> {
  const buckets = new Map<string, { tokens: number; atMs: number }>();
  return async function rateLimitByKey(c, next) {
    const key = c.get('principal').keyId;
    const now = Date.now();
    if (buckets.size > RATE_LIMIT_KEYS_MAX) buckets.clear();
    const b = buckets.get(key) ?? { tokens: opts.burst, atMs: now };
    b.tokens = Math.min(opts.burst, b.tokens + ((now - b.atMs) / 1000) * opts.perSecond);
    b.atMs = now;
    if (b.tokens < 1) {
      buckets.set(key, b);
      const retryAfterS = Math.max(1, Math.ceil((1 - b.tokens) / opts.perSecond));
      throw new ApiError(
        429,
        'rate_limited',
        `limit is ${opts.perSecond} requests per second`,
        undefined,
        {
          'Retry-After': String(retryAfterS),
        },
      );
    }
    b.tokens -= 1;
    buckets.set(key, b);
    await next();
  };
}
