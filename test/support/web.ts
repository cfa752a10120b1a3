// The web process for a test environment, called through app.request() or over real HTTP.
import type { Config } from '../../src/config/env';
import { createWebProcess, type WebLimits, type WebProcess } from '../../src/app/web-process';
import type { TestEnv } from './test-env';

export async function createTestWeb(
  env: TestEnv,
  overrides: Partial<Config> = {},
  limits: WebLimits = {},
): Promise<WebProcess> {
  return createWebProcess({ ...env.config, ...overrides }, limits);
}

export type Call = (
  method: string,
  path: string,
  opts?: {
    body?: unknown;
    rawBody?: string;
    key?: string | null;
    idem?: string;
    headers?: Record<string, string>;
  },
) => Promise<{ status: number; headers: Headers; json: any }>;

type Fetcher = (path: string, init: RequestInit) => Promise<Response>;

/** Calls the app in process (a WebProcess) or over HTTP (a base URL); `key: null` sends none. */
export function caller(target: WebProcess | string, defaultKey: string): Call {
  const fetcher: Fetcher =
    typeof target === 'string'
      ? (path, init) => fetch(`${target}${path}`, init)
      : (path, init) => Promise.resolve(target.app.request(path, init));
  return async (method, path, opts = {}) => {
    const headers: Record<string, string> = { ...opts.headers };
    const key = opts.key === undefined ? defaultKey : opts.key;
    if (key !== null) headers.authorization = `Bearer ${key}`;
    if (opts.idem !== undefined) headers['idempotency-key'] = opts.idem;
    let body: string | undefined;
    if (opts.rawBody !== undefined || opts.body !== undefined) {
      headers['content-type'] ??= 'application/json';
      body = opts.rawBody ?? JSON.stringify(opts.body);
    }
    const res = await fetcher(path, { method, headers, body });
    const text = await res.text();
    let json: unknown = text;
    try {
      json = JSON.parse(text);
    } catch {
      // Not JSON: metrics, docs pages.
    }
    return { status: res.status, headers: res.headers, json };
  };
}

/** Opens an account (EUR unless told) through the API and returns its id. */
export async function openAccount(call: Call, currency = 'EUR'): Promise<string> {
  const res = await call('POST', '/v1/accounts', { body: { holder: 'h', currency } });
  return res.json.id as string;
}
