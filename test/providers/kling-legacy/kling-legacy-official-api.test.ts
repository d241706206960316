/**
 * Kling's own API: the legacy adapter signs an HS256 JWT per request from an access key and a
 * secret key, speaks the `/v1` routes of a regional host, and the simulator checks the token as
 * Kling does. Tokens in these tests are built and read by hand (node:crypto), not by the
 * library the gateway signs with.
 */
import { createHmac } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import type { ProviderSimulator } from '../../../src/core/upstream/provider.js';
import { klingLegacyProvider } from '../../../src/providers/kling-legacy/kling-legacy-provider.js';
import type { ProviderEndpoint } from '../../../src/sandbox/sandbox.js';
import { startTestGateway, type TestGateway } from '../../support/harness.js';

const ACCESS_KEY = 'ak-kling-official-0001';
const SECRET_KEY = 'sk-kling-official-secret-0001';
const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);
const seconds = (ms: number) => Math.floor(ms / 1000);

const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
/** A JWT made by hand: header, claims, and an HMAC-SHA256 signature with `secret`. */
function jwt(claims: object, secret = SECRET_KEY, header: object = { alg: 'HS256', typ: 'JWT' }): string {
  const unsigned = `${b64(header)}.${b64(claims)}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}

describe('the simulator checks tokens as Kling does', () => {
  let simulator: ProviderSimulator;
  let baseUrl: string;
  const clock = new ManualClock(T0);
  beforeAll(async () => {
    simulator = klingLegacyProvider.createSimulator({ clock, apiKey: 'sim-plain-key', accessKey: ACCESS_KEY, secretKey: SECRET_KEY });
    baseUrl = await simulator.listen(0, '127.0.0.1');
  });
  afterAll(() => simulator.close());

  async function create(authorization: string | undefined, path = '/v1/videos/text2video') {
    const response = await fetch(`${baseUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(authorization !== undefined ? { authorization } : {}) },
      body: JSON.stringify({ model_name: 'kling-v1', prompt: 'a fox', mode: 'std', duration: '5' }),
    });
    return { status: response.status, body: (await response.json()) as { code: number; message: string } };
  }

  const now = seconds(T0);
  it.each([
    ['a valid token', `Bearer ${jwt({ iss: ACCESS_KEY, exp: now + 1800, nbf: now - 5 })}`, 200, 0],
    ['the plain key', 'Bearer sim-plain-key', 200, 0],
    ['no header', undefined, 401, 1001],
    ['an empty header', '', 401, 1001],
    ['not a Bearer token', `Basic ${Buffer.from('a:b').toString('base64')}`, 401, 1002],
    ['another signing key', `Bearer ${jwt({ iss: ACCESS_KEY, exp: now + 1800, nbf: now - 5 }, 'not-the-secret')}`, 401, 1000],
    ['another issuer', `Bearer ${jwt({ iss: 'ak-someone-else', exp: now + 1800, nbf: now - 5 })}`, 401, 1000],
    ['an expired token', `Bearer ${jwt({ iss: ACCESS_KEY, exp: now - 1, nbf: now - 1805 })}`, 401, 1004],
    ['a token not yet valid', `Bearer ${jwt({ iss: ACCESS_KEY, exp: now + 1800, nbf: now + 60 })}`, 401, 1003],
    ['a token without exp', `Bearer ${jwt({ iss: ACCESS_KEY, nbf: now - 5 })}`, 401, 1002],
    ['another algorithm', `Bearer ${jwt({ iss: ACCESS_KEY, exp: now + 1800 }, SECRET_KEY, { alg: 'HS512', typ: 'JWT' })}`, 401, 1002],
    ['an unsigned token', `Bearer ${b64({ alg: 'none' })}.${b64({ iss: ACCESS_KEY, exp: now + 1800 })}.`, 401, 1002],
    ['garbage', 'Bearer not.a.jwt', 401, 1002],
  ])('%s → %s (code %s)', async (_name, authorization, status, code) => {
    const answer = await create(authorization);
    expect(answer.status).toBe(status);
    expect(answer.body.code).toBe(code);
  });

  it('serves the same routes under /v1 (Kling) and /kling/v1 (aggregators)', async () => {
    const token = `Bearer ${jwt({ iss: ACCESS_KEY, exp: now + 1800, nbf: now - 5 })}`;
    expect((await create(token, '/kling/v1/videos/text2video')).status).toBe(200);
    expect((await create(token, '/v1/videos/text2video')).status).toBe(200);
  });
});

describe('the gateway on Kling\'s own API with an access key and a secret key', () => {
  let gw: TestGateway | undefined;
  let simulator: ProviderSimulator | undefined;
  afterEach(async () => {
    await gw?.close();
    await simulator?.close();
    gw = undefined;
  });

  it('sends a valid JWT on every call to the /v1 routes and never shows the secret key', async () => {
    const clock = new ManualClock(T0);
    simulator = klingLegacyProvider.createSimulator({ clock, apiKey: 'sim-unused-key', accessKey: ACCESS_KEY, secretKey: SECRET_KEY, timing: { queuedMs: 1_000, processingMs: 4_000 } });
    const baseUrl = await simulator.listen(0, '127.0.0.1');
    const seen: string[] = [];
    simulator.onRequest((request) => seen.push(`${request.method} ${request.path}`));
    let raw = '';
    const logs = new Writable({
      write(chunk, _encoding, done) {
        raw += chunk.toString();
        done();
      },
    });
    const endpoint: ProviderEndpoint = { baseUrl, apiKey: '', accessKey: ACCESS_KEY, secretKey: SECRET_KEY, apiShape: 'official', simulated: true, runTimeMs: 5_000 };
    gw = await startTestGateway({
      clock,
      endpoints: new Map([['kling-legacy', endpoint]]),
      simulators: new Map([['kling-legacy', simulator]]),
      logTo: logs,
    });
    const created = await gw.create({ model: 'kling-v2-6', prompt: 'a fox at dawn', duration: 5 });
    expect(created.body).toMatchObject({ status: 'queued', provider: 'kling-legacy' });
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('succeeded');
    expect(seen[0]).toBe('POST /v1/videos/text2video');
    expect(seen.some((line) => line.startsWith(`GET /v1/videos/text2video/${created.body.provider_task_id}`))).toBe(true);
    expect(seen.some((line) => line.includes('/kling/v1/'))).toBe(false);

    const providers = await gw.request('GET', '/v1/providers');
    for (const text of [raw, JSON.stringify(providers.body), JSON.stringify(done)]) {
      expect(text.includes(SECRET_KEY)).toBe(false);
    }
    expect(raw).toContain('"upstream"');
  });

  it('signs a fresh token once the cached one nears its expiry, and the simulator accepts it', async () => {
    const clock = new ManualClock(T0);
    simulator = klingLegacyProvider.createSimulator({ clock, apiKey: 'sim-unused-key', accessKey: ACCESS_KEY, secretKey: SECRET_KEY });
    const baseUrl = await simulator.listen(0, '127.0.0.1');
    const endpoint: ProviderEndpoint = { baseUrl, apiKey: '', accessKey: ACCESS_KEY, secretKey: SECRET_KEY, apiShape: 'official', simulated: true, runTimeMs: 5_000 };
    gw = await startTestGateway({ clock, endpoints: new Map([['kling-legacy', endpoint]]), simulators: new Map([['kling-legacy', simulator]]) });
    expect((await gw.create({ model: 'kling-v1', prompt: 'first' })).body.status).toBe('queued');
    // 40 minutes on: the first token would have expired; a new one is signed and accepted.
    await gw.clock.advance(40 * 60_000);
    const later = await gw.create({ model: 'kling-v1', prompt: 'second' });
    expect(later.body.status).toBe('queued');
    expect(later.body.attempts).toEqual([expect.objectContaining({ provider: 'kling-legacy', outcome: 'accepted' })]);
  });
});
