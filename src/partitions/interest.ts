// Interest runs, paid by each partition's owner: a page of its own accounts at a time, in id
// order, each account's interest an `interest` transfer whose debit leg the owner then applies in
// its stream like any other. How far a partition has got is kept in PostgreSQL, so a new owner
// goes on where a dead one stopped, and the idempotency key `<as_of>:<account>` pays nobody twice.
import { newTransferId } from '../domain/ids';
import type pg from 'pg';
import { withClient } from '../db/db';
import {
  dailyInterestMinor,
  INTEREST_IDEMPOTENCY_SCOPE,
  interestIdempotencyKey,
  interestRequestHash,
} from '../domain/interest';
import type { LegToEnqueue } from '../domain/transfer';

/** Before any account id in order. */
const FIRST_ID = '00000000-0000-0000-0000-000000000000';

/** The runs some of these partitions still have to pay, oldest `as_of` first. */
export async function runningInterest(
  pool: pg.Pool,
  partitions: readonly number[],
): Promise<{ asOf: string; partition: number }[]> {
  if (partitions.length === 0) return [];
  const res = await pool.query<{ as_of: string; partition: number }>(
    `SELECT as_of, partition FROM interest_run_partitions
      WHERE status = 'running' AND partition = ANY($1::int[])
      ORDER BY as_of, partition`,
    [partitions],
  );
  return res.rows.map((r) => ({ asOf: r.as_of, partition: r.partition }));
}

/**
 * Makes the interest transfers of the next page of a partition's accounts and moves the
 * partition's place on, in one transaction. Pages of one run are serialized by the run's row,
 * which is also what lets the last partition to finish mark the run finished. Returns the debit
 * legs of the transfers made; undefined when the partition has nothing left to do for that run.
 */
export async function makeInterestPage(
  pool: pg.Pool,
  input: { asOf: string; partition: number; pageAccountsMax: number },
): Promise<LegToEnqueue[] | undefined> {
  const { asOf, partition, pageAccountsMax } = input;
  return withClient(pool, async (client) => {
    await client.query('BEGIN');
    try {
      const page = await makePage(client, asOf, partition, pageAccountsMax);
      await client.query('COMMIT');
      return page;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
  });
}

async function makePage(
  client: pg.PoolClient,
  asOf: string,
  partition: number,
  pageAccountsMax: number,
): Promise<LegToEnqueue[] | undefined> {
  const run = await client.query<{ annual_rate_bps: number; paid_through: string | null }>(
    `SELECT r.annual_rate_bps, p.paid_through
       FROM interest_runs r JOIN interest_run_partitions p USING (as_of)
      WHERE r.as_of = $1 AND p.partition = $2 AND p.status = 'running'
        FOR UPDATE OF r`,
    [asOf, partition],
  );
  const state = run.rows[0];
  if (!state) return undefined;
  const accounts = await client.query<{ id: string; balance: string; currency: string }>(
    `SELECT id, balance, currency FROM accounts
      WHERE partition = $1 AND kind = 'customer' AND id > $2
        AND status = 'open' AND balance > 0
      ORDER BY id LIMIT $3`,
    [partition, state.paid_through ?? FIRST_ID, pageAccountsMax],
  );
  const owed = accounts.rows
    .map((a) => ({
      ...a,
      amountMinor: dailyInterestMinor(BigInt(a.balance), state.annual_rate_bps),
    }))
    .filter((a) => a.amountMinor > 0n);
  const made = await client.query<{ id: string }>(
    `INSERT INTO transfers (id, type, to_account_id, amount, currency, request_hash,
            idempotency_scope, idempotency_key, src_partition, dst_partition)
     SELECT id, 'interest', to_id, amount, currency, hash, $6, key, $7, $7
       FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::text[], $8::text[])
            AS u(id, to_id, amount, currency, hash, key)
     ON CONFLICT (idempotency_scope, idempotency_key) DO NOTHING
     RETURNING id`,
    [
      owed.map(() => newTransferId()),
      owed.map((a) => a.id),
      owed.map((a) => a.amountMinor.toString()),
      owed.map((a) => a.currency),
      owed.map((a) => interestRequestHash(asOf, a.id)),
      INTEREST_IDEMPOTENCY_SCOPE,
      partition,
      owed.map((a) => interestIdempotencyKey(asOf, a.id)),
    ],
  );
  const partitionDone = accounts.rows.length < pageAccountsMax;
  await client.query(
    `UPDATE interest_run_partitions
        SET paid_through = coalesce($3::uuid, paid_through),
            status = CASE WHEN $4 THEN 'completed' ELSE status END,
            completed_at = CASE WHEN $4 THEN now() END
      WHERE as_of = $1 AND partition = $2`,
    [asOf, partition, accounts.rows.at(-1)?.id ?? null, partitionDone],
  );
  if (partitionDone) {
    // Under the run's row lock, so of two partitions finishing together the second sees the first.
    await client.query(
      `UPDATE interest_runs SET status = 'completed', completed_at = now()
        WHERE as_of = $1 AND status = 'running'
          AND NOT EXISTS (SELECT 1 FROM interest_run_partitions
                           WHERE as_of = $1 AND status = 'running')`,
      [asOf],
    );
  }
  // The debit legs of the transfers this page made, for the owner to apply.
  return made.rows.map((r) => ({ transferId: r.id, leg: 'debit' as const, partition }));
}

/**
 * Customer accounts made before accounts carried their partition (or by a process older than
 * that) get it here, a page at a time; runs left `running` by the web-paid runs of earlier
 * versions get a row per partition. Only the partition column is written: an owner's version
 * guard is untouched.
 */
export async function backfillPartitions(
  pool: pg.Pool,
  partitions: number,
  partitionOf: (accountId: string) => number,
): Promise<number> {
  let filled = 0;
  for (;;) {
    const page = await pool.query<{ id: string }>(
      `SELECT id FROM accounts WHERE partition IS NULL AND kind = 'customer' LIMIT 1000`,
    );
    if (page.rows.length === 0) break;
    await pool.query(
      `UPDATE accounts a SET partition = u.p
         FROM unnest($1::uuid[], $2::int[]) AS u(id, p)
        WHERE a.id = u.id AND a.partition IS NULL`,
      [page.rows.map((r) => r.id), page.rows.map((r) => partitionOf(r.id))],
    );
    filled += page.rows.length;
  }
  await pool.query(
    `INSERT INTO interest_run_partitions (as_of, partition)
     SELECT r.as_of, p FROM interest_runs r, generate_series(0, $1::int - 1) AS p
      WHERE r.status = 'running'
        AND NOT EXISTS (SELECT 1 FROM interest_run_partitions x WHERE x.as_of = r.as_of)`,
    [partitions],
  );
  return filled;
}
