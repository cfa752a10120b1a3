// Transfer statuses and business result codes, listed once, in precedence order.

export const TRANSFER_TYPES = [
  'deposit',
  'withdrawal',
  'transfer',
  'reversal',
  'interest',
  /** Not a movement: the account's owner closes it, in its order; amount 0, posts nothing. */
  'close',
  /** Not a movement: cancels another transfer if its owner sees this before that one's debit. */
  'cancel',
] as const;
export type TransferType = (typeof TRANSFER_TYPES)[number];

/** Stored statuses. The API shows `accepted` and `debited` as `pending`. */
export const TRANSFER_STATUSES = ['accepted', 'debited', 'completed', 'failed'] as const;
export type TransferStatus = (typeof TRANSFER_STATUSES)[number];
export type ApiTransferStatus = 'pending' | 'completed' | 'failed';

export function apiStatus(status: TransferStatus): ApiTransferStatus {
  switch (status) {
    case 'accepted':
    case 'debited':
      return 'pending';
    case 'completed':
      return 'completed';
    case 'failed':
      return 'failed';
  }
}

export function isFinal(status: TransferStatus): boolean {
  return apiStatus(status) !== 'pending';
}

/**
 * Why a transfer failed, in the order the engine checks them: the first that applies wins.
 * These are returned values, never exceptions, and never retried.
 */
export const FAILURE_CODES = [
  'account_not_found',
  'account_closed',
  'currency_mismatch',
  'insufficient_funds',
  'balance_overflow',
  'account_not_empty',
  /** The transfer was cancelled before its debit. */
  'cancelled',
  /** Not applied before its expires_at. */
  'expired',
  /** A cancel that came after the transfer's debit: the transfer goes on as usual. */
  'too_late',
] as const;
export type FailureCode = (typeof FAILURE_CODES)[number];

/** A transfer moves through legs; each leg runs on one partition and is applied at most once. */
export const LEGS = ['debit', 'credit', 'refund'] as const;
export type Leg = (typeof LEGS)[number];

/** One leg of one transfer: what an envelope carries; the transfer row in PostgreSQL holds the rest. */
export type LegRef = { transferId: string; leg: Leg };
/** A leg with the partition that applies it. */
export type LegToEnqueue = LegRef & { partition: number };

/** The system accounts, one each per currency, whose money lives in per-partition sub-balances. */
export const SYSTEM_NAMES = ['settlement', 'in_transit', 'interest'] as const;
export type SystemName = (typeof SYSTEM_NAMES)[number];
