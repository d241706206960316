/**
 * The port `WORKERS` share, held by the primary. It accepts each connection without reading from
 * it and hands it to the next worker that serves, in turn (Node's way of passing a socket to a
 * child process: what the client already sent stays in the socket for the worker to read). As
 * the primary accepts, it also decides when accepting ends: at a stop, once every worker has
 * drained, and each connection accepted until then is handed over and answered. (node:cluster's
 * own sharing closed the port when the last worker let go of it, and reset the connections it had
 * accepted but not handed over yet: creates a client had sent, unanswered.)
 */
import type { Worker } from 'node:cluster';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../observability/logger.js';
import { PRIMARY_TAG, type PrimaryMessage } from './worker-protocol.js';

/** A pause that lets the event loop accept connections waiting on the port (as `http/stop-gate.ts` does). */
const ACCEPT_TURN_MS = 5;

export class SharedPort {
  private readonly server: Server;
  /** Accepted while no worker serves (at the start, or while the only one is being replaced). */
  private readonly waiting: Socket[] = [];
  /**
   * Per worker, the connections handed to it whose sending has not happened yet: Node sends one
   * connection at a time to a worker and queues the next until the worker acknowledges the
   * last. A worker that dies meanwhile never takes them (`lost`).
   */
  private readonly unsent = new Map<Worker, Set<Socket>>();
  private turn = 0;
  private closing: Promise<void> | undefined;
  private closed = false;

  constructor(
    /** The workers that take connections now. */
    private readonly serving: () => Worker[],
    private readonly logger: Logger,
  ) {
    this.server = createServer({ pauseOnConnect: true }, (socket) => this.handOver(socket));
  }

  /** Starts accepting; returns the base URL. */
  async listen(port: number, host: string): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const address = this.server.address() as AddressInfo;
    const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
    return `http://${shownHost}:${address.port}`;
  }

  /** A worker serves now: it takes what waited. */
  resume(): void {
    for (const socket of this.waiting.splice(0)) this.handOver(socket);
  }

  /**
   * Stops accepting, after accepting what is waiting to be (a listener that closes resets those);
   * every connection accepted is handed over before this resolves. Connections waiting for a
   * worker when none is left are closed.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await sleep(ACCEPT_TURN_MS);
      // Right after the event loop's turn that accepts connections (not before its next one).
      await new Promise((resolve) => setImmediate(resolve));
      this.server.close();
      this.closed = true;
      if (this.serving().length === 0) for (const socket of this.waiting.splice(0)) socket.destroy();
    })();
    return this.closing;
  }

  /**
   * A worker died: the connections that were never sent to it go to another worker (or wait for
   * one). Call it once the worker no longer counts as serving.
   */
  lost(worker: Worker): void {
    const stranded = this.unsent.get(worker);
    this.unsent.delete(worker);
    for (const socket of stranded ?? []) if (!socket.destroyed) this.handOver(socket);
  }

  private handOver(socket: Socket): void {
    const workers = this.serving();
    if (workers.length === 0) {
      // Nobody will serve any more: closed rather than left open unanswered.
      if (this.closed) socket.destroy();
      else this.waiting.push(socket);
      return;
    }
    const worker = workers[this.turn++ % workers.length]!;
    const unsent = this.unsentTo(worker);
    unsent.add(socket);
    const message: PrimaryMessage = { tag: PRIMARY_TAG, type: 'connection' };
    // Kept open here until it is written to the worker (the message then holds the connection
    // for it): Node would otherwise hold it until the worker acknowledges it, and never close it
    // when the worker dies first, leaving the client waiting for an answer forever.
    worker.send(message, socket, { keepOpen: true }, (error: Error | null) => {
      unsent.delete(socket);
      if (error) this.logger.warn({ err: error }, 'could not hand a connection to a worker');
      socket.destroy();
    });
  }

  private unsentTo(worker: Worker): Set<Socket> {
    let unsent = this.unsent.get(worker);
    if (!unsent) {
      unsent = new Set();
      this.unsent.set(worker, unsent);
    }
    return unsent;
  }
}
