// Accounts: creation (with the per-currency system accounts it needs) and reads.
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { isUuid } from '../domain/ids';
import { SYSTEM_NAMES, type TransferType } from '../domain/transfer';
import { partitionOf } from '../partitions/routing';

export type Account = {
  id: string;
  holder: string;
  currency: string;
  status: 'open' | 'closed';
  overdraftLimit: bigint;
  balance: bigint;
  createdAt: Date;
};

type AccountRow = {
  id: string;
  holder: string;
  currency: string;
  status: 'open' | 'closed';
  overdraft_limit: string;
  balance: string;
  created_at: Date;
};
const ACCOUNT_COLUMNS = 'id, holder, currency, status, overdraft_limit, balance, created_at';

function toAccount(r: AccountRow): Account {
  return {
    id: r.id,
    holder: r.holder,
    currency: r.currency,
    status: r.status,
    overdraftLimit: BigInt(r.overdraft_limit),
    balance: BigInt(r.balance),
    createdAt: r.created_at,
  };
}

/**
 * A new currency brings its system accounts into being here, off the hot path, so a worker
 * never has to create one while applying a batch.
 */
export async function createAccount(
  pool: pg.Pool,
  input: { holder: string; currency: string; overdraftLimit: bigint; partitions: number },
): Promise<Account> {
  await pool.query(
    `INSERT INTO accounts (holder, currency, kind, system_name)
     SELECT 'system:' || n, $1, 'system', n FROM unnest($2::text[]) AS n
     ON CONFLICT (system_name, currency) WHERE system_name IS NOT NULL DO NOTHING`,
    [input.currency, SYSTEM_NAMES],
  );
  // The id is made here so the row can carry its partition, where its owner finds it.
  const id = randomUUID();
  const res = await pool.query<AccountRow>(
    `INSERT INTO accounts (id, holder, currency, overdraft_limit, partition)
     VALUES ($1, $2, $3, $4, $5)
     RETURNING ${ACCOUNT_COLUMNS}`,
    [
      id,
      input.holder,
      input.currency,
      input.overdraftLimit.toString(),
      partitionOf(id, input.partitions),
    ],
  );
  return toAccount(res.rows[0]!);
}

/** Customer accounts only: system accounts are not addressable from outside. */
export async function getAccount(pool: pg.Pool, id: string): Promise<Account | undefined> {
  if (!isUuid(id)) return undefined;
  const res = await pool.query<AccountRow>(
    `SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE id = $1 AND kind = 'customer'`,
    [id],
  );
  const row = res.rows[0];
  return row ? toAccount(row) : undefined;
}

export type EntryView = {
  transferId: string;
  type: TransferType;
  amountMinor: bigint;
  balanceAfterMinor: bigint;
  createdAt: Date;
  accountVersion: bigint;
};

/**
 * Newest first, by the account's own entry sequence: a keyset that never skips or repeats an
 * entry however many are posted between two pages.
 */
export async function listEntries(
  pool: pg.Pool,
  opts: { accountId: string; partition: number; limit: number; beforeVersion: bigint | null },
): Promise<{ entries: EntryView[]; more: boolean }> {
  const res = await pool.query<EntryRow>(
    `${ENTRY_SELECT}
      WHERE e.account_id = $1 AND e.partition = $2
        AND ($3::bigint IS NULL OR e.account_version < $3::bigint)
      ORDER BY e.account_version DESC
      LIMIT $4`,
    [opts.accountId, opts.partition, opts.beforeVersion?.toString() ?? null, opts.limit + 1],
  );
  return {
    more: res.rows.length > opts.limit,
    entries: res.rows.slice(0, opts.limit).map(toEntryView),
  };
}

/** Oldest first, after a sequence number: what an event stream sends next. */
export async function entriesAfter(
  pool: pg.Pool,
  opts: { accountId: string; partition: number; afterVersion: bigint; limit: number },
): Promise<EntryView[]> {
  const res = await pool.query<EntryRow>({
    name: 'ledgerline_entries_after',
    text: `${ENTRY_SELECT}
            WHERE e.account_id = $1 AND e.partition = $2 AND e.account_version > $3::bigint
            ORDER BY e.account_version
            LIMIT $4`,
    values: [opts.accountId, opts.partition, opts.afterVersion.toString(), opts.limit],
  });
  return res.rows.map(toEntryView);
}

const ENTRY_SELECT = `SELECT e.transfer_id, t.type, e.amount, e.balance_after, e.created_at,
                             e.account_version
                        FROM ledger_entries e JOIN transfers t ON t.id = e.transfer_id`;

type EntryRow = {
  transfer_id: string;
  type: TransferType;
  amount: string;
  balance_after: string;
  created_at: Date;
  account_version: string;
};

function toEntryView(r: EntryRow): EntryView {
  return {
    transferId: r.transfer_id,
    type: r.type,
    amountMinor: BigInt(r.amount),
    balanceAfterMinor: BigInt(r.balance_after),
    createdAt: r.created_at,
    accountVersion: BigInt(r.account_version),
  };
}
