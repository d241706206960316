/**
 * JSON bodies are read in UTF-8 only (RFC 8259 §8.1): a `charset` other than `utf-8` on a create
 * or quote is refused `415`, as `latin1` already was, and nothing is made. The JSON parser decoded
 * any charset starting with `utf-`: a UTF-7 body (`{+ACI-model+ACI-:+ACI-kling-v3+ACI-,…}`, with no
 * quote in its bytes) was taken as a create, so whatever in front of the gateway looks into bodies
 * (a proxy's or WAF's rules) saw other text than the gateway read. Without a charset, or with
 * `utf-8` in any letter case, bodies are read as before.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, TENANT_KEY, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(async () => {
  await gw.close();
});

const BODY = JSON.stringify({ model: 'kling-v3', prompt: 'a charset', duration: 5 });

async function post(path: string, contentType: string, body: Buffer): Promise<{ status: number; body: any; contentType: string | null }> {
  const answer = await fetch(`${gw.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${TENANT_KEY}`, 'content-type': contentType }, body });
  return { status: answer.status, body: await answer.json(), contentType: answer.headers.get('content-type') };
}

describe('a JSON body in a charset other than UTF-8', () => {
  it.each([
    ['utf-7, on a create', '/v1/videos', 'application/json; charset=utf-7', Buffer.from(BODY.replaceAll('"', '+ACI-'))],
    ['UTF-7 quoted, on a create', '/v1/videos', 'application/json; charset="UTF-7"', Buffer.from(BODY.replaceAll('"', '+ACI-'))],
    ['utf-16le, on a create', '/v1/videos', 'application/json; charset=utf-16le', Buffer.from(BODY, 'utf16le')],
    ['utf-16le, on a quote', '/v1/videos/quote', 'application/json;charset=utf-16le', Buffer.from(BODY, 'utf16le')],
  ])('%s: 415 as problem details, nothing made', async (_what, path, contentType, body) => {
    const answer = await post(path, contentType, body);
    expect(answer.status).toBe(415);
    expect(answer.contentType).toBe('application/problem+json; charset=utf-8');
    expect(answer.body).toMatchObject({ status: 415, type: expect.stringMatching(/unsupported-encoding$/), detail: expect.stringMatching(/UTF-8/) });
    expect((await gw.request('GET', '/v1/videos')).body.data).toEqual([]);
  });
});

it('a read without a body is answered whatever charset its Content-Type names', async () => {
  const answer = await fetch(`${gw.url}/v1/videos`, { headers: { authorization: `Bearer ${TENANT_KEY}`, 'content-type': 'application/json; charset=utf-16le' } });
  expect(answer.status).toBe(200);
});

describe('a JSON body in UTF-8', () => {
  it.each([
    ['no charset', 'application/json'],
    ['utf-8', 'application/json; charset=utf-8'],
    ['UTF-8 quoted', 'application/json; charset="UTF-8"'],
  ])('%s: read as before', async (_what, contentType) => {
    expect((await post('/v1/videos/quote', contentType, Buffer.from(BODY))).status).toBe(200);
  });
});
