// Redis killed under load and started again empty: while it is down the intake answers 503 at
// once and records nothing new; every 202 it gave completes exactly once (the sweep re-drives
// from PostgreSQL what Redis lost), and the money is exact.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { drained, expectBalancesFromTransfers, expectInvariants } from '../support/invariants';
import { load, stage, type Stage } from '../support/fleet';
import { OwnRedis } from '../support/servers';
import { createTestEnv, type TestEnv } from '../support/test-env';

let redis: OwnRedis;
let env: TestEnv;
let service: Stage;

beforeAll(async () => {
  redis = await OwnRedis.start();
  env = await createTestEnv({ partitions: 4, redisUrl: redis.url });
  service = await stage(env);
});
afterAll(async () => {
  await service?.close();
  await env?.cleanup().catch(() => {});
  await redis?.stop();
});

it('every 202 completes exactly once; while Redis is down the intake answers 503 and records nothing', async () => {
  const traffic = load({
    url: () => service.url,
    key: env.config.adminApiKey!,
    accounts: service.accounts,
    clients: 16,
  });
  await new Promise((r) => setTimeout(r, 1_500));
  await redis.kill();
  const killedAt = traffic.sent.length;
  await new Promise((r) => setTimeout(r, 2_000));
  const before = await env.pool.query<{ n: string }>('SELECT count(*) AS n FROM transfers');
  await new Promise((r) => setTimeout(r, 1_000));
  const after = await env.pool.query<{ n: string }>('SELECT count(*) AS n FROM transfers');
  // Down for a while: nothing new is recorded (the intake checks Redis first).
  expect(after.rows[0]!.n).toBe(before.rows[0]!.n);
  await redis.startAgain();
  await new Promise((r) => setTimeout(r, 2_000));
  await traffic.stop();

  const answers = traffic.sent.map((s) => s.answers.at(-1));
  const accepted = traffic.sent.filter((s) => s.answers.at(-1) === 202);
  const refused = traffic.sent.filter((s) => s.answers.at(-1) === 503);
  expect(
    answers.every((a) => a === 202 || a === 503),
    JSON.stringify(answers),
  ).toBe(true);
  expect(refused.length).toBeGreaterThan(0);
  expect(accepted.filter((_, i) => i < killedAt).length).toBeGreaterThan(0);
  // Accepted after Redis came back, too.
  expect(traffic.sent.slice(-20).some((s) => s.answers.at(-1) === 202)).toBe(true);

  // Every 202 is a committed row, and reaches exactly one final status.
  const ids = accepted.map((s) => s.transferId!);
  const final = await env.waitForFinal(ids, 90_000);
  expect(
    final.every((t) => t.status === 'completed' || t.failureCode === 'insufficient_funds'),
  ).toBe(true);
  // What was refused was never recorded.
  const refusedKeys = refused.map((s) => s.idem);
  const recorded = await env.pool.query(
    'SELECT idempotency_key FROM transfers WHERE idempotency_key = ANY($1)',
    [refusedKeys],
  );
  expect(recorded.rows).toEqual([]);

  await drained(env.pool);
  await expectInvariants(env.pool, { submittedIds: ids });
  await expectBalancesFromTransfers(env.pool);
});
