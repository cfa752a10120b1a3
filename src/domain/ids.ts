// Identifiers: every account and transfer id is a UUID, compared in lower case.
import { v7 as uuidv7 } from 'uuid';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/**
 * A new transfer's id: a UUIDv7 (RFC 9562), whose first 48 bits are the time in milliseconds.
 * Three indexes lead with the transfer id (the transfers' key, a ledger entry's and an applied
 * leg's once-only keys), so ids in time order insert at their right-hand edge: pages fill and
 * stay in the cache, where random ids split pages all over the index and dirtied a page per row.
 * The id tells when it was made, to the millisecond, which accepted_at says anyway.
 */
export function newTransferId(): string {
  return uuidv7();
}
