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
import { ACCEPT_TURN_MS } from '../http/stop-gate.js';
import type { Logger } from '../observability/logger.js';
import { PRIMARY_TAG, type PrimaryMessage } from './worker-protocol.js';

export class SharedPort {
  private readonly server: Server;
  /** Accepted while no worker serves (at the start, or while the only one is being replaced). */
  private readonly waiting: Socket[] = [];
  private turn = 0;
  private closing: Promise<void> | undefined;

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
      if (this.serving().length === 0) for (const socket of this.waiting.splice(0)) socket.destroy();
    })();
    return this.closing;
  }

  private handOver(socket: Socket): void {
    const workers = this.serving();
    if (workers.length === 0) {
      this.waiting.push(socket);
      return;
    }
    const worker = workers[this.turn++ % workers.length]!;
    const message: PrimaryMessage = { tag: PRIMARY_TAG, type: 'connection' };
    worker.send(message, socket, (error: Error | null) => {
      if (error) this.logger.warn({ err: error }, 'could not hand a connection to a worker');
    });
  }
}
