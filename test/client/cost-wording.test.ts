/**
 * How a task's cost reads in the CLI and on the console's task page: one credit is "1 credit",
 * as a try-on or an image generation on the legacy API costs, not "1 credits".
 */
import { describe, expect, it } from 'vitest';
import { formatChargesAtRisk, formatCost, formatCredits, formatMoney, formatNumber, type TaskCost } from '../../packages/client/src/index.js';

describe('cost wording', () => {
  it('says "1 credit" for one credit and "N credits" otherwise', () => {
    expect(formatCost({ credits: 1, estimated: false, currency_amount: 0.14, currency: 'USD' })).toBe('$0.14 (1 credit)');
    expect(formatCost({ credits: 1, estimated: true, currency_amount: null, currency: null })).toBe('1 credit (estimated)');
    expect(formatCost({ credits: 56, estimated: true, currency_amount: 0.56, currency: 'USD' })).toBe('$0.56 (56 credits, estimated)');
    expect(formatCost({ credits: 0.25, estimated: false, currency_amount: 0.04, currency: 'USD' })).toBe('$0.04 (0.25 credits)');
    expect(formatCost({ credits: 0, estimated: false, currency_amount: 0, currency: 'USD' })).toBe('$0.00 (0 credits)');
  });

  it('shows a dollar amount to the millionth the gateway counts in, not rounded to the cent', () => {
    // A kling3api O3 pro edit: 435 credits at $0.001. `toFixed(2)` read it as $0.43.
    expect(formatCost({ credits: 435, estimated: false, currency_amount: 0.435, currency: 'USD' })).toBe('$0.435 (435 credits)');
    // Freepik std, 3 s: 25.2 credits at $0.01.
    expect(formatMoney(0.252, 'USD')).toBe('$0.252');
    expect(formatMoney(1.008, 'USD')).toBe('$1.008');
    expect(formatMoney(0.4, 'USD')).toBe('$0.40');
    expect(formatMoney(12, 'USD')).toBe('$12.00');
    expect(formatMoney(0.0054, 'USD')).toBe('$0.0054');
    // Not "$0.0000" for a charge that is not nothing.
    expect(formatMoney(0.000035, 'USD')).toBe('$0.000035');
  });

  it('shows an amount in another currency to the millionth too, not rounded to four places', () => {
    // 12.5 kling3api credits at EUR 0.00093: 0.011625 EUR, which four places read as 0.0116.
    expect(formatCost({ credits: 12.5, estimated: false, currency_amount: 0.011625, currency: 'EUR' })).toBe('0.011625 EUR (12.5 credits)');
    expect(formatMoney(0.000035, 'EUR')).toBe('0.000035 EUR');
    expect(formatMoney(1234.5, 'GBP')).toBe('1234.5 GBP');
    expect(formatMoney(0.56, 'EUR')).toBe('0.56 EUR');
    expect(formatMoney(3, 'EUR')).toBe('3 EUR');
    expect(formatMoney(0, 'EUR')).toBe('0 EUR');
  });

  it('groups thousands for people (the console) and leaves them plain for scripts (the CLI)', () => {
    expect(formatMoney(12345.67, 'USD', { grouped: true })).toBe('$12,345.67');
    expect(formatMoney(1234567.000035, 'USD', { grouped: true })).toBe('$1,234,567.000035');
    expect(formatMoney(999.5, 'USD', { grouped: true })).toBe('$999.50');
    expect(formatMoney(1234.5, 'GBP', { grouped: true })).toBe('1,234.5 GBP');
    expect(formatMoney(-1234.5, 'USD', { grouped: true })).toBe('$-1,234.50');
    expect(formatCredits(1500, { grouped: true })).toBe('1,500 credits');
    expect(formatNumber(1234567.25, { grouped: true })).toBe('1,234,567.25');
    expect(formatNumber(100, { grouped: true })).toBe('100');
    // Unchanged without it: the CLI's tables are read by scripts.
    expect(formatMoney(12345.67, 'USD')).toBe('$12345.67');
    expect(formatCredits(1500)).toBe('1500 credits');
  });

  it('says "1 credit" for a charge at risk of one credit', () => {
    const cost: TaskCost = {
      credits: 4,
      estimated: true,
      currency_amount: 0.56,
      currency: 'USD',
      at_risk: [{ provider: 'kling-legacy', account: 'default', credits: 1, estimated: true, currency_amount: 0.14, currency: 'USD' }],
    };
    expect(formatChargesAtRisk(cost)).toBe('may also have been billed by kling-legacy: 1 credit, $0.14 (estimate)');
  });
});
