/**
 * How a problem reads to people, shared by the CLI and the console: a detail that only repeats
 * the one field error is said once, at the field.
 */
import { describe, expect, it } from 'vitest';
import { detailRepeatsItsField } from '../../packages/client/src/index.js';

describe('detailRepeatsItsField', () => {
  const errors = [{ path: 'webhook_url', message: 'points at a private or loopback address' }];

  it('is true when the detail is the field error, with or without a colon or a full stop', () => {
    expect(detailRepeatsItsField({ errors }, 'webhook_url points at a private or loopback address')).toBe(true);
    expect(detailRepeatsItsField({ errors }, 'webhook_url: points at a private or loopback address.')).toBe(true);
  });

  it('is false when the detail says more, or there is not exactly one field error', () => {
    expect(detailRepeatsItsField({ errors }, 'webhook_url points at a private or loopback address; set webhooks.allow_private_targets')).toBe(false);
    expect(detailRepeatsItsField({ errors: [...errors, { path: 'prompt', message: 'empty' }] }, 'webhook_url points at a private or loopback address')).toBe(false);
    expect(detailRepeatsItsField({}, 'anything')).toBe(false);
  });
});
