// Start-up checks: PostgreSQL and Redis answer, or one clear line says which did not and how to start it.
import { Cluster } from 'ioredis';
import { connectRedis } from '../queue/queues';
import pg from 'pg';
import { migrationsPending } from '../db/migrate';

const CONNECT_TIMEOUT_MS = 3_000;

export class PreflightError extends Error {
  override name = 'PreflightError';
}

function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

/**
 * Connects to the server's `postgres` database, so a missing application database is fine here.
 * Returns warnings about settings a payments deployment should not run with.
 */
export async function checkPostgres(databaseUrl: string): Promise<string[]> {
  const url = new URL(databaseUrl);
  url.pathname = '/postgres';
  const client = new pg.Client({
    connectionString: url.toString(),
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
  });
  try {
    await client.connect();
    const settings = await client.query<{ name: string; setting: string }>(
      `SELECT name, setting FROM pg_settings WHERE name IN ('autovacuum', 'synchronous_commit')`,
    );
    const setting = new Map(settings.rows.map((r) => [r.name, r.setting]));
    const warnings: string[] = [];
    if (setting.get('synchronous_commit') !== 'on') {
      warnings.push(
        `PostgreSQL synchronous_commit is ${setting.get('synchronous_commit')}: a 202 may be lost in a crash`,
      );
    }
    if (setting.get('autovacuum') !== 'on') {
      warnings.push(
        'PostgreSQL runs with autovacuum off: every status change leaves a dead transfer row ' +
          'behind, so tables and indexes grow until someone runs VACUUM',
      );
    }
    return warnings;
  } catch (err) {
    throw new PreflightError(
      `PostgreSQL is not reachable at ${redact(databaseUrl)} (${(err as Error).message}); ` +
        `start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`,
    );
  } finally {
    await client.end().catch(() => {});
  }
}

/** A process refuses to run on a schema older than its code: one line says what to do. */
export async function checkSchema(databaseUrl: string): Promise<void> {
  const pending = await migrationsPending(databaseUrl).catch((err: Error) => {
    throw new PreflightError(`cannot read the schema of ${redact(databaseUrl)}: ${err.message}`);
  });
  if (pending > 0) {
    throw new PreflightError(
      `the database schema at ${redact(databaseUrl)} is older than this code ` +
        `(${pending} migration(s) not applied); run: npm run migrate`,
    );
  }
}

/** Returns warnings about settings that cost latency (never money) when Redis loses data. */
export async function checkRedis(redisUrl: string): Promise<string[]> {
  const redis = connectRedis(redisUrl, {
    lazyConnect: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
    const warnings: string[] = [];
    // In a cluster every node keeps its own settings; the first master speaks for them here.
    const node = redis instanceof Cluster ? redis.nodes('master')[0]! : redis;
    const policy = (await node.config('GET', 'maxmemory-policy')) as string[];
    if (policy[1] !== 'noeviction') {
      warnings.push(
        `Redis maxmemory-policy is ${policy[1]}, not noeviction: evicted jobs wait for the sweep`,
      );
    }
    const aof = (await node.config('GET', 'appendonly')) as string[];
    if (aof[1] !== 'yes') {
      warnings.push(
        'Redis runs without AOF (appendonly no): after a Redis restart the sweep re-drives ' +
          'pending transfers from PostgreSQL, which costs latency, never money',
      );
    }
    return warnings;
  } catch (err) {
    throw new PreflightError(
      `Redis is not reachable at ${redact(redisUrl)} (${(err as Error).message}); start it with: ` +
        `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no`,
    );
  } finally {
    redis.disconnect();
  }
}

/** Runs a CLI main: a PreflightError is one line on stderr and exit code 1, not a stack trace. */
export function runMain(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    if (err instanceof PreflightError) console.error(`ledgerline: ${err.message}`);
    else console.error(err);
    process.exit(1);
  });
}
