// Proves the amount parser accepts exactly the positive integers the API promises, and nothing else.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAmount } from '../../src/domain/money';
import { dailyInterestMinor } from '../../src/domain/interest';

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

describe('daily interest', () => {
  it('matches hand-computed cases, always rounding down', () => {
    // floor(balance × bps / 10,000 / 365)
    expect(dailyInterestMinor(3_650_000n, 500)).toBe(500n); // exactly 500
    expect(dailyInterestMinor(3_649_999n, 500)).toBe(499n); // 499.99986… → 499
    expect(dailyInterestMinor(100n, 500)).toBe(0n); // 0.0137 → 0
    expect(dailyInterestMinor(7_300_000n, 1)).toBe(2n); // 7,300,000 × 0.01 % / 365 = 2
    expect(dailyInterestMinor(1_000_000_000_000n, 10_000)).toBe(2_739_726_027n); // 100 %: 2,739,726,027.39…
    expect(dailyInterestMinor(0n, 500)).toBe(0n);
    expect(dailyInterestMinor(-5_000n, 500)).toBe(0n); // overdrawn accounts earn nothing
  });

  it('never pays more than the exact amount, nor a minor unit less', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 10n ** 15n }),
        fc.integer({ min: 0, max: 10_000 }),
        (b, bps) => {
          const paid = dailyInterestMinor(b, bps);
          // paid ≤ b × bps / 3,650,000 < paid + 1
          expect(paid * 3_650_000n <= b * BigInt(bps)).toBe(true);
          expect((paid + 1n) * 3_650_000n > b * BigInt(bps)).toBe(true);
        },
      ),
    );
  });
});
