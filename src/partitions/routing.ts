// Account → partition: a stable hash, so every process routes an account to the same queue.
import { assert } from '../shared/assert';

/** FNV-1a over the UTF-8 bytes of the id; stable across processes, machines and Node versions. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

export function partitionOf(accountId: string, partitions: number): number {
  assert(Number.isInteger(partitions) && partitions >= 1, 'partitions must be a positive integer');
  // Ids are compared in canonical lower case so that 'A…' and 'a…' route alike.
  return fnv1a32(accountId.toLowerCase()) % partitions;
}
