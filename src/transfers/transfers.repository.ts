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
  acceptedAt: Date;
  finishedAt: Date | null;
};

export const TRANSFER_COLUMNS = `id, type, status, failure_code, from_account_id, to_account_id,
  amount, currency, description, reverses_transfer_id, accepted_at, finished_at`;

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
  accepted_at: Date;
  finished_at: Date | null;
};

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
    acceptedAt: r.accepted_at,
    finishedAt: r.finished_at,
  };
}

export async function getTransfer(pool: pg.Pool, id: string): Promise<Transfer | undefined> {
  if (!isUuid(id)) return undefined;
  const res = await pool.query<TransferRow>(
    `SELECT ${TRANSFER_COLUMNS} FROM transfers WHERE id = $1`,
    [id],
  );
  const row = res.rows[0];
  return row ? toTransfer(row) : undefined;
}

export async function getTransfers(pool: pg.Pool, ids: readonly string[]): Promise<Transfer[]> {
  const res = await pool.query<TransferRow>(
    `SELECT ${TRANSFER_COLUMNS} FROM transfers WHERE id = ANY($1::uuid[])`,
    [ids.filter(isUuid)],
  );
  return res.rows.map(toTransfer);
}
