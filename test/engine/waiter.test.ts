// Proves the long-poll waiter is woken by the workers' NOTIFY, times out on its own, and keeps
// an exact count of waiting requests, so its bound holds.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TRANSFER_FINAL_CHANNEL } from '../../src/ledger/apply';
import { TransferWaiter } from '../../src/transfers/transfer-waiter';
import { createTestEnv, type TestEnv } from '../support/test-env';

let env: TestEnv;
let waiter: TransferWaiter;
beforeAll(async () => {
  env = await createTestEnv();
  waiter = new TransferWaiter(env.config.databaseUrl);
  await waiter.start();
});
afterAll(async () => {
  await waiter.stop();
  await env.cleanup();
});

it('a notification wakes every waiter of that transfer, and cancelling afterwards counts nothing twice', async () => {
  const id = randomUUID();
  const subs = [waiter.subscribe(id, 10_000), waiter.subscribe(id, 10_000)];
  const other = waiter.subscribe(randomUUID(), 10_000);
  expect(waiter.waiting).toBe(3);
  await env.pool.query('SELECT pg_notify($1, $2)', [
    TRANSFER_FINAL_CHANNEL,
    `${randomUUID()},${id}`,
  ]);
  await Promise.all(subs.map((s) => s.done));
  expect(waiter.waiting).toBe(1);
  for (const s of subs) s.cancel();
  expect(waiter.waiting).toBe(1);
  other.cancel();
  expect(waiter.waiting).toBe(0);
});

it('a waiter that hears nothing gives up after its time', async () => {
  const started = Date.now();
  await waiter.subscribe(randomUUID(), 150).done;
  expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  expect(waiter.waiting).toBe(0);
});
