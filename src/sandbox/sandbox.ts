/**
 * The sandbox (SPEC §6): every enabled provider without an upstream key gets its built-in
 * simulator on loopback, with a fresh key and webhook secret, so the whole product runs on a
 * fresh machine with nothing else installed.
 */
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { ConfigRefusal, hasCredentials, withoutConfiguredSecrets, type GatewayConfig } from '../config/config.js';
import type { Clock } from '../core/clock.js';
import type { AccountCredentials } from '../core/upstream/provider-account.js';
import type { ProviderSimulator, VideoProvider } from '../core/upstream/provider.js';
import { sqliteFileOf } from '../store/database-url.js';
import { fetchHostedEndpoints, type HostedSimulatorEndpoint } from './simulator-host.js';

/** Where and how the gateway reaches one provider. */
export interface ProviderEndpoint {
  baseUrl: string;
  apiKey: string;
  /** Access key + secret key (signed tokens) instead of `apiKey`, for providers that take them. */
  accessKey?: string;
  secretKey?: string;
  /** Which of the provider's API shapes the endpoint speaks (its default when absent). */
  apiShape?: string;
  /** The secret a simulator signs its webhooks with. */
  webhookSecret?: string;
  /** A live provider's configured webhook secrets (several while it rotates one): any one verifies. */
  webhookSecrets?: readonly string[];
  /**
   * The provider's accounts (`providers.<id>.accounts`), each with its own credentials; when
   * absent, the fields above are the one account, `default`.
   */
  accounts?: AccountCredentials[];
  simulated: boolean;
  /** For simulators: how long their tasks take, which bounds the first poll. */
  runTimeMs?: number;
  /** Set when the provider is not to be used, with the reason. */
  disabledReason?: string;
}

/** Stands in for a provider that is not used: never called. */
const UNUSED_ENDPOINT = { baseUrl: 'http://disabled.invalid', apiKey: '', simulated: false } as const;

export interface Sandbox {
  endpoints: Map<string, ProviderEndpoint>;
  simulators: Map<string, ProviderSimulator>;
  /**
   * The simulators' own origins (`http://127.0.0.1:<port>`, or the simulator host's): where their
   * result files are, the only private origins result custody may copy from without
   * `storage.allow_private_sources`.
   */
  resultOrigins: string[];
  close(): Promise<void>;
}

function isEnabled(config: GatewayConfig, providerId: string): boolean {
  return config.providers[providerId]?.enabled ?? true;
}

/** True when some enabled provider has upstream credentials: a live deployment. */
export function isLive(config: GatewayConfig, providers: readonly VideoProvider[]): boolean {
  return providers.some((provider) => isEnabled(config, provider.id) && hasCredentials(config.providers[provider.id]));
}

/**
 * Whether a provider runs against its simulator: it is enabled, has no key, and either no
 * provider is live (the sandbox) or `sandbox.simulators: always` asks for simulators beside live
 * providers. In a live deployment a keyless provider is disabled instead, so real requests never
 * land on a simulator because a key was not injected.
 */
export function needsSimulator(config: GatewayConfig, providers: readonly VideoProvider[], providerId: string): boolean {
  if (!isEnabled(config, providerId) || hasCredentials(config.providers[providerId])) return false;
  if (config.sandbox.simulators === 'never') return false;
  return config.sandbox.simulators === 'always' || !isLive(config, providers);
}

/**
 * The configured upstream of a live provider: its credentials (an API key, or an access key +
 * secret key where the provider signs tokens), and its base URL, given as `base_url` or by
 * `region` name. A region also names the API shape spoken there unless `api_shape` says
 * otherwise. Throws naming the field when the block does not add up.
 */
/** What a provider left without credentials lacks, in its own config words. */
export function missingCredentials(provider: VideoProvider): string {
  return provider.createAuth ? 'no api_key, nor access_key and secret_key, configured' : 'no api_key configured';
}

export function liveEndpoint(config: GatewayConfig, provider: VideoProvider): ProviderEndpoint | undefined {
  try {
    return endpointOf(config, provider);
  } catch (error) {
    // A refusal quotes what it got (`unknown region "…"`): never a key set in the wrong place.
    throw new ConfigRefusal(withoutConfiguredSecrets((error as Error).message, config));
  }
}

/**
 * `baseUrl` without the route prefix of its API shape at its end (`…/kling/v1` for the legacy
 * aggregator shape): the adapter adds that prefix to every path, so a base URL copied with it
 * would reach `/kling/v1/kling/v1/…`, which no upstream serves. Anything else is kept as given.
 */
function withoutRoutePrefix(provider: VideoProvider, baseUrl: string, apiShape: string | undefined): string {
  const prefix = provider.routePrefixes?.[apiShape ?? provider.apiShapes?.[0] ?? 'default'];
  if (!prefix || /[?#]/.test(baseUrl)) return baseUrl;
  const trimmed = baseUrl.replace(/\/+$/, '');
  // Only a path prefix is cut, never part of the host.
  const inPath = URL.canParse(trimmed) && new URL(trimmed).pathname.endsWith(prefix);
  return inPath && trimmed.endsWith(prefix) ? trimmed.slice(0, -prefix.length) : baseUrl;
}

function endpointOf(config: GatewayConfig, provider: VideoProvider): ProviderEndpoint | undefined {
  const settings = config.providers[provider.id];
  if (!settings) return undefined;
  const field = (name: string) => `providers.${provider.id}.${name}`;
  // Only a provider reached by region (Kling's) can be placed by one instead of a base_url.
  const orRegion = (where: string) => (provider.regions ? ` (or name a region${where})` : '');
  const place = (block: { base_url?: string | undefined; region?: string | undefined }, path: (name: string) => string) => {
    let region;
    if (block.region !== undefined) {
      region = provider.regions?.[block.region];
      if (!region) {
        const known = Object.keys(provider.regions ?? {});
        throw new Error(`${path('region')}: unknown region "${block.region}"${known.length > 0 ? ` (known: ${known.join(', ')})` : ` (${provider.id} has none)`}`);
      }
    }
    const apiShape = settings.api_shape ?? (block.base_url === undefined ? region?.apiShape : undefined);
    if (apiShape !== undefined && !(provider.apiShapes ?? []).includes(apiShape)) {
      throw new Error(`${field('api_shape')}: ${provider.id} speaks ${(provider.apiShapes ?? ['one API']).join(' or ')}, not "${apiShape}"`);
    }
    return { baseUrl: block.base_url === undefined ? region?.baseUrl : withoutRoutePrefix(provider, block.base_url, apiShape), apiShape };
  };
  // A webhook secret of a provider that signs no webhooks would verify nothing: refused, in the
  // sandbox too, rather than read as if its webhooks were checked with it.
  if (provider.inboundWebhook !== 'signed') {
    const why =
      provider.inboundWebhook === 'token'
        ? `${provider.id} signs no webhooks (each callback carries a token of its own, which the gateway checks)`
        : `${provider.id} sends no webhooks (its tasks are polled)`;
    if (settings.webhook_secret) throw new Error(`${field('webhook_secret')}: ${why}; leave it out`);
    for (const [index, account] of (settings.accounts ?? []).entries()) {
      if (account.webhook_secret) throw new Error(`${field(`accounts[${index}].webhook_secret`)}: ${why}; leave it out`);
    }
  }
  // A region or API shape is judged without credentials too (the sandbox): going live would
  // refuse it, and it is wrong already.
  if (!hasCredentials(settings)) {
    place(settings, field);
    for (const [index, account] of (settings.accounts ?? []).entries()) place(account, (name) => field(`accounts[${index}].${name}`));
    return undefined;
  }
  if (settings.api_key && settings.access_key) {
    throw new Error(`${field('api_key')}: give api_key, or access_key and secret_key, not both`);
  }
  if (settings.access_key && !provider.createAuth) {
    throw new Error(`${field('access_key')}: ${provider.id} takes an api_key, not an access key and secret key`);
  }
  for (const [index, account] of (settings.accounts ?? []).entries()) {
    if (account.access_key && !provider.createAuth) {
      throw new Error(`${field(`accounts[${index}].access_key`)}: ${provider.id} takes an api_key, not an access key and secret key`);
    }
  }
  const shared = place(settings, field);
  const accounts = settings.accounts?.map((account, index): AccountCredentials => {
    const own = account.base_url !== undefined || account.region !== undefined ? place(account, (name) => field(`accounts[${index}].${name}`)) : undefined;
    if (!own?.baseUrl && !shared.baseUrl) {
      throw new Error(`${field('base_url')}: required when credentials are set${orRegion(', here or on every account')}`);
    }
    return {
      id: account.id,
      apiKey: account.api_key,
      ...(account.access_key && account.secret_key ? { accessKey: account.access_key, secretKey: account.secret_key } : {}),
      // An account without a webhook secret of its own uses the provider's.
      webhookSecrets: account.webhook_secret ?? settings.webhook_secret,
      // An account in a region (or at a base URL) of its own: Kling's keys belong to one region.
      ...(own ? { baseUrl: own.baseUrl, apiShape: own.apiShape } : {}),
    };
  });
  const baseUrl = shared.baseUrl ?? accounts?.[0]?.baseUrl;
  if (!baseUrl) throw new Error(`${field('base_url')}: required when credentials are set${orRegion('')}`);
  const apiShape = shared.baseUrl !== undefined ? shared.apiShape : accounts?.[0]?.apiShape;
  return {
    baseUrl,
    ...(accounts ? { accounts } : {}),
    apiKey: settings.api_key ?? '',
    ...(settings.access_key && settings.secret_key ? { accessKey: settings.access_key, secretKey: settings.secret_key } : {}),
    ...(apiShape !== undefined ? { apiShape } : {}),
    ...(settings.webhook_secret ? { webhookSecrets: settings.webhook_secret } : {}),
    simulated: false,
  };
}

/**
 * Where the simulator of `providerId` started in the gateway's process keeps its tasks: beside
 * the SQLite database file (`<file>.sandbox-<provider>.jsonl`), so that a gateway restarted on
 * the same file finds its simulators still knowing the tasks it resumes tracking. None for an
 * in-memory database (nothing outlives the process) or PostgreSQL (shared by replicas, which use
 * simulators in a process of their own).
 */
export function simulatorJournalPath(databaseUrl: string, providerId: string): string | undefined {
  let file;
  try {
    file = sqliteFileOf(databaseUrl);
  } catch {
    return undefined;
  }
  if (file === undefined) return undefined;
  return join(dirname(file), `${basename(file)}.sandbox-${providerId}.jsonl`);
}

/** Starts simulators for every provider that needs one; other providers get their live endpoint. */
export async function startSandbox(
  config: GatewayConfig,
  providers: readonly VideoProvider[],
  clock: Clock,
  host = '127.0.0.1',
): Promise<Sandbox> {
  const endpoints = new Map<string, ProviderEndpoint>();
  const simulators = new Map<string, ProviderSimulator>();
  // The simulator host is asked only when a provider needs a simulator: a live deployment (Compose
  // sets the URL always) starts without one.
  const hostUrl = config.sandbox.simulators_url;
  let hosted: Record<string, HostedSimulatorEndpoint> | undefined;
  try {
    for (const provider of providers) {
      const live = liveEndpoint(config, provider);
      if (live) {
        endpoints.set(provider.id, live);
        continue;
      }
      if (!needsSimulator(config, providers, provider.id)) {
        if (isEnabled(config, provider.id)) {
          endpoints.set(provider.id, {
            ...UNUSED_ENDPOINT,
            disabledReason: `${missingCredentials(provider)} (simulators run only when no provider has a key; see sandbox.simulators)`,
          });
        }
        continue;
      }
      if (hostUrl) {
        // Simulators in their own process, shared with the other replicas.
        hosted ??= await hostedEndpoints(hostUrl);
        const remote = hosted[provider.id];
        if (!remote) throw new Error(`the simulator host at ${config.sandbox.simulators_url} runs no ${provider.id} simulator`);
        endpoints.set(provider.id, {
          baseUrl: remote.base_url,
          apiKey: remote.api_key,
          webhookSecret: remote.webhook_secret,
          simulated: true,
          runTimeMs: remote.run_time_ms,
        });
        continue;
      }
      const apiKey = `sim-${randomBytes(16).toString('hex')}`;
      const webhookSecret = randomBytes(24).toString('base64url');
      const journalPath = simulatorJournalPath(config.database.url, provider.id);
      const simulator = provider.createSimulator({
        clock,
        apiKey,
        webhookSecret,
        timing: { queuedMs: config.sandbox.queued_ms, processingMs: config.sandbox.processing_ms },
        ...(provider.resultLifetimeMs !== undefined ? { resultLifetimeMs: provider.resultLifetimeMs } : {}),
        ...(journalPath !== undefined ? { journalPath } : {}),
      });
      const baseUrl = await simulator.listen(0, host);
      simulators.set(provider.id, simulator);
      endpoints.set(provider.id, {
        baseUrl,
        apiKey,
        webhookSecret,
        simulated: true,
        runTimeMs: config.sandbox.queued_ms + config.sandbox.processing_ms,
      });
    }
  } catch (error) {
    await Promise.all([...simulators.values()].map((simulator) => simulator.close()));
    throw error;
  }
  return {
    endpoints,
    simulators,
    // In this process or in a simulator host of their own (`sandbox.simulators_url`).
    resultOrigins: [...endpoints.values()].filter((endpoint) => endpoint.simulated).map((endpoint) => new URL(endpoint.baseUrl).origin),
    close: async () => {
      await Promise.all([...simulators.values()].map((simulator) => simulator.close()));
    },
  };
}

/** The hosted simulators' endpoints; the host may still be starting, so a few tries. */
async function hostedEndpoints(url: string): Promise<Record<string, HostedSimulatorEndpoint>> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetchHostedEndpoints(url);
    } catch (error) {
      if (attempt >= 20) throw new Error(`sandbox.simulators_url: no simulator host answers at ${url}: ${(error as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}
