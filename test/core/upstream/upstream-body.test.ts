/** Bodies on the wire: what is sent is what was set; what comes back is read as JSON in any form. */
import { describe, expect, it } from 'vitest';
import { compact, readJsonBody } from '../../../src/core/upstream/upstream-body.js';

describe('compact', () => {
  it('drops undefined keys and keeps every other value, falsy ones included', () => {
    expect(compact({ a: 1, b: undefined, c: null, d: false, e: 0, f: '' })).toStrictEqual({ a: 1, c: null, d: false, e: 0, f: '' });
  });
});

describe('readJsonBody', () => {
  it('parses bytes and text, and passes parsed values through', () => {
    expect(readJsonBody(Buffer.from('{"a":1}'))).toEqual({ a: 1 });
    expect(readJsonBody('[1,2]')).toEqual([1, 2]);
    expect(readJsonBody({ a: 1 })).toEqual({ a: 1 });
    expect(readJsonBody(undefined)).toBeUndefined();
  });

  it('gives undefined for text that is not JSON', () => {
    expect(readJsonBody('not json')).toBeUndefined();
    expect(readJsonBody(Buffer.from('<html>'))).toBeUndefined();
  });
});
