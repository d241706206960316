/**
 * kling3api.com with several API keys, as a real account holder has them: the built-in simulator
 * behind a recording front that accepts any of `keys` and tells, per key, how many of the tasks
 * it created are still running upstream (created, and not yet answered as finished to a status
 * poll). The gateway holds a task's slot at least that long, so an account's running count can
 * never pass its cap unless the gateway let it. It also records which key every status poll of a
 * task came with.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock } from '../../src/core/clock.js';
import type { ProviderSimulator } from '../../src/core/upstream/provider.js';
import { kling3apiProvider } from '../../src/providers/kling3api/index.js';

const SIMULATOR_KEY = 'simulator-own-key';
const TERMINAL = new Set(['SUCCESS', 'FAILED', 'EXPIRED']);

export interface KeyedPoll {
  taskId: string;
  /** The key the task was created with. */
  createdWith: string;
  /** The key the poll came with. */
  polledWith: string;
}

export class MultiKeyKling3api {
  /** Upstream tasks created per key. */
  readonly created = new Map<string, string[]>();
  /** Most tasks of one key running upstream at once. */
  readonly peakRunning = new Map<string, number>();
  readonly polls: KeyedPoll[] = [];
  /** Requests refused for an unknown key. */
  refused = 0;
  private readonly running = new Map<string, Set<string>>();
  private readonly owner = new Map<string, string>();
  private server: Server | undefined;

  private constructor(
    readonly simulator: ProviderSimulator,
    private readonly simulatorUrl: string,
    private readonly keys: readonly string[],
  ) {}

  static async start(clock: Clock, keys: readonly string[], timing = { queuedMs: 1_000, processingMs: 4_000 }): Promise<MultiKeyKling3api> {
    const simulator = kling3apiProvider.createSimulator({ clock, apiKey: SIMULATOR_KEY, timing });
    const simulatorUrl = await simulator.listen(0, '127.0.0.1');
    const upstream = new MultiKeyKling3api(simulator, simulatorUrl, keys);
    await upstream.listen();
    return upstream;
  }

  /** Where the gateway should send requests. */
  url = '';

  /** Tasks of `key` running upstream now. */
  runningWith(key: string): number {
    return this.running.get(key)?.size ?? 0;
  }

  private async listen(): Promise<void> {
    this.server = createServer((req, res) => {
      this.forward(req)
        .then(({ status, headers, body }) => {
          res.writeHead(status, headers);
          res.end(body);
        })
        .catch((error: Error) => {
          res.writeHead(502, { 'content-type': 'text/plain' });
          res.end(error.message);
        });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private async forward(req: IncomingMessage): Promise<{ status: number; headers: Record<string, string>; body: string }> {
    const key = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    if (!this.keys.includes(key)) {
      this.refused += 1;
      return { status: 401, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: 'INVALID_API_KEY', message: 'API key is missing or invalid' }) };
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? '/', this.simulatorUrl);
    const isStatus = req.method === 'GET' && url.pathname === '/api/status';
    const polled = isStatus ? url.searchParams.get('task_id') : null;
    if (polled) this.polls.push({ taskId: polled, createdWith: this.owner.get(polled) ?? '(unknown)', polledWith: key });
    const answer = await fetch(url, {
      method: req.method ?? 'GET',
      headers: { authorization: `Bearer ${SIMULATOR_KEY}`, ...(req.headers['content-type'] ? { 'content-type': req.headers['content-type'] } : {}) },
      ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}),
    });
    const body = await answer.text();
    const data = (JSON.parse(body || 'null') as { data?: { task_id?: string; status?: string } } | null)?.data;
    if (answer.ok && req.method === 'POST' && data?.task_id) this.onCreated(key, data.task_id);
    if (answer.ok && polled && data?.status && TERMINAL.has(data.status)) this.running.get(this.owner.get(polled) ?? '')?.delete(polled);
    return { status: answer.status, headers: { 'content-type': answer.headers.get('content-type') ?? 'application/json' }, body };
  }

  private onCreated(key: string, taskId: string): void {
    this.owner.set(taskId, key);
    this.created.set(key, [...(this.created.get(key) ?? []), taskId]);
    const running = this.running.get(key) ?? new Set<string>();
    running.add(taskId);
    this.running.set(key, running);
    this.peakRunning.set(key, Math.max(this.peakRunning.get(key) ?? 0, running.size));
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await this.simulator.close();
  }
}

/** The keys of the two accounts `eastWestKling3api` configures. */
export const EAST_WEST_KEYS = { east: 'key-east-0001', west: 'key-west-0002' } as const;

/**
 * A kling3api upstream with two keys, and the gateway `providers` config of two accounts on it,
 * `east` and `west` (in that order), with the caps given.
 */
export async function eastWestKling3api(clock: Clock, caps: { east: number; west: number }) {
  const upstream = await MultiKeyKling3api.start(clock, [EAST_WEST_KEYS.east, EAST_WEST_KEYS.west]);
  const providers = {
    kling3api: {
      base_url: upstream.url,
      accounts: [
        { id: 'east', api_key: EAST_WEST_KEYS.east, max_in_flight: caps.east },
        { id: 'west', api_key: EAST_WEST_KEYS.west, max_in_flight: caps.west },
      ],
    },
  };
  return { upstream, providers };
}
