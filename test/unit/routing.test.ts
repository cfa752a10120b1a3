// Proves account routing is stable, in range, case-insensitive and spreads accounts evenly.
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { fnv1a32, partitionOf } from '../../src/partitions/routing';

it('routes every id to the same partition every time, within 0..N-1, whatever its case', () => {
  fc.assert(
    fc.property(fc.uuid(), fc.integer({ min: 1, max: 1024 }), (id, n) => {
      const p = partitionOf(id, n);
      expect(p).toBeGreaterThanOrEqual(0);
      expect(p).toBeLessThan(n);
      expect(partitionOf(id.toUpperCase(), n)).toBe(p);
    }),
  );
});

it('is pinned: a change to the hash would move every account to another queue', () => {
  expect(fnv1a32('')).toBe(0x811c9dc5);
  expect(fnv1a32('a')).toBe(0xe40c292c);
  expect(partitionOf('6f1c1d2e-0000-4000-8000-000000000000', 16)).toBe(
    fnv1a32('6f1c1d2e-0000-4000-8000-000000000000') % 16,
  );
});

it('hashes the UTF-8 bytes of any text, ASCII or not', () => {
  const reference = (text: string) => {
    let h = 0x811c9dc5;
    for (const byte of Buffer.from(text, 'utf8')) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
    return h >>> 0;
  };
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.uuid()), (text) => {
      expect(fnv1a32(text)).toBe(reference(text));
    }),
  );
  expect(fnv1a32('é')).toBe(reference('é'));
});

it('spreads 16,000 random accounts over 16 partitions within 15% of even', () => {
  const counts = new Array<number>(16).fill(0);
  for (let i = 0; i < 16_000; i++) counts[partitionOf(crypto.randomUUID(), 16)]! += 1;
  for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(150);
});
