// Proves cancel and expiry, both decided by the source partition's owner in its order: a cancel
// it sees before the debit fails the transfer `cancelled`; one that arrives after the debit
// leaves it completed; a command not applied by its expires_at fails `expired`; money is exact.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { WebProcess } from '../../src/app/web-process';
import { partitionOf } from '../../src/partitions/routing';
import { drained, expectBalancesFromTransfers, expectInvariants } from '../support/invariants';
import { until } from '../support/servers';
import { createTestEnv, deposit, type TestEnv } from '../support/test-env';
import { caller, createTestWeb, type Call } from '../support/web';

const P = 4;
let env: TestEnv;
let web: WebProcess;
let call: Call;
let payer: string;
let payee: string;

beforeAll(async () => {
  env = await createTestEnv({ partitions: P });
  web = await createTestWeb(env);
  call = caller(web, 'test-admin-key-0123456789');
  await env.startWorker();
  payer = (await env.account()).id;
  payee = (await env.account()).id;
  await env.waitForFinal((await env.submit([deposit(payer, 10_000n)])).map((t) => t.id));
});
afterAll(async () => {
  await web.stop();
  await env.cleanup();
});

async function settle(id: string) {
  for (;;) {
    const t = await call('GET', `/v1/transfers/${id}?wait=5`);
    if (t.json.status !== 'pending') return t.json;
  }
}
const move = (idem: string, extra: object = {}) =>
  call('POST', '/v1/transfers', {
    idem,
    body: {
      from_account_id: payer,
      to_account_id: payee,
      amount: '100',
      currency: 'EUR',
      ...extra,
    },
  });
/** The payer's queue held, so that what is sent meanwhile waits for its owner in order. */
async function held<T>(fn: () => Promise<T>): Promise<T> {
  const queue = env.dispatcher.queue(partitionOf(payer, P));
  await queue.pause();
  try {
    return await fn();
  } finally {
    await queue.resume();
  }
}

it('a cancel the owner sees before the debit fails the transfer cancelled; it moves nothing', async () => {
  const t = await held(async () => {
    const sent = await move('c1');
    expect(sent.status).toBe(202);
    const cancel = await call('POST', `/v1/transfers/${sent.json.id}/cancel`);
    expect(cancel.status).toBe(202);
    expect(cancel.headers.get('location')).toBe(`/v1/transfers/${sent.json.id}`);
    return sent.json;
  });
  const final = await settle(t.id);
  expect([final.status, final.failure_code]).toEqual(['failed', 'cancelled']);
  const cancels = await env.pool.query(
    `SELECT status, failure_code FROM transfers WHERE type = 'cancel' AND cancels_transfer_id = $1`,
    [t.id],
  );
  expect(cancels.rows).toEqual([{ status: 'completed', failure_code: null }]);
});

it('a cancel after the debit is too late: the transfer completes as usual', async () => {
  const sent = await move('c2');
  const done = await settle(sent.json.id);
  expect(done.status).toBe('completed');
  expect((await call('POST', `/v1/transfers/${sent.json.id}/cancel`)).status).toBe(202);
  await until('the cancel to be decided', async () => {
    const r = await env.pool.query(
      `SELECT 1 FROM transfers WHERE cancels_transfer_id = $1 AND status = 'failed'`,
      [sent.json.id],
    );
    return r.rows.length === 1;
  });
  const cancels = await env.pool.query(
    `SELECT failure_code FROM transfers WHERE cancels_transfer_id = $1`,
    [sent.json.id],
  );
  expect(cancels.rows).toEqual([{ failure_code: 'too_late' }]);
  expect((await settle(sent.json.id)).status).toBe('completed');
  // Unknown transfers and commands that are not movements cannot be cancelled.
  expect(
    (await call('POST', `/v1/transfers/00000000-0000-4000-8000-000000000000/cancel`)).status,
  ).toBe(404);
});

it('a command not applied by its expires_at fails expired; one in time completes', async () => {
  const soon = new Date(Date.now() + 500).toISOString();
  const later = new Date(Date.now() + 3_600_000).toISOString();
  const [late, inTime] = await held(async () => {
    const a = await move('e1', { expires_at: soon });
    const b = await move('e2', { expires_at: later });
    expect([a.status, b.status]).toEqual([202, 202]);
    expect(a.json.expires_at).toBe(soon);
    await new Promise((r) => setTimeout(r, 800));
    return [a.json, b.json];
  });
  expect(await settle(late.id)).toMatchObject({ status: 'failed', failure_code: 'expired' });
  expect(await settle(inTime.id)).toMatchObject({ status: 'completed' });
  // A time that is not RFC 3339 is refused at the edge.
  expect((await move('e3', { expires_at: 'tomorrow' })).status).toBe(400);
});

it('money is exact after cancels and expiries', async () => {
  await drained(env.pool);
  await expectInvariants(env.pool);
  await expectBalancesFromTransfers(env.pool);
  const b = await env.pool.query<{ balance: string }>(
    'SELECT balance FROM accounts WHERE id = $1',
    [payee],
  );
  // Only the completed ones arrived: c2 and e2.
  expect(b.rows[0]!.balance).toBe('200');
});
