// Administration: API keys, interest runs, reconciliation and the queue dashboard.
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { HonoAdapter } from '@bull-board/hono';
import { serveStatic } from '@hono/node-server/serve-static';
import { createRoute, z } from '@hono/zod-openapi';
import {
  API_KEY_NAME_LENGTH_MAX,
  INTEREST_RATE_BPS_MAX,
  PAGE_SIZE_DEFAULT,
} from '../config/limits';
import { getInterestRun, openInterestRun, type InterestRun } from '../transfers/interest';
import { reconcile } from '../ledger/reconcile';
import { SCOPES, hashSecret, newSecret, requireScope, type Scope } from '../http/auth';
import { ApiError } from '../http/problem';
import { BEARER, newRouter } from '../http/router';
import type { HttpDeps } from './deps';
import { IdParam, PageQuery, StorableText, problemResponses } from '../http/schemas';
import { keysetCursor } from '../http/cursor';
import { isUuid } from '../domain/ids';

const CreateKeyBody = z
  .strictObject({
    name: StorableText({ lengthMin: 1, lengthMax: API_KEY_NAME_LENGTH_MAX }),
    scopes: z.array(z.enum(SCOPES)).min(1).max(SCOPES.length),
  })
  .openapi('CreateApiKeyRequest');
const ApiKeyOut = z
  .object({
    id: z.uuid(),
    name: z.string(),
    scopes: z.array(z.enum(SCOPES)),
    secret: z.string().openapi({ description: 'Shown once; only its hash is stored.' }),
    created_at: z.string(),
  })
  .openapi('ApiKey');

const KeyListed = z
  .object({
    id: z.uuid(),
    name: z.string(),
    scopes: z.array(z.enum(SCOPES)),
    created_at: z.string(),
    revoked_at: z.string().nullable(),
  })
  .openapi('ApiKeyListed');
const RevokedKeyOut = KeyListed.extend({ revoked_at: z.string() }).openapi('RevokedApiKey');
const KeyPage = z
  .object({ data: z.array(KeyListed), next_cursor: z.string().nullable() })
  .openapi('ApiKeyPage');
const keyCursor = keysetCursor('k');

type KeyRow = {
  id: string;
  name: string;
  scopes: Scope[];
  created_at: Date;
  revoked_at: Date | null;
};
function keyJson(row: KeyRow) {
  return {
    id: row.id,
    name: row.name,
    scopes: row.scopes,
    created_at: row.created_at.toISOString(),
    revoked_at: row.revoked_at?.toISOString() ?? null,
  };
}

const InterestBody = z
  .strictObject({
    annual_rate_bps: z.number().int().min(0).max(INTEREST_RATE_BPS_MAX),
    as_of: z.iso.date().openapi({ example: '2026-11-22' }),
  })
  .openapi('InterestRunRequest');
const InterestOut = z
  .object({
    id: z.string().openapi({ description: 'The run is known by its as_of.' }),
    as_of: z.string(),
    annual_rate_bps: z.number().int(),
    status: z.enum(['running', 'completed']),
    accounts_paid: z.number().int(),
    amount_total: z.string().openapi({ description: 'Minor units paid so far, all currencies.' }),
  })
  .openapi('InterestRun');

function interestJson(run: InterestRun): z.infer<typeof InterestOut> {
  return {
    id: run.asOf,
    as_of: run.asOf,
    annual_rate_bps: run.annualRateBps,
    status: run.status,
    accounts_paid: run.accountsPaid,
    amount_total: run.amountTotalMinor.toString(),
  };
}

const ReconciliationOut = z
  .object({
    ok: z.boolean(),
    accounts_checked: z.number().int(),
    mismatches: z.array(z.record(z.string(), z.unknown())),
    total: z.string(),
    in_flight: z.object({ count: z.number().int(), amount: z.string() }),
  })
  .openapi('Reconciliation');

export function adminRouter(deps: HttpDeps) {
  const r = newRouter();

  const createKey = createRoute({
    method: 'post',
    path: '/v1/api-keys',
    summary: 'Create an API key (the secret is shown once)',
    tags: ['admin'],
    security: BEARER,
    middleware: [requireScope('admin')] as const,
    request: {
      body: { required: true, content: { 'application/json': { schema: CreateKeyBody } } },
    },
    responses: {
      201: {
        description: 'The key, with its secret',
        content: { 'application/json': { schema: ApiKeyOut } },
      },
      ...problemResponses(400, 401, 403, 413, 429),
    },
  });
  r.openapi(createKey, async (c) => {
    const b = c.req.valid('json');
    const secret = newSecret();
    const scopes = [...new Set(b.scopes)];
    const res = await deps.pool.query<{ id: string; created_at: Date }>(
      'INSERT INTO api_keys (name, secret_hash, scopes) VALUES ($1, $2, $3) RETURNING id, created_at',
      [b.name, hashSecret(secret), scopes],
    );
    const row = res.rows[0]!;
    c.set('auditTarget', row.id);
    return c.json(
      { id: row.id, name: b.name, scopes, secret, created_at: row.created_at.toISOString() },
      201,
    );
  });

  const listKeys = createRoute({
    method: 'get',
    path: '/v1/api-keys',
    summary: 'The API keys, newest first, revoked ones included (never their secrets)',
    tags: ['admin'],
    security: BEARER,
    middleware: [requireScope('admin')] as const,
    request: { query: PageQuery },
    responses: {
      200: { description: 'A page of keys', content: { 'application/json': { schema: KeyPage } } },
      ...problemResponses(400, 401, 403, 429),
    },
  });
  r.openapi(listKeys, async (c) => {
    const { limit, cursor } = c.req.valid('query');
    const pageSize = limit ?? PAGE_SIZE_DEFAULT;
    const res = await deps.pool.query<KeyRow & { seq: string }>(
      `SELECT id, name, scopes, created_at, revoked_at, seq FROM api_keys
        WHERE $1::bigint IS NULL OR seq < $1
        ORDER BY seq DESC LIMIT $2`,
      [cursor === undefined ? null : keyCursor.decode(cursor).toString(), pageSize + 1],
    );
    const rows = res.rows.slice(0, pageSize);
    const last = rows[rows.length - 1];
    return c.json(
      {
        data: rows.map(keyJson),
        next_cursor: res.rows.length > pageSize && last ? keyCursor.encode(BigInt(last.seq)) : null,
      },
      200,
    );
  });

  const revokeKey = createRoute({
    method: 'delete',
    path: '/v1/api-keys/{id}',
    summary: 'Revoke an API key',
    description:
      'The key stops working on every web process within 5 s (API_KEY_CACHE_MS: each caches what a ' +
      'key may do), and at once on the one that answers. Revoking a revoked key changes nothing and ' +
      'answers the same. ADMIN_API_KEY is not a stored key: replace it in the environment.',
    tags: ['admin'],
    security: BEARER,
    middleware: [requireScope('admin')] as const,
    request: { params: IdParam },
    responses: {
      200: {
        description: 'The key, revoked',
        content: { 'application/json': { schema: RevokedKeyOut } },
      },
      ...problemResponses(401, 403, 404, 429),
    },
  });
  r.openapi(revokeKey, async (c) => {
    const { id } = c.req.valid('param');
    // Anything but a uuid names no key (and may hold what PostgreSQL cannot take as text).
    const res = isUuid(id)
      ? await deps.pool.query<KeyRow & { revoked_at: Date }>(
          `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1
           RETURNING id, name, scopes, created_at, revoked_at`,
          [id],
        )
      : undefined;
    const row = res?.rows[0];
    if (!row) throw new ApiError(404, 'not_found', 'no API key with that id');
    deps.keys.forget(row.id);
    c.set('auditTarget', row.id);
    return c.json({ ...keyJson(row), revoked_at: row.revoked_at.toISOString() }, 200);
  });

  const interest = createRoute({
    method: 'post',
    path: '/v1/interest-runs',
    summary: 'Pay daily interest to every open account, once per as_of',
    description:
      'Each open customer account with a positive balance receives floor(balance × annual_rate_bps / 10,000 / 365) ' +
      "from the interest system account. The run is recorded at once (the answer, to poll); each partition's " +
      'owner then pays its own accounts in its order, a page at a time, and a new owner goes on where a dead ' +
      'one stopped. Posting again for the same as_of pays nobody twice.',
    tags: ['admin'],
    security: BEARER,
    middleware: [requireScope('admin')] as const,
    request: {
      body: { required: true, content: { 'application/json': { schema: InterestBody } } },
    },
    responses: {
      202: {
        description: 'The run is under way in the background (or done): poll its Location',
        content: { 'application/json': { schema: InterestOut } },
      },
      ...problemResponses(400, 401, 403, 422, 429, 503),
    },
  });
  r.openapi(interest, async (c) => {
    const b = c.req.valid('json');
    const opened = await openInterestRun(deps.pool, {
      asOf: b.as_of,
      annualRateBps: b.annual_rate_bps,
      partitions: deps.config.partitions,
    });
    if (opened.kind === 'rate_conflict') {
      throw new ApiError(
        422,
        'validation_failed',
        `the run for ${b.as_of} was made at ${opened.annualRateBps} bps`,
      );
    }
    const run = (await getInterestRun(deps.pool, b.as_of))!;
    c.set('auditTarget', b.as_of);
    return c.json(interestJson(run), 202, { Location: `/v1/interest-runs/${b.as_of}` });
  });

  const interestStatus = createRoute({
    method: 'get',
    path: '/v1/interest-runs/{id}',
    summary: "An interest run's progress",
    tags: ['admin'],
    security: BEARER,
    middleware: [requireScope('admin')] as const,
    request: { params: IdParam },
    responses: {
      200: { description: 'The run', content: { 'application/json': { schema: InterestOut } } },
      ...problemResponses(401, 403, 404, 429),
    },
  });
  r.openapi(interestStatus, async (c) => {
    const { id } = c.req.valid('param');
    // A run is known by its as_of date; anything else names no run (and may hold what
    // PostgreSQL cannot take as text, NUL for one).
    const run = z.iso.date().safeParse(id).success
      ? await getInterestRun(deps.pool, id)
      : undefined;
    if (!run) throw new ApiError(404, 'not_found', 'no interest run for that as_of');
    return c.json(interestJson(run), 200);
  });

  const recon = createRoute({
    method: 'get',
    path: '/v1/reconciliation',
    summary: 'Check the ledger invariants against the data',
    tags: ['admin'],
    security: BEARER,
    middleware: [requireScope('admin')] as const,
    responses: {
      200: {
        description: 'The report',
        content: { 'application/json': { schema: ReconciliationOut } },
      },
      ...problemResponses(401, 403, 429),
    },
  });
  r.openapi(recon, async (c) => c.json(await reconcile(deps.pool), 200));

  return r;
}

/** The BullMQ dashboard; the app puts admin authentication in front of it. */
export function queueDashboard(deps: HttpDeps, basePath: string) {
  const adapter = new HonoAdapter(serveStatic);
  createBullBoard({
    queues: Array.from(
      { length: deps.config.partitions },
      (_, p) =>
        new BullMQAdapter(deps.dispatcher.queue(p), {
          displayName: `partition ${p}`,
          description: 'envelopes of legs for this partition, applied in order by its owner',
        }),
    ),
    serverAdapter: adapter,
  });
  adapter.setBasePath(basePath);
  return adapter.registerPlugin();
}
