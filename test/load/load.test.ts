// Proves the load tool measures what it claims: on a small flash-traffic run, every safe strategy
// and Ledgerline end with exact money and exactly the outcomes the funds allow. Speed is not
// asserted here; it is measured with `npm run load` and reported in docs/performance.md.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Redis } from 'ioredis';
import { afterAll, expect, it } from 'vitest';
import { AMOUNT_MINOR_MAX_DEFAULT } from '../../src/config/limits';
import type { Config } from '../../src/config/env';
import { deleteKeys } from '../support/test-env';
import { adminUrl, serverUrl } from '../support/urls';
import { runLoad } from './load';

const suffix = randomBytes(4).toString('hex');
const config: Config = {
  databaseUrl: serverUrl(`ledgerline_loadtest_${suffix}`),
  redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  port: 0,
  host: '127.0.0.1',
  adminApiKey: undefined,
  partitions: 4,
  queuePrefix: `llload_${suffix}`,
  amountMinorMax: AMOUNT_MINOR_MAX_DEFAULT,
  rateLimit: { perSecond: 1, burst: 1 },
};

afterAll(async () => {
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(
    `DROP DATABASE IF EXISTS ${pg.escapeIdentifier(`ledgerline_loadtest_${suffix}`)} WITH (FORCE)`,
  );
  await admin.end();
  const redis = new Redis(config.redisUrl);
  await deleteKeys(redis, `${config.queuePrefix}:*`);
  redis.disconnect();
});

for (const scenario of ['hot-withdrawals', 'hot-merchant'] as const) {
  it(`${scenario}: for-update, atomic and Ledgerline keep every cent and report the outcomes the funds allow`, async () => {
    const { reports } = await runLoad({
      config,
      scenario,
      requests: 80,
      concurrency: 20,
      strategies: ['for-update', 'atomic', 'ledgerline'],
      workers: 1,
      poolSizeMax: 8,
    });
    expect(reports.map((r) => r.strategy)).toEqual(['for-update', 'atomic', 'ledgerline']);
    for (const r of reports) {
      expect({
        strategy: r.strategy,
        correct: r.correct,
        drift: r.moneyDrift,
        errors: r.errors,
      }).toEqual({
        strategy: r.strategy,
        correct: true,
        drift: '0',
        errors: 0,
      });
      expect(r.ok).toBe(scenario === 'hot-withdrawals' ? 40 : 80);
      expect(r.opsPerSecond).toBeGreaterThan(0);
    }
  });
}
