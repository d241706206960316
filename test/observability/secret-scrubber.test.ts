/**
 * The scrubber finds a secret in the forms an upstream might echo it in: any letter case,
 * URL-encoded, base64/base64url at any alignment inside a longer encoded string, hex, and cut
 * short from 8 characters on. It leaves ordinary text alone.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { REDACTED, SecretScrubber } from '../../src/observability/secret-scrubber.js';
import { capturedLogs } from '../support/captured-logs.js';
import { cpuTimer } from '../support/cpu-time.js';

const KEY = 'sk-Live_9f8E7d6C5b4A3/x+y=z';
const scrubber = new SecretScrubber([KEY, 'short', undefined]);

const b64 = (text: string) => Buffer.from(text).toString('base64');
const b64url = (text: string) => Buffer.from(text).toString('base64url');

describe('SecretScrubber', () => {
  it.each([
    ['verbatim', KEY],
    ['lower case', KEY.toLowerCase()],
    ['upper case', KEY.toUpperCase()],
    ['URL-encoded', encodeURIComponent(KEY)],
    ['URL-encoded, lower-case escapes', encodeURIComponent(KEY).toLowerCase()],
    ['base64', b64(KEY)],
    ['base64url', b64url(KEY)],
    ['base64 of the lower-cased key', b64(KEY.toLowerCase())],
    ['hex', Buffer.from(KEY).toString('hex')],
    ['HEX', Buffer.from(KEY).toString('hex').toUpperCase()],
    ['cut short to 8 characters', KEY.slice(0, 8)],
    ['cut short to 12 characters', KEY.slice(0, 12)],
  ])('removes the key %s', (_form, echoed) => {
    const text = `invalid api key "${echoed}" for this account`;
    const clean = scrubber.scrub(text);
    expect(clean).toContain(REDACTED);
    expect(clean).not.toContain(echoed);
    expect(clean.startsWith('invalid api key "')).toBe(true);
    expect(clean.endsWith('" for this account')).toBe(true);
  });

  it.each([['Bearer '], ['user:'], ['x'], ['xy'], ['xyz']])('finds the key base64-encoded after %j in one encoded string', (before) => {
    for (const encode of [b64, b64url]) {
      const encoded = encode(`${before}${KEY} trailing`);
      const clean = scrubber.scrub(`Authorization: Basic ${encoded}`);
      expect(clean).toContain(REDACTED);
      // What is left cannot be decoded back to a run of the key as long as 8 characters.
      const leftovers = clean.split(REDACTED).map((part) => Buffer.from(part.replace(/^Authorization: Basic /, ''), 'base64').toString('latin1'));
      for (const leftover of leftovers) expect(leftover.includes(KEY.slice(0, 8))).toBe(false);
    }
  });

  it('leaves ordinary text, and runs shorter than 8 characters, alone', () => {
    const text = `task failed: ${KEY.slice(0, 7)} is not a model; sk-other-key-entirely`;
    expect(scrubber.scrub(text)).toBe(text);
  });

  it('removes a short secret only whole, and ignores secrets under 6 characters', () => {
    const withShort = new SecretScrubber(['dev-key']);
    expect(withShort.scrub('key dev-key refused, DEV-KEY too')).toBe(`key ${REDACTED} refused, ${REDACTED} too`);
    expect(withShort.scrub('a dev-ke word')).toBe('a dev-ke word');
    expect(scrubber.scrub('short')).toBe('short');
  });

  it('scrubs a text read again the same way, around letters that change length when lowered', () => {
    // 'İ' lowers to two characters: the secret's place in the text must not shift.
    const text = `İİ status ${KEY.toUpperCase()} İ`;
    const first = scrubber.scrub(text);
    expect(first).toBe(`İİ status ${REDACTED} İ`);
    expect(scrubber.scrub(text)).toBe(first);
    expect(scrubber.scrub(`Job ${KEY} done`)).toBe(`Job ${REDACTED} done`);
    expect(scrubber.scrub(`Job ${KEY} done`)).toBe(`Job ${REDACTED} done`);
  });

  it('scrubs keys and values of nested JSON-like values, leaving numbers and the original alone', () => {
    const value = { error: { message: `bad ${KEY}`, [KEY]: 1, list: [encodeURIComponent(KEY), 2, null] } };
    const clean = scrubber.scrubDeep(value);
    expect(JSON.stringify(clean)).not.toContain(KEY.slice(0, 8));
    expect(clean.error.list[1]).toBe(2);
    expect(value.error.message).toBe(`bad ${KEY}`);
  });

  it('keeps a "__proto__" key of parsed JSON a key, where assigning it made it the copy\'s prototype', () => {
    const value = JSON.parse(`{"data":{"task_id":"t1","__proto__":{"status":"COMPLETED","note":"${KEY}"}}}`) as { data: Record<string, unknown> };
    const clean = scrubber.scrubDeep(value);
    expect(Object.getPrototypeOf(clean.data)).toBe(Object.prototype);
    expect(clean.data.status).toBeUndefined();
    expect(Object.keys(clean.data)).toEqual(['task_id', '__proto__']);
    expect(JSON.stringify(clean)).toBe(`{"data":{"task_id":"t1","__proto__":{"status":"COMPLETED","note":"${REDACTED}"}}}`);
  });
});

describe('log lines', () => {
  it('are scrubbed of every form of a configured secret, whatever field carries it', async () => {
    const logs = capturedLogs();
    const logger = createLogger('info', { destination: logs.sink, secrets: new SecretScrubber([KEY]) });
    logger.warn({ upstream: { body: { echo: b64(`Bearer ${KEY}`), lower: KEY.toLowerCase() } }, note: encodeURIComponent(KEY) }, `answer ${KEY.slice(0, 10)}`);
    await new Promise((resolve) => setImmediate(resolve));
    const written = logs.text();
    expect(written).toContain(REDACTED);
    for (const form of [KEY.slice(0, 8), KEY.toLowerCase().slice(0, 8), encodeURIComponent(KEY).slice(0, 8)]) expect(written).not.toContain(form);
    expect(() => JSON.parse(written)).not.toThrow();
  });

  it('are scrubbed of a secret holding a quote or a backslash, which a JSON line escapes', async () => {
    const quoted = 'pa"ss\\word-9f8e7d';
    const logs = capturedLogs();
    const logger = createLogger('info', { destination: logs.sink, secrets: new SecretScrubber([quoted]) });
    logger.warn({ upstream: { echo: quoted } }, `refused ${quoted}`);
    await new Promise((resolve) => setImmediate(resolve));
    const written = logs.text();
    expect(written).toContain(REDACTED);
    expect(written).not.toContain('word-9f8e7d');
  });

  it('redact a webhook secret by its field, one or a list of them (a rotation), even with no scrubber', async () => {
    const logs = capturedLogs();
    const logger = createLogger('info', { destination: logs.sink });
    logger.warn({ account: { id: 'main', webhookSecret: 'one-secret-value', webhookSecrets: ['new-secret-value', 'old-secret-value'] }, tenant: { webhook_secret: ['whsec_bmV3'] } }, 'settings by mistake');
    await new Promise((resolve) => setImmediate(resolve));
    const line = JSON.parse(logs.text()) as { account: Record<string, unknown>; tenant: Record<string, unknown> };
    expect([line.account, line.tenant]).toEqual([{ id: 'main', webhookSecret: '[redacted]', webhookSecrets: '[redacted]' }, { webhook_secret: '[redacted]' }]);
  });
});

describe('text built to make the scrubber work', () => {
  it('thousands of starts of a secret in one long word are scrubbed in time linear in the text', () => {
    // A caller knows its own key and chooses the request target a log line quotes: each start of
    // the key ran on to the end of the word from where it began, quadratic in the text.
    const secret = 'acme-secret-key';
    const scrubber = new SecretScrubber([secret]);
    const text = `GET /v1/videos?x=${secret.slice(0, 8).repeat(8_000)} done`;
    const cpuMs = cpuTimer();
    const clean = scrubber.scrub(text);
    expect(cpuMs()).toBeLessThan(200);
    expect(clean).toBe(`GET /v1/videos?x=${REDACTED} done`);
  });

  it('a run on to the end of the word still ends where the word does, for every match in it', () => {
    const scrubber = new SecretScrubber(['acme-secret-key']);
    expect(scrubber.scrub('a acme-secXacme-secret-keyY,acme-sec b acme-sec')).toBe(`a ${REDACTED},${REDACTED} b ${REDACTED}`);
  });
});
