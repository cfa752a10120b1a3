// A statement prepared while `transfers` was small must not keep a plan that reads the whole
// table once it is large (the pools' session settings in src/db/db.ts).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createPool } from '../../src/db/db';
import { TransferReader } from '../../src/transfers/transfers.repository';
import { createTestEnv, deposit, type TestEnv } from '../support/test-env';

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv({ partitions: 2 });
});
afterAll(async () => {
  await env.cleanup();
});

it('a named statement first run on an empty table still reads by index once the table is large', async () => {
  // One connection, so the statement is prepared, run and explained on the same session.
  const pool = createPool(env.config.databaseUrl, 1, 'ledgerline plans test');
  try {
    const a = await env.account();
    const [one] = await env.submit([deposit(a.id, 1n)]);
    const more = (n: number) =>
      env.pool.query(
        `INSERT INTO transfers (id, type, to_account_id, amount, currency, request_hash,
                idempotency_scope, src_partition, dst_partition)
         SELECT gen_random_uuid(), 'deposit', $1, 1, 'EUR', 'h', 'test', 0, 0
           FROM generate_series(1, $2::int)`,
        [a.id, n],
      );
    // A few pages, as when a lab or a new deployment starts (funding, the first requests).
    await more(200);
    const reader = new TransferReader(pool);
    // More than five runs, each of the many ids of long-polls woken together: where PostgreSQL
    // would switch a prepared statement to its generic plan, then a sequential scan.
    for (let i = 0; i < 8; i++) {
      const reads = Array.from({ length: 30 }, () => reader.get(randomUUID()));
      expect(await Promise.all(reads)).toEqual(reads.map(() => undefined));
    }
    await more(20_000);
    expect((await reader.get(one!.id))?.id).toBe(one!.id);

    const plan = await pool.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN EXECUTE ledgerline_transfers_by_ids('{${one!.id}}')`,
    );
    const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(text).toMatch(/Index Scan (using|on) transfers_pkey/);
    expect(text).not.toMatch(/Seq Scan on transfers/);
  } finally {
    await pool.end();
  }
});
