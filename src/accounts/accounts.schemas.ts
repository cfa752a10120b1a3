// Request and response shapes of accounts and their ledger history.
import { z } from '@hono/zod-openapi';
import { HOLDER_LENGTH_MAX } from '../config/limits';
import { AmountIn, AmountOut, Currency, Id, StorableText } from '../http/schemas';
import { TRANSFER_TYPES } from '../domain/transfer';
import type { Account, EntryView } from './accounts.repository';

export const CreateAccountBody = z
  .strictObject({
    holder: StorableText({ lengthMin: 1, lengthMax: HOLDER_LENGTH_MAX }),
    currency: Currency,
    overdraft_limit: z.union([z.literal('0'), z.literal(0), AmountIn]).optional(),
  })
  .openapi('CreateAccountRequest');

export const AccountOut = z
  .object({
    id: Id,
    holder: z.string(),
    currency: Currency,
    status: z.enum(['open', 'closed']),
    overdraft_limit: AmountOut,
    balance: AmountOut,
    created_at: z.string(),
  })
  .openapi('Account');

export function accountJson(a: Account): z.infer<typeof AccountOut> {
  return {
    id: a.id,
    holder: a.holder,
    currency: a.currency,
    status: a.status,
    overdraft_limit: a.overdraftLimit.toString(),
    balance: a.balance.toString(),
    created_at: a.createdAt.toISOString(),
  };
}

export const EntryOut = z
  .object({
    transfer_id: Id,
    type: z.enum(TRANSFER_TYPES),
    amount: AmountOut.openapi({ description: 'Signed: negative for money out.' }),
    balance_after: AmountOut,
    created_at: z.string(),
  })
  .openapi('Entry');

export function entryJson(e: EntryView): z.infer<typeof EntryOut> {
  return {
    transfer_id: e.transferId,
    type: e.type,
    amount: e.amountMinor.toString(),
    balance_after: e.balanceAfterMinor.toString(),
    created_at: e.createdAt.toISOString(),
  };
}

export const EntriesPage = z
  .object({ data: z.array(EntryOut), next_cursor: z.string().nullable() })
  .openapi('EntriesPage');
