/**
 * How the gateway learns a Freepik task's status: status words and task answers → canonical
 * status reports (SPEC §2), and webhook verification (seed 001, "Webhooks"). Signatures in these
 * tests are made independently of the code under test: with the `standardwebhooks` library in
 * raw-key mode, and with a hand-written HMAC for a non-ASCII secret.
 */
import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import type { InboundWebhook } from '../../../src/core/upstream/provider.js';
import { readFreepikTask } from '../../../src/providers/freepik/freepik-schemas.js';
import { mapFreepikStatus, toFreepikStatusReport, verifyFreepikWebhook } from '../../../src/providers/freepik/freepik-status.js';

const TASK_ID = '046b6c7f-0b8a-43b9-b35d-6489e6daee91';
const VIDEO = 'https://ai-statics.freepik.com/result.mp4';

describe('mapFreepikStatus', () => {
  it.each([
    ['CREATED', 'queued'],
    ['IN_PROGRESS', 'processing'],
    ['COMPLETED', 'succeeded'],
    ['FAILED', 'failed'],
  ] as const)('%s → %s', (word, status) => {
    expect(mapFreepikStatus(word)).toBe(status);
  });

  it.each(['SUCCESS', 'completed', 'COMPLETED_WITH_ERRORS', 'DONE', 'constructor', '', null, undefined])(
    'keeps %s unknown, never success',
    (word) => {
      expect(mapFreepikStatus(word)).toBe('unknown');
    },
  );
});

describe('toFreepikStatusReport', () => {
  it('reads the seed example of a completed task (data envelope) as a video output', () => {
    const task = readFreepikTask({ data: { generated: [VIDEO], task_id: TASK_ID, status: 'COMPLETED' } });
    expect(task && toFreepikStatusReport(task)).toEqual({
      status: 'succeeded',
      providerStatus: 'COMPLETED',
      outputs: [{ type: 'video', url: VIDEO, duration: null }],
    });
  });

  it('reads a bare task object too (webhook payloads)', () => {
    const task = readFreepikTask({ task_id: TASK_ID, status: 'IN_PROGRESS', generated: [] });
    expect(task && toFreepikStatusReport(task)).toEqual({ status: 'processing', providerStatus: 'IN_PROGRESS', outputs: [] });
  });

  it('keeps an unknown word raw and the task open', () => {
    const task = readFreepikTask({ data: { task_id: TASK_ID, status: 'REVIEWING', generated: [VIDEO] } });
    const report = task && toFreepikStatusReport(task);
    expect(report?.status).toBe('unknown');
    expect(report?.providerStatus).toBe('REVIEWING');
    expect(report?.error).toBeUndefined();
  });

  it('tolerates missing and odd fields', () => {
    const task = readFreepikTask({ data: { task_id: TASK_ID, status: 'CREATED', generated: 'nope', extra: { a: 1 } } });
    expect(task && toFreepikStatusReport(task)).toEqual({ status: 'queued', providerStatus: 'CREATED', outputs: [] });
    const noStatus = readFreepikTask({ data: { task_id: TASK_ID } });
    expect(noStatus && toFreepikStatusReport(noStatus).status).toBe('unknown');
  });

  it('takes only URL strings (or {url}) from generated', () => {
    const task = readFreepikTask({ data: { task_id: TASK_ID, status: 'COMPLETED', generated: [VIDEO, 42, { url: `${VIDEO}?2` }, ''] } });
    expect(task && toFreepikStatusReport(task).outputs.map((output) => output.url)).toEqual([VIDEO, `${VIDEO}?2`]);
  });

  it('reports a failed task without a reason as provider_error', () => {
    const task = readFreepikTask({ data: { task_id: TASK_ID, status: 'FAILED', generated: [] } });
    expect(task && toFreepikStatusReport(task)).toEqual({
      status: 'failed',
      providerStatus: 'FAILED',
      outputs: [],
      error: { code: 'provider_error', message: 'Freepik reported the task FAILED', providerCode: 'FAILED' },
    });
  });

  it('keeps an ordinary failure reason in the message, still provider_error', () => {
    const task = readFreepikTask({ data: { task_id: TASK_ID, status: 'FAILED', generated: [], error: 'Image could not be downloaded' } });
    const report = task && toFreepikStatusReport(task);
    expect(report?.error?.code).toBe('provider_error');
    expect(report?.error?.message).toContain('Image could not be downloaded');
  });

  it.each([
    { error: 'Content policy violation' },
    { message: 'NSFW content detected' },
    { reason: { detail: 'Blocked by the safety system' } },
    { failure_reason: 'The prompt was flagged by moderation' },
  ])('reads a failure reason that speaks of content policy as content_policy: %o', (reason) => {
    const task = readFreepikTask({ data: { task_id: TASK_ID, status: 'FAILED', generated: [], ...reason } });
    expect(task && toFreepikStatusReport(task).error?.code).toBe('content_policy');
  });

  it('does not read the task id or result URLs as a reason', () => {
    const task = readFreepikTask({ data: { task_id: 'nsfw-safety-id', status: 'FAILED', generated: ['https://x/safety.mp4'] } });
    expect(task && toFreepikStatusReport(task).error?.code).toBe('provider_error');
  });

  it('reports COMPLETED without a file as a success with no outputs (the gateway confirms, then fails it)', () => {
    const task = readFreepikTask({ data: { task_id: TASK_ID, status: 'COMPLETED', generated: [] } });
    expect(task && toFreepikStatusReport(task)).toStrictEqual({ status: 'succeeded', providerStatus: 'COMPLETED', outputs: [] });
  });
});

describe('readFreepikTask', () => {
  it.each([null, undefined, 'not json', 42, []])('gives nothing for %o', (body) => {
    expect(readFreepikTask(body)?.task_id ?? undefined).toBeUndefined();
  });

  it('parses JSON text', () => {
    expect(readFreepikTask(JSON.stringify({ data: { task_id: TASK_ID, status: 'CREATED' } }))?.task_id).toBe(TASK_ID);
  });
});

const SECRET = 'fpk-webhook-secret-123';
// Deliberately far from the real clock: verification must use `nowMs`, not Date.now().
const NOW_MS = Date.UTC(2031, 5, 1, 12, 0, 0);
const NOW_S = Math.floor(NOW_MS / 1000);
const BODY = JSON.stringify({ task_id: TASK_ID, status: 'COMPLETED', generated: ['https://ai-statics.freepik.com/v.mp4'] });

function signWithLibrary(secret: string, id: string, timestampS: number, body: string): string {
  return new Webhook(secret, { format: 'raw' }).sign(id, new Date(timestampS * 1000), body);
}

function webhook(options: { id?: string; timestamp?: number; signature?: string; body?: string; omit?: string[] } = {}): InboundWebhook {
  const id = options.id ?? 'msg_2abc';
  const timestamp = options.timestamp ?? NOW_S;
  const body = options.body ?? BODY;
  const headers: Record<string, string | undefined> = {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': options.signature ?? signWithLibrary(SECRET, id, timestamp, body),
  };
  for (const name of options.omit ?? []) delete headers[name];
  return { headers, rawBody: Buffer.from(body, 'utf8') };
}

describe('verifyFreepikWebhook', () => {
  it('accepts a good signature and reads the task', () => {
    expect(verifyFreepikWebhook(webhook(), SECRET, NOW_MS)).toEqual({
      ok: true,
      webhookId: 'msg_2abc',
      providerTaskId: TASK_ID,
      report: {
        status: 'succeeded',
        providerStatus: 'COMPLETED',
        outputs: [{ type: 'video', url: 'https://ai-statics.freepik.com/v.mp4', duration: null }],
      },
    });
  });

  it('keys the HMAC with the secret UTF-8 bytes as given', () => {
    const secret = 'clé-secrète-ü';
    const id = 'msg_utf8';
    const digest = createHmac('sha256', Buffer.from(secret, 'utf8')).update(`${id}.${NOW_S}.${BODY}`).digest('base64');
    expect(verifyFreepikWebhook(webhook({ id, signature: `v1,${digest}` }), secret, NOW_MS).ok).toBe(true);
  });

  it('also takes the keys of the same secret read as Standard Webhooks reads it (base64, short or long) and with its whsec_ prefix off or on, never another secret\'s', () => {
    const id = 'msg_forms';
    const entry = (key: Buffer) => `v1,${createHmac('sha256', key).update(`${id}.${NOW_S}.${BODY}`).digest('base64')}`;
    const base64Secret = Buffer.from('raw-key-bytes').toString('base64');
    expect(verifyFreepikWebhook(webhook({ id, signature: entry(Buffer.from('raw-key-bytes')) }), base64Secret, NOW_MS).ok).toBe(true);
    expect(verifyFreepikWebhook(webhook({ id, signature: entry(Buffer.from('raw-key-bytes')) }), `whsec_${base64Secret}`, NOW_MS).ok).toBe(true);
    expect(verifyFreepikWebhook(webhook({ id, signature: entry(Buffer.from('dashboard-secret')) }), 'whsec_dashboard-secret', NOW_MS).ok).toBe(true);
    expect(verifyFreepikWebhook(webhook({ id, signature: entry(Buffer.from('whsec_dashboard-secret')) }), 'dashboard-secret', NOW_MS).ok).toBe(true);
    // Keys of other secrets, in any of those forms, are refused.
    expect(verifyFreepikWebhook(webhook({ id, signature: entry(Buffer.from('raw-key-byteS')) }), base64Secret, NOW_MS).ok).toBe(false);
    expect(verifyFreepikWebhook(webhook({ id, signature: entry(Buffer.from('dashboard-secret')) }), 'whsec_dashboard-secreT', NOW_MS).ok).toBe(false);
    expect(verifyFreepikWebhook(webhook({ id, signature: entry(Buffer.from('whsec_dashboard-secret')) }), 'other-secret', NOW_MS).ok).toBe(false);
  });

  it('refuses a bad signature', () => {
    const result = verifyFreepikWebhook(webhook({ signature: `v1,${Buffer.alloc(32, 7).toString('base64')}` }), SECRET, NOW_MS);
    expect(result).toEqual({ ok: false, reason: 'no webhook-signature entry matches' });
  });

  it('refuses a signature made with another secret', () => {
    const signature = signWithLibrary('another-secret', 'msg_2abc', NOW_S, BODY);
    expect(verifyFreepikWebhook(webhook({ signature }), SECRET, NOW_MS).ok).toBe(false);
  });

  it('refuses a tampered body', () => {
    const signature = signWithLibrary(SECRET, 'msg_2abc', NOW_S, BODY);
    const tampered = BODY.replace('COMPLETED', 'FAILED');
    expect(verifyFreepikWebhook(webhook({ signature, body: tampered }), SECRET, NOW_MS).ok).toBe(false);
  });

  it('refuses a signature replayed under another webhook-id', () => {
    const signature = signWithLibrary(SECRET, 'msg_original', NOW_S, BODY);
    expect(verifyFreepikWebhook(webhook({ id: 'msg_other', signature }), SECRET, NOW_MS).ok).toBe(false);
  });

  it('accepts timestamps up to five minutes off either way, and refuses stale and future ones', () => {
    expect(verifyFreepikWebhook(webhook({ timestamp: NOW_S - 300 }), SECRET, NOW_MS).ok).toBe(true);
    expect(verifyFreepikWebhook(webhook({ timestamp: NOW_S + 300 }), SECRET, NOW_MS).ok).toBe(true);
    expect(verifyFreepikWebhook(webhook({ timestamp: NOW_S - 301 }), SECRET, NOW_MS)).toEqual({
      ok: false,
      reason: 'webhook-timestamp is too old',
    });
    expect(verifyFreepikWebhook(webhook({ timestamp: NOW_S + 301 }), SECRET, NOW_MS)).toEqual({
      ok: false,
      reason: 'webhook-timestamp is in the future',
    });
  });

  it('measures the tolerance with nowMs, not the real clock', () => {
    const realNowS = Math.floor(Date.now() / 1000);
    expect(verifyFreepikWebhook(webhook({ timestamp: realNowS }), SECRET, NOW_MS).ok).toBe(false);
  });

  it('refuses a timestamp that is not a Unix time', () => {
    const hook = webhook();
    hook.headers['webhook-timestamp'] = '2031-06-01T12:00:00Z';
    expect(verifyFreepikWebhook(hook, SECRET, NOW_MS)).toEqual({ ok: false, reason: 'webhook-timestamp is not a Unix time' });
  });

  it('reads a 13-digit timestamp as milliseconds (the seed names no unit), still within the tolerance', () => {
    const sign = (timestamp: string) =>
      `v1,${createHmac('sha256', SECRET).update(`msg_2abc.${timestamp}.${BODY}`).digest('base64')}`;
    const at = (timestamp: string) => {
      const hook = webhook({ signature: sign(timestamp) });
      hook.headers['webhook-timestamp'] = timestamp;
      return verifyFreepikWebhook(hook, SECRET, NOW_MS);
    };
    expect(at(String(NOW_MS))).toMatchObject({ ok: true, providerTaskId: TASK_ID });
    expect(at(String(NOW_MS - 6 * 60_000))).toEqual({ ok: false, reason: 'webhook-timestamp is too old' });
  });

  it('also accepts a signature keyed with the base64-decoded secret (the seed\'s PHP sample; whsec_ keys)', () => {
    const whsec = `whsec_${Buffer.alloc(24, 7).toString('base64')}`;
    const signedByLibrary = new Webhook(whsec).sign('msg_2abc', new Date(NOW_S * 1000), BODY);
    expect(verifyFreepikWebhook(webhook({ signature: signedByLibrary }), whsec, NOW_MS).ok).toBe(true);

    const plainBase64 = Buffer.from('a-php-style-secret-of-some-length').toString('base64');
    const decodedKey = Buffer.from(plainBase64, 'base64');
    const phpStyle = `v1,${createHmac('sha256', decodedKey).update(`msg_2abc.${NOW_S}.${BODY}`).digest('base64')}`;
    expect(verifyFreepikWebhook(webhook({ signature: phpStyle }), plainBase64, NOW_MS).ok).toBe(true);
    // Still only keys derived from the configured secret.
    expect(verifyFreepikWebhook(webhook({ signature: phpStyle }), SECRET, NOW_MS).ok).toBe(false);
  });

  it.each(['webhook-id', 'webhook-timestamp', 'webhook-signature'])('refuses a webhook without %s', (header) => {
    const result = verifyFreepikWebhook(webhook({ omit: [header] }), SECRET, NOW_MS);
    expect(result.ok).toBe(false);
    expect(result.ok === false && result.reason).toContain('missing');
  });

  it('accepts a header with several signatures when one of them is valid', () => {
    const good = signWithLibrary(SECRET, 'msg_2abc', NOW_S, BODY);
    const wrong = `v1,${Buffer.alloc(32, 1).toString('base64')}`;
    expect(verifyFreepikWebhook(webhook({ signature: `${wrong} ${good}` }), SECRET, NOW_MS).ok).toBe(true);
    expect(verifyFreepikWebhook(webhook({ signature: `v2,garbage ${good.replace('v1,', 'v2,')}` }), SECRET, NOW_MS).ok).toBe(true);
    expect(verifyFreepikWebhook(webhook({ signature: `${wrong} nocomma v1,` }), SECRET, NOW_MS).ok).toBe(false);
  });

  it('compares the signature text exactly, as the seed does: other text that decodes to the same bytes is refused', () => {
    const good = signWithLibrary(SECRET, 'msg_2abc', NOW_S, BODY).slice('v1,'.length);
    // 32 bytes in 44 base64 characters: the last character before '=' carries 2 bits no byte uses.
    const last = good.charAt(42);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const sameBytes = alphabet.charAt(alphabet.indexOf(last) ^ 1);
    for (const altered of [
      `${good}AA`,
      `${good}x`,
      `${good.slice(0, 20)}!${good.slice(20)}`,
      `${good.slice(0, 42)}${sameBytes}=`,
      good.slice(0, 43),
    ]) {
      expect(verifyFreepikWebhook(webhook({ signature: `v1,${altered}` }), SECRET, NOW_MS)).toEqual({
        ok: false,
        reason: 'no webhook-signature entry matches',
      });
    }
    expect(verifyFreepikWebhook(webhook({ signature: `v1,${good}` }), SECRET, NOW_MS).ok).toBe(true);
  });

  it('reads a webhook-signature header sent twice, which node joins with ", "', () => {
    const good = signWithLibrary(SECRET, 'msg_2abc', NOW_S, BODY);
    const wrong = `v1,${Buffer.alloc(32, 1).toString('base64')}`;
    expect(verifyFreepikWebhook(webhook({ signature: `${good}, ${wrong}` }), SECRET, NOW_MS).ok).toBe(true);
    expect(verifyFreepikWebhook(webhook({ signature: `${wrong}, ${good}` }), SECRET, NOW_MS).ok).toBe(true);
    expect(verifyFreepikWebhook(webhook({ signature: `${wrong}, v1,` }), SECRET, NOW_MS).ok).toBe(false);
  });

  it('refuses every webhook when no secret is configured', () => {
    expect(verifyFreepikWebhook(webhook(), '', NOW_MS).ok).toBe(false);
  });

  it('reads a body wrapped in data', () => {
    const body = JSON.stringify({ data: { task_id: TASK_ID, status: 'IN_PROGRESS', generated: [] } });
    const result = verifyFreepikWebhook(webhook({ body }), SECRET, NOW_MS);
    expect(result).toMatchObject({ ok: true, providerTaskId: TASK_ID, report: { status: 'processing' } });
  });

  it('gives no report when the body has a task id but no status', () => {
    const result = verifyFreepikWebhook(webhook({ body: JSON.stringify({ task_id: TASK_ID }) }), SECRET, NOW_MS);
    expect(result).toEqual({ ok: true, webhookId: 'msg_2abc', providerTaskId: TASK_ID });
  });

  it.each([
    ['not JSON', 'hello'],
    ['no task id', JSON.stringify({ status: 'COMPLETED' })],
  ])('takes a correctly signed body that is %s as authentic but about no task', (_name, body) => {
    expect(verifyFreepikWebhook(webhook({ body }), SECRET, NOW_MS)).toEqual({ ok: true, webhookId: 'msg_2abc' });
  });
});
