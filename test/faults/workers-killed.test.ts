// Worker processes killed with SIGKILL every two seconds, one after another, while 20,000
// transfers are submitted and applied: a replacement starts each time, the leases move, and
// every transfer completes exactly once with the money exact.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { drained, expectBalancesFromTransfers, expectInvariants } from '../support/invariants';
import { fundedAccounts, kill, startWorkerChild } from '../support/fleet';
import type { Child } from '../support/processes';
import { createTestEnv, transfer, type TestEnv } from '../support/test-env';
import { isFinal } from '../../src/domain/transfer';

const TRANSFERS = 20_000;
const KILL_EVERY_MS = 2_000;
const WORKERS = 3;

let env: TestEnv;
const children: Child[] = [];

beforeAll(async () => {
  env = await createTestEnv({ partitions: 8 });
});
afterAll(async () => {
  for (const c of children) await kill(c);
  await env?.cleanup();
});

async function openCount(): Promise<number> {
  const r = await env.pool.query<{ n: string }>(
    `SELECT count(*) AS n FROM transfers WHERE status IN ('accepted', 'debited')`,
  );
  return Number(r.rows[0]!.n);
}

it(`${TRANSFERS} transfers complete exactly once while a worker is killed every 2 s`, async () => {
  const live: Child[] = [];
  const spawn = () => {
    const c = startWorkerChild(env.config);
    children.push(c);
    live.push(c);
  };
  for (let i = 0; i < WORKERS; i++) spawn();
  const accounts = await fundedAccounts(env, 40, 1_000_000n);

  let kills = 0;
  let submitting = true;
  const killer = (async () => {
    for (;;) {
      await new Promise((r) => setTimeout(r, KILL_EVERY_MS));
      if (!submitting && (await openCount()) === 0) return;
      if (kills >= 60) return; // bounded: two minutes of kills at most
      await kill(live.shift()!, 'SIGKILL');
      kills += 1;
      spawn();
    }
  })();

  const ids: string[] = [];
  for (let sent = 0; sent < TRANSFERS; sent += 500) {
    const batch = Array.from({ length: 500 }, () => {
      const from = accounts[Math.floor(Math.random() * accounts.length)]!;
      let to = from;
      while (to === from) to = accounts[Math.floor(Math.random() * accounts.length)]!;
      return transfer(from, to, BigInt(1 + Math.floor(Math.random() * 100)));
    });
    ids.push(...(await env.submit(batch)).map((t) => t.id));
    await new Promise((r) => setTimeout(r, 100));
  }
  submitting = false;
  await killer;

  expect(kills).toBeGreaterThanOrEqual(3);
  const final = await env.waitForFinal(ids, 120_000);
  expect(final.every((t) => isFinal(t.status))).toBe(true);
  expect(final.filter((t) => t.status === 'completed').length).toBeGreaterThan(TRANSFERS * 0.99);
  await drained(env.pool);
  await expectInvariants(env.pool, { submittedIds: ids });
  await expectBalancesFromTransfers(env.pool);
}, 300_000);
