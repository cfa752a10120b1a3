// How many legs wait to be applied, per partition, read from PostgreSQL (the record), not from
// Redis (which may have lost some). Each count stops at a cap, so a deep backlog costs no more
// to measure than the cap.
import type pg from 'pg';

/**
 * Per partition: its debit legs (transfers `accepted` there), its credit legs (`debited`,
 * bound there) and its refund legs (`debited` with a failure, back at their source), each
 * counted up to `capLegs`. Every count is answered by a small partial index.
 */
export async function backlogLegs(
  pool: Pick<pg.Pool, 'query'>,
  opts: { partitions: readonly number[]; capLegs: number },
): Promise<Map<number, number>> {
  const res = await pool.query<{ p: number; n: string }>(
    `SELECT p,
            (SELECT count(*) FROM (SELECT 1 FROM transfers
               WHERE status = 'accepted' AND src_partition = p LIMIT $2) a)
          + (SELECT count(*) FROM (SELECT 1 FROM transfers
               WHERE status = 'debited' AND failure_code IS NULL AND dst_partition = p LIMIT $2) c)
          + (SELECT count(*) FROM (SELECT 1 FROM transfers
               WHERE status = 'debited' AND failure_code IS NOT NULL AND src_partition = p
               LIMIT $2) r) AS n
       FROM unnest($1::int[]) AS p`,
    [opts.partitions, opts.capLegs],
  );
  return new Map(res.rows.map((r) => [r.p, Number(r.n)]));
}

/**
 * Per partition: how long its oldest waiting leg has waited, in seconds (0 when none waits).
 * Each side is the first row of a sweep index.
 */
export async function oldestWaitingSeconds(
  pool: Pick<pg.Pool, 'query'>,
  partitions: readonly number[],
): Promise<Map<number, number>> {
  const res = await pool.query<{ p: number; s: number | null }>(
    `SELECT p, extract(epoch FROM now() - least(
              (SELECT min(accepted_at) FROM transfers
                WHERE status = 'accepted' AND src_partition = p),
              (SELECT min(debited_at) FROM transfers
                WHERE status = 'debited' AND failure_code IS NULL AND dst_partition = p),
              (SELECT min(debited_at) FROM transfers
                WHERE status = 'debited' AND failure_code IS NOT NULL AND src_partition = p)
            ))::float8 AS s
       FROM unnest($1::int[]) AS p`,
    [partitions],
  );
  return new Map(res.rows.map((r) => [r.p, Math.max(0, r.s ?? 0)]));
}
