// Daily interest: every open customer account with a positive balance earns
// floor(balance × annual_rate_bps / 10,000 / 365) minor units, from the `interest` system account,
// once per `as_of`: the transfer's idempotency key is `<as_of>:<account id>` in a scope no API key has.
import { createHash } from 'node:crypto';

export const DAYS_PER_YEAR = 365n;

/** The idempotency scope of interest transfers: an API key's scope is its id, never this. */
export const INTEREST_IDEMPOTENCY_SCOPE = 'interest';

export function dailyInterestMinor(balanceMinor: bigint, annualRateBps: number): bigint {
  if (balanceMinor <= 0n) return 0n;
  return (balanceMinor * BigInt(annualRateBps)) / (10_000n * DAYS_PER_YEAR);
}

export function interestIdempotencyKey(asOf: string, accountId: string): string {
  return `${asOf}:${accountId}`;
}

/** The key alone decides: the balance may have moved since a first attempt. */
export function interestRequestHash(asOf: string, accountId: string): string {
  return createHash('sha256')
    .update(JSON.stringify(['interest', asOf, accountId]))
    .digest('hex');
}
