import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import { JwtBearerAuth } from '../../../src/core/upstream/jwt-bearer-auth.js';

const ACCESS_KEY = 'ak-test-0123456789';
const SECRET_KEY = 'sk-test-very-secret-value';
const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);

/** A JWT read and checked by hand (not by the library that signed it). */
function readToken(authorization: string | undefined) {
  const token = /^Bearer (.+)$/.exec(authorization ?? '')?.[1] ?? '';
  const [header, payload, signature] = token.split('.');
  const expected = createHmac('sha256', SECRET_KEY).update(`${header}.${payload}`).digest('base64url');
  return {
    token,
    header: JSON.parse(Buffer.from(header!, 'base64url').toString('utf8')),
    claims: JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8')),
    signatureValid: signature === expected,
  };
}

function kling(clock: ManualClock) {
  return new JwtBearerAuth({
    accessKey: ACCESS_KEY,
    secretKey: SECRET_KEY,
    lifetimeMs: 30 * 60_000,
    notBeforeSkewMs: 5_000,
    refreshBeforeMs: 5 * 60_000,
    clock,
  });
}

describe('JwtBearerAuth (Kling access key + secret key)', () => {
  it('signs an HS256 JWT with iss = access key, exp = now + 30 min, nbf = now - 5 s', async () => {
    const clock = new ManualClock(T0);
    const { header, claims, signatureValid } = readToken((await kling(clock).headers()).authorization);
    expect(header).toEqual({ alg: 'HS256', typ: 'JWT' });
    expect(claims).toEqual({ iss: ACCESS_KEY, exp: T0 / 1000 + 1800, nbf: T0 / 1000 - 5 });
    expect(signatureValid).toBe(true);
  });

  it('reuses the token until 5 minutes before it expires, then signs a fresh one', async () => {
    const clock = new ManualClock(T0);
    const auth = kling(clock);
    const first = readToken((await auth.headers()).authorization);
    await clock.advance(24 * 60_000);
    expect(readToken((await auth.headers()).authorization).token).toBe(first.token);
    await clock.advance(60_000);
    const second = readToken((await auth.headers()).authorization);
    expect(second.token).not.toBe(first.token);
    expect(second.claims.exp).toBe(T0 / 1000 + 25 * 60 + 1800);
    expect(second.signatureValid).toBe(true);
  });

  it('signs once for calls made at the same moment', async () => {
    const auth = kling(new ManualClock(T0));
    const tokens = await Promise.all([auth.headers(), auth.headers(), auth.headers()]);
    expect(new Set(tokens.map((headers) => headers.authorization)).size).toBe(1);
  });

  it('lists the secret key among its secrets and never puts it in a header', async () => {
    const auth = kling(new ManualClock(T0));
    expect(auth.secrets).toEqual([SECRET_KEY]);
    expect(JSON.stringify(await auth.headers())).not.toContain(SECRET_KEY);
  });
});
