/**
 * A proxy or a stand-in in front of the gateway may answer an error with a text that quotes the
 * request, its `Authorization` header included. The client shows such a text as the error's
 * detail (the CLI prints it, a CI log keeps it): never with the gateway key in it.
 */
import { expect, it } from 'vitest';
import { GatewayClient, GatewayError } from '../../packages/client/src/index.js';

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
