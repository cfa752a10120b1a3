// Request and response shapes of money movements, validated and documented from one source.
import { z } from '@hono/zod-openapi';
import { DESCRIPTION_LENGTH_MAX } from '../config/limits';
import { AmountIn, AmountOut, Currency, Id, StorableText } from '../http/schemas';
import { FAILURE_CODES, TRANSFER_TYPES, apiStatus } from '../domain/transfer';
import type { Transfer } from './transfers.repository';

/** RFC 3339 with an offset; a command not applied by then fails `expired`. */
const ExpiresAt = z.iso.datetime({ offset: true }).optional().openapi({
  description: 'RFC 3339 time; if the owner has not applied the command by then, it fails expired.',
  example: '2026-11-22T12:00:00Z',
});

export const DepositBody = z
  .strictObject({ account_id: Id, amount: AmountIn, currency: Currency, expires_at: ExpiresAt })
  .openapi('DepositRequest');
export const WithdrawalBody = DepositBody.openapi('WithdrawalRequest');
export const TransferBody = z
  .strictObject({
    from_account_id: Id,
    to_account_id: Id,
    amount: AmountIn,
    currency: Currency,
    description: StorableText({ lengthMax: DESCRIPTION_LENGTH_MAX }).optional(),
    expires_at: ExpiresAt,
  })
  .openapi('TransferRequest');
export const ReversalBody = z
  .strictObject({ amount: AmountIn.optional() })
  .openapi('ReversalRequest');

export const TransferOut = z
  .object({
    id: Id,
    type: z.enum(TRANSFER_TYPES),
    status: z.enum(['pending', 'completed', 'failed']),
    failure_code: z.enum(FAILURE_CODES).nullable(),
    amount: AmountOut,
    currency: Currency,
    from_account_id: Id.nullable(),
    to_account_id: Id.nullable(),
    description: z.string().nullable(),
    reverses_transfer_id: Id.nullable(),
    cancels_transfer_id: Id.nullable(),
    expires_at: z.string().nullable(),
    created_at: z.string(),
    finished_at: z.string().nullable(),
    from_balance_after: AmountOut.nullable().openapi({
      description: "Once completed: the source account's balance right after this transfer.",
    }),
    to_balance_after: AmountOut.nullable().openapi({
      description: "Once completed: the destination account's balance right after this transfer.",
    }),
  })
  .openapi('Transfer');
export type TransferJson = z.infer<typeof TransferOut>;

export function transferJson(t: Transfer): TransferJson {
  return {
    id: t.id,
    type: t.type,
    status: apiStatus(t.status),
    failure_code: t.failureCode,
    amount: t.amountMinor.toString(),
    currency: t.currency,
    from_account_id: t.fromAccountId,
    to_account_id: t.toAccountId,
    description: t.description,
    reverses_transfer_id: t.reversesTransferId,
    cancels_transfer_id: t.cancelsTransferId,
    expires_at: t.expiresAt?.toISOString() ?? null,
    created_at: t.acceptedAt.toISOString(),
    finished_at: t.finishedAt?.toISOString() ?? null,
    from_balance_after: t.fromBalanceAfter?.toString() ?? null,
    to_balance_after: t.toBalanceAfter?.toString() ?? null,
  };
}
