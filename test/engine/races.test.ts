// Proves the engine keeps money exact under the classic concurrency races, with real PostgreSQL,
// Redis and worker processes, and that the invariants hold after each scenario.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { partitionOf } from '../../src/partitions/routing';
import { expectInvariants } from '../support/invariants';
import { createTestEnv, deposit, transfer, type TestEnv } from '../support/test-env';

let env: TestEnv;

beforeAll(async () => {
  env = await createTestEnv({ partitions: 8 });
  await env.startWorker();
  await env.startWorker();
});
afterAll(async () => {
  const fatal = [...env.fatal];
  await env.cleanup();
  expect(fatal).toEqual([]);
});

async function fund(accountId: string, amountMinor: bigint) {
  const [t] = await env.submit([deposit(accountId, amountMinor)]);
  const [done] = await env.waitForFinal([t!.id]);
  expect(done!.status).toBe('completed');
}

async function balanceOf(id: string): Promise<bigint> {
  const res = await env.pool.query<{ balance: string }>(
    'SELECT balance FROM accounts WHERE id = $1',
    [id],
  );
  return BigInt(res.rows[0]!.balance);
}

describe('the double-spend race', () => {
  it('two 4,000.00 transfers from a 5,000.00 balance: one completes, one fails insufficient_funds', async () => {
    const [alice, bob, charlie] = await Promise.all([env.account(), env.account(), env.account()]);
    await fund(alice.id, 500_000n);

    const submitted = await Promise.all(
      [bob, charlie].map((to) => env.submit([transfer(alice.id, to.id, 400_000n)])),
    );
    const ids = submitted.flat().map((t) => t.id);
    const final = await env.waitForFinal(ids);

    expect(final.filter((t) => t.status === 'completed')).toHaveLength(1);
    const failed = final.filter((t) => t.status === 'failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.failureCode).toBe('insufficient_funds');
    expect(await balanceOf(alice.id)).toBe(100_000n);
    expect((await balanceOf(bob.id)) + (await balanceOf(charlie.id))).toBe(400_000n);
    await expectInvariants(env.pool, { submittedIds: ids });
  });
});

describe('a flash sale of withdrawals', () => {
  it('1,000 concurrent withdrawals of 1.00 from 500.00: exactly 500 complete and the balance ends at 0', async () => {
    const wallet = await env.account();
    await fund(wallet.id, 50_000n);

    const submitted = await Promise.all(
      Array.from({ length: 1000 }, () =>
        env.submit([
          {
            type: 'withdrawal',
            fromAccountId: wallet.id,
            toAccountId: null,
            amountMinor: 100n,
            currency: 'EUR',
          },
        ]),
      ),
    );
    const ids = submitted.flat().map((t) => t.id);
    const final = await env.waitForFinal(ids);

    expect(final.filter((t) => t.status === 'completed')).toHaveLength(500);
    expect(final.filter((t) => t.failureCode === 'insufficient_funds')).toHaveLength(500);
    expect(await balanceOf(wallet.id)).toBe(0n);
    await expectInvariants(env.pool, { submittedIds: ids });
  });
});

describe('a hot destination', () => {
  it('300 payers in other partitions pay one merchant at once: all complete and the merchant is exact', async () => {
    const merchant = await env.account();
    const merchantPartition = partitionOf(merchant.id, env.config.partitions);
    const payers = [];
    while (payers.length < 300) {
      const a = await env.account();
      if (partitionOf(a.id, env.config.partitions) !== merchantPartition) payers.push(a);
    }
    const deposits = await env.submit(payers.map((p) => deposit(p.id, 10_000n)));
    await env.waitForFinal(deposits.map((d) => d.id));

    const submitted = await Promise.all(
      payers.map((p, i) => env.submit([transfer(p.id, merchant.id, BigInt(100 + i))])),
    );
    const ids = submitted.flat().map((t) => t.id);
    const final = await env.waitForFinal(ids);

    expect(final.every((t) => t.status === 'completed')).toBe(true);
    const expected = payers.reduce((sum, _p, i) => sum + BigInt(100 + i), 0n);
    expect(await balanceOf(merchant.id)).toBe(expected);
    // Only the merchant's partition ever wrote its entries, in one unbroken sequence.
    const writers = await env.pool.query<{ partition: number; n: string; max: string }>(
      `SELECT partition, count(*) AS n, max(account_version) AS max
         FROM ledger_entries WHERE account_id = $1 GROUP BY partition`,
      [merchant.id],
    );
    expect(writers.rows).toEqual([{ partition: merchantPartition, n: '300', max: '300' }]);
    const legs = await env.pool.query<{ partition: number }>(
      `SELECT DISTINCT l.partition FROM applied_legs l WHERE l.leg = 'credit'
          AND l.transfer_id = ANY($1::uuid[])`,
      [ids],
    );
    expect(legs.rows).toEqual([{ partition: merchantPartition }]);
    await expectInvariants(env.pool, { submittedIds: ids });
  });
});
