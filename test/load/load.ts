// The flash-traffic scenarios: the same moves, by the same number of concurrent clients, through
// each classic strategy and through Ledgerline, in one run; reports speed and money correctness.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { Redis } from 'ioredis';
import { createAccount } from '../../src/accounts/accounts.repository';
import type { Config } from '../../src/config/env';
import { createPool } from '../../src/db/db';
import { ensureDatabase, runMigrations } from '../../src/db/migrate';
import { createProducerConnection, Dispatcher } from '../../src/queue/queues';
import { Submitter, type Command } from '../../src/transfers/submit';
import { getTransfer } from '../../src/transfers/transfers.repository';
import { isFinal } from '../../src/domain/transfer';
import { TransferWaiter } from '../../src/transfers/transfer-waiter';
import { processEnv, spawnScript, type Child } from '../support/processes';
import { deleteKeys } from '../support/test-env';
import {
  CLASSIC,
  CLASSIC_NAMES,
  CLASSIC_SCHEMA,
  type ClassicName,
  type Move,
  type Outcome,
} from './strategies';

export const SCENARIOS = ['hot-withdrawals', 'hot-merchant'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];
export const STRATEGIES = [...CLASSIC_NAMES, 'ledgerline'] as const;
export type StrategyName = (typeof STRATEGIES)[number];

export type LoadOptions = {
  config: Config;
  scenario: ScenarioName;
  requests: number;
  concurrency: number;
  strategies: readonly StrategyName[];
  workers: number;
  /** Connections of the classic strategies' pool (Ledgerline's intake uses its own default). */
  poolSizeMax: number;
};

export type StrategyReport = {
  strategy: StrategyName;
  ok: number;
  insufficientFunds: number;
  gaveUp: number;
  errors: number;
  seconds: number;
  opsPerSecond: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  /** Money created (positive) or destroyed (negative) compared with the outcomes reported. */
  moneyDrift: string;
  /** No drift, and exactly the outcomes the scenario allows. */
  correct: boolean;
};

const AMOUNT = 100n;

type Scenario = {
  describe: string;
  balances: bigint[];
  moves: Move[];
  /** The number of moves that must succeed, given the funds. */
  okExpected: number;
};

function scenario(name: ScenarioName, requests: number): Scenario {
  switch (name) {
    case 'hot-withdrawals':
      return {
        describe: `${requests} withdrawals of ${AMOUNT} from one account holding ${(BigInt(requests / 2) * AMOUNT).toString()}: half must fail`,
        balances: [BigInt(Math.floor(requests / 2)) * AMOUNT],
        moves: Array.from({ length: requests }, () => ({ from: 0, to: null, amount: AMOUNT })),
        okExpected: Math.floor(requests / 2),
      };
    case 'hot-merchant': {
      const payers = Math.min(requests, 200);
      return {
        describe: `${requests} transfers of ${AMOUNT} from ${payers} payers into one merchant: all must land`,
        balances: [
          0n,
          ...Array.from({ length: payers }, () => AMOUNT * BigInt(Math.ceil(requests / payers))),
        ],
        moves: Array.from({ length: requests }, (_, i) => ({
          from: 1 + (i % payers),
          to: 0,
          amount: AMOUNT,
        })),
        okExpected: requests,
      };
    }
  }
}

/** Runs `moves` with `concurrency` closed-loop clients; each client waits for its outcome. */
async function drive(
  moves: readonly Move[],
  concurrency: number,
  run: (move: Move) => Promise<Outcome>,
): Promise<{ outcomes: (Outcome | 'error')[]; latencies: number[]; seconds: number }> {
  const outcomes: (Outcome | 'error')[] = new Array(moves.length);
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, moves.length) }, async () => {
      while (next < moves.length) {
        const i = next++;
        const t0 = performance.now();
        outcomes[i] = await run(moves[i]!).catch(() => 'error' as const);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  return { outcomes, latencies, seconds: (performance.now() - started) / 1000 };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return (
    Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! * 10) /
    10
  );
}

function report(
  strategy: StrategyName,
  s: Scenario,
  driven: { outcomes: (Outcome | 'error')[]; latencies: number[]; seconds: number },
  finalBalances: bigint[],
): StrategyReport {
  const expected = [...s.balances];
  driven.outcomes.forEach((o, i) => {
    if (o !== 'ok') return;
    const m = s.moves[i]!;
    if (m.from !== null) expected[m.from]! -= m.amount;
    if (m.to !== null) expected[m.to]! += m.amount;
  });
  const drift = finalBalances.reduce((sum, b, i) => sum + (b - expected[i]!), 0n);
  const absDrift = finalBalances.reduce(
    (sum, b, i) => sum + (b > expected[i]! ? b - expected[i]! : expected[i]! - b),
    0n,
  );
  const count = (o: Outcome | 'error') => driven.outcomes.filter((x) => x === o).length;
  const sorted = [...driven.latencies].sort((a, b) => a - b);
  return {
    strategy,
    ok: count('ok'),
    insufficientFunds: count('insufficient_funds'),
    gaveUp: count('gave_up'),
    errors: count('error'),
    seconds: Math.round(driven.seconds * 100) / 100,
    opsPerSecond: Math.round(s.moves.length / driven.seconds),
    latencyMs: {
      p50: percentile(sorted, 50),
      p95: percentile(sorted, 95),
      p99: percentile(sorted, 99),
      max: percentile(sorted, 100),
    },
    moneyDrift: drift.toString(),
    correct: absDrift === 0n && count('ok') === s.okExpected,
  };
}

async function runClassic(
  name: ClassicName,
  s: Scenario,
  opts: LoadOptions,
): Promise<StrategyReport> {
  const pool = createPool(opts.config.databaseUrl, opts.poolSizeMax);
  try {
    await pool.query(CLASSIC_SCHEMA);
    await pool.query(
      'INSERT INTO load_accounts (id, balance) SELECT * FROM unnest($1::int[], $2::bigint[])',
      [s.balances.map((_, i) => i), s.balances.map((b) => b.toString())],
    );
    const strategy = CLASSIC[name];
    const driven = await drive(s.moves, opts.concurrency, (m) => strategy(pool, m));
    const rows = await pool.query<{ balance: string }>(
      'SELECT balance FROM load_accounts ORDER BY id',
    );
    return report(
      name,
      s,
      driven,
      rows.rows.map((r) => BigInt(r.balance)),
    );
  } finally {
    await pool.end();
  }
}

async function runLedgerline(s: Scenario, opts: LoadOptions): Promise<StrategyReport> {
  const { config } = opts;
  const pool = createPool(config.databaseUrl);
  const redis = createProducerConnection(config.redisUrl);
  await new Promise((resolve) => redis.once('ready', resolve));
  const dispatcher = new Dispatcher(redis, config.queuePrefix);
  const submitter = new Submitter({ pool, dispatcher, partitions: config.partitions });
  const waiter = new TransferWaiter(config.databaseUrl);
  await waiter.start();
  const workers: Child[] = [];
  try {
    for (let i = 0; i < opts.workers; i++)
      workers.push(spawnScript('workers/worker.ts', processEnv(config)));
    for (let i = 0; ; i++) {
      const r = await pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM partitions WHERE owner IS NOT NULL`,
      );
      if (Number(r.rows[0]!.n) === config.partitions) break;
      if (i > 600)
        throw new Error(`workers did not start: ${workers.map((w) => w.output()).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const ids: string[] = [];
    for (let i = 0; i < s.balances.length; i++) {
      ids.push(
        (await createAccount(pool, { holder: `load-${i}`, currency: 'EUR', overdraftLimit: 0n }))
          .id,
      );
    }
    const funding = await submitter.submit(
      s.balances.flatMap((b, i) =>
        b > 0n
          ? [
              {
                type: 'deposit' as const,
                fromAccountId: null,
                toAccountId: ids[i]!,
                amountMinor: b,
                currency: 'EUR',
                idempotencyScope: 'load',
              },
            ]
          : [],
      ),
    );
    await untilFinal(
      pool,
      funding.map((r) => r.transfer.id),
    );

    const driven = await drive(s.moves, opts.concurrency, async (m) => {
      const command: Command = {
        type:
          m.from !== null && m.to !== null
            ? 'transfer'
            : m.from !== null
              ? 'withdrawal'
              : 'deposit',
        fromAccountId: m.from === null ? null : ids[m.from]!,
        toAccountId: m.to === null ? null : ids[m.to]!,
        amountMinor: m.amount,
        currency: 'EUR',
        idempotencyScope: 'load',
        idempotencyKey: randomUUID(),
      };
      const [result] = await submitter.submit([command]);
      const id = result!.transfer.id;
      // As a long-polling client: subscribe, read, and wait for the worker's notification.
      for (;;) {
        const sub = waiter.subscribe(id, 30_000);
        const t = (await getTransfer(pool, id))!;
        if (isFinal(t.status)) {
          sub.cancel();
          if (t.status === 'completed') return 'ok';
          if (t.failureCode === 'insufficient_funds') return 'insufficient_funds';
          throw new Error(`unexpected failure ${t.failureCode}`);
        }
        await sub.done;
      }
    });
    const rows = await pool.query<{ id: string; balance: string }>(
      'SELECT id, balance FROM accounts WHERE id = ANY($1::uuid[])',
      [ids],
    );
    const byId = new Map(rows.rows.map((r) => [r.id, BigInt(r.balance)]));
    return report(
      'ledgerline',
      s,
      driven,
      ids.map((id) => byId.get(id)!),
    );
  } finally {
    for (const w of workers) w.proc.kill('SIGTERM');
    await Promise.all(workers.map((w) => w.exited));
    await waiter.stop();
    await dispatcher.close();
    redis.disconnect();
    await pool.end();
  }
}

async function untilFinal(pool: pg.Pool, ids: string[]): Promise<void> {
  for (;;) {
    const r = await pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM transfers WHERE id = ANY($1::uuid[]) AND status IN ('accepted', 'debited')`,
      [ids],
    );
    if (r.rows[0]!.n === '0') return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A fresh database and queue namespace for the run. */
export async function prepare(config: Config): Promise<void> {
  const url = new URL(config.databaseUrl);
  const name = url.pathname.slice(1);
  url.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: url.toString() });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  await admin.end();
  await ensureDatabase(config.databaseUrl);
  await runMigrations(config.databaseUrl);
  const redis = new Redis(config.redisUrl);
  await deleteKeys(redis, `${config.queuePrefix}:*`);
  redis.disconnect();
}

export async function runLoad(
  opts: LoadOptions,
): Promise<{ describe: string; reports: StrategyReport[] }> {
  const s = scenario(opts.scenario, opts.requests);
  const reports: StrategyReport[] = [];
  for (const strategy of opts.strategies) {
    await prepare(opts.config);
    reports.push(
      strategy === 'ledgerline'
        ? await runLedgerline(s, opts)
        : await runClassic(strategy, s, opts),
    );
  }
  return { describe: s.describe, reports };
}
