// Interest runs are paid by each partition's owner in its own stream, with no web process at all:
// a page of its accounts at a time, once per as_of, and a new owner finishes what a dead one began.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dailyInterestMinor } from '../../src/domain/interest';
import { partitionOf } from '../../src/partitions/routing';
import { getInterestRun, openInterestRun } from '../../src/transfers/interest';
import { until } from '../support/servers';
import { expectBalancesFromTransfers, expectInvariants } from '../support/invariants';
import { createTestEnv, deposit, type TestEnv } from '../support/test-env';

const AS_OF = '2026-11-21';
const RATE_BPS = 500;

let env: TestEnv;
beforeEach(async () => {
  env = await createTestEnv({ partitions: 4 });
});
afterEach(async () => {
  const fatal = [...env.fatal];
  await env.cleanup();
  expect(fatal).toEqual([]);
});

/**
 * Accounts with balances whose interest at 5 % is known by hand: 730,000 × k earns 100 × k;
 * 7,300 earns exactly 1; 7,299 earns 0.99…, which rounds down to nothing; 0 earns nothing.
 */
async function fundedAccounts(count: number): Promise<Map<string, bigint>> {
  const balances = new Map<string, bigint>();
  const amounts = [
    ...Array.from({ length: count - 3 }, (_, k) => 730_000n * BigInt(k + 1)),
    7_300n,
    7_299n,
  ];
  const deposits = [];
  for (const amount of amounts) {
    const a = await env.account();
    balances.set(a.id, amount);
    deposits.push(deposit(a.id, amount));
  }
  balances.set((await env.account()).id, 0n);
  const made = await env.submit(deposits);
  await env.waitForFinal(made.map((t) => t.id));
  return balances;
}

async function interestTransfers() {
  const res = await env.pool.query<{
    to_account_id: string;
    amount: string;
    src_partition: number;
    status: string;
    entry_partitions: number[];
  }>(
    `SELECT t.to_account_id, t.amount::text, t.src_partition, t.status,
            array(SELECT DISTINCT e.partition FROM ledger_entries e WHERE e.transfer_id = t.id)
              AS entry_partitions
       FROM transfers t WHERE t.type = 'interest' AND t.idempotency_key LIKE $1`,
    [`${AS_OF}:%`],
  );
  return res.rows;
}

async function runCompleted() {
  await until(
    'the interest run completes',
    async () => (await getInterestRun(env.pool, AS_OF))?.status === 'completed',
  );
  return (await getInterestRun(env.pool, AS_OF))!;
}

function expectPaidOnce(
  balances: ReadonlyMap<string, bigint>,
  paid: Awaited<ReturnType<typeof interestTransfers>>,
) {
  const owed = [...balances]
    .map(([id, b]) => [id, dailyInterestMinor(b, RATE_BPS)] as const)
    .filter(([, amount]) => amount > 0n);
  // By hand: 730,000 × k at 5 % a year is 100 × k a day; 7,300 is 1; 7,299 and 0 are nothing.
  expect(owed.map(([, a]) => a).sort((x, y) => Number(x - y))).toEqual([
    1n,
    ...Array.from({ length: balances.size - 3 }, (_, k) => 100n * BigInt(k + 1)),
  ]);
  expect(paid.map((t) => t.to_account_id).sort()).toEqual(owed.map(([id]) => id).sort());
  const n = env.config.partitions;
  for (const t of paid) {
    expect(t.status).toBe('completed');
    expect(BigInt(t.amount)).toBe(dailyInterestMinor(balances.get(t.to_account_id)!, RATE_BPS));
    // Made and applied by the owner of the account's partition, in one hop there.
    expect(t.src_partition).toBe(partitionOf(t.to_account_id, n));
    expect(t.entry_partitions).toEqual([t.src_partition]);
  }
  return owed.reduce((sum, [, a]) => sum + a, 0n);
}

describe('interest runs', () => {
  it("each partition's owner pays its own accounts a page at a time, once per as_of, with no web", async () => {
    const worker = await env.startWorker({
      tuning: {
        sweepAfterMs: 1_000,
        sweepIntervalMs: 250,
        interestPollIntervalMs: 50,
        interestPageAccountsMax: 3,
      },
    });
    const balances = await fundedAccounts(23);
    const input = { asOf: AS_OF, annualRateBps: RATE_BPS, partitions: env.config.partitions };
    // Two operators post the same run at once: one run, one row per partition.
    await Promise.all([openInterestRun(env.pool, input), openInterestRun(env.pool, input)]);
    const rows = await env.pool.query(
      `SELECT partition FROM interest_run_partitions WHERE as_of = $1 ORDER BY partition`,
      [AS_OF],
    );
    expect(rows.rows.map((r) => r.partition)).toEqual([0, 1, 2, 3]);

    const run = await runCompleted();
    const paid = await interestTransfers();
    const total = expectPaidOnce(balances, paid);
    expect(run).toMatchObject({ accountsPaid: paid.length, amountTotalMinor: total });
    expect(worker.stats().interestTransfers).toBe(paid.length);
    const pages = await env.pool.query<{ status: string }>(
      `SELECT DISTINCT status FROM interest_run_partitions WHERE as_of = $1`,
      [AS_OF],
    );
    expect(pages.rows).toEqual([{ status: 'completed' }]);

    // Posted again after it finished: nothing more is paid.
    expect(await openInterestRun(env.pool, input)).toEqual({ kind: 'open' });
    await new Promise((r) => setTimeout(r, 300));
    expect(await interestTransfers()).toHaveLength(paid.length);
    for (const [id, b] of balances) {
      const now = await env.pool.query('SELECT balance::text FROM accounts WHERE id = $1', [id]);
      expect(BigInt(now.rows[0].balance)).toBe(b + dailyInterestMinor(b, RATE_BPS));
    }
    await expectInvariants(env.pool);
    await expectBalancesFromTransfers(env.pool);
  });

  it('a run whose owner dies part-way is finished by the next owner, and nobody is paid twice', async () => {
    const slow = {
      sweepAfterMs: 1_000,
      sweepIntervalMs: 250,
      interestPollIntervalMs: 100,
      interestPageAccountsMax: 2,
    };
    const first = await env.startWorker({ tuning: slow });
    const balances = await fundedAccounts(43);
    await openInterestRun(env.pool, {
      asOf: AS_OF,
      annualRateBps: RATE_BPS,
      partitions: env.config.partitions,
    });
    await until(
      'the first owner has paid a few accounts',
      () => first.stats().interestTransfers >= 4,
    );
    await first.kill();
    const before = (await interestTransfers()).length;
    expect(before).toBeLessThan(40);

    const second = await env.startWorker({ tuning: slow });
    const run = await runCompleted();
    const paid = await interestTransfers();
    expect(expectPaidOnce(balances, paid)).toBe(run.amountTotalMinor);
    expect(second.stats().interestTransfers).toBe(paid.length - before);
    await expectInvariants(env.pool);
    await expectBalancesFromTransfers(env.pool);
  });

  it('accounts made before they carried a partition, and runs left by the web-paid version, are taken up at worker start', async () => {
    const old = await env.account();
    await env.pool.query('UPDATE accounts SET partition = NULL WHERE id = $1', [old.id]);
    const made = await env.submit([deposit(old.id, 730_000n)]);
    await env.pool.query(`INSERT INTO interest_runs (as_of, annual_rate_bps) VALUES ($1, $2)`, [
      AS_OF,
      RATE_BPS,
    ]);
    await env.startWorker();
    await env.waitForFinal(made.map((t) => t.id));
    const row = await env.pool.query('SELECT partition FROM accounts WHERE id = $1', [old.id]);
    expect(row.rows[0].partition).toBe(partitionOf(old.id, env.config.partitions));
    const run = await runCompleted();
    expect(run).toMatchObject({ accountsPaid: 1, amountTotalMinor: 100n });
    await expectInvariants(env.pool);
  });
});
