// Pins what "the same request" means for an idempotency key: a movement without the fields added
// later (cancels, expires_at) hashes exactly as before they existed, so a retry across an upgrade
// is still recognised; with them, the request is another one.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { requestHash, type Command } from '../../src/transfers/submit';

const base: Command = {
  type: 'transfer',
  fromAccountId: '0b9d7c8e-6a3f-4c31-9e1b-2d4f5a6b7c8d',
  toAccountId: '1b9d7c8e-6a3f-4c31-9e1b-2d4f5a6b7c8d',
  amountMinor: 2500n,
  currency: 'EUR',
  description: null,
  idempotencyScope: 'k',
};

describe('request hash', () => {
  it('is unchanged for a request without the later fields', () => {
    const before = JSON.stringify([
      'transfer',
      base.fromAccountId,
      base.toAccountId,
      '2500',
      'EUR',
      null,
      null,
    ]);
    expect(requestHash(base)).toBe(createHash('sha256').update(before).digest('hex'));
  });

  it('differs when expires_at or the cancelled transfer differ', () => {
    const a = requestHash({ ...base, expiresAt: new Date('2026-11-22T12:00:00Z') });
    const b = requestHash({ ...base, expiresAt: new Date('2026-11-22T12:00:01Z') });
    expect(new Set([requestHash(base), a, b]).size).toBe(3);
    expect(requestHash({ ...base, cancelsTransferId: 'x' })).not.toBe(requestHash(base));
  });
});
