// Proves the dispatch: an intake flush makes one envelope per partition, credit legs move in
// memory between owners of one process, and the owner's memory of its balances is guarded.
import { afterEach, beforeEach, expect, it } from 'vitest';
import { partitionOf } from '../../src/partitions/routing';
import { AssertionError } from '../../src/shared/assert';
import { expectInvariants } from '../support/invariants';
import { createTestEnv, deposit, transfer, type TestEnv } from '../support/test-env';

let env: TestEnv;
beforeEach(async () => {
  env = await createTestEnv({ partitions: 8 });
});
afterEach(async () => {
  await env.cleanup();
});

async function jobCounts(): Promise<number[]> {
  const counts: number[] = [];
  for (let p = 0; p < env.config.partitions; p++) {
    const c = await env.dispatcher
      .queue(p)
      .getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed');
    counts.push(Object.values(c).reduce((s, n) => s + n, 0));
  }
  return counts;
}

/** Every queue empty: completed envelopes are deleted, nothing waits, runs or failed. */
async function queuesEmpty(): Promise<void> {
  const deadline = Date.now() + 5_000;
  let counts = await jobCounts();
  while (counts.some((n) => n > 0) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    counts = await jobCounts();
  }
  expect(counts).toEqual(counts.map(() => 0));
}

it('300 payments recorded together travel as one envelope per partition, not 300 jobs', async () => {
  const payers = await Promise.all(Array.from({ length: 30 }, () => env.account()));
  const merchant = await env.account();
  const submitted = await env.submit(
    Array.from({ length: 300 }, (_, i) => transfer(payers[i % 30]!.id, merchant.id, 1n)),
  );
  expect(submitted).toHaveLength(300);
  const touched = new Set(payers.map((a) => partitionOf(a.id, env.config.partitions)));
  const counts = await jobCounts();
  counts.forEach((n, p) => expect(n).toBe(touched.has(p) ? 1 : 0));

  const job = (await env.dispatcher.queue([...touched][0]!).getWaiting())[0]!;
  expect(job.data.legs.length).toBeGreaterThan(1);
  expect(job.data.legs.every((l) => l.leg === 'debit')).toBe(true);
  // Adding the same envelope again makes no second job: its id is derived from its legs.
  await env.dispatcher.enqueue(job.data.legs.map((l) => ({ ...l, partition: [...touched][0]! })));
  expect((await jobCounts()).reduce((s, n) => s + n, 0)).toBe(touched.size);
});

it('with credits taking the next batch, those bound for a partition of the same process are handed over in memory, not through Redis', async () => {
  const payer = await env.account();
  const payees = await Promise.all(Array.from({ length: 40 }, () => env.account()));
  const p = partitionOf(payer.id, env.config.partitions);
  // The path a credit takes when it cannot join its debit's batch (one process here).
  const worker = await env.startWorker({ tuning: { creditsInSameBatch: false } });
  const [dep] = await env.submit([deposit(payer.id, 10_000n)]);
  await env.waitForFinal([dep!.id]);
  const before = worker.stats().envelopes;

  const submitted = await env.submit(payees.map((b) => transfer(payer.id, b.id, 10n)));
  const final = await env.waitForFinal(submitted.map((t) => t.id));
  expect(final.every((t) => t.status === 'completed')).toBe(true);

  const crossPartition = payees.filter(
    (b) => partitionOf(b.id, env.config.partitions) !== p,
  ).length;
  expect(crossPartition).toBeGreaterThan(0);
  expect(worker.stats().handedOff).toBe(crossPartition);
  // Only the intake's one envelope went through Redis; no credit envelope did.
  expect(worker.stats().envelopes - before).toBe(1);
  await queuesEmpty();
  await expectInvariants(env.pool, { submittedIds: submitted.map((t) => t.id) });
});

it('one worker applies the legs waiting at all its partitions in one transaction, credits with their debits, each partition under its own fence', async () => {
  const payer = await env.account();
  const payees = await Promise.all(Array.from({ length: 64 }, () => env.account()));
  const p = partitionOf(payer.id, env.config.partitions);
  const worker = await env.startWorker();
  const [dep] = await env.submit([deposit(payer.id, 100_000n)]);
  await env.waitForFinal([dep!.id]);
  const before = worker.stats().envelopes;

  const submitted = await env.submit(payees.map((b) => transfer(payer.id, b.id, 10n)));
  const ids = submitted.map((t) => t.id);
  const final = await env.waitForFinal(ids);
  expect(final.every((t) => t.status === 'completed')).toBe(true);

  const crossPartition = payees.filter((b) => partitionOf(b.id, env.config.partitions) !== p);
  const credited = new Set(crossPartition.map((b) => partitionOf(b.id, env.config.partitions)));
  expect(credited.size).toBeGreaterThan(1);
  // A transaction's rows share its now(): each credit was applied in its debit's transaction,
  // and the credits of many partitions in one transaction, not one per partition.
  const twoHop = await env.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM applied_legs a JOIN applied_legs d
         ON d.transfer_id = a.transfer_id AND d.leg = 'debit' AND a.leg = 'credit'
      WHERE a.transfer_id = ANY($1::uuid[]) AND a.applied_at <> d.applied_at`,
    [ids],
  );
  expect(twoHop.rows[0]!.n).toBe(0);
  const perBatch = await env.pool.query<{ partitions: number }>(
    `SELECT count(DISTINCT partition)::int AS partitions FROM applied_legs
      WHERE transfer_id = ANY($1::uuid[]) AND leg = 'credit' GROUP BY applied_at`,
    [ids],
  );
  expect(Math.max(...perBatch.rows.map((r) => r.partitions))).toBe(credited.size);
  // One status write per transfer: debited and finished in the same transaction.
  const rows = await env.pool.query<{ same: boolean }>(
    `SELECT debited_at = finished_at AS same FROM transfers
      WHERE id = ANY($1::uuid[]) AND dst_partition <> src_partition`,
    [ids],
  );
  expect(rows.rows).toHaveLength(crossPartition.length);
  expect(rows.rows.every((r) => r.same)).toBe(true);
  expect(worker.stats().chainedCredits).toBe(crossPartition.length);
  expect(worker.stats().fencedBatches).toBe(0);
  // Nothing but the intake's envelope went through Redis.
  expect(worker.stats().envelopes - before).toBe(1);
  await queuesEmpty();
  // Each partition's apply sequence still runs on without gaps or repeats.
  const seqs = await env.pool.query<{ gaps: number }>(
    `SELECT count(*)::int AS gaps FROM (
       SELECT apply_seq - lag(apply_seq) OVER (PARTITION BY partition ORDER BY apply_seq) AS d
         FROM applied_legs) x WHERE d <> 1`,
  );
  expect(seqs.rows[0]!.gaps).toBe(0);
  await expectInvariants(env.pool, { submittedIds: ids });
});

it('a balance written behind the owner’s back stops the owner before it writes over it', async () => {
  const a = await env.account();
  await env.startWorker();
  const [first] = await env.submit([deposit(a.id, 100n)]);
  await env.waitForFinal([first!.id]);

  // Nobody but the partition's owner may write this row; the owner remembers version 1.
  await env.pool.query(
    `UPDATE accounts SET balance = balance + 5, version = version + 1 WHERE id = $1`,
    [a.id],
  );
  const [second] = await env.submit([deposit(a.id, 7n)]);
  for (let i = 0; i < 100 && env.fatal.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(env.fatal[0]).toBeInstanceOf(AssertionError);
  expect(env.fatal[0]!.message).toMatch(/changed under its single writer/);
  // The batch rolled back: the second deposit posted nothing and is still waiting.
  const row = await env.pool.query(`SELECT status FROM transfers WHERE id = $1`, [second!.id]);
  expect(row.rows[0].status).toBe('accepted');
  const entries = await env.pool.query(`SELECT 1 FROM ledger_entries WHERE transfer_id = $1`, [
    second!.id,
  ]);
  expect(entries.rows).toEqual([]);
  env.fatal.length = 0;
});
