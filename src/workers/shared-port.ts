/**
 * The port `WORKERS` share, held by the primary. It accepts each connection without reading from
 * it and hands it to the next worker that serves, in turn (Node's way of passing a socket to a
 * child process: what the client already sent stays in the socket for the worker to read). As
 * the primary accepts, it also decides when accepting ends: at a stop, once every worker has
 * drained, and each connection accepted until then is handed over and answered. (node:cluster's
 * own sharing closed the port when the last worker let go of it, and reset the connections it had
 * accepted but not handed over yet: creates a client had sent, unanswered.) A connection that
 * comes while no worker serves waits for one, for a while: then it is answered 503, as a gateway
 * not ready answers, rather than held unanswered.
 */
import type { Worker } from 'node:cluster';
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { systemClock, type Clock, type TimerHandle } from '../core/clock.js';
import { problems } from '../core/model/problems.js';
import { problemJson } from '../http/express-answer.js';
import type { Logger } from '../observability/logger.js';
import { PRIMARY_TAG, type PrimaryMessage } from './worker-protocol.js';
import { listenFailure } from '../http/listen-failure.js';

/** A pause that lets the event loop accept connections waiting on the port (as `http/stop-gate.ts` does). */
const ACCEPT_TURN_MS = 5;
/**
 * How long a connection waits for a worker to serve. A first start has its workers serving within
 * seconds; a worker in a crash loop is replaced after up to 30 s. A client behind a load balancer
 * is better off with a quick 503 it sends to another replica than with a wait that may outlast
 * its own timeout; 10 s covers a start and the first replacements.
 */
const HOLD_MS = 10_000;
/**
 * How many connections wait for a worker at most; one more is answered 503 at once. As many as
 * the operating system's queue holds for a port nobody accepts on (node's default backlog, 511):
 * each one held is an open file in the primary.
 */
const MAX_HELD = 512;
/** What a connection answered 503 for want of a worker is told to wait before it asks again (as a stopping gateway says). */
const RETRY_AFTER_S = 2;
/** How long a connection answered 503 is left to take the answer before it is cut. */
const ANSWER_GRACE_MS = 1_000;

export interface SharedPortOptions {
  clock?: Pick<Clock, 'setTimeout'>;
  /** How long a connection waits for a worker to serve before it is answered 503 (`HOLD_MS`). */
  holdMs?: number;
  /** How many connections wait for a worker at most (`MAX_HELD`). */
  maxHeld?: number;
}

export class SharedPort {
  private readonly server: Server;
  /**
   * Accepted while no worker serves (at the start, or while every worker is being replaced), each
   * with the timer that answers it 503 when no worker comes in time.
   */
  private readonly waiting = new Map<Socket, TimerHandle>();
  private readonly clock: Pick<Clock, 'setTimeout'>;
  private readonly holdMs: number;
  private readonly maxHeld: number;
  /** A 503 for want of a worker was logged since a worker last served. */
  private saidRefusing = false;
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
    options: SharedPortOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.holdMs = options.holdMs ?? HOLD_MS;
    this.maxHeld = options.maxHeld ?? MAX_HELD;
    this.server = createServer({ pauseOnConnect: true }, (socket) => this.handOver(socket));
  }

  /** How many connections wait for a worker now. */
  get heldCount(): number {
    return this.waiting.size;
  }

  /** Starts accepting; returns the base URL. */
  async listen(port: number, host: string): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      const refused = (error: Error) => reject(listenFailure(error, host));
      this.server.once('error', refused);
      this.server.listen(port, host, () => {
        this.server.off('error', refused);
        resolve();
      });
    });
    const address = this.server.address() as AddressInfo;
    const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
    return `http://${shownHost}:${address.port}`;
  }

  /** A worker serves now: it takes what waited. */
  resume(): void {
    this.saidRefusing = false;
    for (const socket of this.takeWaiting()) this.handOver(socket);
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
      if (this.serving().length === 0) for (const socket of this.takeWaiting()) socket.destroy();
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
      else this.hold(socket);
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

  /** Keeps `socket` for the next worker that serves, answered 503 if none comes in time (or too many wait). */
  private hold(socket: Socket): void {
    if (this.waiting.size >= this.maxHeld) {
      this.refuse(socket, `${this.maxHeld} connections already wait`);
      return;
    }
    const timer = this.clock.setTimeout(() => {
      this.waiting.delete(socket);
      this.refuse(socket, `none for ${Math.ceil(this.holdMs / 1000)} s`);
    }, this.holdMs);
    this.waiting.set(socket, timer);
    // A held connection that closes (destroyed here or by a socket error) is forgotten. A paused
    // socket reads nothing, so it does not see its client give up: such a connection counts among
    // the held until its 503 or its hand-over to a worker, which then closes it.
    socket.once('close', () => {
      this.waiting.get(socket)?.cancel();
      this.waiting.delete(socket);
    });
  }

  /** The connections that wait, no longer waiting. */
  private takeWaiting(): Socket[] {
    const sockets = [...this.waiting.keys()];
    for (const timer of this.waiting.values()) timer.cancel();
    this.waiting.clear();
    return sockets;
  }

  /**
   * Answers a connection no worker took 503, as a lone gateway that is starting refuses one (with
   * problem details, a request id and Retry-After), and closes it: a client behind a load
   * balancer asks another replica.
   */
  private refuse(socket: Socket, why: string): void {
    if (socket.destroyed) return;
    // Said once while no worker serves, not for every connection of a crash loop.
    if (!this.saidRefusing) this.logger.warn({ why }, `connections are answered 503 while no worker of the gateway serves (${why})`);
    this.saidRefusing = true;
    const id = randomUUID();
    const error = problems.retryLater('no worker of the gateway serves yet (starting, or being replaced); send this request again (to another replica)', RETRY_AFTER_S);
    const body = problemJson(error, id);
    const head = [
      `HTTP/1.1 503 ${STATUS_CODES[503]}`,
      `x-request-id: ${id}`,
      ...Object.entries(error.headers).map(([name, value]) => `${name}: ${value}`),
      'x-content-type-options: nosniff',
      'cache-control: no-store',
      'content-type: application/problem+json; charset=utf-8',
      `content-length: ${Buffer.byteLength(body)}`,
      'connection: close',
    ];
    // What the client sent is read and dropped: closing on unread bytes resets the connection,
    // which can lose the answer on its way.
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
    socket.resume();
    socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
    const cut = setTimeout(() => socket.destroy(), ANSWER_GRACE_MS);
    cut.unref();
    socket.once('close', () => clearTimeout(cut));
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
