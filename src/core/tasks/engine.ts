/**
 * What the task engine's parts share: the task repository, provider runtimes, configuration,
 * clock, metrics, logs, events, and this replica's identity for leases.
 */

import type { Logger } from '../../observability/logger.js';
import type { GatewayMetrics } from '../../observability/metrics.js';
import type { SecretScrubber } from '../../observability/secret-scrubber.js';
import type { ObjectStorage } from '../../storage/object-storage.js';
import type { Clock } from '../clock.js';
import type { ProviderRuntime } from '../upstream/provider-runtime.js';
import type { ClockWatch } from './clock-watch.js';
import type { ContentLinks } from './content-links.js';
import type { TaskEvents } from './task-events.js';
import type { TaskRepository } from './task-repository.js';
import type { TaskEngineSettings } from './task-settings.js';

export interface Engine {
  /** Tasks, attempts and deliveries, as typed records. */
  tasks: TaskRepository;
  /** The providers this gateway runs (a disabled one too, never called); one without an endpoint has none. */
  runtimes: ReadonlyMap<string, ProviderRuntime>;
  /**
   * Every provider the gateway knows (the registry), run or not: what a task may name as its
   * provider, and so what `GET /v1/videos?provider=` takes.
   */
  providerIds: readonly string[];
  config: TaskEngineSettings;
  clock: Clock;
  metrics: GatewayMetrics;
  logger: Logger;
  events: TaskEvents;
  /** Whether this replica's clock agrees with the other replicas': while it does not, no leased work is taken. */
  clockWatch: ClockWatch;
  /**
   * Whether other replicas may share the task store (PostgreSQL), each with its own configuration
   * during a rolling deploy: a provider unusable here may be usable there.
   */
  replicas?: boolean;
  /** This replica's id, written into leases. */
  owner: string;
  /** Randomness for jitter and weighted routing (seeded in tests). */
  random: () => number;
  /** Base URL upstreams call back on and content links point at; defaults to `config.server.public_url`. */
  publicUrl: string;
  /**
   * Where copies of results are kept. Also set in `storage.mode: passthrough`, where nothing is
   * copied but copies stored before are served and deleted at their retention.
   */
  storage?: ObjectStorage | undefined;
  /** Signed links to stored outputs. */
  links: ContentLinks;
  /**
   * Origins whose result URLs may be copied although they are private (the sandbox's own
   * simulators on loopback); nothing else is exempt from the address checks.
   */
  trustedResultOrigins: ReadonlySet<string>;
  /** Every configured secret (and the upstream keys in use): removed from upstream text a tenant sees. */
  secrets: SecretScrubber;
  /** Called when a task's outputs wait to be copied, so the copy starts without waiting for the next pass. */
  onOutputsDue?: (() => void) | undefined;
  /** Called when a task here leaves its provider slot, so a queued task takes it without waiting for the next pass. */
  onSlotFreed?: (() => void) | undefined;
}
