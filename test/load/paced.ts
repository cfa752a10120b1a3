// An open loop for the lab's `--rate`: moves start at evenly spaced times, whatever the answers
// do. autocannon's `overallRate` only caps a connection's requests per second (it sends each
// second's share at once from the start of the second), so a rated run would measure bursts.
// Here a move is due every 1/rate s; it starts on a free connection of at most `connections`, and
// one due while all are busy waits for one, its latency counted from when it was due (no
// coordinated omission). A move runs the same request chain autocannon would: each request's
// `setupRequest` builds it from the one before's context (a falsy answer ends the move) and its
// `onResponse` reads the answer (status, body, context and headers).
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import type autocannon from 'autocannon';

export type PacedOptions = {
  url: string;
  /** Connections open at most: moves in flight at once. */
  connections: number;
  /** Moves started per second, evenly spaced. */
  rate: number;
  /** Moves are due for this many seconds (at the end, those still waiting for a connection are
   * dropped and those started finish)... */
  seconds?: number;
  /** ...or after this many moves. */
  amount?: number;
  headers: Record<string, string>;
  requests: autocannon.Request[];
  /** Each request's timeout. */
  timeoutS: number;
  /** Called with a move's context and when it was due (performance.now()), before it is sent. */
  due: (context: Record<string, unknown>, dueMs: number) => void;
  signal?: AbortSignal;
};

type Built = { method?: string; path?: string; headers?: Record<string, string>; body?: unknown };

export type PacedResult = {
  /** Requests that got no answer (refused, reset or timed out: the move ends there). */
  errors: number;
  /** Moves that fell due: every 1/rate s of the run (a timed run), or the count asked for. */
  due: number;
  /**
   * Moves due that never started: still waiting for a connection when the time was up (or the
   * run was aborted). Above zero, the server did not keep up with the rate, and these moves have
   * no latency in the figures: the count says how much of the load they leave out.
   */
  dropped: number;
};

/** Runs the moves; resolves when the last started one has finished. */
export async function paced(opts: PacedOptions): Promise<PacedResult> {
  const url = new URL(opts.url);
  // Every connection kept open between its moves (Node keeps 256 idle ones by default).
  const agent = new Agent({
    keepAlive: true,
    maxSockets: opts.connections,
    maxFreeSockets: opts.connections,
  });
  const intervalMs = 1000 / opts.rate;
  const started = performance.now();
  const endMs = opts.seconds === undefined ? Infinity : started + opts.seconds * 1000;
  /** Due times of the moves waiting for a connection, oldest first (a queue: shifted by index). */
  let waiting: number[] = [];
  let head = 0;
  const waitingCount = () => waiting.length - head;
  const dropWaiting = () => {
    waiting = [];
    head = 0;
  };
  let scheduled = 0;
  let startedMoves = 0;
  let inFlight = 0;
  let stopped = false;
  let errors = 0;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));

  const send = (
    built: Built,
  ): Promise<{ status: number; body: string; headers: IncomingHttpHeaders }> =>
    new Promise((resolve, reject) => {
      const req = request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          method: built.method ?? 'GET',
          path: built.path ?? '/',
          headers: built.headers ?? opts.headers,
          timeout: opts.timeoutS * 1000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).toString(),
              headers: res.headers,
            }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('request timed out')));
      req.on('error', reject);
      req.end(typeof built.body === 'string' ? built.body : undefined);
    });

  const move = async (dueMs: number): Promise<void> => {
    const context: Record<string, unknown> = {};
    for (let k = 0; k < opts.requests.length; k++) {
      const r = opts.requests[k]!;
      const defaults = { method: r.method, path: r.path, headers: opts.headers, body: r.body };
      const setup = r.setupRequest as ((req: Built, c: unknown) => Built | null) | undefined;
      const built = setup ? setup(defaults, context) : defaults;
      if (!built) return;
      if (k === 0) opts.due(context, dueMs);
      const { status, body, headers } = await send(built);
      type OnResponse = (s: number, b: string, c: unknown, h: IncomingHttpHeaders) => void;
      (r.onResponse as OnResponse | undefined)?.(status, body, context, headers);
    }
  };

  let timeUp = false;
  /** Every move due has been put in line: the count is reached, or the next is due past the end. */
  const allScheduled = () =>
    timeUp ||
    (opts.amount !== undefined && scheduled >= opts.amount) ||
    started + scheduled * intervalMs >= endMs;
  const settle = () => {
    if (inFlight === 0 && waitingCount() === 0 && (stopped || allScheduled())) done();
  };

  const startWaiting = () => {
    while (!stopped && inFlight < opts.connections && waitingCount() > 0) {
      const dueMs = waiting[head++]!;
      if (head > 1024 && head * 2 > waiting.length) {
        waiting = waiting.slice(head);
        head = 0;
      }
      inFlight += 1;
      startedMoves += 1;
      move(dueMs)
        .catch(() => {
          errors += 1;
        })
        .finally(() => {
          inFlight -= 1;
          startWaiting();
          settle();
        });
    }
  };

  // Each move due up to now is put in line, however late the timer fired (a stalled event loop
  // sends what fell due meanwhile at once, and their latencies show the stall).
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    const now = performance.now();
    while (!stopped && !allScheduled()) {
      const dueMs = started + scheduled * intervalMs;
      if (dueMs > now) break;
      scheduled += 1;
      waiting.push(dueMs);
    }
    startWaiting();
    if (stopped || allScheduled()) {
      settle();
      return;
    }
    const nextMs = started + scheduled * intervalMs;
    timer = setTimeout(tick, Math.max(0, nextMs - performance.now()));
  };
  // At the end of a timed run, moves still waiting for a connection are dropped (those started
  // finish); a counted run (`amount`) makes every one.
  const end =
    opts.seconds === undefined
      ? undefined
      : setTimeout(
          () => {
            timeUp = true;
            dropWaiting();
            settle();
          },
          Math.max(0, endMs - performance.now()),
        );
  const abort = () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    if (end) clearTimeout(end);
    dropWaiting();
    agent.destroy();
    done();
  };
  opts.signal?.addEventListener('abort', abort);
  tick();
  try {
    await finished;
  } finally {
    if (timer) clearTimeout(timer);
    if (end) clearTimeout(end);
    opts.signal?.removeEventListener('abort', abort);
    agent.destroy();
  }
  // A timed run's moves fall due at 0, 1/rate, 2/rate… s before its end, those put in line and
  // those a late timer had not put in line yet when the time was up.
  let due = scheduled;
  if (!stopped && opts.seconds !== undefined) {
    while (started + due * intervalMs < endMs) due += 1;
  }
  return { errors, due, dropped: due - startedMoves };
}
