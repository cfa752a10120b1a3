// Per test file: a database cloned from the migrated template, a queue prefix of its own, the
// engine's parts wired to both, and cleanup of every database row and Redis key afterwards.
import { randomBytes } from 'node:crypto';
import { Cluster } from 'ioredis';
import pg from 'pg';
import { inject } from 'vitest';
import { createAccount, type Account } from '../../src/accounts/accounts.repository';
import type { Config } from '../../src/config/env';
import { AMOUNT_MINOR_MAX_DEFAULT } from '../../src/config/limits';
import { createPool } from '../../src/db/db';
import { WorkerProcess, type WorkerProcessOptions } from '../../src/partitions/worker-process';
import { createProducerConnection, Dispatcher, type RedisConnection } from '../../src/queue/queues';
import { Submitter, type Command } from '../../src/transfers/submit';
import { getTransfers, type Transfer } from '../../src/transfers/transfers.repository';
import { isFinal } from '../../src/domain/transfer';
import { adminUrl, serverUrl } from './urls';

/** Tuning that makes the engine's timers fit a test's patience. */
export const FAST_TUNING = {
  sweepAfterMs: 1_000,
  sweepIntervalMs: 250,
  interestPollIntervalMs: 100,
} as const;

export type TestEnv = {
  config: Config;
  pool: pg.Pool;
  redis: RedisConnection;
  dispatcher: Dispatcher;
  submitter: Submitter;
  fatal: Error[];
  startWorker: (opts?: Partial<WorkerProcessOptions>) => Promise<WorkerProcess>;
  account: (opts?: { currency?: string; overdraftLimit?: bigint }) => Promise<Account>;
  submit: (commands: Omit<Command, 'idempotencyScope'>[]) => Promise<Transfer[]>;
  waitForFinal: (ids: readonly string[], timeoutMs?: number) => Promise<Transfer[]>;
  cleanup: () => Promise<void>;
};

export async function createTestEnv(
  opts: { partitions?: number; redisUrl?: string } = {},
): Promise<TestEnv> {
  const suffix = randomBytes(6).toString('hex');
  const database = `ledgerline_test_${suffix}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(
    `CREATE DATABASE ${pg.escapeIdentifier(database)} TEMPLATE ${pg.escapeIdentifier(inject('templateDatabase'))}`,
  );
  await admin.end();

  const config: Config = {
    databaseUrl: serverUrl(database),
    redisUrl: opts.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    port: 0,
    host: '127.0.0.1',
    adminApiKey: 'test-admin-key-0123456789',
    partitions: opts.partitions ?? 8,
    queuePrefix: `lltest_${suffix}`,
    amountMinorMax: AMOUNT_MINOR_MAX_DEFAULT,
    rateLimit: { perSecond: 100_000, burst: 100_000 },
  };
  const pool = createPool(config.databaseUrl);
  const redis = createProducerConnection(config.redisUrl);
  await new Promise<void>((resolve, reject) => {
    redis.once('ready', resolve);
    redis.once('error', reject);
  });
  const dispatcher = new Dispatcher(redis, config.queuePrefix);
  const submitter = new Submitter({ pool, dispatcher, partitions: config.partitions });
  const workers: WorkerProcess[] = [];
  const fatal: Error[] = [];

  const env: TestEnv = {
    config,
    pool,
    redis,
    dispatcher,
    submitter,
    fatal,
    async startWorker(o = {}) {
      const w = new WorkerProcess({
        config,
        leaseMs: 2_000,
        claimIntervalMs: 200,
        tuning: FAST_TUNING,
        onFatal: (err) => fatal.push(err),
        ...o,
      });
      workers.push(w);
      await w.start();
      return w;
    },
    account: (o = {}) =>
      createAccount(pool, {
        holder: `holder-${randomBytes(3).toString('hex')}`,
        currency: o.currency ?? 'EUR',
        overdraftLimit: o.overdraftLimit ?? 0n,
        partitions: config.partitions,
      }),
    async submit(commands) {
      const results = await submitter.submit(
        commands.map((c) => ({ idempotencyScope: 'test', ...c })),
      );
      return results.map((r) => r.transfer);
    },
    async waitForFinal(ids, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = await getTransfers(pool, ids);
        if (found.length === ids.length && found.every((t) => isFinal(t.status))) {
          const byId = new Map(found.map((t) => [t.id, t]));
          return ids.map((id) => byId.get(id)!);
        }
        if (Date.now() > deadline) {
          const open = found.filter((t) => !isFinal(t.status)).length;
          throw new Error(
            `${open + ids.length - found.length} of ${ids.length} transfers not final`,
          );
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async cleanup() {
      for (const w of workers) await w.stop().catch(() => {});
      await dispatcher.close();
      await deleteKeys(redis, `${config.queuePrefix}:*`);
      redis.disconnect();
      await pool.end();
      const a = new pg.Client({ connectionString: adminUrl() });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(database)} WITH (FORCE)`);
      await a.end();
    },
  };
  return env;
}

/** Deletes the keys matching `pattern`; in a cluster, on every master (keys one at a time). */
export async function deleteKeys(redis: RedisConnection, pattern: string): Promise<number> {
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  let deleted = 0;
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length === 0) continue;
      // One server takes them at once; a cluster only key by key (they span slots).
      if (redis instanceof Cluster) for (const key of keys) deleted += await redis.del(key);
      else deleted += await redis.del(...keys);
    } while (cursor !== '0');
  }
  return deleted;
}

/** Command builders for tests, in EUR unless told otherwise. */
export function deposit(
  toAccountId: string,
  amountMinor: bigint,
): Omit<Command, 'idempotencyScope'> {
  return { type: 'deposit', fromAccountId: null, toAccountId, amountMinor, currency: 'EUR' };
}

export function transfer(
  fromAccountId: string,
  toAccountId: string,
  amountMinor: bigint,
): Omit<Command, 'idempotencyScope'> {
  return { type: 'transfer', fromAccountId, toAccountId, amountMinor, currency: 'EUR' };
}
