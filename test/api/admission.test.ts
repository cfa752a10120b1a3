// Proves that flash traffic past capacity meets a fast 503 that records nothing, and that a
// request the database would refuse fails alone instead of sinking the requests it travels with.
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { partitionOf } from '../../src/partitions/routing';
import { expectInvariants } from '../support/invariants';
import { createTestEnv, deposit, type TestEnv } from '../support/test-env';
import { caller, createTestWeb } from '../support/web';
import type { WebProcess } from '../../src/app/web-process';

let env: TestEnv;
let web: WebProcess | undefined;
beforeEach(async () => {
  env = await createTestEnv({ partitions: 4 });
});
afterEach(async () => {
  await web?.stop();
  web = undefined;
  await env.cleanup();
});

/** Waits (bounded) for the web process's next backlog reading to say what the test needs. */
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !condition(); i++) await new Promise((r) => setTimeout(r, 50));
  expect(condition()).toBe(true);
}

async function transferRows(): Promise<number> {
  const res = await env.pool.query<{ n: string }>('SELECT count(*) AS n FROM transfers');
  return Number(res.rows[0]!.n);
}

it('one request with a value PostgreSQL cannot store, among 50 good ones, is refused alone', async () => {
  web = await createTestWeb(env);
  const call = caller(web, env.config.adminApiKey!);
  const [a, b] = await Promise.all([env.account(), env.account()]);
  const body = (description: string) => ({
    from_account_id: a.id,
    to_account_id: b.id,
    amount: '1',
    currency: 'EUR',
    description,
  });
  const answers = await Promise.all([
    ...Array.from({ length: 50 }, (_, i) =>
      call('POST', '/v1/transfers', { body: body(`good ${i}`), idem: `good-${i}` }),
    ),
    call('POST', '/v1/transfers', { body: body('nul \u0000 here'), idem: 'bad-nul' }),
    call('POST', '/v1/transfers', { body: body('lone \ud800 surrogate'), idem: 'bad-surrogate' }),
  ]);
  expect(answers.slice(0, 50).map((r) => r.status)).toEqual(Array(50).fill(202));
  for (const bad of answers.slice(50)) {
    expect(bad.status).toBe(400);
    expect(bad.json.code).toBe('validation_failed');
  }
  expect(await transferRows()).toBe(50);
});

it('a command PostgreSQL refuses inside a shared INSERT fails alone; the others are recorded', async () => {
  const [a, b] = await Promise.all([env.account(), env.account()]);
  const command = (description: string, key: string) => ({
    type: 'transfer' as const,
    fromAccountId: a.id,
    toAccountId: b.id,
    amountMinor: 1n,
    currency: 'EUR',
    description,
    idempotencyScope: 'test',
    idempotencyKey: key,
  });
  // Past the edge, straight to the group commit: the 50 share one flush with the bad one.
  const results = await Promise.allSettled([
    ...Array.from({ length: 50 }, (_, i) => env.submitter.submit([command(`ok ${i}`, `k${i}`)])),
    env.submitter.submit([command('nul \u0000', 'bad')]),
  ]);
  expect(results.slice(0, 50).every((r) => r.status === 'fulfilled')).toBe(true);
  expect(results[50]!.status).toBe('rejected');
  expect(await transferRows()).toBe(50);
});

it('past the intake’s bound, requests are answered 503 overloaded at once, recording nothing', async () => {
  web = await createTestWeb(env, {}, { heldCommandsMax: 5 });
  const call = caller(web, env.config.adminApiKey!);
  const a = await env.account();
  const answers = await Promise.all(
    Array.from({ length: 60 }, (_, i) =>
      call('POST', '/v1/deposits', {
        body: { account_id: a.id, amount: '1', currency: 'EUR' },
        idem: `flash-${i}`,
      }),
    ),
  );
  const refused = answers.filter((r) => r.status === 503);
  const accepted = answers.filter((r) => r.status === 202);
  expect(refused.length).toBeGreaterThan(0);
  expect(accepted.length + refused.length).toBe(60);
  for (const r of refused) {
    expect(r.json.code).toBe('overloaded');
    expect(r.headers.get('retry-after')).toBe('1');
    expect(r.headers.get('content-type')).toMatch(/application\/problem\+json/);
  }
  expect(await transferRows()).toBe(accepted.length);
  // A refused request retried with its key later is accepted once.
  const again = await call('POST', '/v1/deposits', {
    body: { account_id: a.id, amount: '1', currency: 'EUR' },
    idem: refused[0] ? `flash-${answers.indexOf(refused[0])}` : 'none',
  });
  expect(again.status).toBe(202);
});

it('a partition whose backlog is at its cap refuses new commands; other partitions still take them', async () => {
  web = await createTestWeb(env, {}, { backlogLegsMax: 10 });
  const call = caller(web, env.config.adminApiKey!);
  const full = await env.account();
  let other = await env.account();
  const n = env.config.partitions;
  while (partitionOf(other.id, n) === partitionOf(full.id, n)) other = await env.account();
  // No worker runs: these 10 debit legs wait on the full account's partition.
  await env.submit(Array.from({ length: 10 }, () => deposit(full.id, 1n)));
  const fullPartition = partitionOf(full.id, n);
  await until(() => !web!.deps.admission.admits([fullPartition]));
  expect(web.deps.admission.anyFull).toBe(true);

  // The key known (one request through Hono first), the refusal is the money lane's, answered
  // before anything is made for the request: no submission, no waiter for its Prefer: wait.
  const overHttp = caller(`http://127.0.0.1:${await web.listen(0)}`, env.config.adminApiKey!);
  await overHttp('GET', `/v1/accounts/${full.id}`);
  const submit = vi.spyOn(web.deps.submitter, 'submit');
  const subscribe = vi.spyOn(web.deps.waiter, 'subscribe');
  const laneServed = web.lane.served;
  const refused = await overHttp('POST', '/v1/deposits', {
    body: { account_id: full.id, amount: '1', currency: 'EUR' },
    idem: 'to-full',
    headers: { prefer: 'wait=5' },
  });
  expect(web.lane.served).toBe(laneServed + 1);
  expect([submit.mock.calls.length, subscribe.mock.calls.length]).toEqual([0, 0]);
  submit.mockRestore();
  subscribe.mockRestore();
  expect(refused.status).toBe(503);
  expect(refused.json).toMatchObject({ code: 'overloaded', status: 503, instance: '/v1/deposits' });
  expect(refused.headers.get('retry-after')).toBe('1');
  expect(refused.headers.get('x-request-id')).toBeTruthy();
  expect(await web.deps.metrics.render()).toMatch(
    /ledgerline_admission_refusals_total\{code="overloaded"\} 1\b/,
  );
  // Another refusal of the kind: the same answer (made once), counted again, its own request id.
  const again = await overHttp('POST', '/v1/deposits', {
    body: { account_id: full.id, amount: '2', currency: 'EUR' },
    idem: 'to-full-again',
  });
  expect(again.json).toEqual(refused.json);
  expect(again.headers.get('x-request-id')).not.toBe(refused.headers.get('x-request-id'));
  expect(await web.deps.metrics.render()).toMatch(
    /ledgerline_admission_refusals_total\{code="overloaded"\} 2\b/,
  );
  const taken = await call('POST', '/v1/deposits', {
    body: { account_id: other.id, amount: '1', currency: 'EUR' },
    idem: 'to-other',
  });
  expect(taken.status).toBe(202);
  expect(await transferRows()).toBe(11);

  // Once the owner catches up, the partition takes commands again.
  await env.startWorker();
  await env.waitForFinal(
    (await env.pool.query<{ id: string }>('SELECT id FROM transfers')).rows.map((r) => r.id),
  );
  await until(() => web!.deps.admission.admits([fullPartition]));
  expect(web.deps.admission.anyFull).toBe(false);
  const later = await call('POST', '/v1/deposits', {
    body: { account_id: full.id, amount: '1', currency: 'EUR' },
    idem: 'to-full',
  });
  expect(later.status).toBe(202);
  await env.waitForFinal([later.json.id]);
  await expectInvariants(env.pool);
});
