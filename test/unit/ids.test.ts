import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isUuid, newTransferId } from '../../src/domain/ids';

describe('transfer ids', () => {
  it('are UUIDv7: version 7, the time of making in the first 48 bits, in time order', () => {
    const before = Date.now();
    const ids = Array.from({ length: 2_000 }, () => newTransferId());
    const after = Date.now();
    for (const id of ids) {
      expect(isUuid(id)).toBe(true);
      expect(id[14]).toBe('7');
      const ms = parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
      expect(ms).toBeGreaterThanOrEqual(before);
      expect(ms).toBeLessThanOrEqual(after);
    }
    // In time order, so that the indexes led by the transfer id take them at their right-hand
    // edge (within one millisecond the order is random).
    const times = ids.map((id) => id.slice(0, 13));
    expect([...times].sort()).toEqual(times);
    // The variant is RFC 9562's (10xx), and the rest is random.
    for (const id of ids) expect('89ab').toContain(id[19]);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('tell a UUID from anything else', () => {
    fc.assert(fc.property(fc.uuid(), (id) => isUuid(id) && isUuid(id.toUpperCase())));
    fc.assert(
      fc.property(
        fc.string(),
        (s) => isUuid(s) === /^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$/i.test(s),
      ),
    );
  });
});
