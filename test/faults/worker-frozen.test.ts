// A worker frozen with SIGSTOP past its lease, under load, and thawed: another worker takes its
// partitions over, and the batch the frozen one had in hand is fenced out when it wakes (it
// writes nothing). Every transfer completes exactly once and the money is exact.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { partitionOf } from '../../src/partitions/routing';
import { drained, expectBalancesFromTransfers, expectInvariants } from '../support/invariants';
import { FAULT_TIMING, allOwned, kill, startWorkerChild } from '../support/fleet';
import type { Child } from '../support/processes';
import { freePort, until } from '../support/servers';
import { createTestEnv, deposit, transfer, type TestEnv } from '../support/test-env';

let env: TestEnv;
const children: Child[] = [];

beforeAll(async () => {
  env = await createTestEnv({ partitions: 4 });
});
afterAll(async () => {
  for (const c of children) {
    c.proc.kill('SIGCONT');
    await kill(c);
  }
  await env?.cleanup();
});

async function owners(): Promise<Map<number, string>> {
  const r = await env.pool.query<{ id: number; owner: string }>(
    `SELECT id, owner FROM partitions WHERE lease_expires_at > now() ORDER BY id`,
  );
  return new Map(r.rows.map((row) => [row.id, row.owner]));
}

it('the frozen worker is fenced out when it thaws; nothing is applied twice or lost', async () => {
  const metricsPort = await freePort();
  const a = startWorkerChild(env.config, { METRICS_PORT: String(metricsPort) });
  children.push(a);
  await allOwned(env.pool, env.config.partitions);
  const b = startWorkerChild(env.config);
  children.push(b);
  // Fair share: each process ends up with two of the four partitions.
  await until('a fair share', async () => new Set((await owners()).values()).size === 2);
  const aId = [...(await owners()).entries()].find(([p]) => p === 0)![1];
  const aPartitions = [...(await owners()).entries()].filter(([, o]) => o === aId).map(([p]) => p);

  const accounts: string[] = [];
  for (let i = 0; i < 16; i++) accounts.push((await env.account()).id);
  const seeded = await env.submit(accounts.map((id) => deposit(id, 1_000_000n)));
  await env.waitForFinal(seeded.map((t) => t.id));
  // A steady load on every partition, the frozen worker's included.
  const submitted: string[] = [];
  let stopping = false;
  const loadDone = (async () => {
    while (!stopping) {
      const batch = Array.from({ length: 50 }, () => {
        const from = accounts[Math.floor(Math.random() * accounts.length)]!;
        const to =
          accounts.find((x) => x !== from && Math.random() < 0.3) ??
          accounts.find((x) => x !== from)!;
        return transfer(from, to, BigInt(1 + Math.floor(Math.random() * 100)));
      });
      submitted.push(...(await env.submit(batch)).map((t) => t.id));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  expect(accounts.some((id) => aPartitions.includes(partitionOf(id, 4)))).toBe(true);

  // Frozen inside a transaction, so a batch is surely in hand: PostgreSQL ends that
  // transaction after IDLE_IN_TRANSACTION_MS, the other worker takes over, and the thawed one's
  // retry meets the fence. A freeze that misses the window is tried again.
  let fenced = false;
  for (let round = 0; round < 5 && !fenced; round++) {
    await new Promise((r) => setTimeout(r, 300));
    await until('a transaction of the worker to freeze in', async () => {
      const r = await env.pool.query(
        `SELECT 1 FROM pg_stat_activity
          WHERE application_name = $1 AND xact_start IS NOT NULL`,
        [`ledgerline worker ${a.proc.pid}`],
      );
      if (r.rows.length === 0) return false;
      a.proc.kill('SIGSTOP');
      return true;
    });
    // Past its lease (and PostgreSQL's bound on an idle transaction), the other takes over.
    await until(
      'the other worker to own every partition',
      async () => {
        const now = await owners();
        return now.size === 4 && [...now.values()].every((o) => o !== aId);
      },
      Number(FAULT_TIMING.LEASE_MS) * 5,
    );
    a.proc.kill('SIGCONT');
    await until(
      'the thawed worker to be fenced',
      () => /batch fenced out/.test(a.output()),
      5_000,
    ).catch(() => {});
    fenced = /batch fenced out/.test(a.output());
  }
  stopping = true;
  await loadDone;

  expect(fenced, a.output().slice(-2_000)).toBe(true);
  // Its metrics count the fenced batch too.
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  expect(
    Number(/^ledgerline_worker_fenced_batches_total (\d+)/m.exec(metrics)?.[1]),
  ).toBeGreaterThan(0);
  // The thawed worker is alive and takes its share again.
  expect(a.proc.exitCode).toBeNull();
  await env.waitForFinal(submitted, 90_000);
  await drained(env.pool);
  await expectInvariants(env.pool, { submittedIds: submitted });
  await expectBalancesFromTransfers(env.pool);
});
