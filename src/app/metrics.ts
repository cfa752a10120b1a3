// Prometheus metrics for the web process: requests, latencies, submissions and queue depths.
import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import {
  Counter,
  Gauge,
  Registry,
  collectDefaultMetrics,
  type CounterConfiguration,
  type LabelValues,
} from 'prom-client';
import type { Dispatcher } from '../queue/queues';

export type Metrics = ReturnType<typeof createMetrics>;

export function createMetrics(opts: { dispatcher: Dispatcher; partitions: number }) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const submissions = deferredCounter({
    name: 'ledgerline_submissions_total',
    help: 'Money-movement submissions by type and result (accepted, replayed, reused)',
    labelNames: ['type', 'result'] as const,
    registers: [registry],
  });
  const refusals = deferredCounter({
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

  const http = new RouteStats();
  const middleware: MiddlewareHandler = async function measure(c, next) {
    const startedMs = performance.now();
    await next();
    http.observe(
      c.req.method,
      routePath(c) || 'unmatched',
      c.res.status,
      (performance.now() - startedMs) / 1000,
    );
  };
  /** The exposition: the registry's metrics, then the requests'. */
  const render = async () => `${await registry.metrics()}\n${http.render()}`;
  /** `requests` counts what is served outside Hono (the money-movement lane) as the middleware does. */
  return { registry, render, middleware, submissions, refusals, requests: http };
}

/** What a request may do to a counter: count one, by its labels. */
export type CountsOne<T extends string> = { inc(labels: Record<T, string>): void };

/**
 * A prom-client counter counted once per request: each increment is a map lookup and an
 * addition, and prom-client (which validates and hashes the labels on every `inc`) hears the
 * totals when it is scraped, through the counter's `collect`.
 */
export function deferredCounter<T extends string>(
  config: Omit<CounterConfiguration<T>, 'collect'> & { labelNames: readonly T[] },
): CountsOne<T> {
  const pending = new Map<string, { labels: LabelValues<T>; n: number }>();
  new Counter<T>({
    ...config,
    collect() {
      for (const p of pending.values()) {
        if (p.n === 0) continue;
        this.inc(p.labels, p.n);
        p.n = 0;
      }
    },
  });
  return {
    inc(labels) {
      // Label values here are the code's own words (types, results, codes), never a NUL.
      let key = '';
      for (const name of config.labelNames) key += `${labels[name]}\u0000`;
      const p = pending.get(key);
      if (p) p.n += 1;
      else pending.set(key, { labels: { ...labels }, n: 1 });
    },
  };
}

const REQUESTS_NAME = 'ledgerline_http_requests_total';
const REQUESTS_HELP = 'HTTP requests by route and status';
const DURATION_NAME = 'ledgerline_http_request_duration_seconds';
const DURATION_HELP = 'HTTP request latency by route';
/** Upper bounds of the latency buckets, in seconds. */
export const DURATION_BUCKETS_S = [
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

type RouteSeries = {
  labels: string;
  /** Per bucket, not cumulative; the last slot is past the largest bound. */
  buckets: Float64Array;
  sum: number;
  count: number;
  statuses: Map<number, number>;
};

/** A label value as Prometheus' text format wants it (prom-client's escaping). */
function labelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/**
 * Every request's count (by method, route and status) and latency (by method and route) in
 * plain per-route numbers: a request costs a map lookup and a few additions, where prom-client
 * validates and hashes its labels on every observe and inc (about 2.5 % of the web's CPU in its
 * profile). Written out in Prometheus' text format at scrape time, as prom-client writes a
 * counter and a histogram, so the two families read exactly as they did.
 */
export class RouteStats {
  private readonly routes = new Map<string, RouteSeries>();

  observe(method: string, route: string, status: number, seconds: number): void {
    const key = `${method} ${route}`;
    let series = this.routes.get(key);
    if (!series) {
      series = {
        labels: `method="${labelValue(method)}",route="${labelValue(route)}"`,
        buckets: new Float64Array(DURATION_BUCKETS_S.length + 1),
        sum: 0,
        count: 0,
        statuses: new Map(),
      };
      this.routes.set(key, series);
    }
    let bucket = 0;
    while (bucket < DURATION_BUCKETS_S.length && seconds > DURATION_BUCKETS_S[bucket]!) bucket++;
    series.buckets[bucket]! += 1;
    series.sum += seconds;
    series.count += 1;
    series.statuses.set(status, (series.statuses.get(status) ?? 0) + 1);
  }

  render(): string {
    const requests = [
      `# HELP ${REQUESTS_NAME} ${REQUESTS_HELP}`,
      `# TYPE ${REQUESTS_NAME} counter`,
    ];
    const duration = [
      `# HELP ${DURATION_NAME} ${DURATION_HELP}`,
      `# TYPE ${DURATION_NAME} histogram`,
    ];
    for (const s of this.routes.values()) {
      for (const [status, n] of s.statuses) {
        requests.push(`${REQUESTS_NAME}{${s.labels},status="${status}"} ${n}`);
      }
      let cumulative = 0;
      DURATION_BUCKETS_S.forEach((le, i) => {
        cumulative += s.buckets[i]!;
        duration.push(`${DURATION_NAME}_bucket{le="${le}",${s.labels}} ${cumulative}`);
      });
      duration.push(`${DURATION_NAME}_bucket{le="+Inf",${s.labels}} ${s.count}`);
      duration.push(`${DURATION_NAME}_sum{${s.labels}} ${s.sum}`);
      duration.push(`${DURATION_NAME}_count{${s.labels}} ${s.count}`);
    }
    return `${requests.join('\n')}\n\n${duration.join('\n')}\n`;
  }
}
