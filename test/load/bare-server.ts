// The intake bench's yardstick: a bare Hono app on Node's HTTP server (the same listen helper and
// Node flags as Ledgerline's web) that reads a money movement's JSON body and answers 202 with a
// small JSON body: no authentication, validation, idempotency, recording, queue or metrics. The
// host's speed moves by several times within a day, so the bench measures this first, in the same
// run, with the same requests and load generator, and reports the intake as a share of it.
import { randomUUID } from 'node:crypto';
import { Hono } from 'hono';
import { listenHttp } from '../../src/http/listen';

const app = new Hono();
app.get('/healthz', (c) => c.json({ ok: true }));
app.post('/v1/transfers', async (c) => {
  const body = await c.req.json<{ amount?: unknown }>();
  return c.json({ id: randomUUID(), status: 'pending', amount: body.amount }, 202);
});
const { server } = await listenHttp(app.fetch, {
  port: Number(process.env.PORT),
  hostname: '127.0.0.1',
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
