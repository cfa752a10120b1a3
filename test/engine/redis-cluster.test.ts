// Proves the engine on a three-node Redis Cluster of the test's own: the queue names' hash tags
// keep each partition's keys in one slot, so the web's intake, the owners and the sweep work
// across nodes. The classic races and a Redis that loses every key end with the invariants.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { WebProcess } from '../../src/app/web-process';
import { checkRedis } from '../../src/cli/preflight';
import { drained, expectBalancesFromTransfers, expectInvariants } from '../support/invariants';
import { OwnRedisCluster } from '../support/servers';
import { createTestEnv, deleteKeys, deposit, transfer, type TestEnv } from '../support/test-env';
import { caller, createTestWeb } from '../support/web';

let cluster: OwnRedisCluster;
let env: TestEnv;
let web: WebProcess;

beforeAll(async () => {
  cluster = await OwnRedisCluster.start();
  env = await createTestEnv({ partitions: 8, redisUrl: cluster.url });
  web = await createTestWeb(env);
  await env.startWorker();
}, 60_000);
afterAll(async () => {
  await web?.stop();
  await env?.cleanup();
  await cluster?.stop();
});

it('the partitions spread over the nodes, and the start-up check reads a cluster', async () => {
  const slots = new Set<number>();
  for (let p = 0; p < 8; p++) {
    slots.add(
      Number(await env.redis.call('CLUSTER', 'KEYSLOT', `${env.config.queuePrefix}:{p${p}}:id`)),
    );
  }
  expect(slots.size).toBe(8);
  expect(await checkRedis(cluster.url)).toEqual([expect.stringContaining('without AOF')]);
});

it('1,000 withdrawals of 1.00 from 500.00 over the web: exactly 500 complete', async () => {
  const call = caller(web, env.config.adminApiKey!);
  const a = await env.account();
  const dep = await call('POST', '/v1/deposits', {
    idem: 'fund',
    body: { account_id: a.id, amount: '50000', currency: 'EUR' },
  });
  expect(dep.status).toBe(202);
  await env.waitForFinal([dep.json.id]);
  const answers = await Promise.all(
    Array.from({ length: 1_000 }, (_, i) =>
      call('POST', '/v1/withdrawals', {
        idem: `w${i}`,
        body: { account_id: a.id, amount: '100', currency: 'EUR' },
      }),
    ),
  );
  expect(answers.every((r) => r.status === 202)).toBe(true);
  const final = await env.waitForFinal(answers.map((r) => r.json.id));
  expect(final.filter((t) => t.status === 'completed')).toHaveLength(500);
  expect(final.filter((t) => t.failureCode === 'insufficient_funds')).toHaveLength(500);
  const b = await env.pool.query('SELECT balance FROM accounts WHERE id = $1', [a.id]);
  expect(b.rows[0].balance).toBe('0');
  await drained(env.pool);
  await expectInvariants(env.pool);
});

it('300 payers to one merchant across partitions, then every queue key lost: all complete once', async () => {
  const merchant = await env.account();
  const payers = [];
  for (let i = 0; i < 300; i++) payers.push(await env.account());
  await env.waitForFinal(
    (await env.submit(payers.map((p) => deposit(p.id, 1_000n)))).map((t) => t.id),
  );
  const paid = await env.submit(payers.map((p) => transfer(p.id, merchant.id, 700n)));
  await env.waitForFinal(paid.map((t) => t.id));

  // Every key of the queues deleted right after the next submissions: the sweep re-drives them.
  const again = await env.submit(payers.map((p) => transfer(p.id, merchant.id, 300n)));
  expect(await deleteKeys(env.redis, `${env.config.queuePrefix}:*`)).toBeGreaterThan(0);
  const final = await env.waitForFinal(
    again.map((t) => t.id),
    90_000,
  );
  expect(final.every((t) => t.status === 'completed')).toBe(true);
  const m = await env.pool.query('SELECT balance FROM accounts WHERE id = $1', [merchant.id]);
  expect(m.rows[0].balance).toBe(String(300 * 1_000));
  await drained(env.pool);
  await expectInvariants(env.pool, { submittedIds: [...paid, ...again].map((t) => t.id) });
  await expectBalancesFromTransfers(env.pool);
});
