// PostgreSQL crashed and started again under load, on a cluster this test owns. Its WAL writer
// is frozen first, so that only what each commit flushed itself is on disk when it dies (as when
// a machine loses power before the background writer ran). With synchronous_commit = on, no
// acknowledged request is lost: every 202 is there after recovery and completes exactly once.
// The control run with synchronous_commit = off shows what that setting costs: 202s whose rows
// recovery never sees.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, expect, it } from 'vitest';
import { createWebProcess, type WebProcess } from '../../src/app/web-process';
import type { Config } from '../../src/config/env';
import { AMOUNT_MINOR_MAX_DEFAULT } from '../../src/config/limits';
import { createPool } from '../../src/db/db';
import { ensureDatabase, runMigrations } from '../../src/db/migrate';
import { createAccount } from '../../src/accounts/accounts.repository';
import { drained, expectBalancesFromTransfers, expectInvariants } from '../support/invariants';
import { allOwned, kill, load, startWorkerChild, type Sent } from '../support/fleet';
import { OwnPostgres, until } from '../support/servers';
import { deleteKeys } from '../support/test-env';

const ADMIN = 'test-admin-key-0123456789';
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

type Outcome = { sent: Sent[]; missing: string[]; pool: ReturnType<typeof createPool> };

/** Runs load against a fresh cluster with `synchronousCommit`, crashes it, starts it again. */
async function crashUnderLoad(synchronousCommit: 'on' | 'off'): Promise<Outcome> {
  const cluster = await OwnPostgres.start({ synchronous_commit: synchronousCommit });
  cleanups.push(() => cluster.remove());
  const config: Config = {
    databaseUrl: cluster.url('ledgerline'),
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    port: 0,
    host: '127.0.0.1',
    adminApiKey: ADMIN,
    partitions: 4,
    queuePrefix: `lltest_pg_${randomBytes(4).toString('hex')}`,
    amountMinorMax: AMOUNT_MINOR_MAX_DEFAULT,
    rateLimit: { perSecond: 100_000, burst: 100_000 },
  };
  const redis = new Redis(config.redisUrl);
  cleanups.push(async () => {
    await deleteKeys(redis, `${config.queuePrefix}:*`);
    redis.disconnect();
  });
  await ensureDatabase(config.databaseUrl);
  await runMigrations(config.databaseUrl);
  const pool = createPool(config.databaseUrl);
  pool.on('error', () => {});
  cleanups.push(() => pool.end());
  const worker = startWorkerChild(config);
  cleanups.push(() => kill(worker));
  const web: WebProcess = await createWebProcess(config);
  cleanups.push(() => web.stop());
  await allOwned(pool, config.partitions);
  const port = await web.listen(0);
  const url = `http://127.0.0.1:${port}`;

  // Accounts funded over HTTP, so the deposits are part of what must survive.
  const accounts: string[] = [];
  for (let i = 0; i < 8; i++) {
    accounts.push(
      (
        await createAccount(pool, {
          holder: `h${i}`,
          currency: 'EUR',
          overdraftLimit: 0n,
          partitions: config.partitions,
        })
      ).id,
    );
  }
  for (const id of accounts) {
    const res = await fetch(`${url}/v1/deposits`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${ADMIN}`,
        'content-type': 'application/json',
        'idempotency-key': `d-${id}`,
      },
      body: JSON.stringify({ account_id: id, amount: '100000', currency: 'EUR' }),
    });
    expect(res.status).toBe(202);
  }

  const traffic = load({ url: () => url, key: ADMIN, accounts, clients: 12, retry: true });
  await new Promise((r) => setTimeout(r, 1_500));
  process.kill(await cluster.backendPid('walwriter'), 'SIGSTOP');
  await new Promise((r) => setTimeout(r, 700));
  await cluster.crash();
  await new Promise((r) => setTimeout(r, 1_000));
  await cluster.startAgain();
  await new Promise((r) => setTimeout(r, 2_500));
  await traffic.stop();

  // Acknowledged before, during or after the crash: which 202s does the database know?
  const acknowledged = traffic.sent
    .filter((s) => s.answers.includes(202))
    .map((s) => s.transferId!);
  const found = await pool.query<{ id: string }>('SELECT id FROM transfers WHERE id = ANY($1)', [
    acknowledged,
  ]);
  const present = new Set(found.rows.map((r) => r.id));
  const missing = acknowledged.filter((id) => !present.has(id));
  if (synchronousCommit === 'on') {
    // Every process is still there, reconnected.
    expect(worker.proc.exitCode, worker.output().slice(-2_000)).toBeNull();
    await until('the worker to own every partition again', async () => {
      await allOwned(pool, config.partitions);
      return true;
    });
  }
  return { sent: traffic.sent, missing, pool };
}

it('synchronous_commit = on: no acknowledged request is lost, each completes exactly once', async () => {
  const { sent, missing, pool } = await crashUnderLoad('on');
  const accepted = sent.filter((s) => s.answers.includes(202));
  expect(accepted.length).toBeGreaterThan(50);
  // The crash was felt: some requests had to be sent again.
  expect(sent.some((s) => s.answers.length > 1)).toBe(true);
  expect(missing).toEqual([]);
  // Each key made one transfer, whatever the retries.
  const keys = sent.filter((s) => s.transferId).map((s) => s.idem);
  const dup = await pool.query(
    `SELECT idempotency_key FROM transfers WHERE idempotency_key = ANY($1)
      GROUP BY 1 HAVING count(*) > 1`,
    [keys],
  );
  expect(dup.rows).toEqual([]);
  const ids = sent.filter((s) => s.transferId).map((s) => s.transferId!);
  await drained(pool, 90_000);
  await expectInvariants(pool, { submittedIds: ids });
  await expectBalancesFromTransfers(pool);
});

it('control, synchronous_commit = off: acknowledged requests vanish in the same crash', async () => {
  const { sent, missing } = await crashUnderLoad('off');
  expect(sent.filter((s) => s.answers.includes(202)).length).toBeGreaterThan(50);
  // What "off" would lose: 202s answered, rows never recovered.
  expect(missing.length).toBeGreaterThan(0);
  console.info(`synchronous_commit = off lost ${missing.length} acknowledged transfers`);
});
