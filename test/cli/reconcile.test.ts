// Proves `npm run reconcile`: exit 0 and "OK" on a clean ledger, exit 1 with each mismatch named
// after a balance is corrupted by hand and an applied leg is removed; --json is the same report.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { processEnv, spawnScript } from '../support/processes';
import { createTestEnv, deposit, transfer, type TestEnv } from '../support/test-env';

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv({ partitions: 4 });
  await env.startWorker();
});
afterAll(async () => {
  await env.cleanup();
});

async function reconcileCli(...args: string[]): Promise<{ code: number | null; out: string }> {
  const child = spawnScript(
    'src/cli/reconcile.ts',
    { ...processEnv(env.config), LOG_LEVEL: 'error' },
    args,
  );
  return { code: await child.exited, out: child.output() };
}

it('exits 0 on a clean ledger and 1, naming each mismatch, after a hand-made corruption', async () => {
  const [a, b] = [await env.account(), await env.account()];
  const done = await env.submit([deposit(a.id, 1_000n), transfer(a.id, b.id, 300n)]);
  await env.waitForFinal(done.map((t) => t.id));

  const clean = await reconcileCli();
  expect(clean.code, clean.out).toBe(0);
  expect(clean.out).toContain('OK: every invariant holds');
  expect(clean.out).toMatch(/sum of all balances\s+0/);

  await env.pool.query('UPDATE accounts SET balance = balance + 1 WHERE id = $1', [b.id]);
  // A gap in one partition's apply sequence, as if a leg had been lost from the record.
  await env.pool.query(
    `UPDATE applied_legs SET apply_seq = apply_seq + 10
      WHERE (partition, apply_seq) = (SELECT partition, max(apply_seq) FROM applied_legs
                                       GROUP BY partition ORDER BY partition LIMIT 1)`,
  );
  const broken = await reconcileCli();
  expect(broken.code, broken.out).toBe(1);
  expect(broken.out).toContain('MISMATCH');
  expect(broken.out).toContain(`balance_not_sum_of_entries: account_id=${b.id}`);
  expect(broken.out).toContain('total_not_zero: currency=EUR total=1');
  expect(broken.out).toContain('apply_sequence_broken');

  const json = await reconcileCli('--json');
  expect(json.code).toBe(1);
  const parsed = JSON.parse(json.out) as { ok: boolean; mismatches: { kind: string }[] };
  expect(parsed.ok).toBe(false);
  expect(parsed.mismatches.map((m) => m.kind)).toEqual(
    expect.arrayContaining([
      'balance_not_sum_of_entries',
      'total_not_zero',
      'apply_sequence_broken',
    ]),
  );
});
