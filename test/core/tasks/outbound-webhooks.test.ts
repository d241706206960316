/**
 * The pure parts of outbound webhook delivery (SPEC §4): the back-off between delivery
 * attempts. Which targets are refused is `address-guard.test.ts`.
 */
import { describe, expect, it } from 'vitest';
import { deliveryBackoffMs } from '../../../src/core/tasks/outbound-webhooks.js';

describe('deliveryBackoffMs', () => {
  it('doubles from 5 s: 5, 10, 20, 40 s …', () => {
    expect([1, 2, 3, 4, 5].map(deliveryBackoffMs)).toEqual([5_000, 10_000, 20_000, 40_000, 80_000]);
  });

  it('is capped at one hour', () => {
    // 5 s × 2^10 = 5 120 s > 3 600 s.
    expect(deliveryBackoffMs(10)).toBe(2_560_000);
    expect(deliveryBackoffMs(11)).toBe(3_600_000);
    expect(deliveryBackoffMs(100)).toBe(3_600_000);
  });

  it('treats attempt 0 like the first', () => {
    expect(deliveryBackoffMs(0)).toBe(5_000);
  });
});
