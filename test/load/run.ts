// `npm run load -- [--scenario hot-withdrawals|hot-merchant|all] [--requests N] [--concurrency C]
//   [--strategies a,b] [--workers W] [--json FILE]`: flash-traffic scenarios, every strategy in one run.
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { loadConfig } from '../../src/config/env';
import { checkPostgres, checkRedis, runMain } from '../../src/cli/preflight';
import { SCENARIOS, STRATEGIES, runLoad, type ScenarioName, type StrategyName } from './load';

/** Bounds on a run, so that a typo cannot flood the machine. */
const REQUESTS_MAX = 100_000;
const CONCURRENCY_MAX = 2_000;
const WORKERS_MAX = 16;

runMain(async () => {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', default: 'all' },
      requests: { type: 'string', default: '2000' },
      concurrency: { type: 'string', default: '200' },
      strategies: { type: 'string', default: STRATEGIES.join(',') },
      workers: { type: 'string', default: '1' },
      json: { type: 'string' },
    },
  });
  const requests = bounded('requests', values.requests, REQUESTS_MAX);
  const concurrency = bounded('concurrency', values.concurrency, CONCURRENCY_MAX);
  const workers = bounded('workers', values.workers, WORKERS_MAX);
  const scenarios = values.scenario === 'all' ? SCENARIOS : [values.scenario as ScenarioName];
  const strategies = values.strategies.split(',') as StrategyName[];
  for (const s of scenarios) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s}`);
  for (const s of strategies) if (!STRATEGIES.includes(s)) throw new Error(`unknown strategy ${s}`);

  const base = loadConfig();
  const url = new URL(base.databaseUrl);
  url.pathname = '/ledgerline_load';
  const config = { ...base, databaseUrl: url.toString(), queuePrefix: `${base.queuePrefix}_load` };
  await checkPostgres(config.databaseUrl);
  await checkRedis(config.redisUrl);

  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
  const results = [];
  for (const scenario of scenarios) {
    const result = await runLoad({
      config,
      scenario,
      requests,
      concurrency,
      strategies,
      workers,
      poolSizeMax: 32,
    });
    results.push({ scenario, ...result });
    console.log(`\n${scenario}: ${result.describe}; ${concurrency} concurrent clients`);
    const ours = result.reports.find((r) => r.strategy === 'ledgerline');
    console.table(
      result.reports.map((r) => ({
        strategy: r.strategy,
        ok: r.ok,
        insufficient: r.insufficientFunds,
        'gave up': r.gaveUp,
        errors: r.errors,
        'ops/s': r.opsPerSecond,
        'p50 ms': r.latencyMs.p50,
        'p99 ms': r.latencyMs.p99,
        'money drift': r.moneyDrift,
        correct: r.correct ? 'yes' : 'NO',
        'ledgerline ×': ours ? Math.round((ours.opsPerSecond / r.opsPerSecond) * 100) / 100 : '-',
      })),
    );
  }
  if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 2));
});

function bounded(name: string, value: string, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new Error(`--${name} must be an integer from 1 to ${max}`);
  return n;
}
