// Accounts: open one, read its balance, page through its ledger history.
import { createRoute } from '@hono/zod-openapi';
import { PAGE_SIZE_DEFAULT } from '../config/limits';
import { requireScope } from '../http/auth';
import { keysetCursor } from '../http/cursor';
import { ApiError } from '../http/problem';
import type pg from 'pg';
import type { Config } from '../config/env';
import { BEARER, newRouter } from '../http/router';
import { IdParam, PageQuery, problemResponses } from '../http/schemas';
import { partitionOf } from '../partitions/routing';
import { parseAmount } from '../domain/money';
import { createAccount, getAccount, listEntries } from './accounts.repository';
import {
  AccountOut,
  CreateAccountBody,
  EntriesPage,
  accountJson,
  entryJson,
} from './accounts.schemas';

/** The entry sequence to continue below. */
const entriesCursor = keysetCursor('v');

/** What the accounts routes need from the web process. */
export type AccountsDeps = { config: Config; pool: pg.Pool };

export function accountsRouter(deps: AccountsDeps) {
  const r = newRouter();

  const create = createRoute({
    method: 'post',
    path: '/v1/accounts',
    summary: 'Open an account',
    tags: ['accounts'],
    security: BEARER,
    middleware: [requireScope('accounts:write')] as const,
    request: {
      body: { required: true, content: { 'application/json': { schema: CreateAccountBody } } },
    },
    responses: {
      201: {
        description: 'The new account',
        content: { 'application/json': { schema: AccountOut } },
      },
      ...problemResponses(400, 401, 403, 413, 422, 429, 503),
    },
  });
  r.openapi(create, async (c) => {
    const b = c.req.valid('json');
    let overdraftLimit = 0n;
    if (b.overdraft_limit !== undefined && b.overdraft_limit !== '0' && b.overdraft_limit !== 0) {
      const parsed = parseAmount(b.overdraft_limit, deps.config.amountMinorMax);
      if (!parsed.ok) {
        throw new ApiError(422, 'validation_failed', 'overdraft_limit is out of range', [
          { path: 'overdraft_limit', message: parsed.reason },
        ]);
      }
      overdraftLimit = parsed.amountMinor;
    }
    const account = await createAccount(deps.pool, {
      holder: b.holder,
      currency: b.currency,
      overdraftLimit,
      partitions: deps.config.partitions,
    });
    c.set('auditTarget', account.id);
    return c.json(accountJson(account), 201, { Location: `/v1/accounts/${account.id}` });
  });

  const get = createRoute({
    method: 'get',
    path: '/v1/accounts/{id}',
    summary: 'Read an account and its balance',
    tags: ['accounts'],
    security: BEARER,
    middleware: [requireScope('read')] as const,
    request: { params: IdParam },
    responses: {
      200: { description: 'The account', content: { 'application/json': { schema: AccountOut } } },
      ...problemResponses(401, 403, 404, 429),
    },
  });
  r.openapi(get, async (c) => {
    const account = await getAccount(deps.pool, c.req.valid('param').id.toLowerCase());
    if (!account) throw new ApiError(404, 'not_found', 'no such account');
    return c.json(accountJson(account), 200);
  });

  const entries = createRoute({
    method: 'get',
    path: '/v1/accounts/{id}/entries',
    summary: 'Ledger history of an account, newest first',
    tags: ['accounts'],
    security: BEARER,
    middleware: [requireScope('read')] as const,
    request: { params: IdParam, query: PageQuery },
    responses: {
      200: {
        description: 'A page of entries',
        content: { 'application/json': { schema: EntriesPage } },
      },
      ...problemResponses(400, 401, 403, 404, 429),
    },
  });
  r.openapi(entries, async (c) => {
    const id = c.req.valid('param').id.toLowerCase();
    const { limit, cursor } = c.req.valid('query');
    const beforeVersion = cursor === undefined ? null : entriesCursor.decode(cursor);
    const account = await getAccount(deps.pool, id);
    if (!account) throw new ApiError(404, 'not_found', 'no such account');
    const page = await listEntries(deps.pool, {
      accountId: id,
      partition: partitionOf(id, deps.config.partitions),
      limit: limit ?? PAGE_SIZE_DEFAULT,
      beforeVersion,
    });
    const last = page.entries[page.entries.length - 1];
    return c.json(
      {
        data: page.entries.map(entryJson),
        next_cursor: page.more && last ? entriesCursor.encode(last.accountVersion) : null,
      },
      200,
    );
  });

  return r;
}
