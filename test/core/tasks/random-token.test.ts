import { describe, expect, it } from 'vitest';
import { randomToken } from '../../../src/core/tasks/random-token.js';

describe('randomToken', () => {
  it('gives base64url tokens of the asked length, none repeated across several refills of its pool', () => {
    // 2,000 tokens of 12 and 24 bytes span about eighteen 4 KiB pools, with tokens that do not
    // divide a pool evenly (a refill comes before a token would run past its end).
    const tokens = Array.from({ length: 2_000 }, (_, index) => randomToken(index % 2 === 0 ? 12 : 24));
    expect(new Set(tokens).size).toBe(tokens.length);
    tokens.forEach((token, index) => {
      expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(Buffer.from(token, 'base64url')).toHaveLength(index % 2 === 0 ? 12 : 24);
    });
  });

  it('spreads its bytes over every value (not a zeroed or stuck pool)', () => {
    const counts = new Array<number>(256).fill(0);
    for (let round = 0; round < 400; round++) for (const byte of Buffer.from(randomToken(64), 'base64url')) counts[byte]! += 1;
    // 25,600 bytes: about 100 of each value; a pool handed out twice or never refilled is far off.
    expect(Math.min(...counts)).toBeGreaterThan(40);
    expect(Math.max(...counts)).toBeLessThan(180);
  });

  it('refuses a length it cannot give', () => {
    expect(() => randomToken(0)).toThrow(RangeError);
    expect(() => randomToken(4097)).toThrow(RangeError);
    expect(() => randomToken(1.5)).toThrow(RangeError);
  });
});
