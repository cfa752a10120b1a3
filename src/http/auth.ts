// Bearer-key authentication and scope checks. ADMIN_API_KEY holds every scope; other keys are
// stored as SHA-256 hashes and looked up once per cache period.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type pg from 'pg';
import { API_KEY_CACHE_MS } from '../config/limits';
import { ApiError } from './problem';

export const SCOPES = ['accounts:write', 'transfers:write', 'read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export type Principal = { keyId: string; name: string; scopes: ReadonlySet<Scope> };
export type AuthEnv = { Variables: { principal: Principal } };

export const ADMIN_KEY_ID = 'admin';

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function newSecret(): string {
  return `llk_${randomBytes(24).toString('base64url')}`;
}

export class KeyStore {
  private readonly cache = new Map<string, { principal: Principal | null; expiresAtMs: number }>();

  /** The admin key's hash, computed once; requests are compared hash to hash in constant time. */
  private readonly adminHash: Buffer | undefined;

  constructor(
    private readonly pool: pg.Pool,
    adminApiKey: string | undefined,
  ) {
    this.adminHash = adminApiKey ? Buffer.from(hashSecret(adminApiKey), 'hex') : undefined;
  }

  async resolve(secret: string): Promise<Principal | null> {
    const hash = hashSecret(secret);
    if (this.adminHash && timingSafeEqual(Buffer.from(hash, 'hex'), this.adminHash)) {
      return { keyId: ADMIN_KEY_ID, name: 'ADMIN_API_KEY', scopes: new Set(SCOPES) };
    }
    const cached = this.cache.get(hash);
    if (cached && cached.expiresAtMs > Date.now()) return cached.principal;
    const res = await this.pool.query<{ id: string; name: string; scopes: Scope[] }>(
      'SELECT id, name, scopes FROM api_keys WHERE secret_hash = $1 AND revoked_at IS NULL',
      [hash],
    );
    const row = res.rows[0];
    const principal = row ? { keyId: row.id, name: row.name, scopes: new Set(row.scopes) } : null;
    // A revoked key stops working within API_KEY_CACHE_MS.
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(hash, { principal, expiresAtMs: Date.now() + API_KEY_CACHE_MS });
    return principal;
  }
}

/** Reads the key from `Authorization: Bearer …` (or Basic with the key as password, for browsers). */
function secretFrom(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const [scheme, value] = header.split(' ', 2);
  if (!value) return undefined;
  if (scheme?.toLowerCase() === 'bearer') return value.trim();
  if (scheme?.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon >= 0 ? decoded.slice(colon + 1) : undefined;
  }
  return undefined;
}

/**
 * `challenge: 'basic'` is for pages a person opens in a browser (the queue dashboard): the browser
 * then asks for a user name and password, and the key goes in as the password.
 */
export function authenticate(
  keys: KeyStore,
  opts: { challenge: 'bearer' | 'basic' } = { challenge: 'bearer' },
): MiddlewareHandler<AuthEnv> {
  const challenge =
    opts.challenge === 'basic' ? 'Basic realm="ledgerline admin"' : 'Bearer realm="ledgerline"';
  return async function authenticateRequest(c, next) {
    const secret = secretFrom(c.req.header('authorization'));
    const principal = secret ? await keys.resolve(secret) : null;
    if (!principal) {
      throw new ApiError(401, 'unauthorized', undefined, undefined, {
        'WWW-Authenticate': challenge,
      });
    }
    c.set('principal', principal);
    await next();
  };
}

export function requireScope(scope: Scope): MiddlewareHandler<AuthEnv> {
  return async function requireScopeOf(c, next) {
    const { scopes } = c.get('principal');
    if (!scopes.has('admin') && !scopes.has(scope)) {
      throw new ApiError(403, 'forbidden', `this needs the ${scope} scope`);
    }
    await next();
  };
}
