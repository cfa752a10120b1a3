// The audit trail over HTTP: the middleware that records every request asking to change state,
// and the admin's newest-first listing of it.
import { randomUUID } from 'node:crypto';
import { createRoute, z } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type pg from 'pg';
import { PAGE_SIZE_DEFAULT } from '../config/limits';
import { requireScope, type AuthEnv } from '../http/auth';
import { keysetCursor } from '../http/cursor';
import { BEARER, newRouter } from '../http/router';
import { PageQuery, problemResponses } from '../http/schemas';
import { listAuditEvents, type AuditLog } from './audit.repository';

/** What each state-changing route is called in the trail; other requests are not recorded. */
const ACTIONS: Record<string, string> = {
  'POST /v1/accounts': 'account.create',
  'POST /v1/accounts/:id/close': 'account.close',
  'POST /v1/deposits': 'deposit.create',
  'POST /v1/withdrawals': 'withdrawal.create',
  'POST /v1/transfers': 'transfer.create',
  'POST /v1/transfers/:id/reversals': 'reversal.create',
  'POST /v1/transfers/:id/cancel': 'transfer.cancel',
  'POST /v1/api-keys': 'api_key.create',
  'DELETE /v1/api-keys/:id': 'api_key.revoke',
  'POST /v1/interest-runs': 'interest_run.create',
};
/** A client's own request id is kept when it is short printable ASCII; otherwise one is made. */
const REQUEST_ID = /^[\x21-\x7e]{1,200}$/;

/** The request's id: the client's own `X-Request-Id` when it is one we keep, else a new one. */
export function requestIdOf(header: string | undefined): string {
  return header && REQUEST_ID.test(header) ? header : randomUUID();
}

/** What the trail calls a request to this route answered with `status`; undefined: not kept. */
export function auditedAction(method: string, route: string, status: number): string | undefined {
  if (status === 429 || status === 503) return undefined;
  return ACTIONS[`${method} ${route}`];
}

/**
 * Records every authenticated request that asks to change state, whatever its answer: who (the
 * key's id, never the key), what, its target (set by the route), the request id, the status.
 * Refusals that shed load (429, 503) are counted in metrics instead: writing them would add work
 * exactly when the service is shedding it.
 */
export function auditTrail(log: AuditLog): MiddlewareHandler<AuthEnv> {
  return async function audit(c, next) {
    const requestId = requestIdOf(c.req.header('x-request-id'));
    // Set before the answer exists: set after, it makes Node's adapter turn its lightweight
    // response into a full web Response and stream it (measured: ~8 % of the web's CPU).
    c.header('X-Request-Id', requestId);
    await next();
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return;
    const status = c.res.status;
    const action = auditedAction(c.req.method, routePath(c), status);
    if (!action) return;
    const targetId = c.get('auditTarget') ?? c.req.param('id') ?? null;
    log.record({
      apiKeyId: c.get('principal').keyId,
      action,
      targetId,
      requestId,
      status,
    });
  };
}

const auditCursor = keysetCursor('a');

const AuditEventOut = z
  .object({
    id: z.string(),
    at: z.string(),
    api_key_id: z.string().openapi({ description: "The key's id (`admin` for ADMIN_API_KEY)." }),
    action: z.string().openapi({ example: 'transfer.create' }),
    target_id: z.string().nullable(),
    request_id: z.string(),
    status: z.number().int(),
  })
  .openapi('AuditEvent');
const AuditPage = z
  .object({ data: z.array(AuditEventOut), next_cursor: z.string().nullable() })
  .openapi('AuditEventPage');

export function auditRouter(deps: { pool: pg.Pool }) {
  const r = newRouter();
  const list = createRoute({
    method: 'get',
    path: '/v1/audit-events',
    summary: 'Every request that asked to change state, newest first (admin)',
    tags: ['admin'],
    security: BEARER,
    middleware: [requireScope('admin')] as const,
    request: { query: PageQuery },
    responses: {
      200: {
        description: 'A page of audit events',
        content: { 'application/json': { schema: AuditPage } },
      },
      ...problemResponses(400, 401, 403, 429),
    },
  });
  r.openapi(list, async (c) => {
    const { limit, cursor } = c.req.valid('query');
    const page = await listAuditEvents(deps.pool, {
      limit: limit ?? PAGE_SIZE_DEFAULT,
      beforeId: cursor === undefined ? null : auditCursor.decode(cursor),
    });
    const last = page.events[page.events.length - 1];
    return c.json(
      {
        data: page.events.map((e) => ({
          id: e.id.toString(),
          at: e.at.toISOString(),
          api_key_id: e.apiKeyId,
          action: e.action,
          target_id: e.targetId,
          request_id: e.requestId,
          status: e.status,
        })),
        next_cursor: page.more && last ? auditCursor.encode(last.id) : null,
      },
      200,
    );
  });
  return r;
}
