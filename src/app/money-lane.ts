// The money-movement lane: a deposit, withdrawal or transfer with nothing unusual about it is
// served straight from Node's request, without Hono's per-request machinery; everything else,
// and every request the lane would refuse, goes on to Hono with the body it read.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { auditedAction, requestIdOf } from '../audit/audit.routes';
import { BODY_BYTES_MAX } from '../config/limits';
import { hasScope, secretFrom } from '../http/auth';
import { bodyReadAlready, readIncoming, repeatedKey } from '../http/body';
import { ApiError, problemJson } from '../http/problem';
import {
  MOVEMENTS,
  checkedIdempotencyKey,
  hasNonIntegerAmountLiteral,
  isMovementPath,
  moveMoney,
  onResponseClosed,
  preferredWaitSeconds,
  refusalOf,
  type MovementAnswer,
  type MovementCommand,
  type MovementPath,
  type TransfersDeps,
} from '../transfers/transfers.routes';
import { log } from '../shared/log';
import { REFUSALS } from './app';
import type { HttpDeps } from './deps';

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/** The only bodies the lane reads; any other Content-Type goes to Hono, which answers it. */
const JSON_CONTENT_TYPE = /^application\/json(?:;\s*charset=utf-8)?$/i;

/**
 * Hono spends about a third of the web's CPU on a money movement (its context, router, validator,
 * middleware chain and web Response; measured in docs/performance.md), so the three routes the
 * flash traffic hits are served here when the request is one the Hono routes would accept:
 * a known key (cached, no I/O) with the scope, a JSON body that passes the same checks and
 * schema, an Idempotency-Key, Redis up, and a token in the key's bucket. The answer is made by
 * the same `moveMoney` the Hono routes call, and counted in the same metrics, audit trail and
 * rate limit. A request that fails any of those checks is handed to Hono as it came (its body
 * included), so every refusal, error and header of the contract has one implementation.
 */
export class MoneyLane {
  /** Requests the lane answered itself (the rest went on to Hono). */
  served = 0;

  private readonly movements: TransfersDeps;
  private readonly refusalAnswers = new Map<string, Answer>();

  constructor(private readonly deps: HttpDeps) {
    this.movements = { ...deps, submissions: deps.metrics.submissions };
  }

  /** The request listener: the lane's routes here, everything else to `next` (Hono). */
  listener(next: Listener): Listener {
    return (req, res) => {
      const path = req.method === 'POST' ? req.url : undefined;
      if (!isMovementPath(path)) return next(req, res);
      const declared = Number(req.headers['content-length']);
      const type = req.headers['content-type'];
      if (!(declared > 0 && declared <= BODY_BYTES_MAX) || !type || !JSON_CONTENT_TYPE.test(type)) {
        return next(req, res);
      }
      const startedMs = performance.now();
      readIncoming(req, BODY_BYTES_MAX).then(
        (text) => {
          let admitted: ReturnType<MoneyLane['admit']>;
          try {
            admitted = this.admit(req, path, text);
          } catch (err) {
            // A check that throws is a bug; the routes answer the request, as without the lane.
            log.error({ err, method: 'POST', path }, 'money lane: a check threw');
            admitted = undefined;
          }
          if (!admitted) {
            bodyReadAlready(req, text);
            return next(req, res);
          }
          this.served += 1;
          const refusal = refusalOf(this.movements, admitted.command);
          if (refusal) {
            // Past capacity: answered now, nothing made for it (no id, no waiter, no submission).
            try {
              this.finish(
                req,
                res,
                path,
                admitted,
                this.refusalAnswer(refusal, path),
                null,
                startedMs,
              );
            } catch (err) {
              unwritten(res, path, err);
            }
            return;
          }
          this.serve(req, res, path, admitted, startedMs).catch((err: unknown) =>
            unwritten(res, path, err),
          );
        },
        // Node's parser holds a body to its Content-Length, so this is a broken connection.
        () => res.destroy(),
      );
    };
  }

  /** The request as the Hono route would record it, or undefined to let Hono answer it. */
  private admit(req: IncomingMessage, path: MovementPath, text: string): Admitted | undefined {
    const secret = secretFrom(req.headers.authorization);
    const principal = secret === undefined ? undefined : this.deps.keys.known(secret);
    if (!principal || !hasScope(principal, 'transfers:write')) return undefined;
    if (repeatedKey(text) !== undefined || hasNonIntegerAmountLiteral(text)) return undefined;
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return undefined;
    }
    const movement = MOVEMENTS[path];
    const parsed = movement.body.safeParse(body);
    if (!parsed.success) return undefined;
    let command: MovementCommand;
    let idempotencyKey: string;
    try {
      // The casts: the three schemas differ, and `parsed` is the one `movement` asks for.
      command = (movement.command as (d: HttpDeps, b: unknown) => MovementCommand)(
        this.deps,
        parsed.data,
      );
      idempotencyKey = checkedIdempotencyKey(headerOf(req, 'idempotency-key'), req.rawHeaders);
    } catch {
      return undefined;
    }
    if (this.deps.redis.status !== 'ready') return undefined;
    // Last, so that a request handed on has not used a token: Hono's rate limit takes its own.
    if (this.deps.limiter.take(principal.keyId) !== undefined) return undefined;
    return { keyId: principal.keyId, idempotencyKey, command };
  }

  private async serve(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    admitted: Admitted,
    startedMs: number,
  ): Promise<void> {
    let answer: Answer;
    let transferId: string | null = null;
    try {
      // A method and a bound function, not arrow properties: tsx's keepNames wraps each named
      // closure it makes.
      const moved: MovementAnswer = await moveMoney(this.movements, admitted.command, {
        keyId: admitted.keyId,
        idempotencyKey: admitted.idempotencyKey,
        waitS: preferredWaitSeconds(headerOf(req, 'prefer')),
        onClientGone: onResponseClosed.bind(undefined, res),
        onRecorded(id) {
          transferId = id;
        },
      });
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      for (const [name, value] of Object.entries(moved.headers))
        headers[name.toLowerCase()] = value;
      answer = { status: moved.status, headers, body: JSON.stringify(moved.body) };
    } catch (err) {
      // As the app's error handler answers what a route throws.
      const known = err instanceof ApiError;
      if (!known) log.error({ err, method: 'POST', path }, 'unhandled error');
      answer = this.problemAnswer(known ? err : new ApiError(500, 'internal_error'), path);
    }
    this.finish(req, res, path, admitted, answer, transferId, startedMs);
  }

  /**
   * A refusal of the admission check, as `problemAnswer` makes it: its text made once per path
   * and refusal (three paths, two refusals), copied per request (`finish` adds its headers).
   */
  private refusalAnswer(e: ApiError, path: string): Answer {
    this.deps.metrics.refusals.inc({ code: e.code });
    const key = `${path} ${e.detail ?? ''}`;
    let made = this.refusalAnswers.get(key);
    if (!made) this.refusalAnswers.set(key, (made = problemOf(e, path)));
    return { status: made.status, headers: { ...made.headers }, body: made.body };
  }

  /** A problem as the app's error handler answers it, counted as a refusal when it is one. */
  private problemAnswer(e: ApiError, path: string): Answer {
    if (REFUSALS.has(e.code)) this.deps.metrics.refusals.inc({ code: e.code });
    return problemOf(e, path);
  }

  /** Writes the answer, then records it in the audit trail and the request metrics. */
  private finish(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    admitted: Admitted,
    answer: Answer,
    transferId: string | null,
    startedMs: number,
  ): void {
    const { deps } = this;
    const requestId = requestIdOf(headerOf(req, 'x-request-id'));
    const { status, headers, body } = answer;
    headers['x-request-id'] = requestId;
    // A length, as Hono's adapter gives it, not a chunked answer.
    headers['content-length'] = String(Buffer.byteLength(body));
    if (!res.destroyed) {
      res.writeHead(status, headers);
      res.end(body);
    }
    const action = auditedAction('POST', path, status);
    if (action) {
      deps.audit.record({
        apiKeyId: admitted.keyId,
        action,
        targetId: transferId,
        requestId,
        status,
      });
    }
    deps.metrics.requests.observe('POST', path, status, (performance.now() - startedMs) / 1000);
  }
}

type Admitted = { keyId: string; idempotencyKey: string; command: MovementCommand };
type Answer = { status: number; headers: Record<string, string>; body: string };

function problemOf(e: ApiError, path: string): Answer {
  const headers: Record<string, string> = { 'content-type': 'application/problem+json' };
  for (const [name, value] of Object.entries(e.headers ?? {})) headers[name.toLowerCase()] = value;
  return {
    status: e.status,
    headers,
    body: problemJson(path, e.status, e.code, e.detail, e.issues),
  };
}

function unwritten(res: ServerResponse, path: string, err: unknown): void {
  // Nothing the answer holds can make Node refuse to write it; if it ever does, the client sees a
  // closed connection (and retries with its key), not a hung one.
  log.error({ err, method: 'POST', path }, 'money lane: the answer was not written');
  res.destroy();
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' ? value : undefined;
}
