// RFC 9457 problem+json errors, each with a stable machine-readable code.
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { AnswerError } from '../shared/answer-error';

export const PROBLEM_CODES = [
  'validation_failed',
  'idempotency_key_missing',
  'idempotency_key_reused',
  'not_found',
  'unauthorized',
  'forbidden',
  'payload_too_large',
  'request_timeout',
  'headers_too_large',
  'malformed_request',
  'rate_limited',
  'unavailable',
  'overloaded',
  'method_not_allowed',
  'account_not_empty',
  'internal_error',
] as const;
export type ProblemCode = (typeof PROBLEM_CODES)[number];

const TITLES: Record<ProblemCode, string> = {
  validation_failed: 'The request is not valid',
  idempotency_key_missing: 'An Idempotency-Key header is required',
  idempotency_key_reused: 'The Idempotency-Key was used with another request',
  not_found: 'Not found',
  unauthorized: 'Missing or unknown API key',
  forbidden: 'The API key lacks the scope this needs',
  payload_too_large: 'The request body is too large',
  request_timeout: 'The request did not arrive in time',
  headers_too_large: 'The request headers are too large',
  malformed_request: 'The request is not HTTP/1.1 this server can read',
  rate_limited: 'Too many requests',
  unavailable: 'A dependency is unavailable; retry with the same Idempotency-Key',
  overloaded: 'Too much traffic for now; retry after the Retry-After seconds',
  method_not_allowed: 'The path does not answer this method; see the Allow header',
  account_not_empty: 'Only an account with a zero balance can be closed',
  internal_error: 'Internal error',
};

export type ProblemIssue = { path: string; message: string };

/** Thrown anywhere in a handler; the app's error handler turns it into problem+json. */
export class ApiError extends AnswerError {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: ProblemCode,
    readonly detail?: string,
    readonly issues?: ProblemIssue[],
    readonly headers?: Record<string, string>,
  ) {
    super(detail ?? TITLES[code]);
  }
}

export function problem(
  c: Context,
  status: ContentfulStatusCode,
  code: ProblemCode,
  detail?: string,
  issues?: ProblemIssue[],
): Response {
  return c.body(problemJson(c.req.path, status, code, detail, issues), status, {
    'Content-Type': 'application/problem+json',
  });
}

/** A problem's JSON text, for the request to `instance` (unknown when the request was not read). */
export function problemJson(
  instance: string | undefined,
  status: number,
  code: ProblemCode,
  detail?: string,
  issues?: ProblemIssue[],
): string {
  return JSON.stringify({
    type: `/problems/${code}`,
    title: TITLES[code],
    status,
    code,
    ...(detail ? { detail } : {}),
    ...(issues && issues.length > 0 ? { errors: issues } : {}),
    ...(instance === undefined ? {} : { instance }),
  });
}
