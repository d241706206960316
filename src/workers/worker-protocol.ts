/**
 * The messages between the primary and its workers (`WORKERS`), over node:cluster's IPC channel
 * (which keeps their order, also of a message carrying a connection).
 * Tagged, so rate-limiter-flexible's own cluster messages on the same channel pass them by.
 */
import type { ProviderEndpoint } from '../sandbox/sandbox.js';

export const PRIMARY_TAG = 'kling-gateway-workers';

/** What a worker serves with, from the primary (the simulators run there, once for all workers). */
export interface WorkerStart {
  /** 1…WORKERS: this worker's place. */
  index: number;
  /** The replica id this worker's leases carry, so the primary can end them if it dies. */
  owner: string;
  endpoints: [string, ProviderEndpoint][];
  resultOrigins: string[];
  /** The URL upstreams call back (`server.public_url`, or the primary's listening address for port 0). */
  publicUrl: string;
  /** The configuration file as the primary's start read it: every worker, a replacement too, serves with it. */
  configText: string;
  /** Whether this worker says what the start finds wrong (one worker per start does). */
  startWarnings: boolean;
}

type Tagged<T> = T & { tag: typeof PRIMARY_TAG };

/** Primary → worker. */
export type PrimaryMessage = Tagged<
  | { type: 'start'; start: WorkerStart }
  /** News from another worker. */
  | { type: 'feed'; text: string }
  /** Send your metrics for scrape `id`. */
  | { type: 'collect'; id: string }
  /** Every worker's metrics for your scrape `id`. */
  | { type: 'collected'; id: number; parts: unknown[] }
  /** A connection the primary accepted, for you to serve (the socket travels with the message). */
  | { type: 'connection' }
  /** No connection comes to you any more: everything handed to you was sent before this. */
  | { type: 'no-more-connections' }
  /** The heartbeat: answer `pong` (a worker that does not is handed no new connection). */
  | { type: 'ping' }
>;

/** Worker → primary. */
export type WorkerMessage = Tagged<
  | { type: 'hello' }
  | { type: 'ready' }
  /** My drain is over (a stop): tell me once no connection comes to me any more. */
  | { type: 'drained' }
  | { type: 'feed'; text: string }
  /** Collect every worker's metrics for my scrape `id`. */
  | { type: 'metrics?'; id: number }
  /** My metrics for the primary's collection `id` (null: none). */
  | { type: 'metrics'; id: string; metrics: unknown }
  /** The answer to a heartbeat: this worker's event loop runs. */
  | { type: 'pong' }
>;
