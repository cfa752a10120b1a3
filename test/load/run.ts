// `npm run load -- --scenario S --strategies A,B --seconds N --connections C [--rate R]
//   [--json FILE] [--chart FILE]`: the flash-traffic lab. Every strategy is served over HTTP and
// driven by the same load generator; money is checked after each run.
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { loadConfig } from '../../src/config/env';
import { checkPostgres, checkRedis, runMain } from '../../src/cli/preflight';
import { chartSvg } from './chart';
import {
  SCENARIOS,
  STRATEGIES,
  dropStores,
  runScenario,
  type LabRecord,
  type ScenarioName,
  type StrategyName,
} from './load';

/** Bounds on a run, so that a typo cannot flood the machine. */
const SECONDS_MAX = 600;
const CONNECTIONS_MAX = 2_000;
const RATE_MAX = 100_000;
const UNIFORM_ACCOUNTS_MAX = 1_000_000;
const DOUBLE_SPEND_PAIRS_MAX = 100_000;

runMain(async () => {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', default: 'all' },
      strategies: { type: 'string', default: STRATEGIES.join(',') },
      seconds: { type: 'string', default: '10' },
      connections: { type: 'string', default: '200' },
      rate: { type: 'string' },
      accounts: { type: 'string', default: '100000' },
      pairs: { type: 'string', default: '2000' },
      json: { type: 'string' },
      chart: { type: 'string' },
    },
  });
  const scenarios = values.scenario === 'all' ? [...SCENARIOS] : [values.scenario as ScenarioName];
  for (const s of scenarios) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s}`);
  const strategies = values.strategies.split(',') as StrategyName[];
  for (const s of strategies) if (!STRATEGIES.includes(s)) throw new Error(`unknown strategy ${s}`);
  const seconds = bounded('seconds', values.seconds, SECONDS_MAX);
  const connections = bounded('connections', values.connections, CONNECTIONS_MAX);
  const rate = values.rate === undefined ? undefined : bounded('rate', values.rate, RATE_MAX);
  const uniformAccounts = bounded('accounts', values.accounts, UNIFORM_ACCOUNTS_MAX);
  const doubleSpendPairs = bounded('pairs', values.pairs, DOUBLE_SPEND_PAIRS_MAX);

  const base = loadConfig();
  const url = new URL(base.databaseUrl);
  url.pathname = '/ledgerline_lab';
  const config = { ...base, databaseUrl: url.toString(), queuePrefix: `${base.queuePrefix}_lab` };
  // The lab says so when the server would skew it (autovacuum off, say), and runs anyway.
  for (const warning of await checkPostgres(base.databaseUrl)) console.warn(`lab: ${warning}`);
  await checkRedis(config.redisUrl);

  // One Ctrl-C stops the run in progress; the lab then removes what it made and exits.
  const abort = new AbortController();
  process.once('SIGINT', () => {
    console.error('\nlab: stopping, cleaning up…');
    abort.abort();
  });

  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`;
  console.log(`machine: ${machine}`);
  console.log(
    `load: ${connections} connections, ${rate ? `open loop at ${rate} moves/s` : 'closed loop'}, ${seconds} s per strategy`,
  );
  const all: LabRecord[] = [];
  try {
    for (const scenario of scenarios) {
      if (abort.signal.aborted) break;
      const { describe, records } = await runScenario({
        config,
        scenario,
        strategies,
        seconds,
        connections,
        rate,
        uniformAccounts,
        doubleSpendPairs,
        progress: (line) => console.error(line),
        signal: abort.signal,
      });
      all.push(...records);
      console.log(`\n${scenario}: ${describe}`);
      console.table(table(records));
      const cpu = cpuTable(records);
      if (cpu.length > 0) {
        console.log('CPU ms a final move, after the warm-up (JSON: cpu):');
        console.table(cpu);
      }
    }
  } finally {
    await dropStores(config);
  }
  if (values.json) writeFileSync(values.json, JSON.stringify({ machine, records: all }, null, 2));
  if (values.chart) {
    writeFileSync(
      values.chart,
      await chartSvg(
        all,
        `Flash-traffic lab: ${connections} connections${rate ? `, open loop at ${rate} moves/s` : ''}, ${machine}`,
      ),
    );
  }
  if (abort.signal.aborted) process.exit(130);
});

function table(records: readonly LabRecord[]) {
  const of = (name: string) => records.find((r) => r.strategy === name)?.completed_per_second;
  const forUpdate = of('for-update');
  const atomic = of('atomic');
  return records.map((r) => ({
    strategy: r.strategy,
    'completed/s': r.completed_per_second,
    '× for-update': forUpdate ? Math.round((r.completed_per_second / forUpdate) * 100) / 100 : '-',
    '× atomic': atomic ? Math.round((r.completed_per_second / atomic) * 100) / 100 : '-',
    'p50 ms': r.p50_ms,
    'p99 ms': r.p99_ms,
    'p99 final ms': r.p99_final_ms,
    'p99 after warm-up': r.p99_after_warmup_ms ?? '-',
    ...(r.moves_dropped === null ? {} : { 'due, dropped': `${r.moves_due}, ${r.moves_dropped}` }),
    outcomes: Object.entries(r.outcomes)
      .map(([k, v]) => `${k} ${v}`)
      .join(', '),
    'money drift': r.money_drift,
    ...(r.double_spends === null ? {} : { 'both through': r.double_spends }),
    'batch legs': r.batch_legs ? `${r.batch_legs.mean} (max ${r.batch_legs.max})` : '',
    ...(r.web_within_1s === null ? {} : { 'web ≤ 1 s': r.web_within_1s }),
    correct: r.correct ? 'yes' : 'NO',
  }));
}

/** Each record's CPU per move by process, and how idle the machine was meanwhile. */
function cpuTable(records: readonly LabRecord[]) {
  const order = ['web', 'worker', 'server', 'postgres', 'redis', 'load generator'];
  const parts = [...new Set(records.flatMap((r) => Object.keys(r.cpu?.ms_per_move ?? {})))].sort(
    (a, b) => order.indexOf(a) - order.indexOf(b),
  );
  return records.flatMap((r) =>
    r.cpu
      ? [
          {
            strategy: r.strategy,
            ...Object.fromEntries(parts.map((p) => [p, r.cpu!.ms_per_move[p] ?? ''])),
            total: r.cpu.total_ms_per_move,
            'machine idle %': r.cpu.machine_idle_pct,
          },
        ]
      : [],
  );
}

function bounded(name: string, value: string, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new Error(`--${name} must be an integer from 1 to ${max}`);
  return n;
}
