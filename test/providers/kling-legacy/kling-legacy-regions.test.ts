/**
 * Regions and API shapes of the legacy adapter: Kling's own hosts by name, the aggregator shape
 * of seed 002 for a base URL of its own, and the signed create that reaches a regional host,
 * with each account signing its own calls.
 */
import { createHmac } from 'node:crypto';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type GatewayConfig } from '../../../src/config/config.js';
import { ManualClock } from '../../../src/core/clock.js';
import { ProviderRuntime } from '../../../src/core/upstream/provider-runtime.js';
import { createLogger } from '../../../src/observability/logger.js';
import { GatewayMetrics } from '../../../src/observability/metrics.js';
import { klingLegacyProvider } from '../../../src/providers/kling-legacy/kling-legacy-provider.js';
import { PROVIDER_IDS, PROVIDERS } from '../../../src/providers/registry.js';
import { liveEndpoint } from '../../../src/sandbox/sandbox.js';
import { served } from './kling-legacy-fixtures.js';

const ACCESS_KEY = 'ak-kling-official-0001';
const SECRET_KEY = 'sk-kling-official-secret-0001';
const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);
const seconds = (ms: number) => Math.floor(ms / 1000);

/** The claims of a Bearer JWT, read by hand, with whether its signature holds for the secret key. */
function readBearer(authorization: string | undefined) {
  const [header, payload, signature] = (/^Bearer (.+)$/.exec(authorization ?? '')?.[1] ?? '').split('.');
  return {
    header: JSON.parse(Buffer.from(header ?? '', 'base64url').toString('utf8') || '{}'),
    claims: JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8') || '{}'),
    signed: signature === createHmac('sha256', SECRET_KEY).update(`${header}.${payload}`).digest('base64url'),
  };
}

/** The live runtime `settings` and its endpoint make (as the gateway builds it), on `clock`. */
function liveRuntime(settings: GatewayConfig, endpoint: NonNullable<ReturnType<typeof liveEndpoint>>, clock: ManualClock): ProviderRuntime {
  return new ProviderRuntime({
    provider: klingLegacyProvider,
    config: settings.providers['kling-legacy']!,
    baseUrl: endpoint.baseUrl,
    accounts: endpoint.accounts,
    apiShape: endpoint.apiShape,
    simulated: false,
    clock,
    metrics: new GatewayMetrics(),
    logger: createLogger('silent'),
  });
}

describe('regions and API shapes', () => {
  beforeAll(() => nock.disableNetConnect());
  afterEach(() => nock.cleanAll());
  afterAll(() => nock.enableNetConnect());

  const config = (legacy: Record<string, unknown>) =>
    parseConfig(
      {
        server: { public_url: 'http://127.0.0.1:1' },
        database: { url: 'sqlite::memory:' },
        auth: { api_keys: 'acme:acme-secret-key' },
        providers: { 'kling-legacy': legacy },
      },
      {},
      PROVIDER_IDS,
    );

  it.each([
    ['singapore', 'https://api-singapore.klingai.com'],
    ['beijing', 'https://api-beijing.klingai.com'],
    ['global', 'https://api.klingai.com'],
  ])('region %s is %s, with the official /v1 routes', (region, baseUrl) => {
    const endpoint = liveEndpoint(config({ region, access_key: ACCESS_KEY, secret_key: SECRET_KEY }), klingLegacyProvider);
    expect(endpoint).toEqual({ baseUrl, apiKey: '', accessKey: ACCESS_KEY, secretKey: SECRET_KEY, apiShape: 'official', simulated: false });
  });

  it('keeps the aggregator shape for a base_url of its own (seed 002), and takes an API key as Bearer on Kling too', () => {
    expect(liveEndpoint(config({ base_url: 'https://reseller.example.com', api_key: 'sk-agg-123' }), klingLegacyProvider)).toEqual({
      baseUrl: 'https://reseller.example.com',
      apiKey: 'sk-agg-123',
      simulated: false,
    });
    expect(liveEndpoint(config({ region: 'singapore', api_key: 'sk-kling-123' }), klingLegacyProvider)).toMatchObject({
      baseUrl: 'https://api-singapore.klingai.com',
      apiKey: 'sk-kling-123',
      apiShape: 'official',
    });
    expect(
      liveEndpoint(config({ base_url: 'https://proxy.example.com', api_shape: 'official', api_key: 'sk-1234567' }), klingLegacyProvider),
    ).toMatchObject({ baseUrl: 'https://proxy.example.com', apiShape: 'official' });
  });

  it('reaches an aggregator whose base_url was given with its /kling/v1 (or /v1 on Kling\'s own API) once, not twice', async () => {
    // The aggregator documents its routes as /kling/v1/…: a base_url copied with that prefix sent
    // every create to /kling/v1/kling/v1/videos/text2video, which failed as "1203 does not exist".
    const clock = new ManualClock(T0);
    const settings = config({ base_url: 'https://reseller.example.com/kling/v1/', api_key: 'sk-agg-123', timeout_ms: 2_000, connect_timeout_ms: 2_000 });
    const endpoint = liveEndpoint(settings, klingLegacyProvider)!;
    expect(endpoint.baseUrl).toBe('https://reseller.example.com');
    const scope = nock('https://reseller.example.com')
      .post('/kling/v1/videos/text2video')
      .reply(200, { code: 0, message: 'SUCCEED', request_id: 'r', data: { task_id: 'k-9', task_status: 'submitted' } });
    const runtime = liveRuntime(settings, endpoint, clock);
    const { request, offering } = served({ model: 'kling-v1', prompt: 'a fox', quality: 'std', duration: 5 });
    const account = runtime.accounts[0]!;
    const result = await account.call((signal) =>
      klingLegacyProvider.submit(request, offering, { http: account.clientFor({}), signal, taskId: 't', attemptKey: 't-1' }),
    );
    expect(scope.isDone()).toBe(true);
    expect(result.ref.providerTaskId).toBe('k-9');
    // Kling's own shape, on a proxy given with /v1; a path prefix of a proxy's own is kept.
    expect(liveEndpoint(config({ base_url: 'https://proxy.example.com/kling/v1', api_shape: 'official', api_key: 'sk-1234567' }), klingLegacyProvider)).toMatchObject({
      baseUrl: 'https://proxy.example.com/kling',
      apiShape: 'official',
    });
    expect(liveEndpoint(config({ base_url: 'https://proxy.example.com/upstreams/kling', api_key: 'sk-1234567' }), klingLegacyProvider)).toMatchObject({
      baseUrl: 'https://proxy.example.com/upstreams/kling',
    });
    const accounts = config({ base_url: 'https://reseller.example.com', accounts: [{ id: 'b', api_key: 'sk-b-1234567', base_url: 'https://other.example.com/kling/v1' }] });
    expect(liveEndpoint(accounts, klingLegacyProvider)!.accounts?.[0]?.baseUrl).toBe('https://other.example.com');
  });

  it('names the field of a block that does not add up', () => {
    expect(() => liveEndpoint(config({ region: 'mars', api_key: 'sk-1234567' }), klingLegacyProvider)).toThrow(
      'providers.kling-legacy.region: unknown region "mars" (known: global, singapore, beijing)',
    );
    expect(() => liveEndpoint(config({ region: 'global', api_key: 'sk-1234567', access_key: ACCESS_KEY, secret_key: SECRET_KEY }), klingLegacyProvider)).toThrow(
      'providers.kling-legacy.api_key: give api_key, or access_key and secret_key, not both',
    );
    expect(() => liveEndpoint(config({ region: 'global', api_key: 'sk-1234567', api_shape: 'soap' }), klingLegacyProvider)).toThrow(
      /providers\.kling-legacy\.api_shape/,
    );
    expect(() => config({ access_key: ACCESS_KEY })).toThrow('providers.kling-legacy.secret_key: give access_key and secret_key together');
    const freepik = PROVIDERS.find((provider) => provider.id === 'freepik')!;
    const withFreepik = parseConfig(
      {
        server: { public_url: 'http://127.0.0.1:1' },
        database: { url: 'sqlite::memory:' },
        auth: { api_keys: 'acme:acme-secret-key' },
        providers: { freepik: { base_url: 'https://api.freepik.com', access_key: 'a', secret_key: 'b' } },
      },
      {},
      PROVIDER_IDS,
    );
    expect(() => liveEndpoint(withFreepik, freepik)).toThrow('providers.freepik.access_key: freepik takes an api_key, not an access key and secret key');
  });

  it('sends the create to the regional host with a fresh JWT', async () => {
    const clock = new ManualClock(T0);
    const runtime = new ProviderRuntime({
      provider: klingLegacyProvider,
      // Connect timeout = call timeout: Node's own agents, which nock intercepts.
      config: config({ timeout_ms: 2_000, connect_timeout_ms: 2_000 }).providers['kling-legacy']!,
      baseUrl: 'https://api-singapore.klingai.com',
      apiKey: '',
      accessKey: ACCESS_KEY,
      secretKey: SECRET_KEY,
      apiShape: 'official',
      simulated: false,
      clock,
      metrics: new GatewayMetrics(),
      logger: createLogger('silent'),
    });
    let authorization: string | undefined;
    const scope = nock('https://api-singapore.klingai.com')
      .matchHeader('authorization', (value: string) => {
        authorization = value;
        return true;
      })
      .post('/v1/videos/text2video')
      .reply(200, { code: 0, message: 'SUCCEED', request_id: 'r', data: { task_id: 'k-1', task_status: 'submitted' } });
    const { request, offering } = served({ model: 'kling-v1', prompt: 'a fox', quality: 'std', duration: 5 });
    const account = runtime.accounts[0]!;
    const result = await account.call((signal) =>
      klingLegacyProvider.submit(request, offering, { http: account.clientFor({}), signal, taskId: 't', attemptKey: 't-1' }),
    );
    expect(scope.isDone()).toBe(true);
    expect(result.ref.providerTaskId).toBe('k-1');
    const token = readBearer(authorization);
    expect(token.header).toEqual({ alg: 'HS256', typ: 'JWT' });
    expect(token.claims).toEqual({ iss: ACCESS_KEY, exp: seconds(T0) + 1800, nbf: seconds(T0) - 5 });
    expect(token.signed).toBe(true);
  });

  it("signs each account's calls with its own access key and secret key, creates and polls alike", async () => {
    const clock = new ManualClock(T0);
    const accounts = [
      { id: 'team-a', access_key: 'ak-team-a-0001', secret_key: 'sk-team-a-secret-0001' },
      { id: 'team-b', access_key: 'ak-team-b-0002', secret_key: 'sk-team-b-secret-0002' },
    ];
    const settings = config({ region: 'singapore', accounts, timeout_ms: 2_000, connect_timeout_ms: 2_000 });
    const endpoint = liveEndpoint(settings, klingLegacyProvider)!;
    expect(endpoint.accounts?.map((account) => [account.id, account.accessKey])).toEqual([
      ['team-a', 'ak-team-a-0001'],
      ['team-b', 'ak-team-b-0002'],
    ]);
    const runtime = liveRuntime(settings, endpoint, clock);
    const seen: string[] = [];
    const scope = nock('https://api-singapore.klingai.com')
      .matchHeader('authorization', (value: string) => {
        seen.push(value);
        return true;
      })
      .post('/v1/videos/text2video')
      .times(2)
      .reply(200, { code: 0, message: 'SUCCEED', request_id: 'r', data: { task_id: 'k-1', task_status: 'submitted' } })
      .get('/v1/videos/text2video/k-1')
      .reply(200, { code: 0, message: 'SUCCEED', request_id: 'r', data: { task_id: 'k-1', task_status: 'processing' } });
    const { request, offering } = served({ model: 'kling-v1', prompt: 'a fox', quality: 'std', duration: 5 });
    const [teamA, teamB] = runtime.accounts;
    const results: Awaited<ReturnType<typeof klingLegacyProvider.submit>>[] = [];
    for (const account of [teamA!, teamB!]) {
      results.push(
        await account.call((signal) =>
          klingLegacyProvider.submit(request, offering, { http: account.clientFor({}), signal, taskId: 't', attemptKey: `t-${account.id}` }),
        ),
      );
    }
    await teamB!.call((signal) => klingLegacyProvider.getStatus(results[1]!.ref, { http: teamB!.clientFor({}), signal }));
    expect(scope.isDone()).toBe(true);
    const claims = seen.map((authorization) => JSON.parse(Buffer.from(authorization.split('.')[1]!, 'base64url').toString('utf8')).iss);
    expect(claims).toEqual(['ak-team-a-0001', 'ak-team-b-0002', 'ak-team-b-0002']);
    const signedWith = (authorization: string, secret: string) => {
      const [header, payload, signature] = authorization.replace(/^Bearer /, '').split('.');
      return signature === createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
    };
    expect([signedWith(seen[0]!, 'sk-team-a-secret-0001'), signedWith(seen[1]!, 'sk-team-b-secret-0002'), signedWith(seen[2]!, 'sk-team-b-secret-0002')]).toEqual([
      true,
      true,
      true,
    ]);
    expect(signedWith(seen[1]!, 'sk-team-a-secret-0001')).toBe(false);
  });

  it('reaches an account in a region of its own at that region\'s host', async () => {
    const settings = config({
      accounts: [
        { id: 'sg', region: 'singapore', access_key: 'ak-sg-0001', secret_key: 'sk-sg-secret-0001' },
        { id: 'cn', region: 'beijing', access_key: 'ak-cn-0002', secret_key: 'sk-cn-secret-0002' },
      ],
      timeout_ms: 2_000,
      connect_timeout_ms: 2_000,
    });
    const endpoint = liveEndpoint(settings, klingLegacyProvider)!;
    expect(endpoint.accounts?.map((account) => [account.id, account.baseUrl, account.apiShape])).toEqual([
      ['sg', 'https://api-singapore.klingai.com', 'official'],
      ['cn', 'https://api-beijing.klingai.com', 'official'],
    ]);
    const runtime = liveRuntime(settings, endpoint, new ManualClock(T0));
    const scope = nock('https://api-beijing.klingai.com')
      .post('/v1/videos/text2video')
      .reply(200, { code: 0, message: 'SUCCEED', request_id: 'r', data: { task_id: 'k-cn', task_status: 'submitted' } });
    const { request, offering } = served({ model: 'kling-v1', prompt: 'a fox', quality: 'std', duration: 5 });
    const cn = runtime.account('cn')!;
    const result = await cn.call((signal) =>
      klingLegacyProvider.submit(request, offering, { http: cn.clientFor({}), signal, taskId: 't', attemptKey: 't-1' }),
    );
    expect(scope.isDone()).toBe(true);
    expect(result.ref.providerTaskId).toBe('k-cn');
    // Without a region or base URL anywhere, the account cannot be reached.
    expect(() => liveEndpoint(config({ accounts: [{ id: 'lost', api_key: 'kl-lost-0001' }] }), klingLegacyProvider)).toThrow(
      'providers.kling-legacy.base_url: required when credentials are set (or name a region, here or on every account)',
    );
  });
});
