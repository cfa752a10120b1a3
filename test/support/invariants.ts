// The design's invariants, checked after every scenario.
import type pg from 'pg';
import { expect } from 'vitest';
import { reconcile } from '../../src/ledger/reconcile';

/**
 * Conservation, balance = sum of entries with gap-free sequences, no balance under its floor,
 * nothing applied twice, nothing lost, nothing left in flight.
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
  // ...and none was applied twice: each transfer's entries are exactly what its path posts.
  const wrong = await pool.query(
    `SELECT t.id, t.status, t.type, count(e.id) AS entries, coalesce(sum(e.amount), 0) AS sum
       FROM transfers t LEFT JOIN ledger_entries e ON e.transfer_id = t.id
      GROUP BY t.id
     HAVING coalesce(sum(e.amount), 0) <> 0
         OR count(e.id) NOT IN (
              CASE WHEN t.status = 'completed' AND t.src_partition = t.dst_partition THEN 2
                   WHEN t.status = 'completed' THEN 4
                   WHEN t.status = 'failed' AND t.failure_code IS NOT NULL
                        AND EXISTS (SELECT 1 FROM applied_legs l
                                     WHERE l.transfer_id = t.id AND l.leg = 'refund') THEN 4
                   ELSE 0 END)`,
  );
  expect(wrong.rows).toEqual([]);
  // Every applied leg's sequence number is unique and gap-free per partition.
  const gaps = await pool.query(
    `SELECT partition, count(*) AS n, max(apply_seq) AS max FROM applied_legs
      GROUP BY partition HAVING count(*) <> max(apply_seq)`,
  );
  expect(gaps.rows).toEqual([]);
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
    `SELECT a.id, a.balance,
            coalesce((SELECT sum(amount) FROM transfers
                       WHERE to_account_id = a.id AND status = 'completed'), 0)
          - coalesce((SELECT sum(amount) FROM transfers
                       WHERE from_account_id = a.id AND status = 'completed'), 0) AS expected
       FROM accounts a
      WHERE a.kind = 'customer'
        AND a.balance <> coalesce((SELECT sum(amount) FROM transfers
                                    WHERE to_account_id = a.id AND status = 'completed'), 0)
                       - coalesce((SELECT sum(amount) FROM transfers
                                    WHERE from_account_id = a.id AND status = 'completed'), 0)`,
  );
  expect(wrong.rows).toEqual([]);
}
