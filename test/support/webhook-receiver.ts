/**
 * Receivers of the gateway's outbound webhooks for tests of delivery across tenants and replicas:
 * one that answers 200 at once, or one that takes every request and never answers (a silent
 * receiver) until the test has it answer them.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The `other` tenant's webhook secret, for tests that give both tenants one. */
export const OTHER_WEBHOOK_SECRET = `whsec_${Buffer.from('the other tenant signs with this').toString('base64')}`;

export interface WebhookReceiver {
  url: string;
  server: Server;
  /** Requests received so far. */
  received: number;
  /** The `webhook-id` of each request received, in the order they came. */
  ids: string[];
  /** Requests received and not yet answered. */
  open: number;
  /** The most requests open at once. */
  mostOpen: number;
  /** The requests a silent receiver holds. */
  held: ServerResponse[];
  /** Whether requests from now on are held (silent) or answered 200 at once. */
  silent: boolean;
  /** Answers 200 to every request held, and (no longer silent) to every later one at once. */
  answerHeld(): void;
}

/** A receiver that answers 200 at once, or (`silent`) takes every request and never answers until `answerHeld`. */
export async function webhookReceiver(silent: boolean): Promise<WebhookReceiver> {
  const state = {
    received: 0,
    ids: [] as string[],
    open: 0,
    mostOpen: 0,
    held: [] as ServerResponse[],
    silent,
    answerHeld() {
      state.silent = false;
      for (const res of state.held.splice(0)) res.end();
    },
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      state.received += 1;
      state.ids.push(String(req.headers['webhook-id']));
      if (!state.silent) {
        res.end();
        return;
      }
      state.open += 1;
      state.mostOpen = Math.max(state.mostOpen, state.open);
      state.held.push(res);
      res.on('close', () => (state.open -= 1));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(state, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, server });
}

/** Closes `receivers` (emptying the list), the requests they hold included. */
export async function closeWebhookReceivers(receivers: WebhookReceiver[]): Promise<void> {
  for (const target of receivers.splice(0)) {
    for (const res of target.held) res.destroy();
    target.server.closeAllConnections();
    await new Promise<void>((resolve) => target.server.close(() => resolve()));
  }
}
