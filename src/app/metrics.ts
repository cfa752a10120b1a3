// Prometheus metrics for the web process: requests, latencies, submissions and queue depths.
import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Dispatcher } from '../queue/queues';

export type Metrics = ReturnType<typeof createMetrics>;

export function createMetrics(opts: { dispatcher: Dispatcher; partitions: number }) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'ledgerline_http_requests_total',
    help: 'HTTP requests by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'ledgerline_http_request_duration_seconds',
    help: 'HTTP request latency by route',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const submissions = new Counter({
    name: 'ledgerline_submissions_total',
    help: 'Money-movement submissions by type and result (accepted, replayed, reused)',
    labelNames: ['type', 'result'] as const,
    registers: [registry],
  });
  const refusals = new Counter({
    name: 'ledgerline_admission_refusals_total',
    help: 'Requests refused at once, recording nothing: overloaded (intake or backlog full), rate_limited, unavailable (Redis or PostgreSQL down)',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'ledgerline_queue_jobs',
    help: 'Jobs per partition queue and state, read at scrape time',
    labelNames: ['partition', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      await Promise.all(
        Array.from({ length: opts.partitions }, async (_, p) => {
          const counts = await opts.dispatcher
            .queue(p)
            .getJobCounts('waiting', 'active', 'delayed', 'failed');
          for (const [state, n] of Object.entries(counts))
            this.set({ partition: String(p), state }, n);
        }),
      );
    },
  });

  // Label children are looked up once per route and status, not hashed again per request.
  const durationOf = new Map<string, Histogram.Internal<'method' | 'route'>>();
  const countOf = new Map<string, Counter.Internal>();
  const middleware: MiddlewareHandler = async function measure(c, next) {
    const startedMs = performance.now();
    await next();
    const method = c.req.method;
    const route = routePath(c) || 'unmatched';
    const key = `${method} ${route}`;
    let d = durationOf.get(key);
    if (!d) durationOf.set(key, (d = duration.labels({ method, route })));
    d.observe((performance.now() - startedMs) / 1000);
    const status = c.res.status;
    const countKey = `${key} ${status}`;
    let n = countOf.get(countKey);
    if (!n) countOf.set(countKey, (n = requests.labels({ method, route, status: String(status) })));
    n.inc();
  };
  return { registry, middleware, submissions, refusals };
}
