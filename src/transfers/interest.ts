// Daily interest: every open customer account with a positive balance earns
// floor(balance × annual_rate_bps / 10,000 / 365) minor units, from the `interest` system account.
import type pg from 'pg';
import { INTEREST_PAGE_SIZE } from '../config/limits';
import type { Submitter } from './submit';

export const DAYS_PER_YEAR = 365n;

export function dailyInterestMinor(balanceMinor: bigint, annualRateBps: number): bigint {
  if (balanceMinor <= 0n) return 0n;
  return (balanceMinor * BigInt(annualRateBps)) / (10_000n * DAYS_PER_YEAR);
}

export type InterestRunResult =
  | { kind: 'run'; submitted: number; alreadyDone: number }
  | { kind: 'rate_conflict'; annualRateBps: number };

/**
 * Once per `as_of`: each account's interest transfer carries the idempotency key
 * `<as_of>:<account id>`, so running again (after a crash, say) finishes what is missing and
 * never pays an account twice. A second run asking another rate is refused.
 */
export async function runInterest(
  pool: pg.Pool,
  submitter: Submitter,
  input: { asOf: string; annualRateBps: number },
): Promise<InterestRunResult> {
  await pool.query(
    `INSERT INTO interest_runs (as_of, annual_rate_bps) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
    [input.asOf, input.annualRateBps],
  );
  const run = await pool.query<{ annual_rate_bps: number }>(
    'SELECT annual_rate_bps FROM interest_runs WHERE as_of = $1',
    [input.asOf],
  );
  if (run.rows[0]!.annual_rate_bps !== input.annualRateBps) {
    return { kind: 'rate_conflict', annualRateBps: run.rows[0]!.annual_rate_bps };
  }
  let submitted = 0;
  let alreadyDone = 0;
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const page = await pool.query<{ id: string; balance: string; currency: string }>(
      `SELECT id, balance, currency FROM accounts
        WHERE kind = 'customer' AND status = 'open' AND balance > 0 AND id > $1
        ORDER BY id LIMIT $2`,
      [after, INTEREST_PAGE_SIZE],
    );
    if (page.rows.length === 0) break;
    after = page.rows[page.rows.length - 1]!.id;
    const commands = page.rows
      .map((a) => ({ a, amountMinor: dailyInterestMinor(BigInt(a.balance), input.annualRateBps) }))
      .filter(({ amountMinor }) => amountMinor > 0n)
      .map(({ a, amountMinor }) => ({
        type: 'interest' as const,
        fromAccountId: null,
        toAccountId: a.id,
        amountMinor,
        currency: a.currency,
        idempotencyScope: 'interest',
        idempotencyKey: `${input.asOf}:${a.id}`,
        // The key alone decides: the balance may have moved since the first attempt.
        hashInput: JSON.stringify(['interest', input.asOf, a.id]),
      }));
    for (const r of await submitter.submit(commands)) {
      if (r.kind === 'accepted') submitted += 1;
      else alreadyDone += 1;
    }
  }
  return { kind: 'run', submitted, alreadyDone };
}
