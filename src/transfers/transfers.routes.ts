// Money movements: deposits, withdrawals, transfers and reversals (202 + poll), and reads; and
// closing an account, a command its partition's owner applies in order like a movement.
import { createRoute, z } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import type { IncomingMessage } from 'node:http';
import { randomUUID } from 'node:crypto';
import { getAccount } from '../accounts/accounts.repository';
import { AccountOut, accountJson } from '../accounts/accounts.schemas';
import {
  CLOSE_WAIT_SECONDS,
  IDEMPOTENCY_KEY_LENGTH_MAX,
  OVERLOADED_RETRY_AFTER_S,
  WAIT_SECONDS_MAX,
} from '../config/limits';
import { requireScope, type AuthEnv } from '../http/auth';
import { ApiError } from '../http/problem';
import type { RedisConnection } from '../queue/queues';
import type pg from 'pg';
import type { Config } from '../config/env';
import { BEARER, newRouter } from '../http/router';
import { OverloadedError, type Submitter } from './submit';
import type { TransferWaiter } from './transfer-waiter';
import {
  IdParam,
  IdempotencyHeader,
  MoneyMovementHeaders,
  problemResponses,
} from '../http/schemas';
import { isProgrammerPgError } from '../db/db';
import { AssertionError } from '../shared/assert';
import { parseAmount } from '../domain/money';
import type { Command, SubmitResult } from './submit';
import { isUuid, newTransferId } from '../domain/ids';
import type { ServerResponse } from 'node:http';
import type { Transfer, TransferReader } from './transfers.repository';
import {
  DepositBody,
  ReversalBody,
  TransferBody,
  TransferOut,
  WithdrawalBody,
  transferJson,
  type TransferJson,
} from './transfers.schemas';
import { isFinal } from '../domain/transfer';
import { log } from '../shared/log';

/** What the money-movement routes need from the web process. */
export type TransfersDeps = {
  config: Config;
  pool: pg.Pool;
  redis: RedisConnection;
  submitter: Submitter;
  waiter: TransferWaiter;
  reader: TransferReader;
  /** Counts each submission by its type and result (the web's metrics). */
  submissions: { inc(labels: { type: string; result: string }): void };
};

const PRINTABLE = /^[\x20-\x7e]+$/;

const accepted = {
  202: {
    description: 'Accepted: recorded durably, applied asynchronously. Poll the Location.',
    content: { 'application/json': { schema: TransferOut } },
  },
  200: {
    description:
      'Final: asked with `Prefer: wait=N`, the transfer completed or failed within N seconds; ' +
      'or a replay of an earlier request with the same Idempotency-Key and body.',
    content: { 'application/json': { schema: TransferOut } },
  },
  ...problemResponses(400, 401, 403, 404, 413, 422, 429, 503),
};

/**
 * A money-movement route. Its headers (Idempotency-Key, Prefer) are documented in the OpenAPI
 * document but not run through a validator: both are optional free-form strings, checked by hand
 * where they are read (`idempotencyKeyOf`, `preferredWaitSeconds`), and the header validator
 * would copy every header of every request into an object first (about 3 % of the web's
 * profile under the intake bench). So the route is registered twice: with its headers for the
 * document, and hidden, without them, for the handler. The document is the same as before.
 */
function moneyRoute<B extends z.ZodType>(
  r: ReturnType<typeof newRouter>,
  path: string,
  summary: string,
  body: B,
) {
  const spec = {
    method: 'post' as const,
    path,
    summary,
    tags: ['transfers'],
    security: BEARER,
    request: {
      body: { required: true as const, content: { 'application/json': { schema: body } } },
    },
    responses: accepted,
  };
  r.openAPIRegistry.registerPath({
    ...spec,
    request: { ...spec.request, headers: MoneyMovementHeaders },
  });
  return createRoute({
    ...spec,
    // The web's money-movement lane (app/money-lane.ts) makes these same checks itself: a check
    // added here must be added there, or better put where both read it (MOVEMENTS, moveMoney).
    middleware: [requireScope('transfers:write'), rejectNonIntegerAmountLiterals] as const,
    hide: true,
  });
}

export function idempotencyKeyOf(c: Context): string {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  return checkedIdempotencyKey(c.req.header('idempotency-key'), incoming?.rawHeaders);
}

/** On how many lines the request sent the header `lowerName` (Node joins them into one value). */
function headerLines(rawHeaders: readonly string[], lowerName: string): number {
  let lines = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) lines++;
  }
  return lines;
}

/**
 * The Idempotency-Key header's value when it is one the API takes; else ApiError 400. Sent on
 * more than one line it is refused: Node joins the lines into one value (`a, b`), a key the client
 * never chose, and a retry that loses one of them (a proxy that adds its own, say) would be a new
 * request under another key, moving the money twice. Joined lines always hold a comma, so only
 * such a value sends us to the raw headers (absent in process, where nothing was joined by Node).
 */
export function checkedIdempotencyKey(
  key: string | undefined,
  rawHeaders?: readonly string[],
): string {
  if (key?.includes(',') && rawHeaders && headerLines(rawHeaders, 'idempotency-key') > 1) {
    throw new ApiError(400, 'validation_failed', 'send one Idempotency-Key header, not several', [
      { path: 'Idempotency-Key', message: 'repeated' },
    ]);
  }
  if (key === undefined || key === '') {
    throw new ApiError(
      400,
      'idempotency_key_missing',
      'money movements need an Idempotency-Key header',
    );
  }
  if (key.length > IDEMPOTENCY_KEY_LENGTH_MAX || !PRINTABLE.test(key)) {
    throw new ApiError(
      400,
      'validation_failed',
      'Idempotency-Key must be 1-255 printable ASCII characters',
      [{ path: 'Idempotency-Key', message: 'invalid' }],
    );
  }
  return key;
}

/**
 * JSON numbers lose their spelling when parsed: `1e3` and `1000.0` both become 1000. The API
 * promises to reject exponents and fractions, so the raw text is checked before the schema.
 */
const rejectNonIntegerAmountLiterals: MiddlewareHandler<AuthEnv> = async (c, next) => {
  if (hasNonIntegerAmountLiteral(await c.req.text())) {
    throw new ApiError(400, 'validation_failed', 'amount must be an integer of minor units', [
      { path: 'amount', message: 'no fractions or exponents' },
    ]);
  }
  await next();
};

const NON_INTEGER_AMOUNT = /"amount"\s*:\s*-?[0-9]*(?:\.[0-9]*)?[eE.]/;

export function hasNonIntegerAmountLiteral(raw: string): boolean {
  return NON_INTEGER_AMOUNT.test(raw);
}

function amountOf(deps: Pick<TransfersDeps, 'config'>, value: string | number): bigint {
  const parsed = parseAmount(value, deps.config.amountMinorMax);
  if (!parsed.ok) {
    throw new ApiError(
      parsed.reason === 'above_max' ? 422 : 400,
      'validation_failed',
      parsed.reason === 'above_max'
        ? `amount is above the maximum of ${deps.config.amountMinorMax}`
        : 'amount is not a positive integer',
      [{ path: 'amount', message: parsed.reason }],
    );
  }
  return parsed.amountMinor;
}

export function requireQueue(deps: { redis: RedisConnection }): void {
  // Fail fast before recording anything: a 503 is better than a request hanging on Redis.
  if (deps.redis.status !== 'ready') {
    throw new ApiError(
      503,
      'unavailable',
      'the queue (Redis) is unavailable; retry with the same Idempotency-Key',
      undefined,
      {
        'Retry-After': '1',
      },
    );
  }
}

/** What a money movement needs from the request that carries it, whoever serves it. */
export type MovementRequest = {
  /** The API key's id: the idempotency key's owner. */
  keyId: string;
  /** Checked already (`checkedIdempotencyKey`). */
  idempotencyKey: string;
  /** RFC 7240's `wait`, in seconds (`preferredWaitSeconds`); 0 answers at once. */
  waitS: number;
  /** Listens for the client hanging up before its answer; returns what stops listening. */
  onClientGone: (gone: () => void) => () => void;
  /**
   * Told the transfer's id once it is recorded (or found, for a replay), before any wait: the
   * audit trail's target, even if the answer then fails.
   */
  onRecorded: (transferId: string) => void;
};

/** The answer to a money movement, before any framework writes it. */
export type MovementAnswer = {
  status: 200 | 202;
  headers: Record<string, string>;
  body: TransferJson;
};

/**
 * The answer to a recorded money movement: 202 pending (200 for a replay); asked with
 * `Prefer: wait=N`, held until the transfer is final (then 200) or N seconds have passed.
 */
async function answerTo(
  deps: TransfersDeps,
  type: string,
  result: SubmitResult,
  request: Pick<MovementRequest, 'waitS' | 'onClientGone' | 'onRecorded'>,
  /** Made before the command was recorded, for the id it was recorded under (see moveMoney). */
  early?: Subscription,
): Promise<MovementAnswer> {
  deps.submissions.inc({ type, result: result.kind });
  switch (result.kind) {
    case 'accepted':
    case 'replayed': {
      const headers: Record<string, string> = { Location: `/v1/transfers/${result.transfer.id}` };
      if (result.kind === 'replayed') headers['Idempotent-Replayed'] = 'true';
      request.onRecorded(result.transfer.id);
      let transfer = result.transfer;
      const { waitS } = request;
      if (waitS > 0) {
        headers['Preference-Applied'] = `wait=${waitS}`;
        if (!isFinal(transfer.status)) {
          const fresh = result.kind === 'accepted' && early?.id === transfer.id;
          transfer = await untilFinal(
            deps,
            transfer.id,
            waitS,
            request.onClientGone,
            fresh ? { ...early, recorded: transfer } : undefined,
          );
        }
      }
      const status = result.kind === 'replayed' || isFinal(transfer.status) ? 200 : 202;
      return { status, headers, body: transferJson(transfer) };
    }
    case 'idempotency_key_reused':
      throw keyReused();
  }
}

/** What a Hono route tells `moveMoney` and `answerTo` of its request, besides its key. */
function honoRequest(c: Context<AuthEnv>) {
  return {
    waitS: preferredWaitSeconds(c.req.header('prefer')),
    onClientGone: (gone: () => void) => onClientGone(c, gone),
    onRecorded: (transferId: string) => c.set('auditTarget', transferId),
  };
}

function respond(c: Context<AuthEnv>, answer: MovementAnswer) {
  return c.json(answer.body, answer.status, answer.headers);
}

/**
 * RFC 7240's `wait` preference in seconds, bounded by WAIT_SECONDS_MAX; 0 when there is none or
 * it is not understood (a preference is never an error).
 */
export function preferredWaitSeconds(prefer: string | undefined): number {
  if (prefer === undefined) return 0;
  for (const preference of prefer.split(',')) {
    const m = /^\s*wait\s*=\s*"?([0-9]{1,9})"?\s*(?:;.*)?$/i.exec(preference);
    if (m) return Math.min(Number(m[1]), WAIT_SECONDS_MAX);
  }
  return 0;
}

/** A subscription to a transfer's end, made before the transfer was recorded. */
type Subscription = ReturnType<TransferWaiter['subscribe']> & { id: string };

/**
 * The transfer once it is final, or as it stands when `waitS` seconds have passed or the client
 * has hung up. Subscribes before reading, so a notification between the read and the wait is
 * not lost. Given a subscription made before the transfer was even recorded, there is nothing to
 * read first: it was pending when recorded, and no notification since can have been missed.
 */
async function untilFinal(
  deps: Pick<TransfersDeps, 'waiter' | 'reader'>,
  id: string,
  waitS: number,
  onGone: MovementRequest['onClientGone'],
  /** Subscribed before this request recorded the transfer, which it was then, as `recorded`. */
  subscribed?: Subscription & { recorded: Transfer },
): Promise<Transfer> {
  const sub = subscribed ?? deps.waiter.subscribe(id.toLowerCase(), waitS * 1000);
  const stopWaiting = onGone(() => sub.cancel());
  try {
    let seen = subscribed?.recorded;
    if (!subscribed) {
      seen = await findTransfer(deps, id);
      if (isFinal(seen.status)) return seen;
    }
    const final = await sub.done;
    // The worker's announcement carried how it ended: with the row as this request saw it before
    // its end, that is the row as it is now (only a worker changes a recorded transfer, and only
    // to its end), so it is not read again.
    if (final && seen) return { ...seen, ...final };
    return await findTransfer(deps, id);
  } finally {
    sub.cancel();
    stopWaiting();
  }
}

function keyReused(): ApiError {
  return new ApiError(
    422,
    'idempotency_key_reused',
    'this Idempotency-Key was used with a different request',
  );
}

/** One command through the intake; what it cannot record becomes 503, as the contract says. */
async function record(
  deps: TransfersDeps,
  command: MovementCommand,
  keyId: string,
  idempotencyKey: string,
): Promise<SubmitResult> {
  try {
    const [result] = await deps.submitter.submit(
      [{ ...command, idempotencyScope: keyId, idempotencyKey }],
      { admit: true },
    );
    return result!;
  } catch (err) {
    if (err instanceof OverloadedError) throw overloaded(err.message);
    throw unavailable(err);
  }
}

/** A deposit, withdrawal or transfer as the intake records it, built from its checked body. */
export type MovementCommand = Omit<Command, 'idempotencyScope' | 'idempotencyKey'>;

/**
 * Records one money movement and answers it: the whole of a deposit, withdrawal or transfer
 * after its body and headers are checked. Both the Hono routes and the web's money-movement
 * lane (src/app/money-lane.ts) call it, so the two answer alike.
 */
export async function moveMoney(
  deps: TransfersDeps,
  command: MovementCommand,
  request: MovementRequest,
): Promise<MovementAnswer> {
  requireQueue(deps);
  // Asked to wait, the request listens for its transfer's end before recording it, under an id
  // chosen here: no read before the wait, and none after it when the announcement says how the
  // transfer ended. A replay answers with the first request's transfer and reads as usual.
  const { waitS } = request;
  const id = newTransferId();
  const early = waitS > 0 ? { ...deps.waiter.subscribe(id, waitS * 1000), id } : undefined;
  try {
    const result = await record(deps, { ...command, id }, request.keyId, request.idempotencyKey);
    return await answerTo(deps, command.type, result, request, early);
  } finally {
    early?.cancel();
  }
}

/**
 * The refusal the intake would answer this movement with now (`503 overloaded`: the intake full,
 * or a partition it touches at its backlog cap), or undefined when it would be recorded. Decided
 * at once from memory, the same check `moveMoney` makes when it records; the web's money lane
 * asks it first, so that a flash crowd past capacity is refused without a transfer id, a waiter or
 * a submission being made for each request.
 */
export function refusalOf(deps: TransfersDeps, command: MovementCommand): ApiError | undefined {
  const reason = deps.submitter.refusal([command]);
  if (reason === undefined) return undefined;
  // One answer per reason (there are two): a flash crowd's refusals share it, made once.
  let refusal = REFUSALS_BY_REASON.get(reason);
  if (!refusal) REFUSALS_BY_REASON.set(reason, (refusal = overloaded(reason)));
  return refusal;
}
const REFUSALS_BY_REASON = new Map<string, ApiError>();

async function submitOne(c: Context<AuthEnv>, deps: TransfersDeps, command: MovementCommand) {
  const idempotencyKey = idempotencyKeyOf(c);
  const answer = await moveMoney(deps, command, {
    keyId: c.get('principal').keyId,
    idempotencyKey,
    ...honoRequest(c),
  });
  return respond(c, answer);
}

/**
 * Records a command that is not a money movement (a close, a cancel): the Idempotency-Key is
 * optional (without one, each request is a new command); answers as the intake does when it
 * cannot record. Returns the command's id.
 */
async function submitCommand(
  c: Context<AuthEnv>,
  deps: TransfersDeps,
  command: Omit<Command, 'idempotencyScope' | 'idempotencyKey'>,
): Promise<string> {
  requireQueue(deps);
  const idempotencyKey =
    c.req.header('idempotency-key') === undefined
      ? `${command.type}:${randomUUID()}`
      : idempotencyKeyOf(c);
  const result = await record(deps, command, c.get('principal').keyId, idempotencyKey);
  deps.submissions.inc({ type: command.type, result: result.kind });
  if (result.kind === 'idempotency_key_reused') throw keyReused();
  return result.transfer.id;
}

function expiresAtOf(text: string | undefined): Date | null {
  return text === undefined ? null : new Date(text);
}

/** Flash traffic past capacity meets a fast, honest no: nothing was recorded. */
function overloaded(detail: string): ApiError {
  return new ApiError(
    503,
    'overloaded',
    `${detail}; nothing was recorded, retry with the same Idempotency-Key`,
    undefined,
    { 'Retry-After': String(OVERLOADED_RETRY_AFTER_S) },
  );
}

/**
 * An infrastructure failure while recording becomes 503 (retry with the same key: the record is
 * either there or not, never half there). A bug stays a bug and becomes a 500.
 */
function unavailable(err: unknown): unknown {
  if (err instanceof ApiError || err instanceof AssertionError || isProgrammerPgError(err)) {
    return err;
  }
  log.warn({ err }, 'submission failed; answering 503');
  return new ApiError(
    503,
    'unavailable',
    'the ledger database is unavailable; retry with the same Idempotency-Key',
    undefined,
    {
      'Retry-After': '1',
    },
  );
}

type Movement<B extends z.ZodType> = {
  body: B;
  /** The command a checked body asks for; ApiError for what the schema alone cannot say. */
  command: (deps: Pick<TransfersDeps, 'config'>, b: z.infer<B>) => MovementCommand;
};
const movement = <B extends z.ZodType>(m: Movement<B>) => m;

/** The three money movements by path: their bodies and the commands they make. */
export const MOVEMENTS = {
  '/v1/deposits': movement({
    body: DepositBody,
    command: (deps, b) => ({
      type: 'deposit',
      fromAccountId: null,
      toAccountId: b.account_id.toLowerCase(),
      amountMinor: amountOf(deps, b.amount),
      currency: b.currency,
      expiresAt: expiresAtOf(b.expires_at),
    }),
  }),
  '/v1/withdrawals': movement({
    body: WithdrawalBody,
    command: (deps, b) => ({
      type: 'withdrawal',
      fromAccountId: b.account_id.toLowerCase(),
      toAccountId: null,
      amountMinor: amountOf(deps, b.amount),
      currency: b.currency,
      expiresAt: expiresAtOf(b.expires_at),
    }),
  }),
  '/v1/transfers': movement({
    body: TransferBody,
    command: (deps, b) => {
      const from = b.from_account_id.toLowerCase();
      const to = b.to_account_id.toLowerCase();
      if (from === to) {
        throw new ApiError(
          422,
          'validation_failed',
          'source and destination are the same account',
          [{ path: 'to_account_id', message: 'must differ from from_account_id' }],
        );
      }
      return {
        type: 'transfer',
        fromAccountId: from,
        toAccountId: to,
        amountMinor: amountOf(deps, b.amount),
        currency: b.currency,
        description: b.description ?? null,
        expiresAt: expiresAtOf(b.expires_at),
      };
    },
  }),
};

export type MovementPath = keyof typeof MOVEMENTS;

export function isMovementPath(path: string | undefined): path is MovementPath {
  return path !== undefined && Object.hasOwn(MOVEMENTS, path);
}

export function transfersRouter(deps: TransfersDeps) {
  const r = newRouter();

  r.openapi(
    moneyRoute(r, '/v1/deposits', 'Deposit money into an account', MOVEMENTS['/v1/deposits'].body),
    async (c) => submitOne(c, deps, MOVEMENTS['/v1/deposits'].command(deps, c.req.valid('json'))),
  );

  r.openapi(
    moneyRoute(
      r,
      '/v1/withdrawals',
      'Withdraw money from an account',
      MOVEMENTS['/v1/withdrawals'].body,
    ),
    async (c) =>
      submitOne(c, deps, MOVEMENTS['/v1/withdrawals'].command(deps, c.req.valid('json'))),
  );

  r.openapi(
    moneyRoute(
      r,
      '/v1/transfers',
      'Transfer money between two accounts',
      MOVEMENTS['/v1/transfers'].body,
    ),
    async (c) => submitOne(c, deps, MOVEMENTS['/v1/transfers'].command(deps, c.req.valid('json'))),
  );

  const reversal = createRoute({
    method: 'post',
    path: '/v1/transfers/{id}/reversals',
    summary: 'Reverse a completed transfer, fully or in part',
    description:
      'Creates a new transfer of type reversal, from the original destination back to its source. ' +
      'Without an amount, reverses what is left; the reversals of one transfer never add up to more than it moved. ' +
      'Like any transfer, it may fail with insufficient_funds.',
    tags: ['transfers'],
    security: BEARER,
    middleware: [requireScope('transfers:write'), rejectNonIntegerAmountLiterals] as const,
    request: {
      params: IdParam,
      headers: MoneyMovementHeaders,
      body: { required: false, content: { 'application/json': { schema: ReversalBody } } },
    },
    responses: accepted,
  });
  r.openapi(reversal, async (c) => {
    const { id } = c.req.valid('param');
    const b = c.req.valid('json') ?? {};
    const idempotencyKey = idempotencyKeyOf(c);
    const amountMinor = b.amount === undefined ? null : amountOf(deps, b.amount);
    if (!isUuid(id)) throw new ApiError(404, 'not_found', 'no such transfer');
    requireQueue(deps);
    let result;
    try {
      result = await deps.submitter.submitReversal({
        originalId: id.toLowerCase(),
        amountMinor,
        idempotencyScope: c.get('principal').keyId,
        idempotencyKey,
      });
    } catch (err) {
      throw unavailable(err);
    }
    if (result.kind === 'not_found') throw new ApiError(404, 'not_found', 'no such transfer');
    if (result.kind === 'not_reversible')
      throw new ApiError(422, 'validation_failed', result.detail);
    const answer = await answerTo(deps, 'reversal', result, honoRequest(c));
    return respond(c, answer);
  });

  const get = createRoute({
    method: 'get',
    path: '/v1/transfers/{id}',
    summary: 'Read a transfer; with wait, hold until it is final',
    tags: ['transfers'],
    security: BEARER,
    middleware: [requireScope('read')] as const,
    request: {
      params: IdParam,
      query: z.strictObject({
        wait: z.coerce
          .number()
          .min(0)
          .max(WAIT_SECONDS_MAX)
          .optional()
          .openapi({
            description: `Seconds to hold the request until the transfer is final (max ${WAIT_SECONDS_MAX}).`,
          }),
      }),
    },
    responses: {
      200: {
        description: 'The transfer',
        content: { 'application/json': { schema: TransferOut } },
      },
      ...problemResponses(400, 401, 403, 404, 429),
    },
  });
  const cancel = createRoute({
    method: 'post',
    path: '/v1/transfers/{id}/cancel',
    summary: 'Ask to cancel a transfer before its debit',
    description:
      "Recorded like a movement and decided by the source partition's owner in its order: if it " +
      "sees the cancel before the transfer's debit, the transfer ends failed/cancelled and moves " +
      'nothing; if the debit came first, the transfer goes on as usual (the cancel ends ' +
      'failed/too_late). Answers 202 with the transfer; poll it for the outcome. An optional ' +
      'Idempotency-Key makes retries return the same cancel.',
    tags: ['transfers'],
    security: BEARER,
    middleware: [requireScope('transfers:write')] as const,
    request: { params: IdParam, headers: IdempotencyHeader },
    responses: {
      ...accepted,
      ...problemResponses(400, 401, 403, 404, 422, 429, 503),
    },
  });
  r.openapi(cancel, async (c) => {
    const target = await findTransfer(deps, c.req.valid('param').id);
    if (target.type === 'close' || target.type === 'cancel') {
      throw new ApiError(422, 'validation_failed', `a ${target.type} cannot be cancelled`);
    }
    await submitCommand(c, deps, {
      type: 'cancel',
      // The account whose partition runs the target's debit: the cancel queues there.
      fromAccountId: target.fromAccountId ?? target.toAccountId,
      toAccountId: null,
      amountMinor: 0n,
      currency: target.currency,
      cancelsTransferId: target.id,
    });
    c.set('auditTarget', target.id);
    return c.json(transferJson(await findTransfer(deps, target.id)), 202, {
      Location: `/v1/transfers/${target.id}`,
    });
  });

  const close = createRoute({
    method: 'post',
    path: '/v1/accounts/{id}/close',
    summary: "Close an account, in its partition owner's order",
    description:
      'The owner of the account closes it between two of its batches, so no debit or credit races ' +
      'it: 200 with the closed account, or 409 account_not_empty if it holds money (or owes ' +
      'some). Credits that reach it later fail account_closed and go back to their payer. ' +
      `Answered within ${CLOSE_WAIT_SECONDS} s; if the owner has not applied it by then, 202 ` +
      'with the command to poll. An optional Idempotency-Key makes retries return the same ' +
      'command; closing a closed account answers 200.',
    tags: ['accounts'],
    security: BEARER,
    middleware: [requireScope('accounts:write')] as const,
    request: { params: IdParam, headers: IdempotencyHeader },
    responses: {
      200: {
        description: 'The closed account',
        content: { 'application/json': { schema: AccountOut } },
      },
      202: {
        description: 'Recorded, not applied yet: poll the Location',
        content: { 'application/json': { schema: TransferOut } },
      },
      ...problemResponses(400, 401, 403, 404, 409, 429, 503),
    },
  });
  r.openapi(close, async (c) => {
    const id = c.req.valid('param').id.toLowerCase();
    const account = isUuid(id) ? await getAccount(deps.pool, id) : undefined;
    if (!account) throw new ApiError(404, 'not_found', 'no such account');
    const commandId = await submitCommand(c, deps, {
      type: 'close',
      fromAccountId: id,
      toAccountId: null,
      amountMinor: 0n,
      currency: account.currency,
    });
    c.set('auditTarget', id);
    const command = await untilFinal(deps, commandId, CLOSE_WAIT_SECONDS, (gone) =>
      onClientGone(c, gone),
    );
    if (!isFinal(command.status)) {
      return c.json(transferJson(command), 202, { Location: `/v1/transfers/${commandId}` });
    }
    if (command.failureCode === 'account_not_empty') {
      throw new ApiError(
        409,
        'account_not_empty',
        'only an account with a zero balance can be closed',
      );
    }
    if (command.failureCode === 'account_not_found')
      throw new ApiError(404, 'not_found', 'no such account');
    // Closed now, or closed already (account_closed): either way the answer is the account.
    return c.json(accountJson((await getAccount(deps.pool, id))!), 200);
  });

  r.openapi(get, async (c) => {
    const { id } = c.req.valid('param');
    const { wait } = c.req.valid('query');
    const transfer = wait
      ? await untilFinal(deps, id, wait, (gone) => onClientGone(c, gone))
      : await findTransfer(deps, id);
    return c.json(transferJson(transfer), 200);
  });

  return r;
}

/**
 * Calls `gone` if the client hangs up first; returns the function that stops listening. Over a
 * socket it listens on Node's response, so no web Request or AbortSignal is built per request.
 */
function onClientGone(c: Context, gone: () => void): () => void {
  const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
  if (outgoing && typeof outgoing.once === 'function') return onResponseClosed(outgoing, gone);
  const signal = c.req.raw.signal;
  if (signal.aborted) {
    gone();
    return () => {};
  }
  signal.addEventListener('abort', gone);
  return () => signal.removeEventListener('abort', gone);
}

/**
 * Calls `gone` if Node closes `res` before it was written out (the client hung up); returns the
 * function that stops listening. Bound, not a named closure: tsx's keepNames wraps each of those.
 * A client may hang up before anyone listens (while its request is being recorded): Node emits
 * `close` once, so a response closed already counts as gone at once.
 */
export function onResponseClosed(res: ServerResponse, gone: () => void): () => void {
  if (res.closed) {
    hungUp(res, gone);
    return () => {};
  }
  const onClose = hungUp.bind(undefined, res, gone);
  res.once('close', onClose);
  return () => res.off('close', onClose);
}

function hungUp(res: ServerResponse, gone: () => void): void {
  if (!res.writableFinished) gone();
}

async function findTransfer(deps: Pick<TransfersDeps, 'reader'>, id: string): Promise<Transfer> {
  const t = await deps.reader.get(id);
  if (!t) throw new ApiError(404, 'not_found', 'no such transfer');
  return t;
}
