// Proves that every metric family of a worker appears at METRICS_PORT and moves under a short
// load (transfers by type and outcome, batches, envelopes in and out, backlog and its oldest leg,
// money in flight, leases), that the web counts its admission refusals, and that the Grafana
// dashboard in docs parses and reads only metrics the processes export.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { partitionOf } from '../../src/partitions/routing';
import { FAULT_TIMING, kill, startWorkerChild } from '../support/fleet';
import { drained, expectInvariants } from '../support/invariants';
import type { Child } from '../support/processes';
import { freePort, until } from '../support/servers';
import { createTestEnv, deposit, transfer, type TestEnv } from '../support/test-env';
import { createTestWeb } from '../support/web';

let env: TestEnv;
let worker: Child;
let metricsUrl: string;

beforeAll(async () => {
  env = await createTestEnv({ partitions: 4 });
  const port = await freePort();
  metricsUrl = `http://127.0.0.1:${port}/metrics`;
  // Quick leases, but no sweep during the test: a sweep would apply a held leg in memory.
  worker = startWorkerChild(env.config, {
    METRICS_PORT: String(port),
    ...FAULT_TIMING,
    SWEEP_AFTER_MS: '60000',
  });
});
afterAll(async () => {
  if (worker) await kill(worker);
  await env?.cleanup();
});

/** Prometheus text as sample name with labels → value. */
async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(url)).text();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}
const total = (s: Map<string, number>, prefix: string) =>
  [...s].filter(([k]) => k === prefix || k.startsWith(`${prefix}{`)).reduce((n, [, v]) => n + v, 0);

const WORKER_FAMILIES = [
  'ledgerline_worker_transfers_finished_total',
  'ledgerline_worker_legs_applied_total',
  'ledgerline_worker_batch_legs_count',
  'ledgerline_worker_batch_apply_seconds_count',
  'ledgerline_worker_envelopes_received_total',
  'ledgerline_worker_envelopes_sent_total',
  'ledgerline_worker_legs_handed_off_total',
  'ledgerline_worker_fenced_batches_total',
  'ledgerline_worker_partitions_owned',
  'ledgerline_worker_backlog_legs',
  'ledgerline_worker_backlog_oldest_seconds',
  'ledgerline_money_in_flight_minor',
];

it('every worker family appears at METRICS_PORT and moves under load', async () => {
  await until('the worker to serve its metrics', async () => (await fetch(metricsUrl)).ok, 60_000);
  // A second worker, in this process, so that the child owns half of the partitions and sends
  // the credit legs of the other half through Redis.
  await env.startWorker();
  const mine = async () =>
    (
      await env.pool.query<{ id: number }>(`SELECT id FROM partitions WHERE owner LIKE $1`, [
        `%:${worker.proc.pid}:%`,
      ])
    ).rows.map((r) => r.id);
  await until('a fair share', async () => (await mine()).length === 2);
  const childPartitions = await mine();
  const before = await scrape(metricsUrl);
  const declared = await (await fetch(metricsUrl)).text();
  for (const family of WORKER_FAMILIES) {
    expect(declared, family).toContain(`# TYPE ${family.replace(/_count$/, '')} `);
  }
  expect(total(before, 'ledgerline_worker_partitions_owned')).toBe(2);

  // Payers on the child's partitions, payees on the others; the payees' queues paused, so the
  // credit legs wait in Redis while their money is in flight.
  const payers: string[] = [];
  const payees: string[] = [];
  while (payers.length < 3 || payees.length < 3) {
    const a = (await env.account()).id;
    (childPartitions.includes(partitionOf(a, 4)) ? payers : payees).push(a);
  }
  const funded = await env.submit(payers.slice(0, 3).map((id) => deposit(id, 1_000n)));
  await env.waitForFinal(funded.map((t) => t.id));
  const paused = [0, 1, 2, 3].filter((p) => !childPartitions.includes(p));
  for (const p of paused) await env.dispatcher.queue(p).pause();
  const moves = await env.submit([
    ...payers.slice(0, 3).map((from, i) => transfer(from, payees[i]!, 100n)),
    transfer(payers[0]!, payees[0]!, 1_000_000n), // insufficient_funds
  ]);
  await until('money in flight', async () => {
    const s = await scrape(metricsUrl);
    return total(s, 'ledgerline_money_in_flight_minor') === 300;
  });
  await new Promise((r) => setTimeout(r, 1_100));
  const during = await scrape(metricsUrl);
  for (const p of paused) await env.dispatcher.queue(p).resume();
  await env.waitForFinal(moves.map((t) => t.id));
  await drained(env.pool);
  const after = await scrape(metricsUrl);

  // The backlogs are the child's own partitions only; they were quiet, the payees' were not.
  for (const p of childPartitions) {
    expect(during.get(`ledgerline_worker_backlog_legs{partition="${p}"}`)).toBe(0);
    expect(during.has(`ledgerline_worker_backlog_oldest_seconds{partition="${p}"}`)).toBe(true);
  }
  expect(after.get('ledgerline_money_in_flight_minor{currency="EUR"}') ?? 0).toBe(0);
  expect(
    after.get(
      'ledgerline_worker_transfers_finished_total{type="deposit",status="completed",failure_code=""}',
    ),
  ).toBe(3);
  expect(
    after.get(
      'ledgerline_worker_transfers_finished_total{type="transfer",status="failed",failure_code="insufficient_funds"}',
    ),
  ).toBe(1);
  for (const family of [
    'ledgerline_worker_legs_applied_total',
    'ledgerline_worker_batch_legs_count',
    'ledgerline_worker_batch_apply_seconds_count',
    'ledgerline_worker_envelopes_received_total',
    'ledgerline_worker_envelopes_sent_total',
  ]) {
    expect(total(after, family), family).toBeGreaterThan(total(before, family));
  }
  await expectInvariants(env.pool);
});

it('the worker backlog gauges see legs waiting on a partition it owns', async () => {
  const owned = (
    await env.pool.query<{ id: number }>(`SELECT id FROM partitions WHERE owner LIKE $1`, [
      `%:${worker.proc.pid}:%`,
    ])
  ).rows.map((r) => r.id);
  let account = (await env.account()).id;
  while (!owned.includes(partitionOf(account, 4))) account = (await env.account()).id;
  const p = partitionOf(account, 4);
  await env.dispatcher.queue(p).pause();
  const [dep] = await env.submit([deposit(account, 5n)]);
  await new Promise((r) => setTimeout(r, 1_100));
  const during = await scrape(metricsUrl);
  await env.dispatcher.queue(p).resume();
  await env.waitForFinal([dep!.id]);
  expect(during.get(`ledgerline_worker_backlog_legs{partition="${p}"}`)).toBe(1);
  expect(during.get(`ledgerline_worker_backlog_oldest_seconds{partition="${p}"}`)).toBeGreaterThan(
    1,
  );
  const after = await scrape(metricsUrl);
  expect(after.get(`ledgerline_worker_backlog_legs{partition="${p}"}`)).toBe(0);
});

it('the web counts admission refusals by code', async () => {
  const web = await createTestWeb(env, { rateLimit: { perSecond: 1, burst: 1 } });
  try {
    for (let i = 0; i < 3; i++) {
      await web.app.request('/v1/accounts/00000000-0000-4000-8000-000000000000', {
        headers: { authorization: `Bearer ${env.config.adminApiKey}` },
      });
    }
    const text = await (await web.app.request('/metrics')).text();
    expect(text).toMatch(/ledgerline_admission_refusals_total\{code="rate_limited"\} 2/);
  } finally {
    await web.stop();
  }
});

it('the Grafana dashboard parses and reads only metrics the processes export', async () => {
  const file = path.resolve(import.meta.dirname, '../../docs/grafana/ledgerline.json');
  const dashboard = JSON.parse(await readFile(file, 'utf8')) as {
    panels: { title: string; targets?: { expr: string }[] }[];
  };
  const web = await createTestWeb(env);
  try {
    const exported = new Set(
      [
        ...(await (await web.app.request('/metrics')).text()).matchAll(/^# TYPE (\S+)/gm),
        ...(await (await fetch(metricsUrl)).text()).matchAll(/^# TYPE (\S+)/gm),
      ].map((m) => m[1]!),
    );
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(8);
    for (const expr of exprs) {
      const names = [...expr.matchAll(/\b(ledgerline_[a-z_]+)/g)].map((m) =>
        m[1]!.replace(/_(bucket|count|sum)$/, ''),
      );
      expect(names.length, expr).toBeGreaterThan(0);
      for (const name of names) expect(exported, `${name} in ${expr}`).toContain(name);
    }
  } finally {
    await web.stop();
  }
});
