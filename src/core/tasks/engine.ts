/**
 * What the task engine's parts share: store, provider runtimes, configuration, clock, metrics,
 * logs, events, and this replica's identity for leases.
 */

import type { Logger } from '../../observability/logger.js';
import type { GatewayMetrics } from '../../observability/metrics.js';
import type { TaskStore } from '../../store/task-store.js';
import type { Clock } from '../clock.js';
import type { ProviderRuntime } from '../upstream/provider-runtime.js';
import type { TaskEvents } from './task-events.js';
import type { TaskEngineSettings } from './task-settings.js';

export interface Engine {
  store: TaskStore;
  runtimes: ReadonlyMap<string, ProviderRuntime>;
  config: TaskEngineSettings;
  clock: Clock;
  metrics: GatewayMetrics;
  logger: Logger;
  events: TaskEvents;
  /** This replica's id, written into leases. */
  owner: string;
  /** Randomness for jitter and weighted routing (seeded in tests). */
  random: () => number;
  /** Base URL upstreams call back on; defaults to `config.server.public_url`. */
  publicUrl: string;
}
