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

export type InterestRun = {
  asOf: string;
  annualRateBps: number;
  status: 'running' | 'completed';
  accountsPaid: number;
  amountTotalMinor: bigint;
};

/**
 * Records the run for `as_of` (once), or finds it. Another rate for the same `as_of` is refused.
 */
export async function openInterestRun(
  pool: pg.Pool,
  input: { asOf: string; annualRateBps: number },
): Promise<{ kind: 'open' } | { kind: 'rate_conflict'; annualRateBps: number }> {
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
  return { kind: 'open' };
}

/**
 * Pays the run, a page of accounts at a time: each account's interest transfer carries the
 * idempotency key `<as_of>:<account id>`, so running again (after a crash, say) finishes what
 * is missing and never pays an account twice. `stopping` is asked between pages; a run cut
 * short stays `running` until it is posted again.
 */
export async function payInterest(
  pool: pg.Pool,
  submitter: Submitter,
  input: { asOf: string; annualRateBps: number },
  stopping: () => boolean = () => false,
): Promise<void> {
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    if (stopping()) return;
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
        idempotencyScope: INTEREST_SCOPE,
        idempotencyKey: `${input.asOf}:${a.id}`,
        // The key alone decides: the balance may have moved since the first attempt.
        hashInput: JSON.stringify(['interest', input.asOf, a.id]),
      }));
    await submitter.submit(commands);
  }
  await pool.query(
    `UPDATE interest_runs SET status = 'completed', completed_at = now()
      WHERE as_of = $1 AND status = 'running'`,
    [input.asOf],
  );
}

const INTEREST_SCOPE = 'interest';

/** A run with what it has paid so far: its completed interest transfers, found by their keys. */
export async function getInterestRun(
  pool: pg.Pool,
  asOf: string,
): Promise<InterestRun | undefined> {
  const res = await pool.query<{
    annual_rate_bps: number;
    status: 'running' | 'completed';
    paid: string;
    total: string;
  }>(
    `SELECT r.annual_rate_bps, r.status, p.paid, p.total
       FROM interest_runs r,
            LATERAL (SELECT count(*)::text AS paid, coalesce(sum(t.amount), 0)::text AS total
                       FROM transfers t
                      WHERE t.idempotency_scope = $2 AND t.status = 'completed'
                        AND t.idempotency_key >= r.as_of || ':'
                        AND t.idempotency_key < r.as_of || ';') p
      WHERE r.as_of = $1`,
    [asOf, INTEREST_SCOPE],
  );
  const r = res.rows[0];
  if (!r) return undefined;
  return {
    asOf,
    annualRateBps: r.annual_rate_bps,
    status: r.status,
    accountsPaid: Number(r.paid),
    amountTotalMinor: BigInt(r.total),
  };
}

/**
 * Runs in the background of a web process, one at a time per `as_of`; the request that starts a
 * run answers at once with its status.
 */
export class InterestRuns {
  private readonly running = new Map<string, Promise<void>>();
  private stopping = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly submitter: Submitter,
  ) {}

  /** Starts paying `as_of` unless this process is already at it or it is completed. */
  ensure(input: { asOf: string; annualRateBps: number }, onError: (err: Error) => void): void {
    if (this.running.has(input.asOf) || this.stopping) return;
    const run = payInterest(this.pool, this.submitter, input, () => this.stopping)
      .catch(onError)
      .finally(() => this.running.delete(input.asOf));
    this.running.set(input.asOf, run);
  }

  /** Lets the runs finish their page and stop; a run cut short is finished by posting it again. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.running.values());
  }
}
