/**
 * A relay on loopback in front of a provider's simulator that sees the creates as the upstream
 * does: the prompts in the order they arrived, and how many were in flight at once. While armed
 * it holds each create until `holdUntil` of them are in flight together, so creates sent side by
 * side are seen side by side (a create sent only after another's answer never fills it).
 */
import { loopbackServer } from './raw-answer.js';

export interface CreateRelay {
  readonly base: string;
  /** The prompts of the creates that reached the upstream, in order of arrival. */
  readonly prompts: string[];
  /** The most creates ever in flight at once. */
  readonly mostInFlight: number;
  /** Where requests go on to (the simulator's base URL, known once the gateway started). */
  target: string;
  /** Holds creates until `count` are in flight at once; the next holds stop once that happened. */
  holdUntil(count: number): void;
  close(): Promise<void>;
}

/** Longest a held create waits when fewer than the count arrive: the test fails on `mostInFlight`, it does not hang. */
const GIVE_UP_MS = 2_000;

export async function createRelay(): Promise<CreateRelay> {
  let inFlight = 0;
  let waiters: (() => void)[] = [];
  let hold = 0;
  const relay = {
    base: '',
    prompts: [] as string[],
    mostInFlight: 0,
    target: '',
    holdUntil(count: number) {
      hold = count;
    },
    close: async () => undefined as void,
  };
  const releaseAll = () => {
    hold = 0;
    for (const waiter of waiters) waiter();
    waiters = [];
  };
  const server = await loopbackServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      const create = req.method === 'POST';
      if (create) {
        inFlight += 1;
        relay.mostInFlight = Math.max(relay.mostInFlight, inFlight);
        const prompt = (JSON.parse(body.toString('utf8')) as { prompt?: string }).prompt;
        relay.prompts.push(prompt ?? '');
        if (hold > 0) {
          if (inFlight >= hold) releaseAll();
          else await new Promise<void>((resolve) => {
            waiters.push(resolve);
            setTimeout(releaseAll, GIVE_UP_MS).unref();
          });
        }
      }
      try {
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(req.headers)) {
          if (typeof value === 'string' && !['host', 'content-length', 'connection'].includes(name)) headers[name] = value;
        }
        const answer = await fetch(`${relay.target}${req.url ?? ''}`, {
          method: req.method ?? 'GET',
          headers,
          ...(body.length > 0 ? { body } : {}),
        });
        const text = await answer.text();
        res.statusCode = answer.status;
        const type = answer.headers.get('content-type');
        if (type) res.setHeader('content-type', type);
        res.end(text);
      } catch {
        res.statusCode = 502;
        res.end();
      } finally {
        if (create) inFlight -= 1;
      }
    });
  });
  relay.base = server.base;
  relay.close = server.close;
  return relay;
}
