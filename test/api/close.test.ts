// Proves closing an account through its partition's owner: refused with 409 while it holds money;
// an empty one closes (again: still 200); and closed between a transfer's debit and its credit,
// the credit fails account_closed and the money goes back to its payer, with the invariants held.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { WebProcess } from '../../src/app/web-process';
import { partitionOf } from '../../src/partitions/routing';
import { drained, expectBalancesFromTransfers, expectInvariants } from '../support/invariants';
import { until } from '../support/servers';
import { createTestEnv, deposit, transfer, type TestEnv } from '../support/test-env';
import { caller, createTestWeb, type Call } from '../support/web';

const P = 4;
let env: TestEnv;
let web: WebProcess;
let call: Call;

beforeAll(async () => {
  env = await createTestEnv({ partitions: P });
  web = await createTestWeb(env);
  call = caller(web, 'test-admin-key-0123456789');
  // Two worker processes, so that a credit travels through its partition's queue in Redis.
  await env.startWorker();
  await env.startWorker();
  await until('a fair share', async () => {
    const r = await env.pool.query(`SELECT DISTINCT owner FROM partitions WHERE owner IS NOT NULL`);
    return r.rows.length === 2;
  });
});
afterAll(async () => {
  await web.stop();
  await env.cleanup();
});

async function balance(id: string): Promise<bigint> {
  const r = await env.pool.query<{ b: string }>('SELECT balance AS b FROM accounts WHERE id = $1', [
    id,
  ]);
  return BigInt(r.rows[0]!.b);
}

it('refuses to close an account with money in it, and closes an empty one (twice: still 200)', async () => {
  const full = await env.account();
  await env.waitForFinal((await env.submit([deposit(full.id, 50n)])).map((t) => t.id));
  const refused = await call('POST', `/v1/accounts/${full.id}/close`);
  expect(refused.status).toBe(409);
  expect(refused.json.code).toBe('account_not_empty');
  expect((await call('GET', `/v1/accounts/${full.id}`)).json).toMatchObject({
    status: 'open',
    balance: '50',
  });

  const empty = await env.account();
  const closed = await call('POST', `/v1/accounts/${empty.id}/close`);
  expect(closed.status).toBe(200);
  expect(closed.json).toMatchObject({ id: empty.id, status: 'closed', balance: '0' });
  expect((await call('POST', `/v1/accounts/${empty.id}/close`)).status).toBe(200);
  // A deposit to it now fails, moving nothing.
  const [late] = await env.waitForFinal(
    (await env.submit([deposit(empty.id, 5n)])).map((t) => t.id),
  );
  expect([late!.status, late!.failureCode]).toEqual(['failed', 'account_closed']);
  expect(await balance(empty.id)).toBe(0n);
  expect(
    (await call('POST', `/v1/accounts/00000000-0000-4000-8000-000000000000/close`)).status,
  ).toBe(404);
});

it('closed between the debits and the credits: the credits fail account_closed and are refunded', async () => {
  const owners = await env.pool.query<{ id: number; owner: string }>(
    `SELECT id, owner FROM partitions`,
  );
  const ownerOf = new Map(owners.rows.map((r) => [r.id, r.owner]));
  let payer = await env.account();
  let target = await env.account();
  while (ownerOf.get(partitionOf(target.id, P)) === ownerOf.get(partitionOf(payer.id, P))) {
    target = await env.account();
    payer = await env.account();
  }
  await env.waitForFinal((await env.submit([deposit(payer.id, 1_000n)])).map((t) => t.id));

  // The target's queue held: the close waits in it first, the credits will queue behind it.
  const queue = env.dispatcher.queue(partitionOf(target.id, P));
  await queue.pause();
  const closing = call('POST', `/v1/accounts/${target.id}/close`);
  await until('the close to be recorded', async () => {
    const r = await env.pool.query(
      `SELECT 1 FROM transfers WHERE type = 'close' AND from_account_id = $1`,
      [target.id],
    );
    return r.rows.length === 1;
  });
  const moves = await env.submit([1n, 2n, 3n].map((a) => transfer(payer.id, target.id, a * 100n)));
  // Debited on the payer's partition while the target still read as open.
  await until('the debits', async () => {
    const r = await env.pool.query(
      `SELECT count(*)::int AS n FROM transfers WHERE id = ANY($1) AND status = 'debited'`,
      [moves.map((t) => t.id)],
    );
    return r.rows[0].n === 3;
  });
  expect(await balance(payer.id)).toBe(400n);
  await queue.resume();

  expect((await closing).json).toMatchObject({ status: 'closed', balance: '0' });
  const final = await env.waitForFinal(moves.map((t) => t.id));
  expect(final.map((t) => [t.status, t.failureCode])).toEqual([
    ['failed', 'account_closed'],
    ['failed', 'account_closed'],
    ['failed', 'account_closed'],
  ]);
  const legs = await env.pool.query(
    `SELECT leg, outcome FROM applied_legs WHERE transfer_id = $1 ORDER BY apply_seq`,
    [moves[0]!.id],
  );
  expect(legs.rows.map((r) => `${r.leg}:${r.outcome}`).sort()).toEqual([
    'credit:account_closed',
    'debit:posted',
    'refund:posted',
  ]);
  expect(await balance(payer.id)).toBe(1_000n);
  expect(await balance(target.id)).toBe(0n);
  await drained(env.pool);
  await expectInvariants(env.pool);
  await expectBalancesFromTransfers(env.pool);
});
