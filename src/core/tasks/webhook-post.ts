/**
 * The POST of one outbound webhook (`outbound-webhooks.ts`), on node's own `http`/`https`
 * clients: one small body out, a status back. axios's machinery around it (config merging,
 * transforms that parse the JSON body again, interceptors, its response pipeline) cost more CPU
 * than the delivery itself. Calls to provider APIs keep axios.
 *
 * It behaves as the axios call it replaced did (`maxRedirects: 0`, `responseType: 'text'`,
 * `maxContentLength` 64 KB), so receivers get the same request and deliveries fail for the same
 * reasons: the same headers (axios's `Accept` and `Accept-Encoding` included), no redirect
 * followed (a 3xx is the answer), `timeout of <n>ms exceeded` when the whole exchange takes longer,
 * an answer body read (decoded as axios decodes it) and refused past 64 KB, and the connection's
 * own errors as they are.
 */
import http from 'node:http';
import https from 'node:https';
import { ACCEPT_ENCODING, clientFor, decodedBody } from './result-download.js';

/** What axios's `Accept` says by default. */
const ACCEPT = 'application/json, text/plain, */*';
/** Largest answer body read from a receiver. */
const MAX_ANSWER_BYTES = 64 * 1024;

export interface WebhookPostOptions {
  headers: Record<string, string>;
  /** Longest the whole exchange may take. */
  timeoutMs: number;
  agents: { httpAgent: http.Agent; httpsAgent: https.Agent };
}

/** POSTs `body` (JSON text) to `url`; resolves with the receiver's status once its answer is read. */
export function postWebhook(url: string, body: string, options: WebhookPostOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    if (target.protocol !== 'http:' && target.protocol !== 'https:') {
      reject(new Error(`Unsupported protocol ${target.protocol}`));
      return;
    }
    const payload = Buffer.from(body);
    const { client, agent } = clientFor(target, options.agents);
    const request = client.request(target, {
      method: 'POST',
      agent,
      headers: { accept: ACCEPT, ...options.headers, 'content-length': payload.length, 'accept-encoding': ACCEPT_ENCODING },
    });
    const timer = setTimeout(() => request.destroy(new Error(`timeout of ${options.timeoutMs}ms exceeded`)), options.timeoutMs);
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(error);
    };
    request.on('error', fail);
    request.on('response', (response) => {
      const status = response.statusCode ?? 0;
      const answer = decodedBody(response);
      let read = 0;
      response.on('aborted', () => answer.destroy(new Error('stream has been aborted')));
      answer.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (read > MAX_ANSWER_BYTES) answer.destroy(new Error(`maxContentLength size of ${MAX_ANSWER_BYTES} exceeded`));
      });
      answer.on('error', (error) => {
        request.destroy();
        fail(error);
      });
      answer.on('end', () => {
        clearTimeout(timer);
        resolve(status);
      });
    });
    request.end(payload);
  });
}
