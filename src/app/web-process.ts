// A web process: the app wired to PostgreSQL, Redis and the long-poll listener, served over HTTP.
import type { ServerType } from '@hono/node-server';
import type { Config } from '../config/env';
import {
  BACKLOG_CHECK_INTERVAL_MS,
  EVENT_STREAMS_MAX,
  STOP_GRACE_MS,
  PARTITION_BACKLOG_LEGS_MAX,
  POOL_SIZE_MAX,
  SUBMIT_WAITING_COMMANDS_MAX,
} from '../config/limits';
import { Admission } from '../transfers/admission';
import { AuditLog } from '../audit/audit.repository';
import { createPool } from '../db/db';
import { listenHttp, type ReceiveLimits } from '../http/listen';
import { createProducerConnection, Dispatcher } from '../queue/queues';
import { Submitter } from '../transfers/submit';
import { TransferReader } from '../transfers/transfers.repository';
import { TransferWaiter } from '../transfers/transfer-waiter';
import { createApp } from './app';
import { MoneyLane } from './money-lane';
import { KeyStore } from '../http/auth';
import { RateLimiter } from '../http/rate-limit';
import { createMetrics } from './metrics';
import type { HttpDeps } from './deps';
import { log } from '../shared/log';

export type WebProcess = {
  deps: HttpDeps;
  app: ReturnType<typeof createApp>;
  /** Serves plain money movements ahead of `app` over HTTP (not through `app.request`). */
  lane: MoneyLane;
  listen: (port: number) => Promise<number>;
  stop: () => Promise<void>;
};

/** Admission bounds; tests set small ones, production takes the limits' defaults. */
export type WebLimits = {
  /** How long a client may take to send a request (tests shorten it). */
  receive?: ReceiveLimits;
  heldCommandsMax?: number;
  backlogLegsMax?: number;
  eventStreamsMax?: number;
};

export async function createWebProcess(
  config: Config,
  limits: WebLimits = {},
): Promise<WebProcess> {
  const pool = createPool(config.databaseUrl, POOL_SIZE_MAX, `ledgerline web ${process.pid}`);
  const redis = createProducerConnection(config.redisUrl);
  const dispatcher = new Dispatcher(redis, config.queuePrefix);
  const admission = new Admission({
    pool,
    partitions: config.partitions,
    backlogLegsMax: limits.backlogLegsMax ?? PARTITION_BACKLOG_LEGS_MAX,
    checkIntervalMs: BACKLOG_CHECK_INTERVAL_MS,
  });
  await admission.start();
  const submitter = new Submitter({
    pool,
    dispatcher,
    partitions: config.partitions,
    onEnqueueError: (err) =>
      log.warn({ err }, 'enqueue failed after commit; the sweep will re-drive'),
    heldCommandsMax: limits.heldCommandsMax ?? SUBMIT_WAITING_COMMANDS_MAX,
    admission,
  });
  const waiter = new TransferWaiter(config.databaseUrl);
  await waiter.start();
  const deps: HttpDeps = {
    config,
    pool,
    redis,
    dispatcher,
    submitter,
    waiter,
    reader: new TransferReader(pool),
    admission,
    keys: new KeyStore(pool, config.adminApiKey),
    audit: new AuditLog(pool),
    eventStreamsMax: limits.eventStreamsMax ?? EVENT_STREAMS_MAX,
    metrics: createMetrics({ dispatcher, partitions: config.partitions }),
    limiter: new RateLimiter(config.rateLimit),
  };
  const app = createApp(deps);
  const lane = new MoneyLane(deps);
  let server: ServerType | undefined;

  return {
    deps,
    app,
    lane,
    listen: async (port) => {
      const listening = await listenHttp(app.fetch, {
        port,
        hostname: config.host,
        ahead: (hono) => lane.listener(hono),
        ...(limits.receive ? { receive: limits.receive } : {}),
      });
      server = listening.server;
      return listening.port;
    },
    async stop() {
      admission.stop();
      await waiter.stop();
      if (server) {
        const s = server as ServerType & { closeAllConnections?: () => void };
        const closed = new Promise<void>((resolve) => s.close(() => resolve()));
        // Requests in flight get a moment to finish; what is still open then (event streams,
        // which clients resume elsewhere with Last-Event-ID) is cut.
        const cut = setTimeout(() => s.closeAllConnections?.(), STOP_GRACE_MS);
        await closed;
        clearTimeout(cut);
      }
      await dispatcher.close();
      redis.disconnect();
      // The trail's last rows, once no request can add more.
      await deps.audit.flush().catch(() => {});
      await pool.end();
    },
  };
}
