// The web counts requests, their latency, submissions and refusals in its own numbers
// (RouteStats, deferredCounter); these tests hold it to what prom-client writes for the same
// observations, so that scrapers, dashboards and the lab read every family exactly as before.
import fc from 'fast-check';
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DURATION_BUCKETS_S, RouteStats, deferredCounter } from '../../src/app/metrics';

type Observation = { method: string; route: string; status: number; seconds: number };

/** What prom-client writes for the observations, as RouteStats' families are named. */
async function promClientText(observations: readonly Observation[]): Promise<string> {
  const registry = new Registry();
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
    buckets: DURATION_BUCKETS_S,
    registers: [registry],
  });
  for (const o of observations) {
    requests.inc({ method: o.method, route: o.route, status: String(o.status) });
    duration.observe({ method: o.method, route: o.route }, o.seconds);
  }
  return registry.metrics();
}

/** Each family's lines, sorted: the order of series within a family is not part of the format. */
function families(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current = '';
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const help = /^# HELP (\S+)/.exec(line);
    if (help) current = help[1]!;
    out.set(current, [...(out.get(current) ?? []), line]);
  }
  for (const lines of out.values()) lines.sort();
  return out;
}

const observation = fc.record({
  method: fc.constantFrom('GET', 'POST', 'DELETE'),
  route: fc.oneof(
    fc.constantFrom('/v1/transfers', '/v1/transfers/:id', 'unmatched'),
    // Whatever a route may hold, escaped as prom-client escapes it.
    fc.string({ maxLength: 12 }),
  ),
  status: fc.constantFrom(200, 202, 400, 404, 429, 503),
  // Latencies on every side of every bound, the bounds themselves included.
  seconds: fc.oneof(
    fc.double({ min: 0, max: 60, noNaN: true }),
    fc.constantFrom(...DURATION_BUCKETS_S),
  ),
});

describe('RouteStats', () => {
  it('writes what prom-client writes for the same requests', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(observation, { maxLength: 60 }), async (observations) => {
        const stats = new RouteStats();
        for (const o of observations) stats.observe(o.method, o.route, o.status, o.seconds);
        expect(families(stats.render())).toEqual(families(await promClientText(observations)));
      }),
      { numRuns: 200 },
    );
  });

  it('counts a slow and a fast request in their buckets and by status', () => {
    const stats = new RouteStats();
    stats.observe('POST', '/v1/transfers', 202, 0.003);
    stats.observe('POST', '/v1/transfers', 503, 2);
    const text = stats.render();
    const labels = 'method="POST",route="/v1/transfers"';
    expect(text).toContain(`ledgerline_http_requests_total{${labels},status="202"} 1`);
    expect(text).toContain(`ledgerline_http_requests_total{${labels},status="503"} 1`);
    expect(text).toContain(
      `ledgerline_http_request_duration_seconds_bucket{le="0.001",${labels}} 0`,
    );
    expect(text).toContain(
      `ledgerline_http_request_duration_seconds_bucket{le="0.005",${labels}} 1`,
    );
    expect(text).toContain(`ledgerline_http_request_duration_seconds_bucket{le="1",${labels}} 1`);
    expect(text).toContain(`ledgerline_http_request_duration_seconds_bucket{le="2.5",${labels}} 2`);
    expect(text).toContain(
      `ledgerline_http_request_duration_seconds_bucket{le="+Inf",${labels}} 2`,
    );
    expect(text).toContain(`ledgerline_http_request_duration_seconds_count{${labels}} 2`);
    expect(text).toContain(`ledgerline_http_request_duration_seconds_sum{${labels}} 2.003`);
  });
});

describe('deferredCounter', () => {
  it('shows at each scrape what a prom-client counter counted directly shows', async () => {
    const label = fc.constantFrom('transfer', 'deposit', 'a "quoted" \\ one', '');
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(fc.record({ type: label, result: label }), { maxLength: 20 }), {
          maxLength: 4,
        }),
        async (rounds) => {
          const config = { name: 'c_total', help: 'h', labelNames: ['type', 'result'] as const };
          const deferredRegistry = new Registry();
          const deferred = deferredCounter({ ...config, registers: [deferredRegistry] });
          const directRegistry = new Registry();
          const direct = new Counter({ ...config, registers: [directRegistry] });
          // Scraped between rounds of increments: each scrape hands over only what is new.
          for (const round of rounds) {
            for (const labels of round) {
              deferred.inc(labels);
              direct.inc(labels);
            }
            expect(families(await deferredRegistry.metrics())).toEqual(
              families(await directRegistry.metrics()),
            );
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});
