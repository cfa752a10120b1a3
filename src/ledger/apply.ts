// The batch applier: reads what a batch of legs needs, plans it, and writes it all in one
// READ COMMITTED transaction that first proves this process still owns the partition.
import type pg from 'pg';
import type { LegJobData } from '../queue/queues';
import { assert } from '../shared/assert';
import type { FailureCode, TransferStatus, TransferType } from '../domain/transfer';
import {
  plan,
  systemKey,
  type AccountState,
  type Plan,
  type SubBalanceState,
  type SystemName,
  type TransferState,
} from './plan';

/** The partition's epoch moved on: another process owns it now. Nothing was written. */
export class FencedError extends Error {
  override name = 'FencedError';
  constructor(partition: number, epoch: bigint) {
    super(`partition ${partition}: epoch ${epoch} was fenced out`);
  }
}

export type Ownership = { partition: number; epoch: bigint; owner: string };

/** Where notifications of final transfers go; the intake's long-poll listens here. */
export const TRANSFER_FINAL_CHANNEL = 'ledgerline_transfer_final';
/** NOTIFY payloads must stay under 8,000 bytes; a uuid plus a comma is 37. */
const NOTIFY_IDS_MAX = 200;

type TransferRow = {
  id: string;
  type: TransferType;
  from_account_id: string | null;
  to_account_id: string | null;
  amount: string;
  currency: string;
  status: TransferStatus;
  failure_code: FailureCode | null;
  src_partition: number;
  dst_partition: number;
};
type AccountRow = {
  id: string;
  currency: string;
  kind: 'customer' | 'system';
  status: 'open' | 'closed';
  overdraft_limit: string;
  balance: string;
  version: string;
};
type SubBalanceRow = {
  id: string;
  system_name: SystemName;
  currency: string;
  balance: string | null;
  version: string | null;
};

export async function applyBatch(
  client: pg.PoolClient,
  own: Ownership,
  legs: readonly LegJobData[],
  isLocal: (accountId: string) => boolean,
): Promise<Plan> {
  await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
  try {
    // Fencing first. The row lock taken here also orders us against a concurrent claim: either
    // we commit before the new owner's epoch bump, or we see the new epoch and write nothing.
    const fence = await client.query<{ apply_seq: string }>(
      `UPDATE partitions SET heartbeat_at = now()
        WHERE id = $1 AND epoch = $2 AND owner = $3
        RETURNING apply_seq`,
      [own.partition, own.epoch.toString(), own.owner],
    );
    if (fence.rowCount !== 1) throw new FencedError(own.partition, own.epoch);
    const applySeqBefore = BigInt(fence.rows[0]!.apply_seq);

    const transferIds = [...new Set(legs.map((l) => l.transferId))];
    const transferRows = await client.query<TransferRow>(
      `SELECT id, type, from_account_id, to_account_id, amount, currency, status, failure_code,
              src_partition, dst_partition
         FROM transfers WHERE id = ANY($1::uuid[])`,
      [transferIds],
    );
    const transfers = new Map<string, TransferState>();
    const accountIds = new Set<string>();
    const currencies = new Set<string>();
    for (const r of transferRows.rows) {
      transfers.set(r.id, {
        id: r.id,
        type: r.type,
        fromAccountId: r.from_account_id,
        toAccountId: r.to_account_id,
        amount: BigInt(r.amount),
        currency: r.currency,
        status: r.status,
        failureCode: r.failure_code,
        srcPartition: r.src_partition,
        dstPartition: r.dst_partition,
      });
      if (r.from_account_id) accountIds.add(r.from_account_id);
      if (r.to_account_id) accountIds.add(r.to_account_id);
      currencies.add(r.currency);
    }

    // Plain reads, no FOR UPDATE: each local row has one writer, and that writer is us.
    const [accountRows, subRows] = await Promise.all([
      client.query<AccountRow>(
        `SELECT id, currency, kind, status, overdraft_limit, balance, version
           FROM accounts WHERE id = ANY($1::uuid[])`,
        [[...accountIds]],
      ),
      client.query<SubBalanceRow>(
        `SELECT a.id, a.system_name, a.currency, s.balance, s.version
           FROM accounts a
           LEFT JOIN system_balances s ON s.account_id = a.id AND s.partition = $2
          WHERE a.kind = 'system' AND a.currency = ANY($1::text[])`,
        [[...currencies], own.partition],
      ),
    ]);
    const accounts = new Map<string, AccountState>(
      accountRows.rows.map((r) => [
        r.id,
        {
          id: r.id,
          currency: r.currency,
          kind: r.kind,
          status: r.status,
          overdraftLimit: BigInt(r.overdraft_limit),
          balance: BigInt(r.balance),
          version: BigInt(r.version),
        },
      ]),
    );
    const subBalances = new Map<string, SubBalanceState>(
      subRows.rows.map((r) => [
        systemKey(r.system_name, r.currency),
        { accountId: r.id, balance: BigInt(r.balance ?? 0), version: BigInt(r.version ?? 0) },
      ]),
    );

    const p = plan({
      partition: own.partition,
      applySeqBefore,
      legs,
      transfers,
      accounts,
      subBalances,
      isLocal,
    });
    await write(client, own, p);
    await client.query('COMMIT');
    return p;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** Every write is one statement over arrays (unnest): a fixed parameter count at any batch size. */
async function write(client: pg.PoolClient, own: Ownership, p: Plan): Promise<void> {
  if (p.appliedLegs.length === 0) return;
  const { partition } = own;

  if (p.entries.length > 0) {
    await client.query(
      `INSERT INTO ledger_entries
              (transfer_id, account_id, partition, leg, amount, balance_after, account_version)
       SELECT t, a, $1, l, am, ba, v
         FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[])
              AS x(t, a, l, am, ba, v)`,
      [
        partition,
        p.entries.map((e) => e.transferId),
        p.entries.map((e) => e.accountId),
        p.entries.map((e) => e.leg),
        p.entries.map((e) => e.amount.toString()),
        p.entries.map((e) => e.balanceAfter.toString()),
        p.entries.map((e) => e.accountVersion.toString()),
      ],
    );
  }

  if (p.accountWrites.length > 0) {
    // The version guard asserts the single-writer rule: if anyone else wrote the row since we
    // read it, the counts differ and the whole batch rolls back.
    const updated = await client.query(
      `UPDATE accounts a SET balance = x.b, version = x.v
         FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[]) AS x(id, b, v, vb)
        WHERE a.id = x.id AND a.version = x.vb`,
      [
        p.accountWrites.map((w) => w.id),
        p.accountWrites.map((w) => w.balance.toString()),
        p.accountWrites.map((w) => w.version.toString()),
        p.accountWrites.map((w) => w.versionBefore.toString()),
      ],
    );
    assert(
      updated.rowCount === p.accountWrites.length,
      `partition ${partition}: an account row changed under its single writer`,
    );
  }

  if (p.subBalanceWrites.length > 0) {
    await client.query(
      `INSERT INTO system_balances (account_id, partition, balance, version)
       SELECT a, $1, b, v FROM unnest($2::uuid[], $3::bigint[], $4::bigint[]) AS x(a, b, v)
       ON CONFLICT (account_id, partition)
       DO UPDATE SET balance = excluded.balance, version = excluded.version`,
      [
        partition,
        p.subBalanceWrites.map((w) => w.accountId),
        p.subBalanceWrites.map((w) => w.balance.toString()),
        p.subBalanceWrites.map((w) => w.version.toString()),
      ],
    );
  }

  if (p.transferWrites.length > 0) {
    // Guarded transitions: a row not in the state we planned from means a bug, not a race.
    const updated = await client.query(
      `UPDATE transfers t
          SET status = x.s,
              failure_code = x.f,
              debited_at = CASE WHEN x.s = 'debited' AND t.debited_at IS NULL
                                THEN now() ELSE t.debited_at END,
              finished_at = CASE WHEN x.s IN ('completed', 'failed') THEN now() ELSE NULL END
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
              AS x(id, sb, fb, s, f)
        WHERE t.id = x.id AND t.status = x.sb AND t.failure_code IS NOT DISTINCT FROM x.fb`,
      [
        p.transferWrites.map((w) => w.id),
        p.transferWrites.map((w) => w.statusBefore),
        p.transferWrites.map((w) => w.failureCodeBefore),
        p.transferWrites.map((w) => w.status),
        p.transferWrites.map((w) => w.failureCode),
      ],
    );
    assert(
      updated.rowCount === p.transferWrites.length,
      `partition ${partition}: a transfer left the status its leg was planned from`,
    );
  }

  await client.query(
    `INSERT INTO applied_legs (partition, apply_seq, transfer_id, leg, outcome, epoch)
     SELECT $1, s, t, l, o, $2 FROM unnest($3::bigint[], $4::uuid[], $5::text[], $6::text[])
            AS x(s, t, l, o)`,
    [
      partition,
      own.epoch.toString(),
      p.appliedLegs.map((a) => a.applySeq.toString()),
      p.appliedLegs.map((a) => a.transferId),
      p.appliedLegs.map((a) => a.leg),
      p.appliedLegs.map((a) => a.outcome),
    ],
  );
  await client.query('UPDATE partitions SET apply_seq = $2 WHERE id = $1', [
    partition,
    p.applySeqAfter.toString(),
  ]);

  const finished = p.transferWrites
    .filter((w) => w.status === 'completed' || w.status === 'failed')
    .map((w) => w.id);
  for (let i = 0; i < finished.length; i += NOTIFY_IDS_MAX) {
    await client.query('SELECT pg_notify($1, $2)', [
      TRANSFER_FINAL_CHANNEL,
      finished.slice(i, i + NOTIFY_IDS_MAX).join(','),
    ]);
  }
}
