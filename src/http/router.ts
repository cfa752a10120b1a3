// A router per capability; all share the validation hook that turns zod issues into problem+json.
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Config } from '../config/env';
import type { Dispatcher } from '../queue/queues';
import type { Submitter } from '../transfers/submit';
import type { TransferWaiter } from '../transfers/transfer-waiter';
import type { AuthEnv, KeyStore } from './auth';
import type { Metrics } from './metrics';
import { problem } from './problem';

export type HttpDeps = {
  config: Config;
  pool: pg.Pool;
  redis: Redis;
  dispatcher: Dispatcher;
  submitter: Submitter;
  waiter: TransferWaiter;
  keys: KeyStore;
  metrics: Metrics;
  rateLimit: { perSecond: number; burst: number };
};

export function newRouter() {
  return new OpenAPIHono<AuthEnv>({
    defaultHook: (result, c) => {
      if (result.success) return;
      const issues = result.error.issues.map((i) => ({
        path: i.path.map(String).join('.') || '(body)',
        message:
          i.code === 'unrecognized_keys' ? `unknown field(s): ${i.keys.join(', ')}` : i.message,
      }));
      return problem(c, 400, 'validation_failed', 'the request does not match the schema', issues);
    },
  });
}

export const BEARER = [{ bearer: [] }];
