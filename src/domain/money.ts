// Money is a bigint count of minor units; it crosses JSON and job payloads as a string of digits.
import { JSON_SAFE_INTEGER_MAX } from '../config/limits';

export type AmountParse =
  | { ok: true; amountMinor: bigint }
  | { ok: false; reason: 'not_an_amount' | 'not_positive' | 'above_max' };

const DIGITS = /^[0-9]{1,19}$/;

/**
 * Parses an API amount: a string of digits or a JSON integer up to 2^53-1. Zero, negatives,
 * fractions, exponents, leading `+`, whitespace and leading zeros are all rejected.
 */
export function parseAmount(input: unknown, amountMinorMax: bigint): AmountParse {
  let amountMinor: bigint;
  if (typeof input === 'string') {
    if (!DIGITS.test(input)) return { ok: false, reason: 'not_an_amount' };
    if (input.length > 1 && input.startsWith('0')) return { ok: false, reason: 'not_an_amount' };
    amountMinor = BigInt(input);
  } else if (typeof input === 'number') {
    if (!Number.isSafeInteger(input)) return { ok: false, reason: 'not_an_amount' };
    amountMinor = BigInt(input);
    if (amountMinor > JSON_SAFE_INTEGER_MAX) return { ok: false, reason: 'not_an_amount' };
    if (amountMinor < 0n) return { ok: false, reason: 'not_positive' };
  } else {
    return { ok: false, reason: 'not_an_amount' };
  }
  if (amountMinor <= 0n) return { ok: false, reason: 'not_positive' };
  if (amountMinor > amountMinorMax) return { ok: false, reason: 'above_max' };
  return { ok: true, amountMinor };
}
