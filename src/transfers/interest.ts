// Interest runs as the web sees them: a run is recorded with one row per partition, and each
// partition's owner pays its own accounts in its stream (src/partitions/interest.ts). The web
// only records and reports; a run goes on whatever happens to the web that started it.
import type pg from 'pg';
import { INTEREST_IDEMPOTENCY_SCOPE } from '../domain/interest';

export type InterestRun = {
  asOf: string;
  annualRateBps: number;
  /** `completed` once every partition has made its transfers and none of them is pending. */
  status: 'running' | 'completed';
  accountsPaid: number;
  amountTotalMinor: bigint;
};

/**
 * Records the run for `as_of` with a row for each partition (once, in one statement), or finds
 * it. Another rate for the same `as_of` is refused.
 */
export async function openInterestRun(
  pool: pg.Pool,
  input: { asOf: string; annualRateBps: number; partitions: number },
): Promise<{ kind: 'open' } | { kind: 'rate_conflict'; annualRateBps: number }> {
  await pool.query(
    `WITH run AS (
       INSERT INTO interest_runs (as_of, annual_rate_bps) VALUES ($1, $2)
       ON CONFLICT DO NOTHING RETURNING as_of)
     INSERT INTO interest_run_partitions (as_of, partition)
     SELECT run.as_of, p FROM run, generate_series(0, $3::int - 1) AS p`,
    [input.asOf, input.annualRateBps, input.partitions],
  );
  const run = await pool.query<{ annual_rate_bps: number }>(
    'SELECT annual_rate_bps FROM interest_runs WHERE as_of = $1',
    [input.asOf],
  );
  if (run.rows[0]!.annual_rate_bps !== input.annualRateBps) {
    return { kind: 'rate_conflict', annualRateBps: run.rows[0]!.annual_rate_bps };
  }
  return { kind: 'open' };
}

/** A run with what it has paid so far: its completed interest transfers, found by their keys. */
export async function getInterestRun(
  pool: pg.Pool,
  asOf: string,
): Promise<InterestRun | undefined> {
  const res = await pool.query<{
    annual_rate_bps: number;
    status: 'running' | 'completed';
    paid: string;
    total: string;
    pending: string;
  }>(
    `SELECT r.annual_rate_bps, r.status, p.paid, p.total, p.pending
       FROM interest_runs r,
            LATERAL (SELECT count(*) FILTER (WHERE t.status = 'completed')::text AS paid,
                            coalesce(sum(t.amount) FILTER (WHERE t.status = 'completed'), 0)::text
                              AS total,
                            count(*) FILTER (WHERE t.status IN ('accepted', 'debited'))::text
                              AS pending
                       FROM transfers t
                      WHERE t.idempotency_scope = $2
                        AND t.idempotency_key >= r.as_of || ':'
                        AND t.idempotency_key < r.as_of || ';') p
      WHERE r.as_of = $1`,
    [asOf, INTEREST_IDEMPOTENCY_SCOPE],
  );
  const r = res.rows[0];
  if (!r) return undefined;
  return {
    asOf,
    annualRateBps: r.annual_rate_bps,
    status: r.status === 'completed' && r.pending === '0' ? 'completed' : 'running',
    accountsPaid: Number(r.paid),
    amountTotalMinor: BigInt(r.total),
  };
}
