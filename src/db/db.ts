// PostgreSQL connections: one pg pool per process. drizzle owns the schema and the migrations;
// queries are SQL over arrays (unnest), written out in the repository that needs them.
import pg from 'pg';
import { POOL_SIZE_MAX, STATEMENT_TIMEOUT_MS } from '../config/limits';
import { log } from '../shared/log';

export function createPool(databaseUrl: string, poolSizeMax = POOL_SIZE_MAX): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: poolSizeMax,
    // Every statement is bounded; a stuck query is an infrastructure failure, retried elsewhere.
    statement_timeout: STATEMENT_TIMEOUT_MS,
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
 * SQLSTATE classes that mean the code is wrong, not the infrastructure: data exceptions (22),
 * integrity violations (23: a CHECK or UNIQUE caught a bug) and syntax or access rules (42).
 * Such an error is never retried; every other failure of a statement is.
 */
export function isProgrammerPgError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(22|23|42)/.test(code);
}
