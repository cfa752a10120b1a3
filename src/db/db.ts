// PostgreSQL connections: one pg pool per process. drizzle owns the schema and the migrations;
// queries are SQL over arrays (unnest), written out in the repository that needs them.
import pg from 'pg';
import { IDLE_IN_TRANSACTION_MS, POOL_SIZE_MAX, STATEMENT_TIMEOUT_MS } from '../config/limits';
import { log } from '../shared/log';

/**
 * `applicationName` shows in pg_stat_activity (which process holds a connection, a lock, an
 * open transaction): `ledgerline web <pid>`, `ledgerline worker <pid>`.
 */
export function createPool(
  databaseUrl: string,
  poolSizeMax = POOL_SIZE_MAX,
  applicationName = `ledgerline ${process.pid}`,
): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: poolSizeMax,
    application_name: applicationName,
    // The service's statements are OLTP: each reads or writes a handful of rows by key. A named
    // statement's generic plan is made once per connection and kept; one made while `transfers`
    // was small (a fresh database) was a sequential scan, and with no ANALYZE to invalidate it
    // (autovacuum off) every batch and long-poll then read the whole table: the lab's hot source
    // fell from 860 to 330 transfers/s within 45 s. Re-planning every call instead cost a third
    // of PostgreSQL's time. So: no sequential scan where an index serves (the reconciliation, which
    // reads whole tables, turns it back on), one generic plan per statement, and no JIT (with
    // the scan's penalty in the cost, JIT compiled a one-row query for 80 ms).
    options: '-c enable_seqscan=off -c plan_cache_mode=force_generic_plan -c jit=off',
    // Every statement is bounded; a stuck query is an infrastructure failure, retried elsewhere.
    statement_timeout: STATEMENT_TIMEOUT_MS,
    // A process frozen inside a transaction (SIGSTOP, a long GC pause) would hold its row locks,
    // the partition's among them, and keep the next owner from taking over: PostgreSQL ends it.
    idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_MS,
    connectionTimeoutMillis: STATEMENT_TIMEOUT_MS,
  });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  // Logged as a few fields: the error object drags the whole client (and its pool) along.
  pool.on('error', (err) =>
    log.warn(
      { code: (err as { code?: string }).code, message: err.message },
      'idle postgres connection lost',
    ),
  );
  return pool;
}

/**
 * Runs `fn` with a client of its own. A checked-out client can lose its connection between two
 * statements (the server ended an idle transaction, a restart, pg_terminate_backend): pg emits
 * that as an 'error' event, which would crash the process without a listener. The listener keeps
 * it; the next statement fails and the caller's retry takes over. A client that saw an error is
 * destroyed, not returned to the pool.
 */
export async function withClient<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (err: Error) => {
    broken = err;
    log.warn(
      { code: (err as { code?: string }).code, message: err.message },
      'postgres connection lost while checked out',
    );
  };
  client.on('error', onError);
  try {
    return await fn(client);
  } catch (err) {
    if (isConnectionLost(err)) broken ??= err as Error;
    throw err;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}

/** The connection itself is gone: class 08, an operator ending it (57P), an idle-transaction end. */
function isConnectionLost(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (typeof e?.code === 'string') return /^(08|57P|25P03)/.test(e.code);
  return typeof e?.message === 'string' && /Connection terminated/i.test(e.message);
}

/**
 * SQLSTATE classes that mean the code is wrong, not the infrastructure: data exceptions (22),
 * integrity violations (23: a CHECK or UNIQUE caught a bug) and syntax or access rules (42).
 * Such an error is never retried; every other failure of a statement is.
 */
export function isProgrammerPgError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(22|23|42)/.test(code);
}
