// Proves that redelivery, lost Redis data, a forced lease steal and a dead worker never lose or
// duplicate money: every accepted command reaches exactly one final status.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { applyBatch, applyBatches, emptyMemory } from '../../src/ledger/apply';
import { ensurePartitionRows, steal } from '../../src/partitions/leases';
import { partitionOf } from '../../src/partitions/routing';
import { ENVELOPE_JOB_NAME, queueName } from '../../src/queue/queues';
import { log } from '../../src/shared/log';
import { until } from '../support/servers';
import { expectInvariants, drained } from '../support/invariants';
import {
  FAST_TUNING,
  createTestEnv,
  deleteKeys,
  deposit,
  transfer,
  type TestEnv,
} from '../support/test-env';

let env: TestEnv;
beforeEach(async () => {
  env = await createTestEnv({ partitions: 4 });
});
afterEach(async () => {
  vi.restoreAllMocks();
  const fatal = [...env.fatal];
  await env.cleanup();
  expect(fatal).toEqual([]);
});

async function accountsOnDistinctPartitions() {
  for (;;) {
    const [a, b] = await Promise.all([env.account(), env.account()]);
    const n = env.config.partitions;
    if (partitionOf(a.id, n) !== partitionOf(b.id, n)) return [a, b] as const;
  }
}

async function accountOn(partition: number) {
  for (;;) {
    const a = await env.account();
    if (partitionOf(a.id, env.config.partitions) === partition) return a;
  }
}

async function entriesOf(transferId: string) {
  const res = await env.pool.query(
    'SELECT account_id, leg, amount FROM ledger_entries WHERE transfer_id = $1 ORDER BY account_id, partition, account_version',
    [transferId],
  );
  return res.rows;
}

async function queueIdle(partitions: number) {
  for (let i = 0; i < 400; i++) {
    let busy = 0;
    for (let p = 0; p < partitions; p++) {
      const c = await env.dispatcher.queue(p).getJobCounts('waiting', 'active', 'delayed');
      busy += (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0);
    }
    if (busy === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('queues never went idle');
}

describe('redelivery', () => {
  it('the same debit and credit legs delivered again are applied once', async () => {
    const worker = await env.startWorker();
    const [alice, bob] = await accountsOnDistinctPartitions();
    const [dep] = await env.submit([deposit(alice.id, 1_000n)]);
    const [t] = await env.submit([transfer(alice.id, bob.id, 300n)]);
    await env.waitForFinal([dep!.id, t!.id]);
    const before = await entriesOf(t!.id);
    expect(before).toHaveLength(4);

    // BullMQ redelivers with the same payload; fresh job ids get past its own de-duplication.
    const n = env.config.partitions;
    for (const leg of ['debit', 'credit'] as const) {
      const partition = leg === 'debit' ? partitionOf(alice.id, n) : partitionOf(bob.id, n);
      for (const copy of [1, 2]) {
        await env.dispatcher
          .queue(partition)
          .add(
            ENVELOPE_JOB_NAME,
            { legs: [{ transferId: t!.id, leg }] },
            { jobId: `redelivered-${copy}-${leg}-${t!.id}` },
          );
      }
    }
    await queueIdle(n);

    expect(await entriesOf(t!.id)).toEqual(before);
    expect(worker.stats().duplicates).toBeGreaterThanOrEqual(4);
    const balances = await env.pool.query<{ id: string; balance: string }>(
      'SELECT id, balance FROM accounts WHERE id = ANY($1::uuid[]) ORDER BY balance',
      [[alice.id, bob.id]],
    );
    expect(balances.rows.map((r) => r.balance)).toEqual(['300', '700']);
    await expectInvariants(env.pool);
  });

  it('two copies of one leg in the same batch post once', async () => {
    const [alice, bob] = await accountsOnDistinctPartitions();
    const [dep] = await env.submit([deposit(alice.id, 500n)]);
    const [t] = await env.submit([transfer(alice.id, bob.id, 500n)]);
    const p = partitionOf(alice.id, env.config.partitions);
    await env.dispatcher
      .queue(p)
      .add(
        ENVELOPE_JOB_NAME,
        { legs: [{ transferId: t!.id, leg: 'debit' }] },
        { jobId: `copy-${t!.id}` },
      );

    await env.startWorker();
    const [, done] = await env.waitForFinal([dep!.id, t!.id]);
    expect(done!.status).toBe('completed');
    expect(await entriesOf(t!.id)).toHaveLength(4);
    await expectInvariants(env.pool);
  });
});

describe('the outbox sweep', () => {
  it('deleting every queue key after the submissions returned loses nothing: each completes once', async () => {
    const [alice, bob] = await accountsOnDistinctPartitions();
    const submitted = await env.submit([
      deposit(alice.id, 100_000n),
      ...Array.from({ length: 150 }, () => transfer(alice.id, bob.id, 100n)),
    ]);
    // Redis forgets everything it was told; PostgreSQL still has every row.
    expect(await deleteKeys(env.redis, `${env.config.queuePrefix}:*`)).toBeGreaterThan(0);

    const worker = await env.startWorker();
    const ids = submitted.map((t) => t.id);
    const final = await env.waitForFinal(ids);
    expect(worker.stats().swept).toBeGreaterThanOrEqual(ids.length);
    // The deposit may be swept after some transfers, so some may fail for funds, but none twice.
    expect(
      final.every((t) => t.status === 'completed' || t.failureCode === 'insufficient_funds'),
    ).toBe(true);
    await expectInvariants(env.pool, { submittedIds: ids });
  });

  it('envelopes Redis loses while their batch applies: the legs apply once, and finishing the lost jobs is a warning, not an error', async () => {
    const [alice, bob] = await accountsOnDistinctPartitions();
    const errors = vi.spyOn(log, 'error');
    const warnings = vi.spyOn(log, 'warn');
    let wiped = 0;
    const worker = await env.startWorker({
      hooks: {
        // The first batch's envelopes are in hand (their jobs active in Redis) when Redis
        // forgets everything, so BullMQ cannot finish them afterwards.
        beforeBatch: async () => {
          if (wiped === 0) wiped = await deleteKeys(env.redis, `${env.config.queuePrefix}:*`);
        },
      },
    });
    const submitted = await env.submit([
      deposit(alice.id, 100_000n),
      ...Array.from({ length: 100 }, () => transfer(alice.id, bob.id, 100n)),
    ]);
    const ids = submitted.map((t) => t.id);
    const final = await env.waitForFinal(ids);
    expect(wiped).toBeGreaterThan(0);
    expect(final.every((t) => t.status === 'completed')).toBe(true);
    await expectInvariants(env.pool, { submittedIds: ids });
    const lost = warnings.mock.calls.filter(([, msg]) => String(msg).startsWith('envelope job no'));
    expect(lost.length).toBeGreaterThan(0);
    expect(lost.map(([fields]) => (fields as { code: number }).code)).toContain(-1);
    expect(errors.mock.calls.filter(([, msg]) => msg === 'queue worker error')).toEqual([]);
    expect(worker.stats().legsApplied).toBe(1 + 2 * 100);
  });

  it('a credit leg lost after its debit committed is re-driven from the debited row', async () => {
    const [alice, bob] = await accountsOnDistinctPartitions();
    const n = env.config.partitions;
    const [dep] = await env.submit([deposit(alice.id, 1_000n)]);
    const [t] = await env.submit([transfer(alice.id, bob.id, 400n)]);
    await deleteKeys(env.redis, `${env.config.queuePrefix}:*`);

    // Apply the debit legs by hand, as an owner that crashed before forwarding the credit leg.
    const p = partitionOf(alice.id, n);
    await ensurePartitionRows(env.pool, n);
    const claim = await steal(env.pool, { owner: 'crashed', partition: p, leaseMs: 1 });
    const client = await env.pool.connect();
    const plan = await applyBatch(
      client,
      { partition: p, epoch: claim.epoch, owner: 'crashed' },
      [
        { transferId: dep!.id, leg: 'debit' },
        { transferId: t!.id, leg: 'debit' },
      ],
      (id) => partitionOf(id, n) === p,
    );
    client.release();
    expect(plan.forward).toEqual([
      { transferId: t!.id, leg: 'credit', partition: partitionOf(bob.id, n) },
    ]);
    const mid = await env.pool.query('SELECT status FROM transfers WHERE id = $1', [t!.id]);
    expect(mid.rows[0].status).toBe('debited');

    await env.startWorker();
    const [done] = await env.waitForFinal([t!.id]);
    expect(done!.status).toBe('completed');
    await expectInvariants(env.pool);
  });

  it('credits chained both ways in one batch (each partition paying the other) complete once each', async () => {
    const [alice, bob] = await accountsOnDistinctPartitions();
    const n = env.config.partitions;
    const deps = await env.submit([deposit(alice.id, 1_000n), deposit(bob.id, 1_000n)]);
    await env.startWorker().then(async (w) => {
      await env.waitForFinal(deps.map((d) => d.id));
      await w.stop();
    });
    const [ab] = await env.submit([transfer(alice.id, bob.id, 300n)]);
    const [ba] = await env.submit([transfer(bob.id, alice.id, 100n)]);
    await deleteKeys(env.redis, `${env.config.queuePrefix}:*`);

    const parts = await Promise.all(
      [
        [alice, ab!],
        [bob, ba!],
      ].map(async ([payer, t]) => {
        const partition = partitionOf(payer!.id, n);
        await ensurePartitionRows(env.pool, n);
        const claim = await steal(env.pool, { owner: 'one', partition, leaseMs: 60_000 });
        return {
          own: { partition, epoch: claim.epoch, owner: 'one' },
          legs: [{ transferId: t!.id, leg: 'debit' as const }],
          isLocal: (id: string) => partitionOf(id, n) === partition,
          memory: emptyMemory(),
        };
      }),
    );
    const client = await env.pool.connect();
    const plans = await applyBatches(client, parts, { chainCredits: true }).finally(() =>
      client.release(),
    );
    expect(plans.flatMap((p) => p.forward)).toEqual([]);
    const rows = await env.pool.query<{ status: string }>(
      'SELECT status FROM transfers WHERE id = ANY($1::uuid[])',
      [[ab!.id, ba!.id]],
    );
    expect(rows.rows.map((r) => r.status)).toEqual(['completed', 'completed']);
    const balances = await env.pool.query<{ id: string; balance: string }>(
      'SELECT id, balance FROM accounts WHERE id = ANY($1::uuid[])',
      [[alice.id, bob.id]],
    );
    const balanceOf = new Map(balances.rows.map((r) => [r.id, r.balance]));
    expect([balanceOf.get(alice.id), balanceOf.get(bob.id)]).toEqual(['800', '1200']);
    await expectInvariants(env.pool);
  });

  it('a credit that joins its debit’s batch and finds the destination closed earlier in that batch is refunded', async () => {
    const [alice, bob] = await accountsOnDistinctPartitions();
    const n = env.config.partitions;
    const [dep] = await env.submit([deposit(alice.id, 1_000n)]);
    await env.startWorker().then(async (w) => {
      await env.waitForFinal([dep!.id]);
      await w.stop();
    });
    const [close] = await env.submit([
      { type: 'close', fromAccountId: bob.id, toAccountId: null, amountMinor: 0n, currency: 'EUR' },
    ]);
    const [t] = await env.submit([transfer(alice.id, bob.id, 400n)]);
    await deleteKeys(env.redis, `${env.config.queuePrefix}:*`);

    // One batch of one process owning both partitions: Bob's close, then Alice's debit, whose
    // credit joins Bob's part behind the close.
    const [pa, pb] = [partitionOf(alice.id, n), partitionOf(bob.id, n)];
    await ensurePartitionRows(env.pool, n);
    const part = async (partition: number, legs: { transferId: string; leg: 'debit' }[]) => {
      const claim = await steal(env.pool, { owner: 'one', partition, leaseMs: 60_000 });
      return {
        own: { partition, epoch: claim.epoch, owner: 'one' },
        legs,
        isLocal: (id: string) => partitionOf(id, n) === partition,
        memory: emptyMemory(),
      };
    };
    const parts = [
      await part(pb, [{ transferId: close!.id, leg: 'debit' }]),
      await part(pa, [{ transferId: t!.id, leg: 'debit' }]),
    ].sort((x, y) => x.own.partition - y.own.partition);
    const client = await env.pool.connect();
    const plans = await applyBatches(client, parts, { chainCredits: true }).finally(() =>
      client.release(),
    );
    const forward = plans.flatMap((p) => p.forward);
    expect(forward).toEqual([{ transferId: t!.id, leg: 'refund', partition: pa }]);
    const mid = await env.pool.query(
      'SELECT status, failure_code, debited_at IS NOT NULL AS debited FROM transfers WHERE id = $1',
      [t!.id],
    );
    expect(mid.rows[0]).toEqual({
      status: 'debited',
      failure_code: 'account_closed',
      debited: true,
    });
    await env.pool.query(`UPDATE partitions SET owner = NULL, lease_expires_at = now()`);

    // The refund leg was never sent: the sweep re-drives it from the row.
    await env.startWorker();
    const [done] = await env.waitForFinal([t!.id]);
    expect(done!.status).toBe('failed');
    expect(done!.failureCode).toBe('account_closed');
    const balance = await env.pool.query('SELECT balance FROM accounts WHERE id = $1', [alice.id]);
    expect(balance.rows[0].balance).toBe('1000');
    await expectInvariants(env.pool);
  });
});

describe('ownership', () => {
  it('a forced lease steal mid-run fences the old owner: its batch rolls back and nothing is applied twice', async () => {
    const target = 1;
    const payer = await accountOn(target);
    const payees = await Promise.all(Array.from({ length: 5 }, () => env.account()));
    const [dep] = await env.submit([deposit(payer.id, 1_000_000n)]);
    await env.startWorker().then(async (w) => {
      await env.waitForFinal([dep!.id]);
      await w.stop();
    });

    let batchesSeen = 0;
    let stolenEpoch: bigint | undefined;
    // eslint-disable-next-line prefer-const
    let b: Awaited<ReturnType<TestEnv['startWorker']>>;
    const a = await env.startWorker({
      workerId: 'owner-a',
      tuning: {
        batchLegsMax: 10,
        envelopesInHandMax: 10,
        sweepAfterMs: 1_000,
        sweepIntervalMs: 250,
      },
      hooks: {
        // Between A's batches on the target partition, B takes it by force.
        beforeBatch: async (partition) => {
          if (partition !== target || stolenEpoch !== undefined || ++batchesSeen < 3) return;
          const claim = await steal(env.pool, { owner: b.id, partition, leaseMs: 2_000 });
          stolenEpoch = claim.epoch;
          b.run(claim);
        },
      },
    });
    b = await env.startWorker({ workerId: 'owner-b' });

    const submitted = await env.submit(
      Array.from({ length: 400 }, (_, i) => transfer(payer.id, payees[i % payees.length]!.id, 7n)),
    );
    const ids = submitted.map((t) => t.id);
    const final = await env.waitForFinal(ids);

    expect(stolenEpoch).toBeDefined();
    expect(a.stats().fencedBatches).toBeGreaterThanOrEqual(1);
    expect(final.every((t) => t.status === 'completed')).toBe(true);
    // Legs on the target partition were applied under both epochs, each leg exactly once.
    const epochs = await env.pool.query<{ epoch: string; n: string }>(
      `SELECT epoch, count(*) AS n FROM applied_legs
        WHERE partition = $1 AND transfer_id = ANY($2::uuid[]) GROUP BY epoch ORDER BY epoch`,
      [target, ids],
    );
    expect(epochs.rows.length).toBeGreaterThanOrEqual(2);
    expect(epochs.rows.some((r) => BigInt(r.epoch) >= stolenEpoch!)).toBe(true);
    expect(epochs.rows.reduce((s, r) => s + Number(r.n), 0)).toBe(400);
    await expectInvariants(env.pool, { submittedIds: ids });
  });

  it('two worker processes share the partitions, and a dead one’s partitions move within the lease time', async () => {
    const a = await env.startWorker({ workerId: 'share-a', leaseMs: 1_000 });
    const b = await env.startWorker({ workerId: 'share-b', leaseMs: 1_000 });
    const n = env.config.partitions;
    for (let i = 0; i < 50 && a.ownedPartitions().length + b.ownedPartitions().length < n; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 600));
    expect(a.ownedPartitions().length).toBe(n / 2);
    expect(b.ownedPartitions().length).toBe(n / 2);

    await a.kill();
    const killedAt = Date.now();
    while (b.ownedPartitions().length < n && Date.now() - killedAt < 10_000) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const movedMs = Date.now() - killedAt;
    expect(b.ownedPartitions().length).toBe(n);
    // The lease (1 s) plus one claim interval (200 ms), with room for a busy 2-core machine.
    expect(movedMs).toBeLessThan(1_000 + 200 + 1_500);

    const accounts = await Promise.all(Array.from({ length: 8 }, () => env.account()));
    const submitted = await env.submit(accounts.map((acc) => deposit(acc.id, 10n)));
    const final = await env.waitForFinal(submitted.map((t) => t.id));
    expect(final.every((t) => t.status === 'completed')).toBe(true);
    await drained(env.pool);
    await expectInvariants(env.pool);
  });
});

it('a graceful stop applies the jobs it has already taken instead of handing them back', async () => {
  const a = await env.account();
  const worker = await env.startWorker({ tuning: { batchLegsMax: 5, envelopesInHandMax: 50 } });
  const submitted = await env.submit(Array.from({ length: 200 }, () => deposit(a.id, 1n)));
  await new Promise((r) => setTimeout(r, 30));
  await worker.stop();
  // Whatever it applied, it applied under its lease: nothing was fenced, no attempt was spent.
  expect(worker.stats().fencedBatches).toBe(0);
  let retried = 0;
  for (let p = 0; p < env.config.partitions; p++) {
    const jobs = await env.dispatcher.queue(p).getJobs(['waiting', 'delayed', 'failed']);
    retried += jobs.filter((j) => j.attemptsMade > 0).length;
  }
  expect(retried).toBe(0);
  await env.startWorker();
  await env.waitForFinal(submitted.map((t) => t.id));
  await expectInvariants(env.pool, { submittedIds: submitted.map((t) => t.id) });
});

it('a partition whose backlog passes its alarm is reported at the next sweep', async () => {
  const a = await env.account();
  await env.submit(Array.from({ length: 30 }, () => deposit(a.id, 1n)));
  const worker = await env.startWorker({
    tuning: { ...FAST_TUNING, backlogAlarmLegs: 10, batchLegsMax: 1, envelopesInHandMax: 1 },
    hooks: { beforeBatch: () => new Promise((r) => setTimeout(r, 100)) },
  });
  for (let i = 0; i < 40 && worker.stats().backlogAlarms === 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(worker.stats().backlogAlarms).toBeGreaterThanOrEqual(1);
});

it('a malformed envelope fails on its own, without retries, and the worker carries on', async () => {
  const a = await env.account();
  const p = partitionOf(a.id, env.config.partitions);
  const queue = env.dispatcher.queue(p);
  const garbage = [{ transferId: a.id, leg: 'debit' }, { legs: 'many' }, { nothing: true }];
  for (const [i, data] of garbage.entries()) {
    await queue.add(ENVELOPE_JOB_NAME, data as never, { jobId: `garbage-${i}`, attempts: 3 });
  }
  const [dep] = await env.submit([deposit(a.id, 5n)]);
  await env.startWorker();
  const [done] = await env.waitForFinal([dep!.id]);
  expect(done!.status).toBe('completed');
  for (let i = 0; i < 100 && (await queue.getFailedCount()) < garbage.length; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const failed = await queue.getFailed();
  expect(failed.map((j) => j.id).sort()).toEqual(['garbage-0', 'garbage-1', 'garbage-2']);
  expect(failed.every((j) => j.attemptsMade <= 1)).toBe(true);
  await expectInvariants(env.pool);
});

it('bad legs in an envelope fail alone: the good legs travelling with them are applied', async () => {
  const a = await env.account();
  const p = partitionOf(a.id, env.config.partitions);
  await env.pool.query(`INSERT INTO partitions (id) SELECT generate_series(0, $1::int - 1)`, [
    env.config.partitions,
  ]);
  // Recorded but never enqueued: only the hand-made envelope below carries their legs.
  const rows = await env.pool.query<{ id: string }>(
    `INSERT INTO transfers (id, type, to_account_id, amount, currency, request_hash,
            idempotency_scope, src_partition, dst_partition)
     SELECT gen_random_uuid(), 'deposit', $1, 10, 'EUR', 'h', 'test', $2, $2
       FROM generate_series(1, 3) RETURNING id`,
    [a.id, p],
  );
  const good = rows.rows.map((r) => r.id);
  await env.dispatcher.queue(p).add(
    ENVELOPE_JOB_NAME,
    {
      legs: [
        { transferId: good[0]!, leg: 'debit' },
        { transferId: 'not-a-uuid', leg: 'debit' },
        { transferId: good[1]!, leg: 'sideways' },
        { transferId: '00000000-0000-4000-8000-000000000000', leg: 'debit' },
        'nothing',
        { transferId: good[1]!, leg: 'debit' },
        { transferId: good[2]!, leg: 'debit' },
      ] as never,
    },
    { jobId: 'mixed' },
  );
  const worker = await env.startWorker();
  const final = await env.waitForFinal(good);
  expect(final.map((t) => t.status)).toEqual(['completed', 'completed', 'completed']);
  // The rows are final at the commit; the worker counts the unknown leg a moment later.
  await until('the rejected legs counted', () => worker.stats().rejectedLegs >= 4, 5_000).catch(
    () => {},
  );
  expect(worker.stats().rejectedLegs).toBe(4);
  // The envelope completed: a completed envelope is deleted, a failed one would be kept.
  const queue = env.dispatcher.queue(p);
  await until(
    'the envelope deleted',
    async () => (await queue.getJob('mixed')) === undefined,
    5_000,
  );
  expect(await queue.getFailedCount()).toBe(0);
  const balance = await env.pool.query('SELECT balance FROM accounts WHERE id = $1', [a.id]);
  expect(balance.rows[0].balance).toBe('30');
  await expectInvariants(env.pool);
});

describe('compensation', () => {
  it('a destination closed between the debit and the credit gets its money refunded to the source', async () => {
    const [alice, bob] = await accountsOnDistinctPartitions();
    const [dep] = await env.submit([deposit(alice.id, 1_000n)]);
    await env.startWorker({
      // The credit takes a batch of its own, as when another process owns Bob's partition.
      tuning: { creditsInSameBatch: false },
      hooks: {
        beforeBatch: async (_p, legs) => {
          if (legs.some((l) => l.leg === 'credit')) {
            await env.pool.query(`UPDATE accounts SET status = 'closed' WHERE id = $1`, [bob.id]);
          }
        },
      },
    });
    await env.waitForFinal([dep!.id]);
    const [t] = await env.submit([transfer(alice.id, bob.id, 600n)]);
    const [done] = await env.waitForFinal([t!.id]);

    expect(done!.status).toBe('failed');
    expect(done!.failureCode).toBe('account_closed');
    const legs = await env.pool.query<{ leg: string; outcome: string }>(
      'SELECT leg, outcome FROM applied_legs WHERE transfer_id = $1 ORDER BY applied_at, leg',
      [t!.id],
    );
    expect(legs.rows.map((r) => `${r.leg}:${r.outcome}`).sort()).toEqual([
      'credit:account_closed',
      'debit:posted',
      'refund:posted',
    ]);
    const alicesBalance = await env.pool.query('SELECT balance FROM accounts WHERE id = $1', [
      alice.id,
    ]);
    expect(alicesBalance.rows[0].balance).toBe('1000');
    await expectInvariants(env.pool);
  });
});

it('queue names carry a Redis Cluster hash tag per partition', () => {
  expect(queueName(7)).toBe('{p7}');
});
