/**
 * The whole gateway over real HTTP against the built-in simulators, on a ManualClock: tests
 * move time with `advance` (which also runs one pass of every worker) instead of sleeping.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type GatewayConfig } from '../../src/config/config.js';
import { ManualClock } from '../../src/core/clock.js';
import type { DestinationStream } from 'pino';
import type { ProviderSimulator, VideoProvider } from '../../src/core/upstream/provider.js';
import { Gateway, gatewayLogger, gatewaySecrets } from '../../src/gateway.js';
import type { Logger } from '../../src/observability/logger.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox, type ProviderEndpoint } from '../../src/sandbox/sandbox.js';
import type { ObjectStorage } from '../../src/storage/object-storage.js';
import type { Store } from '../../src/store/database.js';

export const TENANT_KEY = 'acme-secret-key';
export const OTHER_TENANT_KEY = 'other-secret-key';
export const TENANT_WEBHOOK_SECRET = 'whsec_dGVzdC10ZW5hbnQtd2ViaG9vay1zZWNyZXQ=';

function merge(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const result: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const current = result[key];
    result[key] =
      value && typeof value === 'object' && !Array.isArray(value) && current && typeof current === 'object' && !Array.isArray(current)
        ? merge(current as Record<string, unknown>, value as Record<string, unknown>)
        : value;
  }
  return result;
}

/**
 * What every provider gets in tests: short time limits, a circuit that opens after three
 * failures, and its shipped default prices. Priorities follow the registry's order.
 */
function testProviderSettings(index: number): Record<string, unknown> {
  return {
    priority: index + 1,
    timeout_ms: 2_000,
    connect_timeout_ms: 1_000,
    circuit_breaker: { consecutive_failures: 3, half_open_after_ms: 60_000 },
  };
}

/**
 * A test configuration for `providers` (the registry by default): two tenants, in-memory
 * SQLite, fast simulators, lenient limits.
 */
export function testConfig(overrides: Record<string, unknown> = {}, providers: readonly VideoProvider[] = PROVIDERS): GatewayConfig {
  const base = {
    server: { port: 0, host: '127.0.0.1', public_url: 'http://127.0.0.1:1' },
    database: { url: 'sqlite::memory:' },
    auth: { api_keys: `acme:${TENANT_KEY},other:${OTHER_TENANT_KEY}` },
    tenants: { acme: { webhook_secret: TENANT_WEBHOOK_SECRET } },
    routing: { strategy: 'priority' },
    tracking: {
      poll_min_interval_ms: 1_000,
      poll_max_interval_ms: 10_000,
      poll_backoff: 1.5,
      poll_jitter: 0,
      webhook_safety_poll_ms: 10_000,
      lease_ms: 30_000,
      tick_ms: 500,
    },
    webhooks: { allow_private_targets: true, max_attempts: 3, timeout_ms: 2_000 },
    sandbox: { queued_ms: 1_000, processing_ms: 4_000 },
    // Most suites look at other things than result custody: outputs keep the upstream URL unless
    // a test asks for copies (`storage: { mode: 'copy' }`), which go to a fresh directory.
    storage: { mode: 'passthrough', filesystem: { path: mkdtempSync(join(tmpdir(), 'kling-gw-outputs-')) } },
    log: { level: 'silent' },
    providers: Object.fromEntries(providers.map((provider, index) => [provider.id, testProviderSettings(index)])),
  };
  const ids = providers.map((provider) => provider.id);
  return parseConfig(merge(base, overrides), {}, ids, 'test config');
}

export interface HttpAnswer<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export interface TestGatewayOptions {
  config?: Record<string, unknown>;
  clock?: ManualClock;
  /** Reuse simulators (and their tasks) from an earlier gateway, e.g. across a restart. */
  endpoints?: ReadonlyMap<string, ProviderEndpoint>;
  simulators?: Map<string, ProviderSimulator>;
  store?: Store;
  providers?: readonly VideoProvider[];
  random?: () => number;
  owner?: string;
  /** A logger of the test's own (otherwise one like the gateway's, see `logTo`). */
  logger?: Logger;
  /** Where the gateway's logs go, at `info`, redacted and scrubbed as production's are (silent when absent). */
  logTo?: DestinationStream;
  /** Changes to how the gateway reaches a provider (a closed port, a wrong key). */
  endpointOverrides?: Record<string, Partial<ProviderEndpoint>>;
  /** Storage for result copies (otherwise the configured one). */
  objectStorage?: ObjectStorage;
  /** Reads the clock against the PostgreSQL server's, as production does (a `DriftingClock`'s); off by default on a manual clock. */
  checkClock?: boolean;
}

export class TestGateway {
  constructor(
    readonly gateway: Gateway,
    readonly url: string,
    readonly clock: ManualClock,
    readonly simulators: Map<string, ProviderSimulator>,
    readonly endpoints: ReadonlyMap<string, ProviderEndpoint>,
    readonly config: GatewayConfig,
    private readonly ownsSimulators: boolean,
  ) {}

  simulator(id: string): ProviderSimulator {
    const simulator = this.simulators.get(id);
    if (!simulator) throw new Error(`no simulator ${id}`);
    return simulator;
  }

  async request<T = any>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
    key: string | null = TENANT_KEY,
  ): Promise<HttpAnswer<T>> {
    const response = await fetch(`${this.url}${path}`, {
      method,
      headers: {
        ...(key ? { authorization: `Bearer ${key}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // Not JSON: keep the text.
    }
    return { status: response.status, headers: response.headers, body: parsed as T };
  }

  create(body: unknown, headers: Record<string, string> = {}) {
    return this.request('POST', '/v1/videos', body, headers);
  }

  get(id: string) {
    return this.request('GET', `/v1/videos/${id}`);
  }

  /** Moves the clock and runs one pass of every worker (several, to let follow-ups settle). */
  async advance(ms: number): Promise<void> {
    await this.clock.advance(ms);
    await this.gateway.runOnce();
  }

  /** Advances in steps until `check` holds (bounded), for real-socket effects like webhooks. */
  async advanceUntil(check: () => Promise<boolean>, stepMs = 1_000, maxSteps = 60): Promise<void> {
    for (let step = 0; step < maxSteps; step++) {
      if (await check()) return;
      await this.advance(stepMs);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    if (!(await check())) throw new Error('condition not reached');
  }

  /** Advances until the task is terminal; returns it. */
  async finish(id: string, stepMs = 1_000): Promise<any> {
    let task: any;
    await this.advanceUntil(async () => {
      task = (await this.get(id)).body;
      return ['succeeded', 'failed', 'canceled'].includes(task.status);
    }, stepMs);
    return task;
  }

  async close(): Promise<void> {
    await this.gateway.close();
    if (this.ownsSimulators) await Promise.all([...this.simulators.values()].map((simulator) => simulator.close()));
  }
}

/** Starts simulators (unless given) and a gateway listening on a random loopback port. */
export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const providers = options.providers ?? PROVIDERS;
  const config = testConfig(options.config, providers);
  const clock = options.clock ?? new ManualClock(Date.UTC(2026, 10, 22, 12, 0, 0));
  let endpoints = options.endpoints;
  let simulators = options.simulators;
  const ownsSimulators = !endpoints;
  if (!endpoints) {
    const sandbox = await startSandbox(config, providers, clock);
    endpoints = sandbox.endpoints;
    simulators = sandbox.simulators;
  }
  const effective = new Map(endpoints);
  for (const [id, override] of Object.entries(options.endpointOverrides ?? {})) {
    const current = effective.get(id);
    if (current) effective.set(id, { ...current, ...override });
  }
  const gateway = await Gateway.create({
    config,
    providers,
    endpoints: effective,
    clock,
    // Production's logger, secrets scrubbed: what a test reads is what an operator would.
    logger: options.logger ?? gatewayLogger(options.logTo ? 'info' : 'silent', providers, gatewaySecrets(config, effective), options.logTo),
    random: options.random ?? (() => 0.5),
    trustedResultOrigins: [...(simulators?.keys() ?? [])].flatMap((id) => {
      const endpoint = endpoints.get(id);
      return endpoint ? [endpoint.baseUrl] : [];
    }),
    ...(options.objectStorage ? { objectStorage: options.objectStorage } : {}),
    ...(options.checkClock !== undefined ? { checkClock: options.checkClock } : {}),
    ...(options.owner ? { owner: options.owner } : {}),
    ...(options.store ? { store: options.store } : {}),
  });
  const url = await gateway.listen(0, '127.0.0.1');
  gateway.setPublicUrl(url);
  return new TestGateway(gateway, url, clock, simulators ?? new Map(), endpoints, config, ownsSimulators);
}

/** A fresh SQLite file path (for restart tests). */
export function tempDatabaseUrl(): string {
  return `sqlite:${join(mkdtempSync(join(tmpdir(), 'kling-gw-')), 'gateway.db')}`;
}

/**
 * Deploys of one gateway, one after the other: each starts on the same SQLite file, simulators
 * (which keep their tasks) and clock, with the config changes it is given, as a restart or a
 * deploy that changed the config would. `close` ends the simulators; each gateway is closed by
 * its test.
 */
export class GatewayDeploys {
  readonly database = { url: tempDatabaseUrl() };

  private constructor(
    readonly clock: ManualClock,
    readonly endpoints: ReadonlyMap<string, ProviderEndpoint>,
    readonly simulators: Map<string, ProviderSimulator>,
    private readonly closeSandbox: () => Promise<void>,
  ) {}

  static async start(clock = new ManualClock(Date.UTC(2026, 10, 22, 12))): Promise<GatewayDeploys> {
    const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
    return new GatewayDeploys(clock, sandbox.endpoints, sandbox.simulators, () => sandbox.close());
  }

  /** The next deploy, with `config` over the test config (the database is this one's). */
  deploy(config: Record<string, unknown> = {}, options: Omit<TestGatewayOptions, 'config' | 'clock' | 'simulators'> = {}): Promise<TestGateway> {
    return startTestGateway({
      clock: this.clock,
      endpoints: this.endpoints,
      simulators: this.simulators,
      ...options,
      config: merge({ database: this.database }, config),
    });
  }

  /**
   * A task made by a first deploy (`body`, sent with `headers`), then the next deploy, which
   * turned `provider` off: the first is closed, the next is the caller's to close.
   */
  async madeThenTurnedOff(provider: string, body: unknown, headers: Record<string, string> = {}): Promise<{ created: HttpAnswer; after: TestGateway }> {
    const before = await this.deploy();
    const created = await before.create(body, headers);
    await before.close();
    return { created, after: await this.deploy({ providers: { [provider]: { enabled: false } } }) };
  }

  close(): Promise<void> {
    return this.closeSandbox();
  }
}
