// Proves that a long-poll on a money movement, and a GET ?wait= after its one read, is answered
// from the worker's announcement of how the transfer ended, without reading the row (again), and
// that this answer is exactly what a read of the row says; that a batch which did not post all of
// a transfer's entries announces the id alone, and the request then reads the row; and that the
// announcement's encoding reads back as written.
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { WebProcess } from '../../src/app/web-process';
import type { WorkerProcess } from '../../src/partitions/worker-process';
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
/** The test's worker, stopped after it even when the test fails, so that none outlives its test. */
let worker: WorkerProcess | undefined;
beforeAll(async () => {
  env = await createTestEnv({ partitions: 4 });
  web = await createTestWeb(env);
  call = caller(web, KEY);
  port = await web.listen(0);
});
afterEach(async () => {
  await worker?.stop();
  worker = undefined;
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
  it('is what a read says, for completed and failed movements, and no row is read for it', async () => {
    worker = await env.startWorker();
    const a = await open();
    let far = await open();
    while (partitionOf(far, 4) === partitionOf(a, 4)) far = await open();
    let near = await open();
    while (partitionOf(near, 4) !== partitionOf(a, 4)) near = await open();

    const before = web.deps.reader.requested;
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
    // Not one row read for the five answers (before this, one each).
    expect(web.deps.reader.requested - before).toBe(0);
    for (const answer of answers) await expectAsRead(answer);
    await expectInvariants(env.pool);
  });

  it('answers GET ?wait= from it too, after the one read that found the transfer pending', async () => {
    const a = await open();
    const b = await open();
    // No worker yet: the transfers stay pending while their long-polls begin.
    const deposit = await call('POST', '/v1/deposits', {
      idem: randomUUID(),
      body: { account_id: a, amount: '50', currency: 'EUR' },
    });
    const pay = await call('POST', '/v1/transfers', {
      idem: randomUUID(),
      body: { from_account_id: a, to_account_id: b, amount: '20', currency: 'EUR' },
    });
    const before = web.deps.reader.requested;
    const polls = [deposit, pay].map((r) => call('GET', `/v1/transfers/${r.json.id}?wait=10`));
    while (web.deps.waiter.waiting < 2) await new Promise((r) => setTimeout(r, 10));
    worker = await env.startWorker();
    const answers = await Promise.all(polls);
    expect(answers.map((r) => r.json.status)).toEqual(['completed', 'completed']);
    expect(answers[1]!.json).toMatchObject({ from_balance_after: '30', to_balance_after: '20' });
    // One read each, which found it pending; none after the wait (before this, two each).
    expect(web.deps.reader.requested - before).toBe(2);
    for (const answer of answers) await expectAsRead(answer);
    await expectInvariants(env.pool);
  });

  it('is read from the row when the batch that ended the transfer did not post its debit', async () => {
    // Credits in a batch of their own, as when another process owns the destination.
    worker = await env.startWorker({ tuning: { creditsInSameBatch: false } });
    const a = await open();
    let far = await open();
    while (partitionOf(far, 4) === partitionOf(a, 4)) far = await open();
    await move('/v1/deposits', { account_id: a, amount: '500', currency: 'EUR' });

    const before = web.deps.reader.requested;
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
    // The one read after the wait.
    expect(web.deps.reader.requested - before).toBe(1);
    await expectAsRead(across);
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
      `${id} completed - 2026-11-30T18:00:00.000Z 12x -`,
      `${id} completed - 2026-11-30T18:00:00.000Z - 1e5`,
    ]) {
      expect(readFinalNotices(item)).toStrictEqual([{ id }]);
    }
  });
});
