import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { repeatedKey, scanForRepeatedKey } from '../../src/http/body';

/** A JSON object written by hand from key/value pairs, so that keys may repeat. */
function objectText(pairs: readonly (readonly [string, string])[]): string {
  return `{${pairs.map(([k, v]) => `${JSON.stringify(k)} : ${v}`).join(',\n')}}`;
}

const keys = fc.oneof(
  fc.constantFrom('amount', 'currency', 'account_id', 'x', 'a"b', 'a\\b', 'Ā'),
  fc.string({ maxLength: 4 }),
);
const leaf = fc.jsonValue({ maxDepth: 1 }).map((v) => JSON.stringify(v));
const value: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(fc.tuple(keys, tie('value')), { maxLength: 4 }).map(objectText),
  ),
})).value;
const body = fc.array(fc.tuple(keys, value), { maxLength: 6 }).map(objectText);

describe('a body that repeats a key', () => {
  it('is found with or without the quick check first, wherever the repetition is', () => {
    fc.assert(
      fc.property(body, (text) => {
        expect(repeatedKey(text)).toBe(scanForRepeatedKey(text));
      }),
      { numRuns: 2_000 },
    );
  });

  it('is found when spelled two ways, and the same key in two objects is none', () => {
    expect(repeatedKey('{"amount":"1","\\u0061mount":"2"}')).toBe('amount');
    expect(repeatedKey('{"amount":"1", "x": {"amount":"2"}}')).toBeUndefined();
    expect(repeatedKey('{"a":1,"b":{"c":2,"c" :3}}')).toBe('c');
    expect(repeatedKey('{"holder":"say \\"x\\": y","x":1}')).toBeUndefined();
    expect(repeatedKey('{"amount":"1","currency":"EUR"}')).toBeUndefined();
  });
});
