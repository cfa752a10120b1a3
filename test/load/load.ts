// The flash-traffic lab: the same moves, by the same HTTP load generator, through every classic
// concurrency-control strategy (each a small Hono server, test/load/strategy-server.ts) and through
// Ledgerline (its real web and worker processes), one at a time, each on a fresh database; then
// the money is checked against the database.
import { backfillPartitions } from '../../src/partitions/interest';
import { partitionOf } from '../../src/partitions/routing';
import { MOVEMENTS } from '../../src/transfers/transfers.routes';
import { randomBytes } from 'node:crypto';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createAccount } from '../../src/accounts/accounts.repository';
import type { Config } from '../../src/config/env';
import { ensureDatabase, runMigrations } from '../../src/db/migrate';
import { freePort } from '../support/servers';
import { reconcile } from '../../src/ledger/reconcile';
import { createPool } from '../../src/db/db';
import { createProducerConnection, Dispatcher } from '../../src/queue/queues';
import { Submitter } from '../../src/transfers/submit';
import { processEnv, spawnScript, type Child } from '../support/processes';
import { deleteKeys } from '../support/test-env';
import { CpuWindow, runParts, type CpuParts, type CpuRecord } from './cpu';
import { paced } from './paced';
import { CLASSIC_NAMES, CLASSIC_SCHEMA, type Move } from './strategies';

export const SCENARIOS = ['hot-source', 'hot-destination', 'uniform', 'double-spend'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];
export const STRATEGIES = [...CLASSIC_NAMES, 'ledgerline'] as const;
export type StrategyName = (typeof STRATEGIES)[number];

/** Bounds on the lab's own waits. */
const SERVER_START_MS_MAX = 60_000;
const DRAIN_MS_MAX = 120_000;
const LONG_POLL_S = 30;
const PROGRESS_INTERVAL_MS = 5_000;
const AMOUNT = 100n;

export type LabOptions = {
  /** The lab's database (dropped and made anew for each run) and queue prefix. */
  config: Config;
  scenario: ScenarioName;
  strategies: readonly StrategyName[];
  seconds: number;
  connections: number;
  /** Requests per second from all connections together; absent: as fast as they go. */
  rate?: number;
  /** Accounts in `uniform`; pairs of withdrawals in `double-spend`. */
  uniformAccounts: number;
  doubleSpendPairs: number;
  progress?: (line: string) => void;
  /** Set on Ctrl-C: the run in progress stops and everything is cleaned up. */
  signal?: AbortSignal;
  /** Requests sent in the run's first this many ms are left out of `p99_after_warmup_ms`. */
  warmupMs?: number;
};

/**
 * Every strategy's server and Ledgerline's processes start just before their run, and all the
 * connections open and send at once: at 1,000 connections that first wave alone made the run's
 * p99 (processes warmed beforehand or not). Its moves count for money and speed like any other;
 * only the second p99 leaves them out.
 */
export const WARMUP_MS_DEFAULT = 2_000;

export type LabRecord = {
  scenario: ScenarioName;
  strategy: StrategyName;
  connections: number;
  rate: number | null;
  seconds: number;
  /** Moves that reached a final outcome (ok or refused for funds), per second of load. */
  completed_per_second: number;
  outcomes: Record<string, number>;
  /** Submit latency (for the classic strategies, submit is final). */
  p50_ms: number;
  p99_ms: number;
  /** Submit → final outcome, as a client sees it (Ledgerline: through the long-poll). */
  p99_final_ms: number;
  /** Submit p99 of the requests sent after the warm-up (`warmupMs`); null if none was. */
  p99_after_warmup_ms: number | null;
  /** A rated run (null in a closed loop): the moves that fell due at the rate. */
  moves_due: number | null;
  /**
   * A rated run: the moves due that never started, still waiting for a free connection when the
   * time was up. Above zero, the strategy did not keep up with the rate; these moves have no
   * latency in the figures above.
   */
  moves_dropped: number | null;
  /** Money created (positive) or destroyed (negative) against the outcomes reported, signed. */
  money_drift: string;
  /** Pairs of which both 4,000.00 withdrawals from 5,000.00 went through (double-spend). */
  double_spends: number | null;
  /** Every outcome the database shows matches what the clients were told, and no drift. */
  correct: boolean;
  /** Ledgerline only: legs per applied batch, and the ledger's own reconciliation. */
  batch_legs: { mean: number; p50: number; max: number } | null;
  ledger_reconciled: boolean | null;
  /**
   * Ledgerline only: the POSTs the web answered within 1 s of reading them (its own latency
   * histogram, read request to final answer), apart from the time a request waits in the kernel
   * and the load generator before the web reads it.
   */
  web_within_1s: string | null;
  /**
   * Where the CPU went: each process's CPU time from the end of the warm-up to the end of the
   * load, per final move made meanwhile (null when the run ended within its warm-up).
   */
  cpu: CpuRecord | null;
};

/** DESIGN.md's bound for the hot account's p99 submit at 1,000 connections. */
export const SUBMIT_BOUND_S = 1;

/** The money-movement routes: the lab sends transfers, and withdrawals (double-spend). */
const MOVEMENT_ROUTES = Object.keys(MOVEMENTS);

/**
 * The share of money-movement POSTs the web answered within `boundS` seconds, from its latency
 * histogram on /metrics (every movement route summed: a scenario of withdrawals has no
 * `/v1/transfers` series).
 */
export async function servedWithin(metricsUrl: string, boundS: number): Promise<string> {
  const lines = (await (await fetch(metricsUrl)).text())
    .split('\n')
    .filter(
      (l) =>
        l.startsWith('ledgerline_http_request_duration_seconds_bucket{') &&
        l.includes('method="POST"') &&
        MOVEMENT_ROUTES.some((route) => l.includes(`route="${route}"`)),
    );
  const count = (le: string) =>
    lines
      .filter((l) => l.includes(`le="${le}"`))
      .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
  const within = count(String(boundS));
  const all = count('+Inf');
  const share = all === 0 ? '-' : `${((100 * within) / all).toFixed(2)} %`;
  return `${within} of ${all} (${share})`;
}

type Scenario = {
  describe: string;
  balances: bigint[];
  move: (i: number) => Move;
  /** A run of fixed size (double-spend) instead of a duration. */
  requests?: number;
};

/** A small deterministic generator, so a scenario's moves are the same for every strategy. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function scenario(name: ScenarioName, opts: LabOptions): Scenario {
  switch (name) {
    case 'hot-source':
      return {
        describe: 'one payer (10,000,000,000.00) pays 200 payees 1.00 each, over and over',
        balances: [1_000_000_000_000n, ...Array<bigint>(200).fill(0n)],
        move: (i) => ({ from: 0, to: 1 + (i % 200), amount: AMOUNT }),
      };
    case 'hot-destination':
      return {
        describe: '200 payers pay one merchant 1.00 each, over and over',
        balances: [0n, ...Array<bigint>(200).fill(10_000_000_000n)],
        move: (i) => ({ from: 1 + (i % 200), to: 0, amount: AMOUNT }),
      };
    case 'uniform': {
      const n = opts.uniformAccounts;
      return {
        describe: `random pairs among ${n} accounts, 1.00 each`,
        balances: Array<bigint>(n).fill(100_000_000n),
        move: (i) => {
          const rand = mulberry32(i + 1);
          const from = Math.floor(rand() * n);
          const to = (from + 1 + Math.floor(rand() * (n - 1))) % n;
          return { from, to, amount: AMOUNT };
        },
      };
    }
    case 'double-spend':
      return {
        describe: `${opts.doubleSpendPairs} accounts of 5,000.00, each hit by two 4,000.00 withdrawals at once`,
        balances: Array<bigint>(opts.doubleSpendPairs).fill(500_000n),
        move: (i) => ({ from: Math.floor(i / 2), to: null, amount: 400_000n }),
        requests: opts.doubleSpendPairs * 2,
      };
  }
}

/** A fresh database (with Ledgerline's schema and the classic tables) and queue namespace. */
export async function freshStores(config: Config): Promise<void> {
  await dropStores(config);
  await ensureDatabase(config.databaseUrl);
  await runMigrations(config.databaseUrl);
}

export async function dropStores(config: Config): Promise<void> {
  const url = new URL(config.databaseUrl);
  const name = url.pathname.slice(1);
  url.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: url.toString() });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  await admin.end();
  const redis = new Redis(config.redisUrl);
  await deleteKeys(redis, `${config.queuePrefix}:*`);
  redis.disconnect();
}

export async function untilHttp(url: string, children: Child[]): Promise<void> {
  const deadline = Date.now() + SERVER_START_MS_MAX;
  for (;;) {
    try {
      // Any answer means the server listens.
      await fetch(url);
      return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      throw new Error(`server did not start: ${children.map((c) => c.output()).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const v = sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
  return Math.round(v * 10) / 10;
}

/** What the load generator saw, move by move. */
type Seen = {
  outcomes: Map<number, string>;
  submitMs: number[];
  /** Submit latencies of the requests sent after the warm-up. */
  warmSubmitMs: number[];
  finalMs: number[];
  seconds: number;
  /** When the drive's warm-up ends (performance.now()). */
  warmFromMs: number;
  /** Ledgerline: the transfer id each move was given. */
  ids: Map<number, string>;
  /** A rated run: the moves that fell due, and those of them that never started. */
  paced: { due: number; dropped: number } | null;
  cpu: CpuRecord | null;
};

/** Moves with a final outcome: made, or refused for funds. */
function finalMoves(seen: Seen): number {
  let n = 0;
  for (const o of seen.outcomes.values()) if (o === 'ok' || o === 'insufficient_funds') n++;
  return n;
}

type Target = {
  url: string;
  requests: autocannon.Request[];
};

/**
 * Drives the target: a closed loop over the connections (autocannon), or paced at `rate`; and
 * measures the CPU the run's processes (`parts`) take once the warm-up is over.
 */
async function drive(
  target: (seen: Seen, next: () => number) => Target,
  s: Scenario,
  opts: LabOptions,
  label: string,
  parts: CpuParts,
): Promise<Seen> {
  const started = performance.now();
  const seen: Seen = {
    outcomes: new Map(),
    submitMs: [],
    warmSubmitMs: [],
    finalMs: [],
    seconds: 0,
    warmFromMs: started + (opts.warmupMs ?? WARMUP_MS_DEFAULT),
    ids: new Map(),
    paced: null,
    cpu: null,
  };
  let counter = 0;
  const next = () => counter++;
  const { url, requests } = target(seen, next);
  const progress = setInterval(() => {
    const elapsed = (performance.now() - started) / 1000;
    opts.progress?.(
      `${label}: ${elapsed.toFixed(0)} s, ${seen.outcomes.size} final, ${Math.round(seen.outcomes.size / elapsed)}/s`,
    );
  }, PROGRESS_INTERVAL_MS);
  const cpu = new CpuWindow(parts, opts.warmupMs ?? WARMUP_MS_DEFAULT, () => finalMoves(seen));
  try {
    if (opts.rate) {
      const { due, dropped } = await paced({
        url,
        connections: opts.connections,
        rate: opts.rate,
        ...(s.requests ? { amount: s.requests } : { seconds: opts.seconds }),
        headers: { 'content-type': 'application/json' },
        requests,
        timeoutS: LONG_POLL_S + 10,
        // A move's latency counts from when it was due, time waiting for a connection included.
        due: (context, dueMs) => ((context as Ctx).t0 = dueMs),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      seen.paced = { due, dropped };
    } else {
      await closedLoop(url, requests, s, opts);
    }
  } finally {
    clearInterval(progress);
    seen.seconds = (performance.now() - started) / 1000;
    // Also on the way out of a failed drive: no sample is left waiting for its time.
    seen.cpu = await cpu.end();
  }
  return seen;
}

/** autocannon over the connections, each sending its next request when the last is answered. */
async function closedLoop(
  url: string,
  requests: autocannon.Request[],
  s: Scenario,
  opts: LabOptions,
): Promise<void> {
  let finish!: (err: Error | null) => void;
  const finished = new Promise<void>((resolve, reject) => {
    finish = (err) => (err ? reject(err) : resolve());
  });
  const instance = autocannon(
    {
      url,
      connections: opts.connections,
      // One request per move: a classic strategy's POST, or Ledgerline's POST with Prefer: wait
      // (only a move still pending after the wait costs a second request, the long-poll).
      ...(s.requests ? { amount: s.requests } : { duration: opts.seconds }),
      headers: { 'content-type': 'application/json' },
      requests,
      timeout: LONG_POLL_S + 10,
    },
    (err) => finish(err),
  );
  const abort = () => instance.stop();
  opts.signal?.addEventListener('abort', abort);
  try {
    await finished;
  } finally {
    opts.signal?.removeEventListener('abort', abort);
  }
}

type Ctx = { i?: number; t0?: number; id?: string; final?: boolean };

/** A submit answered: its latency, also among the warm ones if it was sent after the warm-up. */
function submitted(seen: Seen, context: Ctx): number {
  const ms = performance.now() - context.t0!;
  seen.submitMs.push(ms);
  if (context.t0! >= seen.warmFromMs) seen.warmSubmitMs.push(ms);
  return ms;
}

function classicTarget(port: number, s: Scenario) {
  return (seen: Seen, next: () => number): Target => ({
    url: `http://127.0.0.1:${port}`,
    requests: [
      {
        method: 'POST',
        path: '/move',
        setupRequest: (req, context: Ctx) => {
          const i = next();
          context.i = i;
          context.t0 = performance.now();
          const m = s.move(i);
          return { ...req, body: JSON.stringify({ ...m, amount: m.amount.toString() }) };
        },
        onResponse: (status, body, context: Ctx) => {
          seen.finalMs.push(submitted(seen, context));
          const outcome =
            status === 200 ? (JSON.parse(body) as { outcome: string }).outcome : 'error';
          seen.outcomes.set(context.i!, outcome);
        },
      },
    ],
  });
}

function ledgerlineTarget(port: number, s: Scenario, ids: readonly string[], key: string) {
  const auth = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
  return (seen: Seen, next: () => number): Target => {
    const final = (context: Ctx, t: { status: string; failure_code: string | null }) => {
      context.final = true;
      seen.finalMs.push(performance.now() - context.t0!);
      seen.outcomes.set(context.i!, t.status === 'completed' ? 'ok' : t.failure_code!);
    };
    return {
      url: `http://127.0.0.1:${port}`,
      requests: [
        {
          method: 'POST',
          setupRequest: (req, context: Ctx) => {
            const i = next();
            context.i = i;
            context.id = undefined;
            context.final = false;
            context.t0 = performance.now();
            const m = s.move(i);
            const amount = m.amount.toString();
            const [path, body] =
              m.from !== null && m.to !== null
                ? [
                    '/v1/transfers',
                    {
                      from_account_id: ids[m.from],
                      to_account_id: ids[m.to],
                      amount,
                      currency: 'EUR',
                    },
                  ]
                : m.from !== null
                  ? ['/v1/withdrawals', { account_id: ids[m.from], amount, currency: 'EUR' }]
                  : ['/v1/deposits', { account_id: ids[m.to!], amount, currency: 'EUR' }];
            return {
              ...req,
              path,
              // RFC 7240: one request that answers with the final transfer when it is final
              // within the wait (200), as the classic strategies answer with their outcome.
              headers: { ...auth, 'idempotency-key': `lab-${i}`, prefer: `wait=${LONG_POLL_S}` },
              body: JSON.stringify(body),
            };
          },
          onResponse: (status, body, context: Ctx) => {
            submitted(seen, context);
            if (status === 202 || status === 200) {
              const t = JSON.parse(body) as { id: string; status: string; failure_code: string };
              context.id = t.id;
              seen.ids.set(context.i!, t.id);
              if (t.status !== 'pending') final(context, t);
            } else {
              let code = 'error';
              try {
                code = (JSON.parse(body) as { code?: string }).code ?? 'error';
              } catch {
                // Not a problem document.
              }
              seen.outcomes.set(context.i!, code);
            }
          },
        },
        {
          method: 'GET',
          // Only a transfer still pending after the POST's wait is read again; otherwise
          // (final, or refused) a falsy answer makes autocannon start over with the next POST.
          setupRequest: (req, context: Ctx) =>
            context.id && !context.final
              ? { ...req, headers: auth, path: `/v1/transfers/${context.id}?wait=${LONG_POLL_S}` }
              : (null as unknown as typeof req),
          onResponse: (status, body, context: Ctx) => {
            if (!context.id || status !== 200) return;
            const t = JSON.parse(body) as { status: string; failure_code: string | null };
            if (t.status !== 'pending') final(context, t);
          },
        },
      ],
    };
  };
}

function expectedBalances(s: Scenario, outcomes: ReadonlyMap<number, string>): bigint[] {
  const expected = [...s.balances];
  for (const [i, o] of outcomes) {
    if (o !== 'ok') continue;
    const m = s.move(i);
    if (m.from !== null) expected[m.from]! -= m.amount;
    if (m.to !== null) expected[m.to]! += m.amount;
  }
  return expected;
}

function record(
  name: StrategyName,
  s: Scenario,
  opts: LabOptions,
  seen: Seen,
  actual: readonly bigint[],
  extra: Partial<LabRecord> & { outcomesMatch: boolean; expected?: bigint[] },
): LabRecord {
  const expected = extra.expected ?? expectedBalances(s, seen.outcomes);
  let drift = 0n;
  let absDrift = 0n;
  actual.forEach((b, i) => {
    const d = b - expected[i]!;
    drift += d;
    absDrift += d < 0n ? -d : d;
  });
  const outcomes: Record<string, number> = {};
  for (const o of seen.outcomes.values()) outcomes[o] = (outcomes[o] ?? 0) + 1;
  const final = (outcomes.ok ?? 0) + (outcomes.insufficient_funds ?? 0);
  let doubles: number | null = null;
  if (opts.scenario === 'double-spend') {
    doubles = 0;
    for (let p = 0; p < opts.doubleSpendPairs; p++) {
      if (seen.outcomes.get(2 * p) === 'ok' && seen.outcomes.get(2 * p + 1) === 'ok') doubles++;
    }
  }
  const submit = [...seen.submitMs].sort((a, b) => a - b);
  const finals = [...seen.finalMs].sort((a, b) => a - b);
  return {
    scenario: opts.scenario,
    strategy: name,
    connections: opts.connections,
    rate: opts.rate ?? null,
    seconds: Math.round(seen.seconds * 100) / 100,
    completed_per_second: Math.round(final / seen.seconds),
    outcomes,
    p50_ms: percentile(submit, 50),
    p99_ms: percentile(submit, 99),
    p99_final_ms: percentile(finals, 99),
    p99_after_warmup_ms:
      seen.warmSubmitMs.length === 0
        ? null
        : percentile(
            [...seen.warmSubmitMs].sort((a, b) => a - b),
            99,
          ),
    moves_due: seen.paced?.due ?? null,
    moves_dropped: seen.paced?.dropped ?? null,
    money_drift: drift.toString(),
    double_spends: doubles,
    correct: absDrift === 0n && extra.outcomesMatch && (doubles ?? 0) === 0,
    batch_legs: extra.batch_legs ?? null,
    ledger_reconciled: extra.ledger_reconciled ?? null,
    web_within_1s: extra.web_within_1s ?? null,
    cpu: seen.cpu,
  };
}

/** The run's processes: its own, then PostgreSQL's and Redis' when local, then the lab's. */
async function cpuParts(
  config: Config,
  pool: pg.Pool,
  redis: Pick<Redis, 'info'>,
  own: readonly (readonly [string, Child])[],
): Promise<CpuParts> {
  const parts = await runParts(
    own.map(([part, child]) => [part, child.proc.pid!] as const),
    { pool, databaseUrl: config.databaseUrl, redis, redisUrl: config.redisUrl },
  );
  return parts.set('load generator', () => Promise.resolve([process.pid]));
}

async function stopAll(children: Child[]): Promise<void> {
  for (const c of children) c.proc.kill('SIGTERM');
  await Promise.all(children.map((c) => c.exited));
}

async function runClassic(name: StrategyName, s: Scenario, opts: LabOptions): Promise<LabRecord> {
  const { config } = opts;
  const pool = createPool(config.databaseUrl);
  const redis = new Redis(config.redisUrl, { keyPrefix: `${config.queuePrefix}:` });
  const children: Child[] = [];
  try {
    await pool.query(CLASSIC_SCHEMA);
    await pool.query(
      `INSERT INTO load_accounts (id, balance)
       SELECT * FROM unnest($1::int[], $2::bigint[])`,
      [s.balances.map((_, i) => i), s.balances.map((b) => b.toString())],
    );
    if (name === 'redis-cas') {
      for (let i = 0; i < s.balances.length; i += 1_000) {
        const chunk = s.balances.slice(i, i + 1_000);
        await redis.mset(chunk.flatMap((b, j) => [`bal:${i + j}`, b.toString()]));
      }
    }
    const port = await freePort();
    children.push(
      spawnScript('test/load/strategy-server.ts', {
        ...process.env,
        STRATEGY: name,
        DATABASE_URL: config.databaseUrl,
        REDIS_URL: config.redisUrl,
        KEY_PREFIX: config.queuePrefix,
        PORT: String(port),
      }),
    );
    await untilHttp(`http://127.0.0.1:${port}/move`, children);
    const seen = await drive(
      classicTarget(port, s),
      s,
      opts,
      `${opts.scenario} ${name}`,
      await cpuParts(config, pool, redis, [['server', children[0]!]]),
    );
    // The server finishes the moves still in flight before anything is read.
    await stopAll(children.splice(0));
    let actual: bigint[];
    if (name === 'redis-cas') {
      actual = [];
      for (let i = 0; i < s.balances.length; i += 1_000) {
        const keys = Array.from(
          { length: Math.min(1_000, s.balances.length - i) },
          (_, j) => `bal:${i + j}`,
        );
        actual.push(...(await redis.mget(keys)).map((v) => BigInt(v ?? '0')));
      }
    } else {
      const rows = await pool.query<{ balance: string }>(
        'SELECT balance FROM load_accounts ORDER BY id',
      );
      actual = rows.rows.map((r) => BigInt(r.balance));
    }
    // The database's log of successes is the record: each account must end at its opening
    // balance plus what was logged for it. Moves still in flight when the load stopped were
    // logged without being reported, so at most one per connection may be missing from the
    // client's count.
    const logged = await pool.query<{ id: number; sum: string; n: string }>(
      'SELECT account_id AS id, sum(amount)::text AS sum, count(*) AS n FROM load_entries GROUP BY 1',
    );
    const expected = [...s.balances];
    let entries = 0;
    for (const r of logged.rows) {
      expected[r.id]! += BigInt(r.sum);
      entries += Number(r.n);
    }
    const toldOk = [...seen.outcomes.values()].filter((o) => o === 'ok').length;
    const entriesPerOk = s.move(0).to === null || s.move(0).from === null ? 1 : 2;
    const loggedOk = entries / entriesPerOk;
    return record(name, s, opts, seen, actual, {
      expected,
      outcomesMatch: loggedOk >= toldOk && loggedOk <= toldOk + opts.connections,
    });
  } finally {
    await stopAll(children);
    redis.disconnect();
    await pool.end();
  }
}

async function runLedgerline(s: Scenario, opts: LabOptions): Promise<LabRecord> {
  const { config } = opts;
  const key = `lab_${randomBytes(16).toString('hex')}`;
  const port = await freePort();
  const env = {
    ...processEnv({ ...config, adminApiKey: key }),
    PORT: String(port),
    LOG_LEVEL: 'warn',
    RATE_LIMIT_PER_SECOND: '1000000',
    RATE_LIMIT_BURST: '1000000',
  };
  const pool = createPool(config.databaseUrl);
  const redis = createProducerConnection(config.redisUrl);
  const dispatcher = new Dispatcher(redis, config.queuePrefix);
  const submitter = new Submitter({ pool, dispatcher, partitions: config.partitions });
  const children: Child[] = [];
  try {
    await new Promise((resolve) => redis.once('ready', resolve));
    children.push(spawnScript('src/cli/web.ts', env), spawnScript('workers/worker.ts', env));
    await untilHttp(`http://127.0.0.1:${port}/healthz`, children);
    // Accounts are made in bulk (the first through the API's own code, for the system
    // accounts), then funded through the engine like any deposit.
    const first = await createAccount(pool, {
      holder: 'lab-0',
      currency: 'EUR',
      overdraftLimit: 0n,
      partitions: config.partitions,
    });
    const rest = await pool.query<{ id: string }>(
      `INSERT INTO accounts (holder, currency)
       SELECT 'lab-' || n, 'EUR' FROM generate_series(1, $1::int - 1) AS n ORDER BY n
       RETURNING id`,
      [s.balances.length],
    );
    const ids = [first.id, ...rest.rows.map((r) => r.id)];
    // Made in bulk by SQL: their partition column is filled as a worker would at start.
    await backfillPartitions(pool, config.partitions, (id) => partitionOf(id, config.partitions));
    const funding = s.balances.flatMap((b, i) =>
      b > 0n
        ? [
            {
              type: 'deposit' as const,
              fromAccountId: null,
              toAccountId: ids[i]!,
              amountMinor: b,
              currency: 'EUR',
              idempotencyScope: 'lab',
            },
          ]
        : [],
    );
    await submitter.submit(funding);
    await drained(pool);
    const loadStarted = await pool.query<{ at: Date }>('SELECT now() AS at');

    const seen = await drive(
      ledgerlineTarget(port, s, ids, key),
      s,
      opts,
      `${opts.scenario} ledgerline`,
      await cpuParts(config, pool, redis, [
        ['web', children[0]!],
        ['worker', children[1]!],
      ]),
    );
    // Read before the web stops: its own time per POST, apart from the kernel's and the client's.
    const webWithin = await servedWithin(`http://127.0.0.1:${port}/metrics`, SUBMIT_BOUND_S);
    // The intake finishes what is in flight, and whatever a client stopped waiting for still
    // finishes: then the database has the last word.
    await stopAll(children.splice(0, 1));
    await drained(pool);
    // Every move the clients sent is found by its Idempotency-Key, also those whose answer the
    // load generator dropped when it stopped.
    const finals = await pool.query<{
      k: string;
      id: string;
      status: string;
      failure_code: string | null;
    }>(
      `SELECT idempotency_key AS k, id, status, failure_code FROM transfers
        WHERE idempotency_scope = 'admin' AND idempotency_key LIKE 'lab-%'`,
    );
    let outcomesMatch = true;
    for (const r of finals.rows) {
      const i = Number(r.k.slice('lab-'.length));
      const truth = r.status === 'completed' ? 'ok' : r.failure_code!;
      const told = seen.outcomes.get(i);
      if (told !== undefined && told !== truth) outcomesMatch = false;
      if (seen.ids.has(i) && seen.ids.get(i) !== r.id) outcomesMatch = false;
      seen.outcomes.set(i, truth);
    }
    const balances = await pool.query<{ id: string; balance: string }>(
      'SELECT id, balance FROM accounts WHERE id = ANY($1::uuid[])',
      [ids],
    );
    const balanceOf = new Map(balances.rows.map((r) => [r.id, BigInt(r.balance)]));
    // A batch is one transaction of the worker (all its partitions): its legs share its time.
    const batches = await pool.query<{ legs: number }>(
      `SELECT count(*)::int AS legs FROM applied_legs
        WHERE applied_at > $1 GROUP BY applied_at ORDER BY 1`,
      [loadStarted.rows[0]!.at],
    );
    const sizes = batches.rows.map((r) => r.legs);
    const report = await reconcile(pool);
    return record(
      'ledgerline',
      s,
      opts,
      seen,
      ids.map((id) => balanceOf.get(id)!),
      {
        outcomesMatch,
        batch_legs: {
          mean:
            Math.round((sizes.reduce((a, b) => a + b, 0) / Math.max(1, sizes.length)) * 10) / 10,
          p50: sizes[Math.floor(sizes.length / 2)] ?? 0,
          max: sizes[sizes.length - 1] ?? 0,
        },
        ledger_reconciled: report.ok,
        web_within_1s: webWithin,
      },
    );
  } finally {
    await stopAll(children);
    await dispatcher.close();
    redis.disconnect();
    await pool.end();
  }
}

export async function drained(pool: pg.Pool): Promise<void> {
  const deadline = Date.now() + DRAIN_MS_MAX;
  for (;;) {
    // Asked of the sweep's partial indexes: a count over the table, ten times a second, took
    // 60 ms of PostgreSQL each while a worker drained 100,000 transfers (a third of a core).
    const r = await pool.query<{ busy: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM transfers WHERE status = 'accepted')
           OR EXISTS (SELECT 1 FROM transfers WHERE status = 'debited' AND failure_code IS NULL)
           OR EXISTS (SELECT 1 FROM transfers WHERE status = 'debited' AND failure_code IS NOT NULL)
           AS busy`,
    );
    if (!r.rows[0]!.busy) return;
    if (Date.now() > deadline) {
      const left = await pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM transfers WHERE status IN ('accepted', 'debited')`,
      );
      throw new Error(`${left.rows[0]!.n} transfers never became final`);
    }
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** Runs one scenario through each strategy in turn, each on fresh stores. */
export async function runScenario(
  opts: LabOptions,
): Promise<{ describe: string; records: LabRecord[] }> {
  const s = scenario(opts.scenario, opts);
  const records: LabRecord[] = [];
  for (const strategy of opts.strategies) {
    if (opts.signal?.aborted) break;
    await freshStores(opts.config);
    records.push(
      strategy === 'ledgerline'
        ? await runLedgerline(s, opts)
        : await runClassic(strategy, s, opts),
    );
  }
  return { describe: s.describe, records };
}
