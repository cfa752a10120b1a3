// The lab's open loop: moves start evenly spaced at the rate (not in a burst at each second's
// start, as autocannon's overallRate sends them), a move that waits for a connection counts its
// latency from when it was due, and a move runs its request chain as autocannon would.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type autocannon from 'autocannon';
import { afterEach, expect, it } from 'vitest';
import { paced } from './paced';

let server: Server | undefined;
afterEach(async () => {
  await new Promise((r) => server?.close(r));
  server = undefined;
});

/** A server that answers every request after `delayMs`, noting when each arrived and its path. */
async function serve(delayMs: number): Promise<{ url: string; arrivals: [number, string][] }> {
  const arrivals: [number, string][] = [];
  server = createServer((req, res) => {
    arrivals.push([performance.now(), req.url ?? '']);
    req.resume();
    req.on('end', () => setTimeout(() => res.end('{"ok":true}'), delayMs));
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, arrivals };
}

function oneRequest(onDone: (ms: number) => void): autocannon.Request[] {
  return [
    {
      method: 'POST',
      path: '/move',
      onResponse: (_status, _body, context: { due?: number }) =>
        onDone(performance.now() - context.due!),
    },
  ];
}

it('starts moves evenly spaced at the rate, not in a burst at the start of each second', async () => {
  const { url, arrivals } = await serve(0);
  const started = performance.now();
  const { errors, due, dropped } = await paced({
    url,
    connections: 50,
    rate: 400,
    seconds: 2,
    headers: {},
    requests: oneRequest(() => {}),
    timeoutS: 5,
    due: (c, ms) => ((c as { due?: number }).due = ms),
  });
  expect(errors).toBe(0);
  // Every move due in the 2 s is made, however busy the machine (late ones go out late), but for
  // one falling due as the time runs out.
  expect(arrivals.length).toBeGreaterThanOrEqual(798);
  expect(arrivals.length).toBeLessThanOrEqual(800);
  // And the run says so: 800 due, and what was not sent is counted as dropped.
  expect({ due, dropped }).toEqual({ due: 800, dropped: 800 - arrivals.length });
  // 200 each half second. Sent in bursts from each second's start, as autocannon's rate does,
  // nearly all of a second's 400 would land in its first half and none in its second; the
  // bounds leave room for an event loop stalled by the tests running beside this one.
  const perHalf = [0, 0, 0, 0];
  for (const [at] of arrivals) perHalf[Math.min(3, Math.floor((at - started) / 500))]! += 1;
  for (const n of perHalf) expect(n).toBeGreaterThanOrEqual(100);
  for (const n of perHalf) expect(n).toBeLessThanOrEqual(300);
});

it('counts a move’s latency from when it was due, its wait for a connection included', async () => {
  // One connection, answers after 50 ms: 20 moves a second at most, 40 due.
  const { url } = await serve(50);
  const latencies: number[] = [];
  await paced({
    url,
    connections: 1,
    rate: 40,
    amount: 40,
    headers: {},
    requests: oneRequest((ms) => latencies.push(ms)),
    timeoutS: 5,
    due: (c, ms) => ((c as { due?: number }).due = ms),
  });
  expect(latencies).toHaveLength(40);
  // The last was due at 975 ms and started after the other 39 (about 1,950 ms).
  expect(Math.max(...latencies)).toBeGreaterThan(800);
  expect(Math.min(...latencies)).toBeGreaterThanOrEqual(45);
});

it('past the capacity, moves go in the order they fell due, and those still waiting at the end are dropped', async () => {
  // 5 connections, 100 ms an answer: 50 moves a second at most; 6,000 due in 2 s, one each
  // third of a millisecond (several fall due between two turns of the event loop).
  const { url } = await serve(100);
  const made: number[] = [];
  const started = performance.now();
  let firstDue: number | undefined;
  const result = await paced({
    url,
    connections: 5,
    rate: 3000,
    seconds: 2,
    headers: {},
    requests: oneRequest(() => {}).map((r) => ({
      ...r,
      onResponse: (_status, _body, context: { k?: number }) => made.push(context.k!),
    })),
    timeoutS: 5,
    // Which move this is, by when it fell due.
    due: (c, ms) => {
      firstDue ??= ms;
      (c as { k?: number }).k = Math.round(((ms - firstDue) * 3000) / 1000);
    },
  });
  const elapsedMs = performance.now() - started;
  // About 100 made, the first ones due and none of the later ones; and it ends with its time,
  // not after working through the thousands left waiting.
  expect(made.length).toBeGreaterThanOrEqual(50);
  expect(made.length).toBeLessThanOrEqual(120);
  expect([...made].sort((a, b) => a - b)).toEqual(made.map((_, k) => k));
  expect(elapsedMs).toBeLessThan(2_500);
  // Every move due is made or counted as dropped, none both: what a rated record reports.
  expect(result).toEqual({ errors: 0, due: 6000, dropped: 6000 - made.length });
});

it('runs each move’s request chain; a falsy setupRequest ends the move there', async () => {
  const { url, arrivals } = await serve(0);
  let n = 0;
  const answered: unknown[] = [];
  const requests: autocannon.Request[] = [
    {
      method: 'POST',
      setupRequest: (req, context: { i?: number }) => {
        context.i = n++;
        return { ...req, path: `/first/${context.i}` };
      },
      // Status, body and headers reach the chain, as autocannon hands them over.
      onResponse: (status, body, _context, headers) =>
        answered.push([status, body, (headers as Record<string, string>)['content-length']]),
    },
    {
      method: 'GET',
      // Only even moves make a second request.
      setupRequest: (req, context: { i?: number }) =>
        context.i! % 2 === 0
          ? { ...req, path: `/second/${context.i}` }
          : (null as unknown as typeof req),
    },
  ];
  await paced({
    url,
    connections: 4,
    rate: 200,
    amount: 20,
    headers: {},
    requests,
    timeoutS: 5,
    due: () => {},
  });
  expect(answered).toEqual(Array.from({ length: 20 }, () => [200, '{"ok":true}', '11']));
  const paths = arrivals.map(([, p]) => p);
  expect(paths.filter((p) => p.startsWith('/first/'))).toHaveLength(20);
  expect(paths.filter((p) => p.startsWith('/second/')).sort()).toEqual(
    Array.from({ length: 10 }, (_, k) => `/second/${2 * k}`).sort(),
  );
  // Each second request follows its own first.
  for (let k = 0; k < 20; k += 2) {
    expect(paths.indexOf(`/second/${k}`)).toBeGreaterThan(paths.indexOf(`/first/${k}`));
  }
});
