// Bearer-key authentication and scope checks. ADMIN_API_KEY holds every scope; other keys are
// stored as SHA-256 hashes and looked up once per cache period.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type pg from 'pg';
import { API_KEY_CACHE_ENTRIES_MAX, API_KEY_CACHE_MS } from '../config/limits';
import { ApiError } from './problem';

export const SCOPES = ['accounts:write', 'transfers:write', 'read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export type Principal = { keyId: string; name: string; scopes: ReadonlySet<Scope> };
export type AuthEnv = {
  Variables: {
    principal: Principal;
    /** What a state-changing request created or acted on, for the audit trail. */
    auditTarget?: string;
  };
};

export const ADMIN_KEY_ID = 'admin';

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function newSecret(): string {
  return `llk_${randomBytes(24).toString('base64url')}`;
}

export class KeyStore {
  /**
   * Keyed by the presented secret, so a known key costs one map lookup per request: no hashing
   * and no I/O on the hot path. Held in process memory only, bounded, and refreshed every
   * API_KEY_CACHE_MS, so a revoked key stops working within that time.
   */
  private readonly cache = new Map<string, { principal: Principal | null; expiresAtMs: number }>();

  /**
   * Lookups in flight, by secret: the requests that find a key unknown, or its entry expired,
   * while it is being looked up share that one lookup. Under a flash crowd every request of a
   * key would otherwise query PostgreSQL at once, at start and again each time its entry expires.
   */
  private readonly resolving = new Map<string, Promise<Principal | null>>();

  /**
   * Counts the forgettings (revocations). A lookup that a revocation overtook may have read the
   * key before it was revoked: it answers the requests that were waiting for it (they came before
   * the revocation) but is neither cached nor joined by the requests that come after.
   */
  private generation = 0;

  /** The admin key's hash, computed once; a new secret is compared hash to hash in constant time. */
  private readonly adminHash: Buffer | undefined;

  constructor(
    private readonly pool: pg.Pool,
    adminApiKey: string | undefined,
  ) {
    this.adminHash = adminApiKey ? Buffer.from(hashSecret(adminApiKey), 'hex') : undefined;
  }

  /** The key's principal if this process knows it now (no hashing, no I/O); else undefined. */
  known(secret: string): Principal | undefined {
    const cached = this.cache.get(secret);
    return cached && cached.expiresAtMs > Date.now() ? (cached.principal ?? undefined) : undefined;
  }

  resolve(secret: string): Promise<Principal | null> {
    const cached = this.cache.get(secret);
    if (cached && cached.expiresAtMs > Date.now()) return Promise.resolve(cached.principal);
    const inFlight = this.resolving.get(secret);
    if (inFlight) return inFlight;
    const lookup: Promise<Principal | null> = this.lookUp(secret).finally(() => {
      if (this.resolving.get(secret) === lookup) this.resolving.delete(secret);
    });
    this.resolving.set(secret, lookup);
    return lookup;
  }

  /**
   * Forgets what this process knows of a key (revoked): its next request looks it up again, and
   * no lookup already under way, which may have read the key before it was revoked, is reused.
   */
  forget(keyId: string): void {
    this.generation += 1;
    this.resolving.clear();
    for (const [secret, entry] of this.cache) {
      if (entry.principal?.keyId === keyId) this.cache.delete(secret);
    }
  }

  private async lookUp(secret: string): Promise<Principal | null> {
    const now = Date.now();
    const generation = this.generation;
    const hash = hashSecret(secret);
    let principal: Principal | null;
    if (this.adminHash && timingSafeEqual(Buffer.from(hash, 'hex'), this.adminHash)) {
      principal = { keyId: ADMIN_KEY_ID, name: 'ADMIN_API_KEY', scopes: new Set(SCOPES) };
    } else {
      const res = await this.pool.query<{ id: string; name: string; scopes: Scope[] }>(
        'SELECT id, name, scopes FROM api_keys WHERE secret_hash = $1 AND revoked_at IS NULL',
        [hash],
      );
      const row = res.rows[0];
      principal = row ? { keyId: row.id, name: row.name, scopes: new Set(row.scopes) } : null;
    }
    if (generation !== this.generation) return principal;
    if (this.cache.size >= API_KEY_CACHE_ENTRIES_MAX) this.cache.clear();
    this.cache.set(secret, { principal, expiresAtMs: now + API_KEY_CACHE_MS });
    return principal;
  }
}

/** Reads the key from `Authorization: Bearer …` (or Basic with the key as password, for browsers). */
export function secretFrom(header: string | undefined): string | undefined {
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

export function hasScope(principal: Principal, scope: Scope): boolean {
  return principal.scopes.has('admin') || principal.scopes.has(scope);
}

export function requireScope(scope: Scope): MiddlewareHandler<AuthEnv> {
  return async function requireScopeOf(c, next) {
    if (!hasScope(c.get('principal'), scope)) {
      throw new ApiError(403, 'forbidden', `this needs the ${scope} scope`);
    }
    await next();
  };
}
