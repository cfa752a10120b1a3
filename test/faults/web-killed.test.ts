// The web process killed with SIGKILL, twice, while clients keep sending and retry with the same
// Idempotency-Key until they get an answer (as the contract tells them to): each key ends with
// exactly one transfer, none is lost, and the money is exact.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { drained, expectBalancesFromTransfers, expectInvariants } from '../support/invariants';
import {
  allOwned,
  fundedAccounts,
  kill,
  load,
  startWebChild,
  startWorkerChild,
} from '../support/fleet';
import type { Child } from '../support/processes';
import { createTestEnv, type TestEnv } from '../support/test-env';

let env: TestEnv;
const children: Child[] = [];

beforeAll(async () => {
  env = await createTestEnv({ partitions: 4 });
});
afterAll(async () => {
  for (const c of children) await kill(c);
  await env?.cleanup();
});

it('retries with the same key after a killed web give one transfer per key, none lost', async () => {
  children.push(startWorkerChild(env.config));
  await allOwned(env.pool, env.config.partitions);
  const accounts = await fundedAccounts(env, 12, 100_000n);
  let web = await startWebChild(env.config);
  children.push(web.child);
  const { port, url } = web;

  const traffic = load({
    url: () => url,
    key: env.config.adminApiKey!,
    accounts,
    clients: 16,
    retry: true,
  });
  for (let round = 0; round < 2; round++) {
    await new Promise((r) => setTimeout(r, 1_500));
    await kill(web.child, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    web = await startWebChild(env.config, port);
    children.push(web.child);
  }
  await new Promise((r) => setTimeout(r, 1_500));
  await traffic.stop();

  // Some requests were cut off by a kill and sent again.
  expect(traffic.sent.some((s) => s.answers.includes('error'))).toBe(true);
  const retried = traffic.sent.filter((s) => s.answers.length > 1 && s.transferId);
  expect(retried.length).toBeGreaterThan(0);
  // Every request that got its final answer has exactly one transfer under its key.
  const answered = traffic.sent.filter((s) => s.transferId);
  expect(answered.length).toBeGreaterThan(traffic.sent.length - 16);
  const byKey = await env.pool.query<{ key: string; id: string; n: string }>(
    `SELECT idempotency_key AS key, min(id::text) AS id, count(*) AS n FROM transfers
      WHERE idempotency_key = ANY($1) GROUP BY 1`,
    [answered.map((s) => s.idem)],
  );
  expect(byKey.rows.length).toBe(answered.length);
  expect(byKey.rows.filter((r) => r.n !== '1')).toEqual([]);
  // The id a retry got is the id the first attempt recorded.
  const idOf = new Map(byKey.rows.map((r) => [r.key, r.id]));
  expect(answered.filter((s) => idOf.get(s.idem) !== s.transferId)).toEqual([]);

  const ids = answered.map((s) => s.transferId!);
  await env.waitForFinal(ids, 90_000);
  await drained(env.pool);
  await expectInvariants(env.pool, { submittedIds: ids });
  await expectBalancesFromTransfers(env.pool);
});
