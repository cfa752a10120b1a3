// Proves that a completed transfer shows each customer side's balance right after it, across
// partitions and in one hop; a system side and a transfer that is not completed show null.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { WebProcess } from '../../src/app/web-process';
import { partitionOf } from '../../src/partitions/routing';
import { createTestEnv, type TestEnv } from '../support/test-env';
import { caller, createTestWeb, openAccount, type Call } from '../support/web';

let env: TestEnv;
let web: WebProcess;
let call: Call;
beforeAll(async () => {
  env = await createTestEnv({ partitions: 4 });
  web = await createTestWeb(env);
  call = caller(web, 'test-admin-key-0123456789');
  await env.startWorker();
});
afterAll(async () => {
  await web.stop();
  await env.cleanup();
});

async function settle(path: string, body: object, idem: string) {
  const res = await call('POST', path, { idem, body });
  expect(res.status).toBe(202);
  expect(res.json).toMatchObject({ from_balance_after: null, to_balance_after: null });
  for (;;) {
    const got = await call('GET', `/v1/transfers/${res.json.id}?wait=5`);
    if (got.json.status !== 'pending') return got.json;
  }
}

it('shows the balances right after a completed transfer, null on a system side or when failed', async () => {
  const open = () => openAccount(call);
  const a = await open();
  let far = await open();
  while (partitionOf(far, 4) === partitionOf(a, 4)) far = await open();
  let near = await open();
  while (partitionOf(near, 4) !== partitionOf(a, 4)) near = await open();

  const dep = await settle('/v1/deposits', { account_id: a, amount: '1000', currency: 'EUR' }, 'd');
  expect(dep).toMatchObject({
    status: 'completed',
    from_balance_after: null,
    to_balance_after: '1000',
  });
  const across = await settle(
    '/v1/transfers',
    { from_account_id: a, to_account_id: far, amount: '300', currency: 'EUR' },
    't1',
  );
  expect(across).toMatchObject({ from_balance_after: '700', to_balance_after: '300' });
  const oneHop = await settle(
    '/v1/transfers',
    { from_account_id: a, to_account_id: near, amount: '200', currency: 'EUR' },
    't2',
  );
  expect(oneHop).toMatchObject({ from_balance_after: '500', to_balance_after: '200' });
  const out = await settle(
    '/v1/withdrawals',
    { account_id: far, amount: '50', currency: 'EUR' },
    'w',
  );
  expect(out).toMatchObject({ from_balance_after: '250', to_balance_after: null });
  const failed = await settle(
    '/v1/transfers',
    { from_account_id: near, to_account_id: a, amount: '9999', currency: 'EUR' },
    't3',
  );
  expect(failed).toMatchObject({
    status: 'failed',
    failure_code: 'insufficient_funds',
    from_balance_after: null,
    to_balance_after: null,
  });
});
