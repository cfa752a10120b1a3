// Proves durable submission refuses commands of the wrong shape before recording them, and that
// PostgreSQL refuses such rows too, so no worker can ever be handed one.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AssertionError } from '../../src/shared/assert';
import { createTestEnv, type TestEnv } from '../support/test-env';

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv();
});
afterAll(async () => {
  await env.cleanup();
});

const a = randomUUID();
const b = randomUUID();
const shapes = [
  { type: 'transfer', fromAccountId: a, toAccountId: a },
  { type: 'transfer', fromAccountId: a, toAccountId: null },
  { type: 'deposit', fromAccountId: a, toAccountId: b },
  { type: 'withdrawal', fromAccountId: null, toAccountId: b },
  { type: 'interest', fromAccountId: null, toAccountId: null },
] as const;

it('submit() refuses a transfer to oneself and commands naming the wrong accounts, recording nothing', async () => {
  for (const shape of shapes) {
    await expect(
      env.submit([{ ...shape, amountMinor: 1n, currency: 'EUR' }]),
      JSON.stringify(shape),
    ).rejects.toBeInstanceOf(AssertionError);
  }
  await expect(
    env.submit([
      { type: 'deposit', fromAccountId: null, toAccountId: a, amountMinor: 0n, currency: 'EUR' },
    ]),
  ).rejects.toBeInstanceOf(AssertionError);
  const n = await env.pool.query('SELECT count(*)::int AS n FROM transfers');
  expect(n.rows[0].n).toBe(0);
});

it('PostgreSQL refuses the same rows as the last line of defence', async () => {
  for (const shape of shapes) {
    await expect(
      env.pool.query(
        `INSERT INTO transfers (id, type, from_account_id, to_account_id, amount, currency, request_hash,
                                idempotency_scope, src_partition, dst_partition)
         VALUES ($1, $2, $3, $4, 1, 'EUR', 'h', 's', 0, 0)`,
        [randomUUID(), shape.type, shape.fromAccountId, shape.toAccountId],
      ),
    ).rejects.toMatchObject({ code: '23514', constraint: 'transfers_shape' });
  }
});
