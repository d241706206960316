/**
 * A thrown error's text, as a task's attempt or copy failure and a delivery's `last_error` show
 * it: never empty, also for node's AggregateError of a host whose every address refused.
 */
import { describe, expect, it } from 'vitest';
import { classifyCreateFailure } from '../../../src/core/tasks/failover.js';
import { errorText } from '../../../src/core/tasks/error-text.js';

/** What node throws when every address of a host name refused the connection. */
function everyAddressRefused(): AggregateError {
  const refused = (address: string) => Object.assign(new Error(`connect ECONNREFUSED ${address}:9`), { code: 'ECONNREFUSED' });
  return Object.assign(new AggregateError([refused('127.0.0.1'), refused('127.0.0.2')], ''), { code: 'ECONNREFUSED' });
}

describe('errorText', () => {
  it('names every address of an AggregateError, whose own message is empty', () => {
    expect(errorText(everyAddressRefused())).toBe('connect ECONNREFUSED 127.0.0.1:9; connect ECONNREFUSED 127.0.0.2:9');
  });

  it('falls back to the code, then the name, of an error without a message', () => {
    expect(errorText(Object.assign(new Error(''), { code: 'EPIPE' }))).toBe('EPIPE');
    expect(errorText(new TypeError(''))).toBe('TypeError');
    expect(errorText('')).toBe('failed without a reason');
  });

  it('is what an attempt says of an answer it could not read', () => {
    expect(classifyCreateFailure(everyAddressRefused(), false).message).toBe(
      'unreadable answer: connect ECONNREFUSED 127.0.0.1:9; connect ECONNREFUSED 127.0.0.2:9',
    );
  });
});
