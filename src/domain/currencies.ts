// The currencies an account may hold: ISO 4217's active codes (list one, as the currency-codes
// package publishes it), without XTS (reserved for testing) and XXX (no currency at all).
import currencyCodes from 'currency-codes';

const NOT_MONEY = new Set(['XTS', 'XXX']);

export const ACTIVE_CURRENCIES: ReadonlySet<string> = new Set(
  currencyCodes.codes().filter((code) => !NOT_MONEY.has(code)),
);

/** The date of the ISO 4217 list the set above was read from. */
export const CURRENCY_LIST_DATE: string = currencyCodes.publishDate;

export function isActiveCurrency(code: string): boolean {
  return ACTIVE_CURRENCIES.has(code);
}
