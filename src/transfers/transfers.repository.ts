// Reads of the transfers table: the record of every accepted command.
import type pg from 'pg';
import { isUuid } from '../domain/ids';
import type { FailureCode, TransferStatus, TransferType } from '../domain/transfer';

export type Transfer = {
  id: string;
  type: TransferType;
  status: TransferStatus;
  failureCode: FailureCode | null;
  fromAccountId: string | null;
  toAccountId: string | null;
  amountMinor: bigint;
  currency: string;
  description: string | null;
  reversesTransferId: string | null;
  cancelsTransferId: string | null;
  expiresAt: Date | null;
  acceptedAt: Date;
  finishedAt: Date | null;
  /** Once completed: each customer side's balance right after it (null on a system side). */
  fromBalanceAfter: bigint | null;
  toBalanceAfter: bigint | null;
};

export const TRANSFER_COLUMNS = `id, type, status, failure_code, from_account_id, to_account_id,
  amount, currency, description, reverses_transfer_id, cancels_transfer_id, expires_at,
  accepted_at, finished_at`;

export type TransferRow = {
  id: string;
  type: TransferType;
  status: TransferStatus;
  failure_code: FailureCode | null;
  from_account_id: string | null;
  to_account_id: string | null;
  amount: string;
  currency: string;
  description: string | null;
  reverses_transfer_id: string | null;
  cancels_transfer_id: string | null;
  expires_at: Date | null;
  accepted_at: Date;
  finished_at: Date | null;
  from_balance_after?: string | null;
  to_balance_after?: string | null;
};

/**
 * What a read of `transfers t` adds: a completed transfer's balances after it, from its own
 * entries (found by the unique (transfer_id, account_id, leg) index).
 */
export const READ_COLUMNS = `${TRANSFER_COLUMNS},
  (SELECT e.balance_after FROM ledger_entries e
    WHERE t.status = 'completed' AND e.transfer_id = t.id AND e.account_id = t.from_account_id
      AND e.leg = 'debit') AS from_balance_after,
  (SELECT e.balance_after FROM ledger_entries e
    WHERE t.status = 'completed' AND e.transfer_id = t.id AND e.account_id = t.to_account_id
      AND e.leg IN ('debit', 'credit')) AS to_balance_after`;

export function toTransfer(r: TransferRow): Transfer {
  return {
    id: r.id,
    type: r.type,
    status: r.status,
    failureCode: r.failure_code,
    fromAccountId: r.from_account_id,
    toAccountId: r.to_account_id,
    amountMinor: BigInt(r.amount),
    currency: r.currency,
    description: r.description,
    reversesTransferId: r.reverses_transfer_id,
    cancelsTransferId: r.cancels_transfer_id,
    expiresAt: r.expires_at,
    acceptedAt: r.accepted_at,
    finishedAt: r.finished_at,
    fromBalanceAfter: r.from_balance_after != null ? BigInt(r.from_balance_after) : null,
    toBalanceAfter: r.to_balance_after != null ? BigInt(r.to_balance_after) : null,
  };
}

export async function getTransfers(pool: pg.Pool, ids: readonly string[]): Promise<Transfer[]> {
  const res = await pool.query<TransferRow>(
    `SELECT ${READ_COLUMNS} FROM transfers t WHERE id = ANY($1::uuid[])`,
    [ids.filter(isUuid)],
  );
  return res.rows.map(toTransfer);
}

/**
 * Reads transfers by id for the API, coalescing the reads asked for in the same turn of the
 * event loop into one query: when a batch completes, its long-polls wake together and cost one
 * round trip, not one each.
 */
export class TransferReader {
  private waiting = new Map<string, Waiter[]>();
  private scheduled = false;
  /** Transfers asked for so far (the tests count the reads a long-poll makes). */
  requested = 0;

  constructor(private readonly pool: pg.Pool) {}

  get(id: string): Promise<Transfer | undefined> {
    this.requested += 1;
    const key = id.toLowerCase();
    if (!isUuid(key)) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const waiters = this.waiting.get(key);
      if (waiters) waiters.push({ resolve, reject });
      else this.waiting.set(key, [{ resolve, reject }]);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const waiting = this.waiting;
    this.waiting = new Map();
    try {
      const res = await this.pool.query<TransferRow>({
        name: 'ledgerline_transfers_by_ids',
        text: `SELECT ${READ_COLUMNS} FROM transfers t WHERE id = ANY($1::uuid[])`,
        values: [[...waiting.keys()]],
      });
      const found = new Map(res.rows.map((r) => [r.id, toTransfer(r)]));
      for (const [id, waiters] of waiting) for (const w of waiters) w.resolve(found.get(id));
    } catch (err) {
      for (const waiters of waiting.values()) for (const w of waiters) w.reject(err as Error);
    }
  }
}

type Waiter = { resolve: (t: Transfer | undefined) => void; reject: (err: Error) => void };
