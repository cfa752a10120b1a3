// Proves that a posting past what a balance may hold is an outcome, not a crash: the transfer
// fails balance_overflow (a credit's money goes back to its payer), the owner keeps applying the
// legs behind it, and the invariants hold.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BALANCE_MINOR_LIMIT } from '../../src/config/limits';
import { partitionOf } from '../../src/partitions/routing';
import { expectInvariants } from '../support/invariants';
import { createTestEnv, deposit, transfer, type TestEnv } from '../support/test-env';

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv({ partitions: 4 });
  await env.startWorker();
});
afterAll(async () => {
  await env.cleanup();
});

async function balance(id: string): Promise<bigint> {
  const r = await env.pool.query<{ balance: string }>(
    'SELECT balance FROM accounts WHERE id = $1',
    [id],
  );
  return BigInt(r.rows[0]!.balance);
}

it('a deposit or a credit past the limit fails balance_overflow and the owner goes on', async () => {
  const full = await env.account();
  let payer = await env.account();
  while (partitionOf(payer.id, 4) === partitionOf(full.id, 4)) payer = await env.account();

  const [fill] = await env.submit([deposit(full.id, BALANCE_MINOR_LIMIT - 10n)]);
  const [fund] = await env.submit([deposit(payer.id, 1_000n)]);
  await env.waitForFinal([fill!.id, fund!.id]);

  // Submitted together, so the owner meets the failing legs in the middle of its batches. The
  // credit (11) overflows whether it lands before or after the 10 that fits: the two partitions'
  // envelopes may reach the owner in either order.
  const [over, fits, credit, after] = await env.submit([
    deposit(full.id, 11n),
    deposit(full.id, 10n),
    transfer(payer.id, full.id, 11n),
    deposit(payer.id, 5n),
  ]);
  const final = await env.waitForFinal([over!.id, fits!.id, credit!.id, after!.id]);
  expect(final.map((t) => [t.status, t.failureCode])).toEqual([
    ['failed', 'balance_overflow'],
    ['completed', null],
    ['failed', 'balance_overflow'],
    ['completed', null],
  ]);
  expect(await balance(full.id)).toBe(BALANCE_MINOR_LIMIT);
  // The credit's money went back to its payer.
  expect(await balance(payer.id)).toBe(1_005n);
  const refunded = await env.pool.query(
    `SELECT leg, outcome FROM applied_legs WHERE transfer_id = $1 ORDER BY apply_seq`,
    [credit!.id],
  );
  expect(refunded.rows.map((r) => `${r.leg}:${r.outcome}`).sort()).toEqual([
    'credit:balance_overflow',
    'debit:posted',
    'refund:posted',
  ]);
  expect(env.fatal).toEqual([]);
  await expectInvariants(env.pool);
});
