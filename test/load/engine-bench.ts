// `npm run bench -- intake|drain [--seconds N] [--transfers N]`: the two halves of Ledgerline
// measured alone. `intake`: the web process with no worker, POSTs of a hot-source transfer by 200
// autocannon connections; reports accepted/s. `drain`: N transfers recorded with no worker
// running, then one worker process started; reports transfers applied per second.
import { backfillPartitions } from '../../src/partitions/interest';
import { partitionOf } from '../../src/partitions/routing';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { createAccount } from '../../src/accounts/accounts.repository';
import { runMain } from '../../src/cli/preflight';
import { loadConfig } from '../../src/config/env';
import { createPool } from '../../src/db/db';
import { createProducerConnection, Dispatcher } from '../../src/queue/queues';
import { Submitter, type Command } from '../../src/transfers/submit';
import { processEnv, spawnScript } from '../support/processes';
import { freePort } from '../support/servers';
import { drained, dropStores, freshStores, untilHttp } from './load';

const TRANSFERS_MAX = 1_000_000;
const SECONDS_MAX = 600;
const PAYEES = 200;

runMain(async () => {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      seconds: { type: 'string', default: '10' },
      transfers: { type: 'string', default: '100000' },
      connections: { type: 'string', default: '200' },
    },
  });
  const mode = positionals[0];
  if (mode !== 'intake' && mode !== 'drain') throw new Error('say intake or drain');
  const seconds = Math.min(SECONDS_MAX, Number(values.seconds));
  const transfers = Math.min(TRANSFERS_MAX, Number(values.transfers));
  const base = loadConfig();
  const url = new URL(base.databaseUrl);
  url.pathname = '/ledgerline_bench';
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
    if (mode === 'intake') {
      const port = await freePort();
      const web = spawnScript('src/cli/web.ts', { ...env, PORT: String(port) });
      try {
        await untilHttp(`http://127.0.0.1:${port}/healthz`, [web]);
        let n = 0;
        const result = await autocannon({
          url: `http://127.0.0.1:${port}`,
          connections: Number(values.connections),
          duration: seconds,
          requests: [
            {
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
            },
          ],
        });
        const accepted = result['2xx'];
        console.log(
          `intake alone: ${Math.round(accepted / seconds)} accepted/s (${accepted} in ${seconds} s, ` +
            `${result.non2xx} refused), p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms`,
        );
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
      try {
        await drained(pool);
        const s = (performance.now() - started) / 1000;
        console.log(
          `one worker drained ${transfers} transfers (${transfers * 2} legs less one-hop ones) in ` +
            `${s.toFixed(1)} s, start-up included: ${Math.round(transfers / s)} transfers/s`,
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
