// The Hono app: middleware, the routers per capability, error mapping to problem+json, docs.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { swaggerUI } from '@hono/swagger-ui';
import { except } from 'hono/combine';
import { TrieRouter } from 'hono/router/trie-router';
import type { RouterRoute } from 'hono/types';
import { HTTPException } from 'hono/http-exception';
import { accountEventsRouter } from '../accounts/account-events';
import { accountsRouter } from '../accounts/accounts.routes';
import { auditRouter, auditTrail } from '../audit/audit.routes';
import { BODY_BYTES_MAX } from '../config/limits';
import { transfersRouter } from '../transfers/transfers.routes';
import { adminRouter, queueDashboard } from './admin.routes';
import { authenticate, requireScope } from '../http/auth';
import { readBody } from '../http/body';
import { ApiError, problem, type ProblemCode } from '../http/problem';
import { RateLimiter, rateLimit } from '../http/rate-limit';
import { newRouter } from '../http/router';
import type { HttpDeps } from './deps';
import { log } from '../shared/log';

export const API_VERSION = '1.0.0';

const DOCS_ASSETS_BASE = '/docs/assets';
const QUEUE_DASHBOARD_PATH = '/admin/queues';
const SWAGGER_UI_DIR = path.dirname(
  createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'),
);
const DOCS_ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
};

export function createApp(deps: HttpDeps) {
  const app = newRouter();
  // The dashboard's pages and their many asset requests count against their own buckets.
  const adminLimiter = new RateLimiter(deps.limiter.opts);

  app.use('*', deps.metrics.middleware);
  app.use('*', readBody({ maxBytes: BODY_BYTES_MAX }));
  app.use('/v1/*', authenticate(deps.keys), auditTrail(deps.audit), rateLimit(deps.limiter));
  // The dashboard's static files are the published package's own (scripts, styles, labels):
  // nothing secret, and some of the page's own requests for them carry no credentials.
  app.use(
    '/admin/*',
    except(
      `${QUEUE_DASHBOARD_PATH}/static/*`,
      authenticate(deps.keys, { challenge: 'basic' }),
      rateLimit(adminLimiter),
      requireScope('admin'),
    ),
  );

  app.get('/healthz', (c) => c.json({ ok: true }));
  app.get('/readyz', async (c) => {
    const [postgres, redis] = await Promise.all([
      deps.pool.query('SELECT 1').then(
        () => true,
        () => false,
      ),
      deps.redis.status === 'ready'
        ? deps.redis.ping().then(
            () => true,
            () => false,
          )
        : Promise.resolve(false),
    ]);
    const ok = postgres && redis;
    return c.json({ ok, postgres, redis }, ok ? 200 : 503);
  });
  app.get('/metrics', async (c) =>
    c.text(await deps.metrics.render(), 200, {
      'Content-Type': deps.metrics.registry.contentType,
    }),
  );

  app.route('/', accountsRouter(deps));
  app.route('/', accountEventsRouter({ ...deps, watcher: deps.waiter }));
  app.route('/', transfersRouter({ ...deps, submissions: deps.metrics.submissions }));
  app.route('/', adminRouter(deps));
  app.route('/', auditRouter(deps));
  app.route(QUEUE_DASHBOARD_PATH, queueDashboard(deps, QUEUE_DASHBOARD_PATH));

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
  });
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'Ledgerline',
      version: API_VERSION,
      description:
        'Queue-serialized transfer processor. Money movements answer 202 once recorded in PostgreSQL; ' +
        'poll or long-poll GET /v1/transfers/{id}?wait=S for the outcome. Amounts are strings of minor units.',
    },
  });
  // The page's assets come from the installed swagger-ui-dist, not a CDN: /docs works offline.
  app.get('/docs', swaggerUI({ url: '/openapi.json', baseUrl: DOCS_ASSETS_BASE }));
  app.get(`${DOCS_ASSETS_BASE}/swagger-ui-dist/:file`, async (c) => {
    const asset = DOCS_ASSETS[c.req.param('file')];
    if (!asset) return problem(c, 404, 'not_found');
    const body = await readFile(path.join(SWAGGER_UI_DIR, c.req.param('file')));
    return c.body(body, 200, {
      'Content-Type': asset,
      'Cache-Control': 'public, max-age=86400',
    });
  });

  let allowed: ((path: string) => string[]) | undefined;
  app.notFound((c) => {
    // A path the API serves, asked with a method it does not: 405 with the methods it does.
    allowed ??= allowedMethods(app.routes);
    const methods = allowed(c.req.path);
    if (methods.length > 0) {
      const res = problem(
        c,
        405,
        'method_not_allowed',
        `${c.req.path} answers ${methods.join(', ')}, not ${c.req.method}`,
      );
      res.headers.set('Allow', methods.join(', '));
      return res;
    }
    return problem(c, 404, 'not_found', `no route for ${c.req.method} ${c.req.path}`);
  });
  app.onError((err, c) => {
    if (err instanceof ApiError) {
      if (REFUSALS.has(err.code)) deps.metrics.refusals.inc({ code: err.code });
      const res = problem(c, err.status, err.code, err.detail, err.issues);
      for (const [k, v] of Object.entries(err.headers ?? {})) res.headers.set(k, v);
      return res;
    }
    if (err instanceof HTTPException) {
      // Hono's own: malformed JSON, a wrong Content-Type and the like.
      if (err.status === 413) return problem(c, 413, 'payload_too_large');
      if (err.status < 500)
        return problem(c, 400, 'validation_failed', err.message || 'malformed request');
    }
    log.error({ err, method: c.req.method, path: c.req.path }, 'unhandled error');
    return problem(c, 500, 'internal_error');
  });
  return app;
}

/** Answers that refuse a request at once, recording nothing: counted as admission refusals. */
export const REFUSALS: ReadonlySet<ProblemCode> = new Set([
  'overloaded',
  'rate_limited',
  'unavailable',
]);

const ROUTE_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

/** The methods the app's routes answer for a path (HEAD with GET, as Hono serves it). */
function allowedMethods(routes: readonly RouterRoute[]): (path: string) => string[] {
  const router = new TrieRouter<string>();
  for (const r of routes) {
    if ((ROUTE_METHODS as readonly string[]).includes(r.method))
      router.add(r.method, r.path, r.method);
  }
  return (path) => {
    const methods = ROUTE_METHODS.filter((m) =>
      router.match(m, path)[0].some(([handler]) => handler === m),
    );
    return methods.includes('GET') ? ['GET', 'HEAD', ...methods.slice(1)] : [...methods];
  };
}
