// Proves the lab measures what it claims: on short runs over HTTP, `unsafe` creates or destroys
// money under contention and lets double spends through, every other strategy keeps every cent
// and lets none through, and the report's counts agree with the database. Speed is not asserted
// here; it is measured with `npm run load` and reported in docs/performance.md.
import { randomBytes } from 'node:crypto';
import { afterAll, expect, it } from 'vitest';
import { AMOUNT_MINOR_MAX_DEFAULT } from '../../src/config/limits';
import type { Config } from '../../src/config/env';
import { serverUrl } from '../support/urls';
import { chartSvg } from './chart';
import { dropStores, runScenario, STRATEGIES, type LabOptions, type LabRecord } from './load';

const suffix = randomBytes(4).toString('hex');
const config: Config = {
  databaseUrl: serverUrl(`ledgerline_labtest_${suffix}`),
  redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  port: 0,
  host: '127.0.0.1',
  adminApiKey: undefined,
  partitions: 4,
  queuePrefix: `lllab_${suffix}`,
  amountMinorMax: AMOUNT_MINOR_MAX_DEFAULT,
  rateLimit: { perSecond: 1, burst: 1 },
};
const base: Omit<LabOptions, 'scenario' | 'strategies'> = {
  config,
  seconds: 2,
  connections: 20,
  uniformAccounts: 500,
  doubleSpendPairs: 150,
};
const records: LabRecord[] = [];

afterAll(async () => {
  await dropStores(config);
});

it('hot-source: unsafe loses or creates money; every other strategy keeps every cent', async () => {
  const { records: run } = await runScenario({
    ...base,
    scenario: 'hot-source',
    strategies: STRATEGIES,
    warmupMs: 500,
  });
  records.push(...run);
  expect(run.map((r) => r.strategy)).toEqual([...STRATEGIES]);
  const unsafe = run.find((r) => r.strategy === 'unsafe')!;
  expect(unsafe.money_drift).not.toBe('0');
  expect(unsafe.correct).toBe(false);
  for (const r of run.filter((x) => x.strategy !== 'unsafe')) {
    expect({ strategy: r.strategy, drift: r.money_drift, correct: r.correct }).toEqual({
      strategy: r.strategy,
      drift: '0',
      correct: true,
    });
    expect(r.outcomes.ok ?? 0).toBeGreaterThan(0);
    expect(r.outcomes.error ?? 0).toBe(0);
    // The requests sent after the first half second have a p99 of their own.
    expect(r.p99_after_warmup_ms).toBeGreaterThan(0);
    // Where the CPU went after the warm-up: every process of the run was found and measured.
    const own = r.strategy === 'ledgerline' ? ['web', 'worker'] : ['server'];
    const parts = [...own, 'postgres', 'redis', 'load generator'];
    expect(Object.keys(r.cpu!.ms_per_move).sort(), r.strategy).toEqual(parts.sort());
    for (const part of [...own, 'postgres', 'load generator']) {
      expect(r.cpu!.ms_per_move[part], `${r.strategy} ${part}`).toBeGreaterThan(0);
    }
    const sum = Object.values(r.cpu!.ms_per_move).reduce((a, b) => a + b, 0);
    expect(Math.abs(sum - r.cpu!.total_ms_per_move)).toBeLessThan(0.01);
    expect(r.cpu!.moves).toBeGreaterThan(0);
    expect(r.cpu!.window_s).toBeGreaterThan(1);
    expect(r.cpu!.machine_idle_pct).toBeGreaterThanOrEqual(0);
    expect(r.cpu!.machine_idle_pct).toBeLessThanOrEqual(100);
  }
  const ledgerline = run.find((r) => r.strategy === 'ledgerline')!;
  expect(ledgerline.ledger_reconciled).toBe(true);
  expect(ledgerline.batch_legs!.max).toBeGreaterThanOrEqual(1);
  // The web's own count of the POSTs it answered, and of those within 1 s of reading them.
  const [, within, served] = /^(\d+) of (\d+) \(/.exec(ledgerline.web_within_1s ?? '') ?? [];
  expect(Number(served)).toBeGreaterThan(0);
  expect(Number(within)).toBeLessThanOrEqual(Number(served));
  expect(run.find((r) => r.strategy === 'for-update')!.web_within_1s).toBeNull();
});

it('double-spend: only unsafe lets both 4,000.00 withdrawals from 5,000.00 through', async () => {
  const { records: run } = await runScenario({
    ...base,
    connections: 40,
    scenario: 'double-spend',
    strategies: ['unsafe', 'for-update', 'atomic', 'redis-cas', 'ledgerline'],
    // Longer than the run: no request is sent after it, so there is no second p99.
    warmupMs: 600_000,
  });
  records.push(...run);
  for (const r of run) {
    expect(r.p99_after_warmup_ms).toBeNull();
    // No window after the warm-up, so no CPU figures either.
    expect(r.cpu).toBeNull();
    // Every pair was answered: one withdrawal each at least, the other refused for funds.
    const answered = (r.outcomes.ok ?? 0) + (r.outcomes.insufficient_funds ?? 0);
    expect(answered).toBe(base.doubleSpendPairs * 2);
    if (r.strategy === 'unsafe') {
      expect(r.double_spends).toBeGreaterThan(0);
    } else {
      expect({ strategy: r.strategy, both: r.double_spends, drift: r.money_drift }).toEqual({
        strategy: r.strategy,
        both: 0,
        drift: '0',
      });
      expect(r.outcomes.ok).toBe(base.doubleSpendPairs);
    }
  }
  // Withdrawals, not transfers: the web's own count covers every money-movement route.
  const ledgerline = run.find((r) => r.strategy === 'ledgerline')!;
  const [, within, served] = /^(\d+) of (\d+) \(/.exec(ledgerline.web_within_1s ?? '') ?? [];
  expect(Number(served)).toBe(base.doubleSpendPairs * 2);
  expect(Number(within)).toBeLessThanOrEqual(Number(served));
});

it('at a rate: moves are paced, each is made once, and the safe strategies keep every cent', async () => {
  const { records: run } = await runScenario({
    ...base,
    scenario: 'hot-source',
    strategies: ['for-update', 'ledgerline'],
    rate: 200,
  });
  for (const r of run) {
    expect({ strategy: r.strategy, drift: r.money_drift, correct: r.correct }).toEqual({
      strategy: r.strategy,
      drift: '0',
      correct: true,
    });
    expect(r.rate).toBe(200);
    // 2 s at 200 a second: 400 due, each made once or, if every connection was still busy when
    // the time was up, counted as dropped (a strategy slowed by the test files running beside
    // this one may not keep up: 235 of 400 made, once, for FOR UPDATE's one hot row).
    const made = Object.values(r.outcomes).reduce((a, b) => a + b, 0);
    expect(r.moves_due).toBe(400);
    expect(made + r.moves_dropped!, r.strategy).toBe(400);
    expect(made, r.strategy).toBeGreaterThan(0);
    expect(r.outcomes.ok).toBe(made);
  }
});

it('the chart is an SVG with every strategy of the run in it', async () => {
  const svg = await chartSvg(records, 'test');
  expect(svg.startsWith('<svg')).toBe(true);
  for (const s of STRATEGIES) expect(svg).toContain(s);
  expect(svg).toContain('money exact');
  // Every record's p99 is drawn inside its panel (220 px high), higher on the page when slower.
  const dots = [
    ...svg.matchAll(
      /aria-label="strategy: [^;]+; p99[^:]*: ([0-9.,]+);[^"]*"[^>]*aria-roledescription="point" transform="translate\([^,]+,([^)]+)\)"/g,
    ),
  ].map((m) => ({ ms: Number(m[1]!.replaceAll(',', '')), y: Number(m[2]) }));
  expect(dots).toHaveLength(records.length);
  for (const d of dots) expect(d.y).toBeGreaterThanOrEqual(0);
  for (const d of dots) expect(d.y).toBeLessThanOrEqual(220);
  const slowest = dots.reduce((a, b) => (b.ms > a.ms ? b : a));
  const fastest = dots.reduce((a, b) => (b.ms < a.ms ? b : a));
  if (slowest.ms > fastest.ms) expect(slowest.y).toBeLessThan(fastest.y);
});
