/**
 * A worker's side of `WORKERS`: the messages between one worker process and its primary
 * (`primary.ts`) over node:cluster's IPC channel. News for the other workers goes through the
 * primary, which relays it; a scrape of `/metrics` asks the primary for every worker's metrics.
 * The shared per-tenant counters travel on rate-limiter-flexible's own messages
 * (`RateLimiterCluster`), not these. The primary holds the port: the connections this worker
 * serves come to it here, and at the end of a stop the primary says when no more will.
 */
import { Socket } from 'node:net';
import type { TextChannel } from '../core/replica-feed.js';
import { PRIMARY_TAG, type PrimaryMessage, type WorkerMessage, type WorkerStart } from './worker-protocol.js';

/** How long a scrape waits for the other workers' metrics before answering without them. */
const METRICS_WAIT_MS = 3_000;

function send(message: WorkerMessage): void {
  // A primary that is gone (killed) reads nothing; sending to it would raise an error.
  if (process.connected) process.send?.(message);
}

export class WorkerLink {
  private readonly listeners = new Set<(text: string) => void>();
  private readonly pending = new Map<number, { resolve: (parts: unknown[]) => void; timer: NodeJS.Timeout }>();
  private nextRequest = 1;
  private snapshot: (() => Promise<unknown>) | undefined;
  private readonly onMessage = (message: unknown, handle: unknown) => this.receive(message, handle);
  private serveConnection: ((socket: Socket) => void) | undefined;
  private readonly connectionsEnded: Promise<void>;
  private endConnections: () => void = () => undefined;

  private constructor(readonly start: WorkerStart) {
    this.connectionsEnded = new Promise((resolve) => (this.endConnections = resolve));
    process.on('message', this.onMessage);
    // A primary that is gone hands nothing over any more.
    process.once('disconnect', () => this.endConnections());
  }

  /** Waits for the primary's start message (what the worker is to serve with). */
  static connect(): Promise<WorkerLink> {
    return new Promise((resolve) => {
      const first = (message: unknown) => {
        if (!isPrimaryMessage(message) || message.type !== 'start') return;
        process.off('message', first);
        resolve(new WorkerLink(message.start));
      };
      process.on('message', first);
      send({ tag: PRIMARY_TAG, type: 'hello' });
    });
  }

  /** News between the workers, relayed by the primary (never back to the sender). */
  readonly channel: TextChannel = {
    listening: true,
    publish: async (text) => send({ tag: PRIMARY_TAG, type: 'feed', text }),
    subscribe: (listener) => {
      this.listeners.add(listener);
      return () => this.listeners.delete(listener);
    },
    // The IPC channel does not drop messages while the worker lives.
    onReconnect: () => () => undefined,
  };

  /** What this worker answers when the primary collects metrics for a scrape. */
  serveMetrics(snapshot: () => Promise<unknown>): void {
    this.snapshot = snapshot;
  }

  /** Every worker's metrics (this one's included), as the primary collected them. */
  collectMetrics(): Promise<unknown[]> {
    const id = this.nextRequest++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve([]);
      }, METRICS_WAIT_MS);
      timer.unref();
      this.pending.set(id, { resolve, timer });
      send({ tag: PRIMARY_TAG, type: 'metrics?', id });
    });
  }

  /** Tells the primary this worker serves the connections it hands over with `serve` (it logs once all do). */
  ready(serve: (socket: Socket) => void): void {
    this.serveConnection = serve;
    send({ tag: PRIMARY_TAG, type: 'ready' });
  }

  /**
   * The end of this worker's drain: tells the primary, and resolves once it hands this worker no
   * more connections (every other worker drained too and it closed its listener, or another
   * worker takes them), so each connection it handed over was taken first.
   */
  noMoreConnections(): Promise<void> {
    send({ tag: PRIMARY_TAG, type: 'drained' });
    return this.connectionsEnded;
  }

  close(): void {
    process.off('message', this.onMessage);
    for (const { resolve, timer } of this.pending.values()) {
      clearTimeout(timer);
      resolve([]);
    }
    this.pending.clear();
  }

  private receive(message: unknown, handle: unknown): void {
    if (!isPrimaryMessage(message)) return;
    switch (message.type) {
      case 'connection':
        if (!(handle instanceof Socket)) break;
        if (this.serveConnection) this.serveConnection(handle);
        else handle.destroy();
        break;
      case 'no-more-connections':
        this.endConnections();
        break;
      case 'ping':
        send({ tag: PRIMARY_TAG, type: 'pong' });
        break;
      case 'feed':
        for (const listener of this.listeners) listener(message.text);
        break;
      case 'collect': {
        const snapshot = this.snapshot;
        const answer = (metrics: unknown) => send({ tag: PRIMARY_TAG, type: 'metrics', id: message.id, metrics });
        if (!snapshot) answer(null);
        else snapshot().then(answer, () => answer(null));
        break;
      }
      case 'collected': {
        const waiting = this.pending.get(message.id);
        if (!waiting) return;
        this.pending.delete(message.id);
        clearTimeout(waiting.timer);
        waiting.resolve(message.parts);
        break;
      }
      default:
        break;
    }
  }
}

function isPrimaryMessage(message: unknown): message is PrimaryMessage {
  return typeof message === 'object' && message !== null && (message as { tag?: unknown }).tag === PRIMARY_TAG;
}
