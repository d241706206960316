/**
 * Messages between the load generator and the child process that serves the stack. Plain JSON
 * over Node's IPC channel: one `start`, then numbered calls answered in any order.
 */
import type { BenchSettings } from './bench-settings.js';
import type { StackAddresses } from './bench-stack.js';

/** The calls the child answers; each maps to the `BenchStack` method of the same name. */
export type StackCall = 'upstreamTraffic' | 'lastUpstreamCreate' | 'memory' | 'eventLoopDelay' | 'cpuMs' | 'close';

export type ToStack =
  | { type: 'start'; settings: BenchSettings }
  | { type: 'call'; id: number; call: StackCall; args: unknown[] };

export type FromStack =
  | { type: 'ready'; addresses: StackAddresses }
  | { type: 'failed'; message: string }
  | { type: 'result'; id: number; ok: true; value: unknown }
  | { type: 'result'; id: number; ok: false; message: string };
