// Transfer statuses and business result codes, listed once, in precedence order.

export const TRANSFER_TYPES = [
  'deposit',
  'withdrawal',
  'transfer',
  'reversal',
  'interest',
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
] as const;
export type FailureCode = (typeof FAILURE_CODES)[number];

/** HTTP status when the intake reports the code synchronously. Exhaustive by construction. */
export const FAILURE_HTTP_STATUS: Record<FailureCode, number> = {
  account_not_found: 422,
  account_closed: 422,
  currency_mismatch: 422,
  insufficient_funds: 422,
};

/** Every failure code is final: business outcomes are not retried. */
export const FAILURE_IS_FINAL: Record<FailureCode, true> = {
  account_not_found: true,
  account_closed: true,
  currency_mismatch: true,
  insufficient_funds: true,
};

/** A transfer moves through legs; each leg runs on one partition and is applied at most once. */
export const LEGS = ['debit', 'credit', 'refund'] as const;
export type Leg = (typeof LEGS)[number];
