// What the web process hands its routers: one object, each router taking the part it needs.
import type { AuditLog } from '../audit/audit.repository';
import type { RedisConnection } from '../queue/queues';
import type pg from 'pg';
import type { Config } from '../config/env';
import type { KeyStore } from '../http/auth';
import type { RateLimiter } from '../http/rate-limit';
import type { Dispatcher } from '../queue/queues';
import type { Submitter } from '../transfers/submit';
import type { Admission } from '../transfers/admission';
import type { TransferReader } from '../transfers/transfers.repository';
import type { TransferWaiter } from '../transfers/transfer-waiter';
import type { Metrics } from './metrics';

export type HttpDeps = {
  config: Config;
  pool: pg.Pool;
  redis: RedisConnection;
  dispatcher: Dispatcher;
  submitter: Submitter;
  waiter: TransferWaiter;
  reader: TransferReader;
  admission: Admission;
  keys: KeyStore;
  audit: AuditLog;
  /** Account event streams this process holds open at most. */
  eventStreamsMax: number;
  metrics: Metrics;
  /** The API's per-key rate limit, shared by the Hono routes and the money-movement lane. */
  limiter: RateLimiter;
};
