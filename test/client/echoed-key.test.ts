/**
 * A proxy or a stand-in in front of the gateway may answer an error with a text that quotes the
 * request, its `Authorization` header included. The client shows such a text as the error's
 * detail (the CLI prints it, a CI log keeps it): never with the gateway key in it.
 */
import { expect, it } from 'vitest';
import { GatewayClient, GatewayError, UnexpectedAnswerError } from '../../packages/client/src/index.js';

const KEY = 'gwk-LEAKCANARY-acme-0001';

function echoing(contentType: string, status = 502): typeof fetch {
  return async (_input, init) => {
    const authorization = new Headers(init?.headers).get('authorization') ?? '';
    return new Response(`upstream connect error; request was GET / with authorization: ${authorization} (key ${encodeURIComponent(KEY)})`, {
      status,
      headers: { 'content-type': contentType },
    });
  };
}

it.each(['text/plain', 'application/octet-stream', ''])('an error text (%s) that quotes the key is shown without it', async (contentType) => {
  const client = new GatewayClient({ baseUrl: 'http://gateway.test', apiKey: KEY, fetch: echoing(contentType) });
  const error = await client.getVideo('vid_1').then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(GatewayError);
  const shown = `${(error as GatewayError).message}\n${JSON.stringify((error as GatewayError).problem)}`;
  expect(shown).toContain('upstream connect error');
  expect(shown).not.toContain('LEAKCANARY');
});

it('a problem+json answer that quotes the key (a service that is not the gateway, at the wrong URL) is shown without it', async () => {
  const quoting: typeof fetch = async (_input, init) => {
    const authorization = new Headers(init?.headers).get('authorization') ?? '';
    const problem = {
      type: 'about:blank',
      title: `Unauthorized (${authorization})`,
      status: 401,
      detail: `token ${KEY} is not valid here`,
      errors: [{ path: 'header.authorization', message: `got ${encodeURIComponent(authorization)}` }],
    };
    return new Response(JSON.stringify(problem), { status: 401, headers: { 'content-type': 'application/problem+json' } });
  };
  const client = new GatewayClient({ baseUrl: 'http://gateway.test', apiKey: KEY, fetch: quoting });
  const error = await client.getVideo('vid_1').then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(GatewayError);
  const shown = `${(error as GatewayError).message}\n${JSON.stringify((error as GatewayError).problem)}`;
  expect(shown).toContain('is not valid here');
  expect(shown).toContain('[redacted]');
  expect(shown).not.toContain('LEAKCANARY');
});

it('a success whose JSON does not parse (something else at that URL echoing the request) is named without a word of its body', async () => {
  // A body that starts with the key: JSON.parse's own message quotes its first characters.
  const echoing: typeof fetch = async (input, init) =>
    new Response(`${(input instanceof Request ? input.headers : new Headers(init?.headers)).get('authorization')?.slice('Bearer '.length)} is what you sent`, {
      status: 200,
      headers: { 'content-type': 'application/json' },
    });
  const client = new GatewayClient({ baseUrl: 'http://gateway.test', apiKey: KEY, fetch: echoing });
  const error = await client.getVideo('vid_1').then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(UnexpectedAnswerError);
  expect((error as Error).message).toBe('http://gateway.test answered with application/json that does not parse: is it a Kling Gateway? (GET /v1/videos/vid_1)');
  expect(`${(error as Error).message}\n${(error as Error).stack}`).not.toContain(KEY.slice(0, 6));
  // The routes read outside the generated client alike.
  for (const call of [() => client.cancelVideo('vid_1'), () => client.webhookDeliveries('vid_1')]) {
    const thrown = await call().then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(thrown).toBeInstanceOf(UnexpectedAnswerError);
    expect(`${(thrown as Error).message}\n${(thrown as Error).stack}`).not.toContain(KEY.slice(0, 6));
  }
});
