// GET /v1/accounts/{id}/events: one Server-Sent Event per ledger entry of the account, `id:` its
// per-account sequence (1, 2, 3… with no gaps). `Last-Event-ID` (or ?last_event_id=) resumes
// after that entry, without gaps or repeats; then the stream stays live, woken by the workers'
// NOTIFY and re-reading at every heartbeat anyway. Bounded: streams per process, and each
// stream's lifetime (the client reconnects with Last-Event-ID).
import { createRoute, z } from '@hono/zod-openapi';
import { streamSSE } from 'hono/streaming';
import type pg from 'pg';
import type { Config } from '../config/env';
import {
  EVENT_STREAM_BATCH_ENTRIES_MAX,
  EVENT_STREAM_HEARTBEAT_MS,
  EVENT_STREAM_LIFETIME_MS,
  OVERLOADED_RETRY_AFTER_S,
} from '../config/limits';
import { requireScope } from '../http/auth';
import { ApiError } from '../http/problem';
import { BEARER, newRouter } from '../http/router';
import { IdParam, problemResponses } from '../http/schemas';
import { partitionOf } from '../partitions/routing';
import { entriesAfter, getAccount } from './accounts.repository';
import { entryJson } from './accounts.schemas';

/** Something that says when an account may have new entries (the web's LISTEN connection). */
export type EntryWatcher = {
  watchAccount: (accountId: string, onEntries: () => void) => () => void;
};
export type AccountEventsDeps = {
  config: Config;
  pool: pg.Pool;
  watcher: EntryWatcher;
  eventStreamsMax: number;
};

const SEQUENCE = /^(0|[1-9][0-9]{0,18})$/;

export function accountEventsRouter(deps: AccountEventsDeps) {
  const r = newRouter();
  let open = 0;

  const events = createRoute({
    method: 'get',
    path: '/v1/accounts/{id}/events',
    summary: 'Follow an account: one Server-Sent Event per ledger entry, resumable',
    description:
      "Each event is `event: entry`, `id:` the entry's sequence in the account, and `data:` the " +
      'entry as in /entries. Send `Last-Event-ID` (EventSource does on reconnect) or ' +
      '`?last_event_id=` to resume after an entry; 0 or none starts from the first.',
    tags: ['accounts'],
    security: BEARER,
    middleware: [requireScope('read')] as const,
    request: {
      params: IdParam,
      query: z.strictObject({ last_event_id: z.string().max(20).optional() }),
    },
    responses: {
      200: {
        description: 'An event stream',
        content: { 'text/event-stream': { schema: z.string() } },
      },
      ...problemResponses(400, 401, 403, 404, 429, 503),
    },
  });

  r.openapi(events, async (c) => {
    const id = c.req.valid('param').id.toLowerCase();
    const resume = c.req.header('last-event-id') ?? c.req.valid('query').last_event_id ?? '0';
    if (!SEQUENCE.test(resume)) {
      throw new ApiError(400, 'validation_failed', 'Last-Event-ID is not an event id', [
        { path: 'last-event-id', message: 'an entry sequence number' },
      ]);
    }
    const account = await getAccount(deps.pool, id);
    if (!account) throw new ApiError(404, 'not_found', 'no such account');
    if (open >= deps.eventStreamsMax) {
      throw new ApiError(
        503,
        'overloaded',
        `at most ${deps.eventStreamsMax} event streams`,
        undefined,
        {
          'Retry-After': String(OVERLOADED_RETRY_AFTER_S),
        },
      );
    }
    open += 1;
    const partition = partitionOf(id, deps.config.partitions);
    let last = BigInt(resume);
    let unread = true;
    let wake = () => {};
    const unwatch = deps.watcher.watchAccount(id, () => {
      unread = true;
      wake();
    });
    const endAtMs = Date.now() + EVENT_STREAM_LIFETIME_MS;
    return streamSSE(
      c,
      async (stream) => {
        stream.onAbort(() => wake());
        try {
          while (!stream.aborted && Date.now() < endAtMs) {
            if (unread) {
              unread = false;
              for (;;) {
                const batch = await entriesAfter(deps.pool, {
                  accountId: id,
                  partition,
                  afterVersion: last,
                  limit: EVENT_STREAM_BATCH_ENTRIES_MAX,
                });
                for (const e of batch) {
                  await stream.writeSSE({
                    id: e.accountVersion.toString(),
                    event: 'entry',
                    data: JSON.stringify(entryJson(e)),
                  });
                  last = e.accountVersion;
                }
                if (batch.length < EVENT_STREAM_BATCH_ENTRIES_MAX) break;
              }
              continue;
            }
            const woken = await new Promise<boolean>((resolve) => {
              const timer = setTimeout(() => resolve(false), EVENT_STREAM_HEARTBEAT_MS);
              wake = () => {
                clearTimeout(timer);
                resolve(true);
              };
            });
            if (!woken && !stream.aborted) {
              // A comment keeps proxies from closing an idle stream; the read after it catches
              // anything a lost notification would have announced.
              await stream.write(': heartbeat\n\n');
              unread = true;
            }
          }
        } finally {
          unwatch();
          open -= 1;
        }
      },
      async (err, stream) => {
        // The client resumes with Last-Event-ID; nothing is lost by ending here.
        await stream.writeSSE({ event: 'error', data: JSON.stringify({ message: err.message }) });
      },
    );
  });
  return r;
}
