// The design's invariants, checked after every scenario.
import type pg from 'pg';
import { expect } from 'vitest';
import { reconcile } from '../../src/ledger/reconcile';

/**
 * Conservation, balance = sum of entries with gap-free sequences, no balance under its floor,
 * nothing applied twice, nothing lost, nothing left in flight: `npm run reconcile`'s checks, plus
 * the queues drained.
 */
export async function expectInvariants(
  pool: pg.Pool,
  opts: { submittedIds?: readonly string[] } = {},
): Promise<void> {
  const report = await reconcile(pool);
  expect(report.mismatches).toEqual([]);
  expect(report.ok).toBe(true);
  expect(report.total).toBe('0');
  // Invariant 5 with the queues drained: nothing in flight.
  expect(report.in_flight).toEqual({ count: 0, amount: '0' });

  // Invariant 4: every accepted command reached exactly one final status...
  const open = await pool.query(`SELECT id FROM transfers WHERE status IN ('accepted', 'debited')`);
  expect(open.rows).toEqual([]);
  if (opts.submittedIds) {
    const found = await pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM transfers WHERE id = ANY($1::uuid[])`,
      [opts.submittedIds],
    );
    expect(Number(found.rows[0]!.n)).toBe(new Set(opts.submittedIds).size);
  }
  // None was applied twice or half, and apply sequences are gap-free: reconcile's
  // transfer_entries_wrong and apply_sequence_broken, both in the mismatches checked above.
}

export async function drained(pool: pg.Pool, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM transfers WHERE status IN ('accepted', 'debited')`,
    );
    if (res.rows[0]!.n === '0') return;
    if (Date.now() > deadline) throw new Error(`${res.rows[0]!.n} transfers still in flight`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Each customer balance equals its opening (zero: money enters only by deposits) plus the
 * completed transfers into it minus those out of it: nothing lost, nothing made up.
 */
export async function expectBalancesFromTransfers(pool: pg.Pool): Promise<void> {
  const wrong = await pool.query(
    `WITH expected AS (
       SELECT a.id, a.balance,
              coalesce((SELECT sum(amount) FROM transfers
                         WHERE to_account_id = a.id AND status = 'completed'), 0)
            - coalesce((SELECT sum(amount) FROM transfers
                         WHERE from_account_id = a.id AND status = 'completed'), 0) AS expected
         FROM accounts a WHERE a.kind = 'customer')
     SELECT * FROM expected WHERE balance <> expected`,
  );
  expect(wrong.rows).toEqual([]);
}
