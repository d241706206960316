/**
 * The POST of one outbound webhook (`outbound-webhooks.ts`), on node's own `http`/`https`
 * clients: one small body out, a status back. axios's machinery around it (config merging,
 * transforms that parse the JSON body again, interceptors, its response pipeline) cost more CPU
 * than the delivery itself. Calls to provider APIs keep axios.
 *
 * Receivers get the request the axios call it replaced sent (`maxRedirects: 0`): the same
 * headers (axios's `Accept` and `Accept-Encoding` included), no redirect followed (a 3xx is the
 * answer), `timeout of <n>ms exceeded` when no status came within the time limit, and the
 * connection's own errors as they are. The status is the receiver's answer: once it is in, the
 * body is read (decoded as axios decodes it) only so that the connection can be reused, up to
 * 64 KB and within the time limit; a body past either, or cut off, ends the exchange with that
 * status (a 2xx is delivered, and is never sent again because of what followed it).
 */
import http from 'node:http';
import https from 'node:https';
import { ACCEPT_ENCODING, clientFor, decodedBody } from './result-download.js';

/** What axios's `Accept` says by default. */
const ACCEPT = 'application/json, text/plain, */*';
/** Largest answer body read from a receiver. */
const MAX_ANSWER_BYTES = 64 * 1024;

/** The receiver's answer: its status, and the `Retry-After` it sent, if any. */
export interface WebhookAnswer {
  status: number;
  retryAfter: string | undefined;
}

export interface WebhookPostOptions {
  headers: Record<string, string>;
  /** Longest the whole exchange may take. */
  timeoutMs: number;
  agents: { httpAgent: http.Agent; httpsAgent: https.Agent };
}

/** POSTs `body` (JSON text) to `url`; resolves with the receiver's answer once it is read. */
export function postWebhook(url: string, body: string, options: WebhookPostOptions): Promise<WebhookAnswer> {
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
    /** The receiver's answer, once it began. */
    let answered: WebhookAnswer | undefined;
    /** Ends the exchange with the status when there is one, else with `error`. */
    const finish = (error?: Error) => {
      clearTimeout(timer);
      if (answered !== undefined) resolve(answered);
      else reject(error ?? new Error('no answer'));
    };
    const timer = setTimeout(() => {
      if (answered === undefined) request.destroy(new Error(`timeout of ${options.timeoutMs}ms exceeded`));
      else {
        request.destroy();
        finish();
      }
    }, options.timeoutMs);
    request.on('error', (error) => finish(error));
    request.on('response', (response) => {
      const retryAfter = response.headers['retry-after'];
      answered = { status: response.statusCode ?? 0, retryAfter };
      const answer = decodedBody(response);
      let read = 0;
      response.on('aborted', () => answer.destroy(new Error('stream has been aborted')));
      answer.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (read > MAX_ANSWER_BYTES) answer.destroy(new Error(`maxContentLength size of ${MAX_ANSWER_BYTES} exceeded`));
      });
      answer.on('error', () => {
        request.destroy();
        finish();
      });
      answer.on('end', () => finish());
    });
    request.end(payload);
  });
}
