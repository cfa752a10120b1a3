// Proves that a long-poll on a money movement is answered from the worker's announcement of how it
// ended, without reading the transfer's row, and that this answer is exactly what a read of the
// row says; that a batch which did not post all of a transfer's entries announces the id alone,
// and the request then reads the row; and that the announcement's encoding reads back as written.
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebProcess } from '../../src/app/web-process';
import { FAILURE_CODES } from '../../src/domain/transfer';
import { encodeNotice, readFinalNotices, type FinalNotice } from '../../src/ledger/apply';
import { partitionOf } from '../../src/partitions/routing';
import { expectInvariants } from '../support/invariants';
import { createTestEnv, type TestEnv } from '../support/test-env';
import { caller, createTestWeb, openAccount, type Call } from '../support/web';

const KEY = 'test-admin-key-0123456789';
let env: TestEnv;
let web: WebProcess;
let call: Call;
let port: number;
beforeAll(async () => {
  env = await createTestEnv({ partitions: 4 });
  web = await createTestWeb(env);
  call = caller(web, KEY);
  port = await web.listen(0);
});
afterAll(async () => {
  await web.stop();
  await env.cleanup();
});

const open = () => openAccount(call);

/** A money movement with `Prefer: wait`, through Hono (in process) or the lane (over HTTP). */
async function move(path: string, body: object, via: 'hono' | 'lane' = 'hono') {
  const headers = { prefer: 'wait=10' };
  if (via === 'hono') return call('POST', path, { idem: randomUUID(), body, headers });
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: 'POST',
    headers: {
      ...headers,
      authorization: `Bearer ${KEY}`,
      'idempotency-key': randomUUID(),
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** The answer is final, and is what a read of the row says now, field for field. */
async function expectAsRead(answer: { status: number; json: Record<string, unknown> }) {
  expect(answer.status).toBe(200);
  const read = await call('GET', `/v1/transfers/${String(answer.json.id)}`);
  expect(answer.json).toStrictEqual(read.json);
}

describe('the answer to a long-poll, from the announcement of how the transfer ended', () => {
  it('is what a read says, for completed and failed movements, and no row was read for it', async () => {
    const worker = await env.startWorker();
    const a = await open();
    let far = await open();
    while (partitionOf(far, 4) === partitionOf(a, 4)) far = await open();
    let near = await open();
    while (partitionOf(near, 4) !== partitionOf(a, 4)) near = await open();

    const before = web.deps.waiter.wokenWithState;
    const answers = [
      await move('/v1/deposits', { account_id: a, amount: '1000', currency: 'EUR' }),
      // Across partitions (the credit rides in its debit's batch), and in one hop.
      await move('/v1/transfers', {
        from_account_id: a,
        to_account_id: far,
        amount: '300',
        currency: 'EUR',
      }),
      await move(
        '/v1/transfers',
        { from_account_id: a, to_account_id: near, amount: '200', currency: 'EUR' },
        'lane',
      ),
      await move('/v1/withdrawals', { account_id: a, amount: '9999', currency: 'EUR' }, 'lane'),
      await move('/v1/withdrawals', { account_id: a, amount: '100', currency: 'EUR' }),
    ];
    expect(answers.map((r) => r.json.status)).toEqual([
      'completed',
      'completed',
      'completed',
      'failed',
      'completed',
    ]);
    expect(answers[1]!.json).toMatchObject({ from_balance_after: '700', to_balance_after: '300' });
    expect(answers[3]!.json).toMatchObject({
      failure_code: 'insufficient_funds',
      from_balance_after: null,
      to_balance_after: null,
    });
    for (const answer of answers) await expectAsRead(answer);
    expect(web.deps.waiter.wokenWithState - before).toBe(answers.length);
    await worker.stop();
    await expectInvariants(env.pool);
  });

  it('is read from the row when the batch that ended the transfer did not post its debit', async () => {
    // Credits in a batch of their own, as when another process owns the destination.
    const worker = await env.startWorker({ tuning: { creditsInSameBatch: false } });
    const a = await open();
    let far = await open();
    while (partitionOf(far, 4) === partitionOf(a, 4)) far = await open();
    await move('/v1/deposits', { account_id: a, amount: '500', currency: 'EUR' });

    const before = web.deps.waiter.wokenWithState;
    const across = await move(
      '/v1/transfers',
      { from_account_id: a, to_account_id: far, amount: '120', currency: 'EUR' },
      'lane',
    );
    expect(across.json).toMatchObject({
      status: 'completed',
      from_balance_after: '380',
      to_balance_after: '120',
    });
    await expectAsRead(across);
    expect(web.deps.waiter.wokenWithState).toBe(before);
    await worker.stop();
    await expectInvariants(env.pool);
  });
});

describe('the announcement of final transfers', () => {
  const notice: fc.Arbitrary<FinalNotice> = fc.record(
    {
      id: fc.uuid(),
      final: fc.record({
        status: fc.constantFrom('completed' as const, 'failed' as const),
        failureCode: fc.option(fc.constantFrom(...FAILURE_CODES), { nil: null }),
        finishedAt: fc.date({
          min: new Date('2000-01-01T00:00:00Z'),
          max: new Date('2999-12-31T23:59:59Z'),
          noInvalidDate: true,
        }),
        fromBalanceAfter: fc.option(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), {
          nil: null,
        }),
        toBalanceAfter: fc.option(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), {
          nil: null,
        }),
      }),
    },
    { requiredKeys: ['id'] },
  );

  it('reads back as it was written, a notice with a state or an id alone', () => {
    fc.assert(
      fc.property(fc.array(notice, { minLength: 1, maxLength: 20 }), (notices) => {
        // toEqual: fast-check's records have no prototype.
        expect(readFinalNotices(notices.map(encodeNotice).join(','))).toEqual(notices);
      }),
    );
  });

  it('reads what it cannot understand as the id alone, so that the row is read', () => {
    const id = randomUUID();
    for (const item of [
      id,
      `${id} pending - 2026-11-30T18:00:00.000Z - -`,
      `${id} completed - not-a-date - -`,
      `${id} completed -`,
    ]) {
      expect(readFinalNotices(item)).toStrictEqual([{ id }]);
    }
  });
});
