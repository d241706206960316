/** Bodies on the wire: what is sent is what was set; what comes back is read as JSON in any form. */
import { describe, expect, it } from 'vitest';
import { compact, errorPageText, readJsonBody } from '../../../src/core/upstream/upstream-body.js';

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

describe('errorPageText', () => {
  it('tells an HTML error page by its title, and plain text as it came', () => {
    expect(errorPageText('<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>502</h1></body></html>')).toBe('an HTML page (502 Bad Gateway)');
    expect(errorPageText('<html><body><script>x()</script><p>Service  unavailable</p></body></html>')).toBe('an HTML page (Service unavailable)');
    expect(errorPageText('  upstream timed out \n')).toBe('upstream timed out');
  });

  it('reads only the start of a page: a 1 MB page of unclosed <script tags (as a broken or hostile upstream may send) is read at once', () => {
    // Read whole, each unclosed tag searched to the end of the body for its close: minutes of
    // the event loop for a 4 MB answer.
    const page = `<html><head><title>Oops</title></head><body>${'<script'.repeat(150_000)}`;
    expect(errorPageText(page)).toBe('an HTML page (Oops)');
    expect(errorPageText(`<html><body>${'<script'.repeat(150_000)}`)).toMatch(/^an HTML page/);
    // A tag is read up to the next `<` at most (a page of `<` is not searched to its end from each).
    expect(errorPageText(`<html><body>a < b <br> c${'<'.repeat(20_000)}`)).toMatch(/^an HTML page \(a < b c<+\)$/);
  });
});
