/**
 * How a task's cost reads in the CLI and on the console's task page: one credit is "1 credit",
 * as a try-on or an image generation on the legacy API costs, not "1 credits".
 */
import { describe, expect, it } from 'vitest';
import { formatChargesAtRisk, formatCost, type TaskCost } from '../../packages/client/src/index.js';

describe('cost wording', () => {
  it('says "1 credit" for one credit and "N credits" otherwise', () => {
    expect(formatCost({ credits: 1, estimated: false, currency_amount: 0.14, currency: 'USD' })).toBe('$0.14 (1 credit)');
    expect(formatCost({ credits: 1, estimated: true, currency_amount: null, currency: null })).toBe('1 credit (estimated)');
    expect(formatCost({ credits: 56, estimated: true, currency_amount: 0.56, currency: 'USD' })).toBe('$0.56 (56 credits, estimated)');
    expect(formatCost({ credits: 0.25, estimated: false, currency_amount: 0.04, currency: 'USD' })).toBe('$0.04 (0.25 credits)');
    expect(formatCost({ credits: 0, estimated: false, currency_amount: 0, currency: 'USD' })).toBe('$0.00 (0 credits)');
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
