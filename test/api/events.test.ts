// Proves the account event stream over real HTTP: one event per ledger entry with its sequence as
// the id; a client that disconnects and resumes with Last-Event-ID sees every entry exactly
// once, old ones replayed and new ones live; bad ids and unknown accounts are refused.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { WebProcess } from '../../src/app/web-process';
import { createTestEnv, deposit, type TestEnv } from '../support/test-env';
import { createTestWeb } from '../support/web';

let env: TestEnv;
let web: WebProcess;
let base: string;
const auth = { authorization: 'Bearer test-admin-key-0123456789' };

beforeAll(async () => {
  env = await createTestEnv({ partitions: 4 });
  web = await createTestWeb(env);
  base = `http://127.0.0.1:${await web.listen(0)}`;
  await env.startWorker();
});
afterAll(async () => {
  await web.stop();
  await env.cleanup();
});

type Event = { id: string; event: string; data: any };

/** Reads events from a stream until `count` arrived, then hangs up. */
async function readEvents(
  accountId: string,
  count: number,
  lastEventId?: string,
): Promise<Event[]> {
  const abort = new AbortController();
  const res = await fetch(`${base}/v1/accounts/${accountId}/events`, {
    headers: { ...auth, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
    signal: abort.signal,
  });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/event-stream');
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: Event[] = [];
  let buffer = '';
  const deadline = setTimeout(() => abort.abort(), 20_000);
  try {
    while (events.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = Object.fromEntries(
          block
            .split('\n')
            .filter((l) => !l.startsWith(':') && l.includes(':'))
            .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
        );
        if (fields.event)
          events.push({
            id: fields.id ?? '',
            event: fields.event,
            data: JSON.parse(fields.data ?? 'null'),
          });
      }
    }
  } finally {
    clearTimeout(deadline);
    abort.abort();
  }
  return events;
}

it('replays after Last-Event-ID without gaps or repeats, then goes live', async () => {
  const a = await env.account();
  const first = await env.submit([deposit(a.id, 100n), deposit(a.id, 200n), deposit(a.id, 300n)]);
  await env.waitForFinal(first.map((t) => t.id));

  const opening = await readEvents(a.id, 3);
  expect(opening.map((e) => e.id)).toEqual(['1', '2', '3']);
  expect(opening.map((e) => e.data.balance_after)).toEqual(['100', '300', '600']);
  expect(opening.every((e) => e.event === 'entry')).toBe(true);

  // Disconnected: two more entries happen.
  const missed = await env.submit([deposit(a.id, 1n), deposit(a.id, 2n)]);
  await env.waitForFinal(missed.map((t) => t.id));
  // Resumed after the last one seen: the two missed, then one made while listening.
  const resumed = readEvents(a.id, 3, opening.at(-1)!.id);
  await new Promise((r) => setTimeout(r, 300));
  const [live] = await env.submit([deposit(a.id, 4n)]);
  const later = await resumed;
  expect(later.map((e) => e.id)).toEqual(['4', '5', '6']);
  expect(later.map((e) => e.data.amount)).toEqual(['1', '2', '4']);
  expect(later[2]!.data.transfer_id).toBe(live!.id);

  // Every entry exactly once across both connections, matching the ledger.
  const all = [...opening, ...later];
  const entries = await env.pool.query<{ v: string; t: string }>(
    `SELECT account_version::text AS v, transfer_id::text AS t FROM ledger_entries
      WHERE account_id = $1 ORDER BY account_version`,
    [a.id],
  );
  expect(all.map((e) => [e.id, e.data.transfer_id])).toEqual(entries.rows.map((r) => [r.v, r.t]));
});

it('refuses an event id that is not one, and an unknown account', async () => {
  const a = await env.account();
  const bad = await fetch(`${base}/v1/accounts/${a.id}/events`, {
    headers: { ...auth, 'last-event-id': 'abc' },
  });
  expect(bad.status).toBe(400);
  expect(bad.headers.get('content-type')).toContain('application/problem+json');
  const unknown = await fetch(`${base}/v1/accounts/00000000-0000-4000-8000-000000000000/events`, {
    headers: auth,
  });
  expect(unknown.status).toBe(404);
});

it('holds at most its bound of streams: past it 503 overloaded at once; a closed one frees its place', async () => {
  const small = await createTestWeb(env, {}, { eventStreamsMax: 2 });
  const url = `http://127.0.0.1:${await small.listen(0)}`;
  const a = await env.account();
  const open = async () => {
    const abort = new AbortController();
    const res = await fetch(`${url}/v1/accounts/${a.id}/events`, {
      headers: auth,
      signal: abort.signal,
    });
    return { res, close: () => abort.abort() };
  };
  try {
    const first = await open();
    const second = await open();
    expect([first.res.status, second.res.status]).toEqual([200, 200]);
    const third = await open();
    expect(third.res.status).toBe(503);
    expect(third.res.headers.get('retry-after')).toBe('1');
    expect(((await third.res.json()) as { code: string }).code).toBe('overloaded');
    first.close();
    // The server notices the hang-up and gives the place back.
    let again = await open();
    for (let i = 0; again.res.status !== 200 && i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      again = await open();
    }
    expect(again.res.status).toBe(200);
    again.close();
    second.close();
  } finally {
    await small.stop();
  }
});

it('a web process stops within seconds even with an event stream open', async () => {
  const other = await createTestWeb(env);
  const url = `http://127.0.0.1:${await other.listen(0)}`;
  const a = await env.account();
  const res = await fetch(`${url}/v1/accounts/${a.id}/events`, { headers: auth });
  expect(res.status).toBe(200);
  const started = Date.now();
  await other.stop();
  expect(Date.now() - started).toBeLessThan(10_000);
  await res.body?.cancel().catch(() => {});
});
