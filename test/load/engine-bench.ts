// `npm run bench -- intake|drain|refusals [--seconds N] [--transfers N] [--connections N]
// [--rate R]`: the two halves of Ledgerline measured alone, and its admission control.
// `intake`: the web process with no worker, POSTs of a hot-source transfer by 200 connections
// (a closed loop; with --rate, the lab's paced open loop); reports accepted/s. `drain`: N transfers recorded with no worker running, then one
// worker process started; reports transfers applied per second. `refusals`: the hot partition's
// backlog filled to its cap with no worker running, then the same POSTs (say `--connections
// 1000`): every one must be refused at once with 503 and Retry-After, recording nothing (the run
// fails otherwise); reports how fast, as the client and as the web itself saw it. Each run makes
// its own database, DATABASE_URL's name with `_bench` after it, and queue prefix, and drops both.
import { backfillPartitions } from '../../src/partitions/interest';
import { partitionOf } from '../../src/partitions/routing';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import type pg from 'pg';
import { createAccount } from '../../src/accounts/accounts.repository';
import { PARTITION_BACKLOG_LEGS_MAX } from '../../src/config/limits';
import { runMain } from '../../src/cli/preflight';
import { loadConfig } from '../../src/config/env';
import { createPool } from '../../src/db/db';
import { createProducerConnection, Dispatcher } from '../../src/queue/queues';
import { Submitter, type Command } from '../../src/transfers/submit';
import { processEnv, spawnScript } from '../support/processes';
import { freePort } from '../support/servers';
import {
  WARMUP_MS_DEFAULT,
  drained,
  dropStores,
  freshStores,
  servedWithin,
  untilHttp,
} from './load';
import { CpuWindow, runParts } from './cpu';
import { paced } from './paced';

const TRANSFERS_MAX = 1_000_000;
const SECONDS_MAX = 600;
const PAYEES = 200;
const RATE_MAX = 100_000;
/** DESIGN.md: what is refused is refused within this. */
const REFUSAL_BOUND_S = 0.05;

/** What the load generator saw: answers by class, and their latencies in ms. */
type Driven = {
  ok: number;
  refused: number;
  total: number;
  failed: string;
  p50: number;
  p99: number;
  max: number;
  /** Paced runs: the p99 of the requests due after the warm-up (the first 2 s). */
  p99AfterWarmup?: number;
};

async function countTransfers(pool: pg.Pool): Promise<number> {
  const res = await pool.query<{ n: string }>('SELECT count(*) AS n FROM transfers');
  return Number(res.rows[0]!.n);
}

runMain(async () => {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      seconds: { type: 'string', default: '10' },
      transfers: { type: 'string', default: '100000' },
      connections: { type: 'string', default: '200' },
      rate: { type: 'string' },
    },
  });
  const mode = positionals[0];
  if (mode !== 'intake' && mode !== 'drain' && mode !== 'refusals') {
    throw new Error('say intake, drain or refusals');
  }
  const seconds = Math.min(SECONDS_MAX, Number(values.seconds));
  const transfers = Math.min(TRANSFERS_MAX, Number(values.transfers));
  const base = loadConfig();
  const url = new URL(base.databaseUrl);
  // Its own database beside DATABASE_URL's (ledgerline_bench by default), made and dropped here.
  url.pathname = `${url.pathname}_bench`;
  const config = { ...base, databaseUrl: url.toString(), queuePrefix: `${base.queuePrefix}_bench` };
  await freshStores(config);
  const pool = createPool(config.databaseUrl);
  const redis = createProducerConnection(config.redisUrl);
  await new Promise((resolve) => redis.once('ready', resolve));
  const dispatcher = new Dispatcher(redis, config.queuePrefix);
  const submitter = new Submitter({ pool, dispatcher, partitions: config.partitions });
  const key = `bench_${randomBytes(16).toString('hex')}`;
  const env = {
    ...processEnv({ ...config, adminApiKey: key }),
    LOG_LEVEL: 'warn',
    RATE_LIMIT_PER_SECOND: '1000000',
    RATE_LIMIT_BURST: '1000000',
  };
  try {
    const payer = await createAccount(pool, {
      holder: 'payer',
      currency: 'EUR',
      overdraftLimit: 0n,
      partitions: config.partitions,
    });
    const payees = await pool.query<{ id: string }>(
      `INSERT INTO accounts (holder, currency) SELECT 'payee', 'EUR' FROM generate_series(1, $1::int)
       RETURNING id`,
      [PAYEES],
    );
    const to = payees.rows.map((r) => r.id);
    // Made in bulk by SQL: their partition column is filled as a worker would at start.
    await backfillPartitions(pool, config.partitions, (id) => partitionOf(id, config.partitions));
    /**
     * The POSTs of both HTTP modes, the hot-source transfer, each with its own key: a closed
     * loop over the connections (autocannon), or with `--rate` the lab's paced open loop (each
     * latency counted from when its request was due).
     */
    const hotSource = async (
      port: number,
      onResponse?: (status: number, headers: Headers) => void,
    ): Promise<Driven> => {
      let n = 0;
      const request: autocannon.Request = {
        method: 'POST',
        path: '/v1/transfers',
        setupRequest: (req) => {
          const i = n++;
          return {
            ...req,
            headers: {
              authorization: `Bearer ${key}`,
              'content-type': 'application/json',
              'idempotency-key': `bench-${i}`,
            },
            body: JSON.stringify({
              from_account_id: payer.id,
              to_account_id: to[i % PAYEES],
              amount: '1',
              currency: 'EUR',
            }),
          };
        },
      };
      const headersOf = (raw: unknown) => new Headers(raw as Record<string, string>);
      const url = `http://127.0.0.1:${port}`;
      if (!values.rate) {
        const result = await autocannon({
          url,
          connections: Number(values.connections),
          duration: seconds,
          requests: [
            {
              ...request,
              onResponse: (status, _body, _context, headers) =>
                onResponse?.(status, headersOf(headers)),
            },
          ],
        });
        return {
          ok: result['2xx'],
          refused: result.non2xx,
          total: result.requests.total,
          failed: `${result.errors} errors (${result.timeouts} timeouts)`,
          p50: result.latency.p50,
          p99: result.latency.p99,
          max: result.latency.max,
        };
      }
      const latencies: number[] = [];
      const warm: number[] = [];
      const warmFromMs = performance.now() + WARMUP_MS_DEFAULT;
      let ok = 0;
      let refused = 0;
      const { errors, due, dropped } = await paced({
        url,
        connections: Number(values.connections),
        rate: Math.min(RATE_MAX, Number(values.rate)),
        seconds,
        headers: {},
        requests: [
          {
            ...request,
            onResponse: (status, _body, context: { dueMs?: number }, headers) => {
              const ms = performance.now() - context.dueMs!;
              latencies.push(ms);
              if (context.dueMs! >= warmFromMs) warm.push(ms);
              if (status >= 200 && status < 300) ok += 1;
              else refused += 1;
              onResponse?.(status, headersOf(headers));
            },
          },
        ],
        timeoutS: 10,
        due: (context, dueMs) => ((context as { dueMs?: number }).dueMs = dueMs),
      });
      latencies.sort((a, b) => a - b);
      warm.sort((a, b) => a - b);
      const at = (q: number, sorted = latencies) =>
        Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
      return {
        ok,
        refused,
        total: latencies.length,
        // Moves due that never started (every connection busy when the time was up) have no
        // latency above: the count says how much of the rate the web did not take.
        failed: `${errors} errors, ${dropped} of ${due} due never sent`,
        p50: at(0.5),
        p99: at(0.99),
        max: Math.round(latencies.at(-1) ?? 0),
        p99AfterWarmup: at(0.99, warm),
      };
    };
    if (mode === 'intake' || mode === 'refusals') {
      let before = 0;
      if (mode === 'refusals') {
        // The hot partition's backlog at its cap, recorded as the intake records (no worker).
        await submitter.submit(
          Array.from({ length: PARTITION_BACKLOG_LEGS_MAX }, () => ({
            type: 'transfer' as const,
            fromAccountId: payer.id,
            toAccountId: to[0]!,
            amountMinor: 1n,
            currency: 'EUR',
            idempotencyScope: 'bench',
          })),
        );
        before = await countTransfers(pool);
        console.log(`recorded ${before} transfers: the payer's partition is at its backlog cap`);
      }
      let yardstick: number | undefined;
      if (mode === 'intake') {
        // The host's speed first: a bare Hono server, the same requests and generator.
        const barePort = await freePort();
        const bare = spawnScript('test/load/bare-server.ts', { PORT: String(barePort) });
        try {
          await untilHttp(`http://127.0.0.1:${barePort}/healthz`, [bare]);
          yardstick = Math.round((await hotSource(barePort)).ok / seconds);
          console.log(
            `yardstick: a bare Hono server answered ${yardstick} of these POSTs a second`,
          );
        } finally {
          bare.proc.kill('SIGTERM');
          await bare.exited;
        }
      }
      const port = await freePort();
      const web = spawnScript('src/cli/web.ts', { ...env, PORT: String(port) });
      try {
        await untilHttp(`http://127.0.0.1:${port}/healthz`, [web]);
        if (mode === 'intake') {
          // With no worker the hot partition's backlog reaches its cap (50,000 legs) within a few
          // seconds at full speed, and every request after that is refused: the rate that
          // counts is then the one until the first refusal.
          const startedMs = performance.now();
          let acceptedBeforeCap = 0;
          let capMs: number | undefined;
          const result = await hotSource(port, (status) => {
            if (status === 202 && capMs === undefined) acceptedBeforeCap += 1;
            if (status === 503) capMs ??= performance.now() - startedMs;
          });
          const accepted = result.ok;
          const share =
            yardstick === undefined
              ? ''
              : `; ${((accepted / seconds / yardstick) * 100).toFixed(0)} % of the yardstick`;
          const untilCap =
            capMs === undefined
              ? ''
              : `; backlog cap reached after ${(capMs / 1000).toFixed(1)} s: ` +
                `${Math.round(acceptedBeforeCap / (capMs / 1000))} accepted/s until then`;
          console.log(
            `intake alone: ${Math.round(accepted / seconds)} accepted/s (${accepted} in ${seconds} s, ` +
              `${result.refused} refused), p50 ${result.p50} ms, p99 ${result.p99} ms` +
              share +
              untilCap,
          );
        } else {
          const answers = new Map<string, number>();
          const result = await hotSource(port, (status, headers) => {
            const kind =
              status === 503 && headers.get('retry-after')
                ? '503 with Retry-After'
                : String(status);
            answers.set(kind, (answers.get(kind) ?? 0) + 1);
          });
          const recorded = (await countTransfers(pool)) - before;
          // The web's own time per answer (its histogram), apart from the time a request waits
          // in the kernel and the load generator before the web reads it.
          const served = await servedWithin(`http://127.0.0.1:${port}/metrics`, REFUSAL_BOUND_S);
          console.log(
            `refusals at the backlog cap, ${values.connections} connections: ` +
              `${Math.round(result.total / seconds)} answers/s, ` +
              `p50 ${result.p50} ms, p99 ${result.p99} ms, max ${result.max} ms, ` +
              (result.p99AfterWarmup === undefined
                ? ''
                : `p99 after the first 2 s ${result.p99AfterWarmup} ms, `) +
              `${result.failed}; web's own time within ` +
              `${REFUSAL_BOUND_S * 1000} ms: ${served}; ` +
              `answers ${JSON.stringify(Object.fromEntries(answers))}; recorded meanwhile: ${recorded}`,
          );
          if (recorded !== 0 || answers.size !== 1 || !answers.has('503 with Retry-After')) {
            process.exitCode = 1;
          }
        }
      } finally {
        web.proc.kill('SIGTERM');
        await web.exited;
      }
    } else {
      const commands: Command[] = [
        {
          type: 'deposit',
          fromAccountId: null,
          toAccountId: payer.id,
          amountMinor: BigInt(transfers) * 100n,
          currency: 'EUR',
          idempotencyScope: 'bench',
        },
        ...Array.from({ length: transfers }, (_, i) => ({
          type: 'transfer' as const,
          fromAccountId: payer.id,
          toAccountId: to[i % PAYEES]!,
          amountMinor: 100n,
          currency: 'EUR',
          idempotencyScope: 'bench',
        })),
      ];
      await submitter.submit(commands);
      console.log(
        `recorded ${transfers} transfers from one payer to ${PAYEES} payees; starting a worker`,
      );
      const started = performance.now();
      const worker = spawnScript('workers/worker.ts', env);
      // Where the CPU goes: the worker's, PostgreSQL's and Redis' time per transfer drained.
      const parts = await runParts([['worker', worker.proc.pid!]], {
        pool,
        databaseUrl: config.databaseUrl,
        redis,
        redisUrl: config.redisUrl,
      });
      let done = 0;
      const cpu = new CpuWindow(parts, 0, () => done);
      try {
        await drained(pool);
        done = transfers;
        const s = (performance.now() - started) / 1000;
        const used = await cpu.end();
        console.log(
          `one worker drained ${transfers} transfers (${transfers * 2} legs less one-hop ones) in ` +
            `${s.toFixed(1)} s, start-up included: ${Math.round(transfers / s)} transfers/s` +
            (used
              ? `; CPU ms a transfer, start-up included: ${Object.entries(used.ms_per_move)
                  .map(([part, ms]) => `${part} ${ms}`)
                  .join(', ')}, total ${used.total_ms_per_move} (machine idle ` +
                `${used.machine_idle_pct} %)`
              : ''),
        );
      } finally {
        worker.proc.kill('SIGTERM');
        await worker.exited;
      }
    }
  } finally {
    await dispatcher.close();
    redis.disconnect();
    await pool.end();
    await dropStores(config);
  }
});
