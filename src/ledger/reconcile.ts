// Reconciliation: checks the ledger's invariants against the data as it stands.
import type pg from 'pg';
import { withClient } from '../db/db';

export type Mismatch =
  | { kind: 'total_not_zero'; currency: string; total: string }
  | {
      kind: 'balance_not_sum_of_entries';
      account_id: string;
      partition: number | null;
      balance: string;
      entries_sum: string;
    }
  | {
      kind: 'entry_sequence_broken';
      account_id: string;
      partition: number | null;
      version: string;
      entries: string;
      max_version: string;
    }
  | { kind: 'below_overdraft_limit'; account_id: string; balance: string }
  | { kind: 'in_flight_mismatch'; currency: string; in_transit: string; debited: string }
  | {
      kind: 'transfer_entries_wrong';
      transfer_id: string;
      status: string;
      entries: string;
      entries_sum: string;
    }
  | { kind: 'apply_sequence_broken'; partition: number; applied_legs: string; max_seq: string };

export type Reconciliation = {
  ok: boolean;
  accounts_checked: number;
  mismatches: Mismatch[];
  total: string;
  in_flight: { count: number; amount: string };
};

/**
 * Every check reads one snapshot (a read-only repeatable-read transaction), so a database in
 * use, with workers writing, never shows a mismatch that is only two reads at different times.
 */
export async function reconcile(pool: pg.Pool): Promise<Reconciliation> {
  return withClient(pool, async (client) => {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await client.query('SET LOCAL enable_seqscan = on');
    try {
      return await check(client);
    } finally {
      await client.query('ROLLBACK').catch(() => {});
    }
  });
}

async function check(pool: pg.ClientBase): Promise<Reconciliation> {
  const mismatches: Mismatch[] = [];

  // Invariant 1: per currency, every balance (system sub-balances included) sums to zero.
  const totals = await pool.query<{ currency: string; total: string }>(
    `SELECT currency, sum(b)::text AS total FROM (
       SELECT currency, balance AS b FROM accounts WHERE kind = 'customer'
       UNION ALL
       SELECT a.currency, s.balance FROM system_balances s JOIN accounts a ON a.id = s.account_id
     ) x GROUP BY currency`,
  );
  let total = 0n;
  for (const t of totals.rows) {
    total += BigInt(t.total);
    if (BigInt(t.total) !== 0n) mismatches.push({ kind: 'total_not_zero', ...t });
  }

  // Invariant 2: each balance equals the sum of its entries, and its entry sequence is 1..n.
  const customers = await pool.query<{
    id: string;
    balance: string;
    version: string;
    overdraft_limit: string;
    sum: string;
    n: string;
    max: string;
  }>(
    `SELECT a.id, a.balance, a.version, a.overdraft_limit,
            coalesce(e.sum, 0)::text AS sum, coalesce(e.n, 0)::text AS n,
            coalesce(e.max, 0)::text AS max
       FROM accounts a
       LEFT JOIN (SELECT account_id, sum(amount) AS sum, count(*) AS n,
                         max(account_version) AS max
                    FROM ledger_entries GROUP BY account_id) e ON e.account_id = a.id
      WHERE a.kind = 'customer'`,
  );
  for (const r of customers.rows) {
    if (r.balance !== r.sum) {
      mismatches.push({
        kind: 'balance_not_sum_of_entries',
        account_id: r.id,
        partition: null,
        balance: r.balance,
        entries_sum: r.sum,
      });
    }
    if (r.version !== r.n || r.n !== r.max) {
      mismatches.push({
        kind: 'entry_sequence_broken',
        account_id: r.id,
        partition: null,
        version: r.version,
        entries: r.n,
        max_version: r.max,
      });
    }
    // Invariant 3.
    if (BigInt(r.balance) < -BigInt(r.overdraft_limit)) {
      mismatches.push({ kind: 'below_overdraft_limit', account_id: r.id, balance: r.balance });
    }
  }
  const subs = await pool.query<{
    account_id: string;
    partition: number;
    balance: string;
    version: string;
    sum: string;
    n: string;
    max: string;
  }>(
    `SELECT s.account_id, s.partition, s.balance, s.version,
            coalesce(e.sum, 0)::text AS sum, coalesce(e.n, 0)::text AS n,
            coalesce(e.max, 0)::text AS max
       FROM system_balances s
       LEFT JOIN (SELECT account_id, partition, sum(amount) AS sum, count(*) AS n,
                         max(account_version) AS max
                    FROM ledger_entries GROUP BY account_id, partition) e
              ON e.account_id = s.account_id AND e.partition = s.partition`,
  );
  for (const r of subs.rows) {
    if (r.balance !== r.sum) {
      mismatches.push({
        kind: 'balance_not_sum_of_entries',
        account_id: r.account_id,
        partition: r.partition,
        balance: r.balance,
        entries_sum: r.sum,
      });
    }
    if (r.version !== r.n || r.n !== r.max) {
      mismatches.push({
        kind: 'entry_sequence_broken',
        account_id: r.account_id,
        partition: r.partition,
        version: r.version,
        entries: r.n,
        max_version: r.max,
      });
    }
  }

  // Invariant 5: money in flight equals the transfers debited but not yet credited or refunded.
  const flight = await pool.query<{
    currency: string;
    in_transit: string;
    debited: string;
    n: string;
  }>(
    `SELECT c.currency,
            coalesce((SELECT sum(s.balance) FROM system_balances s JOIN accounts a ON a.id = s.account_id
                       WHERE a.system_name = 'in_transit' AND a.currency = c.currency), 0)::text AS in_transit,
            coalesce((SELECT sum(amount) FROM transfers
                       WHERE status = 'debited' AND currency = c.currency), 0)::text AS debited,
            (SELECT count(*) FROM transfers WHERE status = 'debited' AND currency = c.currency)::text AS n
       FROM (SELECT DISTINCT currency FROM accounts WHERE kind = 'system') c`,
  );
  let inFlightCount = 0;
  let inFlightAmount = 0n;
  for (const f of flight.rows) {
    inFlightCount += Number(f.n);
    inFlightAmount += BigInt(f.debited);
    if (f.in_transit !== f.debited) {
      mismatches.push({
        kind: 'in_flight_mismatch',
        currency: f.currency,
        in_transit: f.in_transit,
        debited: f.debited,
      });
    }
  }

  // Invariant 4: no transfer applied twice or half: its entries are exactly what its outcome
  // posts (2 in one hop, 4 across partitions or with a refund, none for a plain failure or a
  // close).
  const wrongEntries = await pool.query<{
    id: string;
    status: string;
    n: string;
    sum: string;
  }>(
    `SELECT t.id, t.status, count(e.transfer_id)::text AS n, coalesce(sum(e.amount), 0)::text AS sum
       FROM transfers t LEFT JOIN ledger_entries e ON e.transfer_id = t.id
      GROUP BY t.id
     HAVING coalesce(sum(e.amount), 0) <> 0
         OR count(e.transfer_id) NOT IN (
              CASE WHEN t.type IN ('close', 'cancel') THEN 0
                   WHEN t.status = 'completed' AND t.src_partition = t.dst_partition THEN 2
                   WHEN t.status = 'completed' THEN 4
                   WHEN t.status = 'debited' THEN 2
                   WHEN t.status = 'failed' AND EXISTS (
                          SELECT 1 FROM applied_legs l
                           WHERE l.transfer_id = t.id AND l.leg = 'refund') THEN 4
                   ELSE 0 END)
      LIMIT 1000`,
  );
  for (const r of wrongEntries.rows) {
    mismatches.push({
      kind: 'transfer_entries_wrong',
      transfer_id: r.id,
      status: r.status,
      entries: r.n,
      entries_sum: r.sum,
    });
  }
  // Every applied leg has its partition's next sequence number: no gap, no repeat.
  const sequences = await pool.query<{ partition: number; n: string; max: string }>(
    `SELECT partition, count(*)::text AS n, max(apply_seq)::text AS max FROM applied_legs
      GROUP BY partition HAVING count(*) <> max(apply_seq) OR count(DISTINCT apply_seq) <> count(*)`,
  );
  for (const r of sequences.rows) {
    mismatches.push({
      kind: 'apply_sequence_broken',
      partition: r.partition,
      applied_legs: r.n,
      max_seq: r.max,
    });
  }

  return {
    ok: mismatches.length === 0,
    accounts_checked: customers.rows.length + subs.rows.length,
    mismatches,
    total: total.toString(),
    in_flight: { count: inFlightCount, amount: inFlightAmount.toString() },
  };
}
