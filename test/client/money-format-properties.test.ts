/**
 * How money and credits read, for any amount the gateway can hold (fast-check, fixed seed): a
 * sum of whole millionths (as usage and budgets add money up) reads as exactly those millionths,
 * grouped or not, in dollars or another currency; credits to the ten-thousandth they are kept in.
 * Never `0.30000000000000004`, never an exponent.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { formatCredits, formatMoney, formatNumber } from '../../packages/client/src/index.js';

/** `n` millionths as a decimal written out by hand: `1234500` → `1.2345`. */
function decimalOf(n: bigint, places: number): { whole: string; fraction: string } {
  const scale = 10n ** BigInt(places);
  return { whole: String(n / scale), fraction: String(n % scale).padStart(places, '0').replace(/0+$/, '') };
}

const withCommas = (whole: string) => whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');

/** Amounts up to about 900 million currency units in whole millionths (where a double still holds each one), as a sum of several charges. */
const millionths = fc.array(fc.integer({ min: 0, max: 150_000_000_000_000 }), { minLength: 1, maxLength: 6 }).map((parts) => parts.reduce((a, b) => a + b, 0));

it('reads a sum of whole millionths as exactly those millionths, in every currency and grouping', () => {
  fc.assert(
    fc.property(millionths, fc.constantFrom('USD', 'EUR', null), fc.boolean(), (micros, currency, grouped) => {
      const amount = micros / 1_000_000;
      const { whole, fraction } = decimalOf(BigInt(micros), 6);
      const units = grouped ? withCommas(whole) : whole;
      const expected =
        currency === 'USD' ? `$${units}.${fraction.padEnd(2, '0')}` : `${fraction ? `${units}.${fraction}` : units} ${currency ?? ''}`.trim();
      expect(formatMoney(amount, currency, { grouped })).toBe(expected);
    }),
    { seed: 4242, numRuns: 2_000 },
  );
});

it('reads the money of charges added up as floats (0.1 + 0.2) as the decimal sum, not its floating-point dust', () => {
  const cents = fc.array(fc.integer({ min: 0, max: 100_000_000 }), { minLength: 1, maxLength: 20 });
  fc.assert(
    fc.property(cents, (parts) => {
      // What a client adding the charges it read from the API gets: floats, dust included.
      const floatSum = parts.reduce((sum, part) => sum + part / 100, 0);
      const exact = parts.reduce((sum, part) => sum + BigInt(part), 0n);
      const { whole, fraction } = decimalOf(exact, 2);
      expect(formatMoney(floatSum, 'USD')).toBe(`$${whole}.${fraction.padEnd(2, '0')}`);
    }),
    { seed: 4242, numRuns: 2_000 },
  );
});

it('reads credits kept to the ten-thousandth as those ten-thousandths', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 90_000_000_000_000 }), fc.boolean(), (tenThousandths, grouped) => {
      const credits = tenThousandths / 10_000;
      const { whole, fraction } = decimalOf(BigInt(tenThousandths), 4);
      const text = `${grouped ? withCommas(whole) : whole}${fraction ? `.${fraction}` : ''}`;
      expect(formatNumber(credits, { grouped })).toBe(text);
      expect(formatCredits(credits, { grouped })).toBe(`${text} ${tenThousandths === 10_000 ? 'credit' : 'credits'}`);
    }),
    { seed: 4242, numRuns: 2_000 },
  );
});
