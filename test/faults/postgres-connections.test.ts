// Every PostgreSQL connection of the service terminated, several times, while batches are being
// applied and requests recorded: no process dies, clients that retry with the same
// Idempotency-Key get exactly one transfer each, and the money is exact.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { drained, expectBalancesFromTransfers, expectInvariants } from '../support/invariants';
import { load, stage, type Stage } from '../support/fleet';
import { createTestEnv, type TestEnv } from '../support/test-env';

let env: TestEnv;
let service: Stage;

beforeAll(async () => {
  env = await createTestEnv({ partitions: 4 });
  service = await stage(env);
});
afterAll(async () => {
  await service?.close();
  await env?.cleanup();
});

it('connections terminated mid-batch: nothing lost, nothing twice, every process lives on', async () => {
  const { worker } = service;
  const traffic = load({
    url: () => service.url,
    key: env.config.adminApiKey!,
    accounts: service.accounts,
    clients: 16,
    retry: true,
  });

  let terminated = 0;
  for (let round = 0; round < 5; round++) {
    await new Promise((r) => setTimeout(r, 700));
    // The service's connections (web and worker), not the test's own.
    const r = await env.pool.query<{ ok: boolean }>(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
        WHERE datname = current_database() AND application_name LIKE 'ledgerline %'
          AND application_name <> $1`,
      [`ledgerline ${process.pid}`],
    );
    terminated += r.rows.filter((row) => row.ok).length;
  }
  await new Promise((r) => setTimeout(r, 700));
  await traffic.stop();

  expect(terminated).toBeGreaterThan(5);
  // The worker process survived every round.
  expect(worker.proc.exitCode, worker.output().slice(-2_000)).toBeNull();
  // Every request got its final answer, and each key made exactly one transfer.
  const unanswered = traffic.sent.filter((s) => ![200, 202].includes(s.answers.at(-1) as number));
  expect(unanswered.length).toBeLessThanOrEqual(16); // at most the ones cut off by stop()
  const answered = traffic.sent.filter((s) => s.transferId);
  const byKey = await env.pool.query<{ key: string; n: string }>(
    `SELECT idempotency_key AS key, count(*) AS n FROM transfers
      WHERE idempotency_key = ANY($1) GROUP BY 1`,
    [answered.map((s) => s.idem)],
  );
  expect(byKey.rows.length).toBe(answered.length);
  expect(byKey.rows.every((row) => row.n === '1')).toBe(true);
  // The worker felt it (its connections were cut; whether a client's request happened to be on
  // a cut connection is chance) and lived on.
  expect(worker.output()).toMatch(/connection lost/);

  const ids = answered.map((s) => s.transferId!);
  await env.waitForFinal(ids, 90_000);
  await drained(env.pool);
  await expectInvariants(env.pool, { submittedIds: ids });
  await expectBalancesFromTransfers(env.pool);
});
