// Proves the amount parser accepts exactly the positive integers the API promises, and nothing else.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAmount } from '../../src/domain/money';

const MAX = 1_000_000_000_000n;

describe('parseAmount', () => {
  it('accepts every digit string from 1 to the maximum and returns it exactly', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: MAX }), (n) => {
        expect(parseAmount(n.toString(), MAX)).toEqual({ ok: true, amountMinor: n });
      }),
    );
  });

  it('accepts JSON integers up to 2^53-1 when the maximum allows it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), (n) => {
        expect(parseAmount(n, BigInt(Number.MAX_SAFE_INTEGER))).toEqual({
          ok: true,
          amountMinor: BigInt(n),
        });
      }),
    );
  });

  it('rejects zero, negatives, fractions, exponents, a leading plus, padding and leading zeros', () => {
    for (const bad of [
      '0',
      '-1',
      '1.5',
      '1e3',
      '+5',
      ' 5',
      '5 ',
      '007',
      '',
      '١٢',
      '0x10',
      0,
      -3,
      1.5,
      1e300,
      NaN,
      null,
      true,
      [],
      {},
    ]) {
      expect(parseAmount(bad, MAX).ok, JSON.stringify(bad)).toBe(false);
    }
    expect(parseAmount(2 ** 53, BigInt(2 ** 60)).ok).toBe(false);
  });

  it('rejects anything above the maximum', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: MAX + 1n, max: MAX * 1000n }), (n) => {
        expect(parseAmount(n.toString(), MAX)).toEqual({ ok: false, reason: 'above_max' });
      }),
    );
  });

  it('never accepts a string that is not a plain positive integer', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        const r = parseAmount(s, MAX);
        if (r.ok) expect(s).toMatch(/^[1-9][0-9]*$/);
      }),
    );
  });
});
