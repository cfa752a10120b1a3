// One classic strategy served over HTTP by a bare Hono app on @hono/node-server (one process, the
// same PostgreSQL pool size as Ledgerline's web; no authentication, validation, idempotency, audit
// or metrics, all of which Ledgerline's web does). `POST /move {from, to, amount}` answers
// `{outcome}`. Run by the lab as a child process.
import { Hono } from 'hono';
import { Redis } from 'ioredis';
import { POOL_SIZE_MAX } from '../../src/config/limits';
import { createPool } from '../../src/db/db';
import { listenHttp } from '../../src/http/listen';
import { CLASSIC, CLASSIC_NAMES, RedisPool, type ClassicName } from './strategies';

const name = process.env.STRATEGY as ClassicName;
if (!CLASSIC_NAMES.includes(name)) throw new Error(`unknown strategy ${name}`);
const strategy = CLASSIC[name];
const pool = createPool(process.env.DATABASE_URL!, POOL_SIZE_MAX);
const redis = new RedisPool(
  Array.from(
    { length: POOL_SIZE_MAX },
    () =>
      new Redis(process.env.REDIS_URL!, {
        keyPrefix: `${process.env.KEY_PREFIX}:`,
        maxRetriesPerRequest: 1,
      }),
  ),
);

/** Moves being made now: they run to the end even if their client hung up. */
let inFlight = 0;
const app = new Hono();
app.post('/move', async (c) => {
  const body = await c.req.json<{ from: number | null; to: number | null; amount: string }>();
  inFlight += 1;
  try {
    const outcome = await strategy(
      { pool, redis },
      { from: body.from, to: body.to, amount: BigInt(body.amount) },
    );
    return c.json({ outcome });
  } catch (err) {
    return c.json({ outcome: 'error', message: (err as Error).message }, 500);
  } finally {
    inFlight -= 1;
  }
});

// The same listen backlog as Ledgerline's web: a flash crowd's connects are not dropped.
const { server, port } = await listenHttp(app.fetch, {
  port: Number(process.env.PORT),
  hostname: '127.0.0.1',
});
console.log(`strategy ${name} listening on ${port}`);
/** Moves still in flight finish before the pools close, so the lab reads a quiet database. */
const STOP_MS_MAX = 10_000;
process.on('SIGTERM', () => {
  const exit = () => {
    for (const r of redis.all) r.disconnect();
    process.exit(0);
  };
  setTimeout(exit, STOP_MS_MAX).unref();
  server.close();
  const whenQuiet = setInterval(() => {
    if (inFlight > 0) return;
    clearInterval(whenQuiet);
    void pool.end().finally(exit);
  }, 10);
});
