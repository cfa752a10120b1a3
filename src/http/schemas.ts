// Schemas shared by several routers: amounts, ids, currencies, problems, pagination.
import { z } from '@hono/zod-openapi';
import { PAGE_SIZE_MAX } from '../config/limits';
import { CURRENCY_LIST_DATE, isActiveCurrency } from '../domain/currencies';

/** A string of digits, or a JSON integer up to 2^53-1; the upper bound is MAX_AMOUNT. */
export const AmountIn = z
  .union([
    z.string().regex(/^[1-9][0-9]{0,18}$/, 'a positive integer of minor units, as digits'),
    z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  ])
  .openapi({
    description:
      'Amount in minor units (cents): a string of digits, or a JSON integer up to 2^53-1.',
    example: '1000',
  });

/**
 * Text PostgreSQL can store as given: no NUL character (its text type has none) and no lone
 * surrogate (which would be silently replaced when encoded as UTF-8). Refused at the edge, so a
 * value the database would refuse never reaches a shared INSERT.
 */
// eslint-disable-next-line no-control-regex -- NUL is exactly what this refuses.
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
export const StorableText = (opts: { lengthMin?: number; lengthMax: number }) =>
  z
    .string()
    .min(opts.lengthMin ?? 0)
    .max(opts.lengthMax)
    .refine((s) => !UNSTORABLE.test(s), 'must be Unicode text without NUL or lone surrogates');

export const AmountOut = z
  .string()
  .regex(/^-?[0-9]+$/)
  .openapi({ example: '1000' });
export const Currency = z
  .string()
  .regex(/^[A-Z]{3}$/, 'an ISO 4217 alpha-3 code in upper case')
  .refine(isActiveCurrency, 'not an active ISO 4217 currency')
  .openapi({
    description: `An active ISO 4217 alpha-3 code (list of ${CURRENCY_LIST_DATE}; not XTS or XXX).`,
    example: 'EUR',
  });
export const Id = z.uuid().openapi({ example: '0b9d7c8e-6a3f-4c31-9e1b-2d4f5a6b7c8d' });
export const IdParam = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) });

export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    code: z.string(),
    detail: z.string().optional(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    instance: z.string().optional(),
  })
  .openapi('Problem');

export const problemResponses = (...statuses: number[]) =>
  Object.fromEntries(
    statuses.map((s) => [
      s,
      { description: 'Problem', content: { 'application/problem+json': { schema: Problem } } },
    ]),
  );

export const PageQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(PAGE_SIZE_MAX).optional(),
  cursor: z.string().max(100).optional(),
});

export const IdempotencyHeader = z.object({
  'idempotency-key': z.string().optional().openapi({
    description:
      '1 to 255 printable ASCII characters, on one header line; required on money movements.',
  }),
});

/** A money movement's headers: its Idempotency-Key, and RFC 7240's `Prefer: wait=N`. */
export const MoneyMovementHeaders = IdempotencyHeader.extend({
  prefer: z
    .string()
    .optional()
    .openapi({
      description:
        'RFC 7240. `wait=N` (seconds, at most 30): hold the answer until the transfer is final, ' +
        'then 200 with it; if N seconds pass first, 202 pending as without it. ' +
        'The answer carries `Preference-Applied`. Other preferences are ignored.',
      example: 'wait=10',
    }),
});
