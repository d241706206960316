/**
 * config.yaml (SPEC §6): `${VAR}` / `${VAR:-default}` expansion, validation whose every message
 * names the field, and the shipped file loading as it is, with and without upstream keys.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { Webhook } from 'standardwebhooks';
import { parse as parseYaml } from 'yaml';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import { bodyLimitBytes, ConfigError, configuredSecrets, configurationWarnings, loadConfigFile, parseConfig, parseConfigText, SHIPPED_DATABASE_PASSWORD, SHIPPED_SANDBOX_WEBHOOK_SECRET, sharedKeyWarnings } from '../../src/config/config.js';
import {
  ConfigFieldError,
  MissingEnvironmentVariableError,
  expandEnvironment,
  expandEnvironmentDeep,
} from '../../src/config/env-expansion.js';
import { PROVIDER_IDS, PROVIDERS, SIGNED_WEBHOOK_PROVIDER_IDS } from '../../src/providers/registry.js';
import { needsSimulator } from '../../src/sandbox/sandbox.js';

const SHIPPED_CONFIG = resolve(dirname(fileURLToPath(import.meta.url)), '../../config.yaml');

/** The smallest valid document. */
/** The shipped config.yaml, parsed but not expanded. */
function loadDocument(): unknown {
  return parseYaml(readFileSync(SHIPPED_CONFIG, 'utf8'));
}

function document(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    server: { public_url: 'https://gateway.example.com' },
    database: { url: 'sqlite::memory:' },
    auth: { api_keys: 'acme:acme-key-123' },
    ...extra,
  };
}

/** The problems a ConfigError lists, or fails the test when the document is accepted. */
function problemsOf(doc: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(doc, env, PROVIDER_IDS);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected the configuration to be refused');
}

describe('expandEnvironment', () => {
  it('replaces ${VAR} with its value', () => {
    expect(expandEnvironment('key=${API_KEY}', { API_KEY: 'abc' })).toBe('key=abc');
  });

  it('uses the default of ${VAR:-default} only when VAR is unset or empty', () => {
    expect(expandEnvironment('${PORT:-8080}', {})).toBe('8080');
    expect(expandEnvironment('${PORT:-8080}', { PORT: '' })).toBe('8080');
    expect(expandEnvironment('${PORT:-8080}', { PORT: '9090' })).toBe('9090');
  });

  it('takes an empty default as the empty string', () => {
    expect(expandEnvironment('${FREEPIK_API_KEY:-}', {})).toBe('');
  });

  it('expands a reference inside a default', () => {
    const text = '${PUBLIC_URL:-http://127.0.0.1:${PORT:-8080}}';
    expect(expandEnvironment(text, {})).toBe('http://127.0.0.1:8080');
    expect(expandEnvironment(text, { PORT: '3000' })).toBe('http://127.0.0.1:3000');
    expect(expandEnvironment(text, { PUBLIC_URL: 'https://gw.example.com', PORT: '3000' })).toBe('https://gw.example.com');
  });

  // Regression: see the commit that fixed it.
  it('does not need a variable that only appears in an unused default', () => {
    expect(expandEnvironment('${PUBLIC_URL:-http://127.0.0.1:${PORT}}', { PUBLIC_URL: 'https://gw.example.com' })).toBe(
      'https://gw.example.com',
    );
  });

  it('expands several references in one string and leaves other text alone', () => {
    expect(expandEnvironment('postgres://${DB_USER}@${DB_HOST:-localhost}:5432/$db', { DB_USER: 'kg' })).toBe(
      'postgres://kg@localhost:5432/$db',
    );
  });

  it('keeps a set but empty variable without default as the empty string', () => {
    expect(expandEnvironment('[${EMPTY}]', { EMPTY: '' })).toBe('[]');
  });

  it('refuses an unset variable without default, naming it', () => {
    expect(() => expandEnvironment('${FREEPIK_API_KEY}', {})).toThrow(MissingEnvironmentVariableError);
    expect(() => expandEnvironment('${FREEPIK_API_KEY}', {})).toThrow(
      'environment variable FREEPIK_API_KEY is not set and has no default',
    );
  });
});

describe('expandEnvironmentDeep', () => {
  it('expands strings at every depth and leaves other values as they are', () => {
    const input = {
      server: { port: '${PORT:-8080}', trust_proxy: true },
      rate_limits: [{ limit: 250, window_ms: '${WINDOW:-5000}' }],
      nothing: null,
    };
    expect(expandEnvironmentDeep(input, { WINDOW: '1000' })).toEqual({
      server: { port: '8080', trust_proxy: true },
      rate_limits: [{ limit: 250, window_ms: '1000' }],
      nothing: null,
    });
  });

  it('names the field of a missing variable, array indexes included', () => {
    const run = (doc: unknown) => {
      try {
        expandEnvironmentDeep(doc, {});
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigFieldError);
        return (error as Error).message;
      }
      return 'accepted';
    };
    expect(run({ providers: { freepik: { api_key: '${FREEPIK_KEY}' } } })).toBe(
      'providers.freepik.api_key: environment variable FREEPIK_KEY is not set and has no default',
    );
    expect(run({ list: ['ok', '${MISSING}'] })).toBe('list.1: environment variable MISSING is not set and has no default');
    expect(run('${MISSING}')).toBe('(root): environment variable MISSING is not set and has no default');
  });
});

describe('parseConfig', () => {
  it('fills every default around the required fields', () => {
    const config = parseConfig(document(), {}, PROVIDER_IDS);
    expect(config.server).toEqual({
      port: 8080,
      host: '0.0.0.0',
      public_url: 'https://gateway.example.com',
      body_limit: '256kb',
      trust_proxy: false,
      keep_alive_timeout_ms: 65_000,
      body_timeout_ms: 10_000,
      webhook_bodies_max_bytes: 64 * 1024 * 1024,
      metrics_token: undefined,
    });
    expect(config.limits).toEqual({ creates_per_minute: 300, open_streams: 20, open_waits: 50 });
    expect(config.routing).toEqual({ strategy: 'priority', allow_fallbacks: true, failover_on_timeout: false });
    expect(config.tasks).toEqual({ deadline_ms: 1_800_000, idempotency_ttl_ms: 86_400_000 });
    expect(config.webhooks.allow_private_targets).toBe(false);
    expect(config.providers).toEqual({});
  });

  it('fills a provider block from its defaults', () => {
    const config = parseConfig(document({ providers: { freepik: {} } }), {}, PROVIDER_IDS);
    expect(config.providers.freepik).toEqual({
      enabled: true,
      base_url: undefined,
      api_key: undefined,
      webhook_secret: undefined,
      priority: 100,
      weight: 1,
      timeout_ms: 30_000,
      connect_timeout_ms: 5_000,
      max_in_flight: 20,
      // None set: the provider's documented limits apply (Freepik's), not none.
      rate_limits: undefined,
      circuit_breaker: { consecutive_failures: 5, half_open_after_ms: 30_000 },
    });
  });

  it('names the field of a missing environment variable, in a ConfigError', () => {
    const doc = document({ server: { public_url: '${PUBLIC_URL}' } });
    expect(() => parseConfig(doc, {}, PROVIDER_IDS)).toThrow(
      'config.yaml is not valid:\n  - server.public_url: environment variable PUBLIC_URL is not set and has no default',
    );
  });

  it('names the field of a bad value', () => {
    expect(problemsOf(document({ providers: { freepik: { timeout_ms: 0 } } }))).toEqual([
      'providers.freepik.timeout_ms: must be at least 1',
    ]);
    expect(problemsOf(document({ providers: { freepik: { timeout_ms: '${TIMEOUT}' } } }), { TIMEOUT: 'soon' })).toEqual([
      'providers.freepik.timeout_ms: expected a number, got "soon"',
    ]);
    expect(problemsOf(document({ providers: { kling3api: { rate_limits: [{ limit: 0, window_ms: 1000 }] } } }))).toEqual([
      'providers.kling3api.rate_limits.0.limit: must be at least 1',
    ]);
    // Below one webhook body at the limit, a chunked webhook would never fit.
    expect(problemsOf(document({ server: { public_url: 'https://g.example', webhook_bodies_max_bytes: 1000 } }))).toEqual([
      'server.webhook_bodies_max_bytes: must be at least 262144',
    ]);
  });

  it('lists every problem at once', () => {
    const problems = problemsOf({
      server: {},
      database: { url: '' },
      auth: { api_keys: 'acme:acme-key-123' },
      routing: { strategy: 'random' },
    });
    expect(problems.map((problem) => problem.split(':')[0])).toEqual(['server.public_url', 'database.url', 'routing.strategy']);
  });

  it('names a public URL left out as required, not as a URL of the wrong kind', () => {
    // A file of one's own must give server.public_url: one that gives none is told so.
    expect(problemsOf(document({ server: { port: 8080 } }))).toEqual(['server.public_url: is required']);
  });

  it('refuses a base URL, public URL, S3 endpoint or simulators URL that is not an http(s) URL, naming the field', () => {
    for (const url of ['api.freepik.com', 'not a url', 'ftp://api.freepik.com']) {
      const problems = problemsOf(
        document({
          server: { public_url: url },
          providers: { freepik: { api_key: 'fpk-live-123456', base_url: url }, kling3api: { accounts: [{ id: 'main', api_key: 'k3-live-123456', base_url: url }] } },
        }),
      );
      // "must be a URL" would puzzle whoever wrote ftp://…, which is one.
      expect(problems, url).toEqual([
        'server.public_url: must be an http(s) URL',
        'providers.freepik.base_url: must be an http(s) URL',
        'providers.kling3api.accounts.0.base_url: must be an http(s) URL',
      ]);
    }
    expect(problemsOf(document({ storage: { s3: { endpoint: 'minio:9000' } }, sandbox: { simulators_url: 'ftp://127.0.0.1:9100' } }))).toEqual([
      'sandbox.simulators_url: must be an http(s) URL',
      'storage.s3.endpoint: must be an http(s) URL',
    ]);
    const config = parseConfig(document({ providers: { freepik: { base_url: ' https://api.freepik.com ' }, 'kling-legacy': { base_url: '${KLING_LEGACY_BASE_URL:-}' } } }), {}, PROVIDER_IDS);
    expect(config.providers.freepik?.base_url).toBe('https://api.freepik.com');
    expect(config.providers['kling-legacy']?.base_url).toBeUndefined();
  });

  it('refuses a provider or account base URL with a query or a fragment, which every call path would be appended to; a path prefix or a trailing slash is fine', () => {
    for (const url of ['https://api.freepik.com/?key=1', 'https://api.freepik.com/v1#main', 'https://api.freepik.com?']) {
      expect(
        problemsOf(
          document({
            providers: { freepik: { api_key: 'fpk-live-123456', base_url: url }, kling3api: { accounts: [{ id: 'main', api_key: 'k3-live-123456', base_url: url }] } },
          }),
        ),
        url,
      ).toEqual([
        'providers.freepik.base_url: must not hold a query or a fragment (? or #): the path of every call is appended to it',
        'providers.kling3api.accounts.0.base_url: must not hold a query or a fragment (? or #): the path of every call is appended to it',
      ]);
    }
    for (const url of ['https://api.freepik.com/', 'https://proxy.example.com/freepik/']) {
      expect(parseConfig(document({ providers: { freepik: { api_key: 'fpk-live-123456', base_url: url } } }), {}, PROVIDER_IDS).providers.freepik?.base_url).toBe(url);
    }
  });

  it('refuses a body limit express would misread, naming the field', () => {
    for (const limit of ['256kib', '1 MiB', 'lots', '0kb', '-1mb', '']) {
      expect(problemsOf(document({ server: { public_url: 'https://g.example', body_limit: limit } })), limit).toEqual([
        'server.body_limit: must be a size such as 256kb or 1mb (b, kb, mb or gb)',
      ]);
    }
    for (const limit of ['512kb', '1mb', '1.5 MB', '300000']) {
      expect(parseConfig(document({ server: { public_url: 'https://g.example', body_limit: limit } }), {}, PROVIDER_IDS).server.body_limit).toBe(limit);
    }
  });

  it('names a YAML .nan as not a number, not as a number too large to read', () => {
    expect(
      problemsOf(parseYaml('server: { public_url: "https://g.example", port: .nan }\ndatabase: { url: "sqlite::memory:" }\nauth: { api_keys: acme:acme-key-123 }\n')),
    ).toEqual(['server.port: must be a number (got .nan, not a number)']);
  });

  it('takes a body limit written as a bare YAML number as that many bytes, as the same text from a variable', () => {
    const config = parseConfigText('server:\n  public_url: https://g.example\n  body_limit: 1048576\ndatabase:\n  url: "sqlite::memory:"\nauth:\n  api_keys: acme:acme-key-123\n', 'config.yaml', {}, PROVIDER_IDS);
    expect([config.server.body_limit, bodyLimitBytes(config.server.body_limit)]).toEqual(['1048576', 1_048_576]);
    expect(problemsOf(document({ server: { public_url: 'https://g.example', body_limit: 0 } }))).toEqual([
      'server.body_limit: must be a size such as 256kb or 1mb (b, kb, mb or gb)',
    ]);
  });

  it('refuses a time limit longer than node can keep a timer for, which would fire at once', () => {
    const tooLong = 3_000_000_000;
    const message = 'must be at most 2147483647 ms (about 24 days), the longest timer node keeps';
    expect(
      problemsOf(
        document({
          server: { public_url: 'https://g.example', body_timeout_ms: tooLong, drain_timeout_ms: tooLong },
          webhooks: { timeout_ms: tooLong },
          tracking: { tick_ms: tooLong },
          storage: { copy_timeout_ms: tooLong },
          providers: { freepik: { timeout_ms: tooLong, connect_timeout_ms: tooLong } },
        }),
      ),
    ).toEqual([
      `server.body_timeout_ms: ${message}`,
      `server.drain_timeout_ms: ${message}`,
      `tracking.tick_ms: ${message}`,
      `webhooks.timeout_ms: ${message}`,
      `storage.copy_timeout_ms: ${message}`,
      `providers.freepik.timeout_ms: ${message}`,
      `providers.freepik.connect_timeout_ms: ${message}`,
    ]);
    expect(parseConfig(document({ webhooks: { timeout_ms: 2_147_483_647 } }), {}, PROVIDER_IDS).webhooks.timeout_ms).toBe(2_147_483_647);
  });

  it('refuses a lease or a simulated phase longer than node can keep a timer for, which would fire at once', () => {
    // A copy renews its lease every third of tracking.lease_ms; the simulators end each phase on a timer.
    const message = 'must be at most 2147483647 ms (about 24 days), the longest timer node keeps';
    expect(problemsOf(document({ tracking: { lease_ms: 7_000_000_000 }, sandbox: { queued_ms: 3_000_000_000, processing_ms: 3_000_000_000 } }))).toEqual([
      `tracking.lease_ms: ${message}`,
      `sandbox.queued_ms: ${message}`,
      `sandbox.processing_ms: ${message}`,
    ]);
    expect(problemsOf(document({ sandbox: { queued_ms: 2_000_000_000, processing_ms: 2_000_000_000 } }))).toEqual([
      'sandbox.processing_ms: queued_ms + processing_ms must be at most 2147483647 ms (about 24 days), the longest timer node keeps',
    ]);
    expect(parseConfig(document({ tracking: { lease_ms: 2_147_483_647 } }), {}, PROVIDER_IDS).tracking.lease_ms).toBe(2_147_483_647);
  });

  it('refuses a shortest poll interval longer than the longest, which would silently poll at the longest only', () => {
    expect(problemsOf(document({ tracking: { poll_min_interval_ms: 90_000, poll_max_interval_ms: 60_000 } }))).toEqual([
      'tracking.poll_min_interval_ms: must be at most poll_max_interval_ms (60000), got 90000',
    ]);
    const equal = parseConfig(document({ tracking: { poll_min_interval_ms: 5_000, poll_max_interval_ms: 5_000 } }), {}, PROVIDER_IDS);
    expect(equal.tracking.poll_min_interval_ms).toBe(5_000);
  });

  it('refuses a database URL the store cannot open, as the start would, without its password', () => {
    // check-config said "valid" to these, and only opening the store refused them.
    expect(problemsOf(document({ database: { url: 'mysql://kg:hunter2@db/kling' } }))).toEqual([
      'database.url: must start with sqlite: or postgres:// (got "mysql://…@db/kling")',
    ]);
    // A password holding an unescaped '@' is hidden whole, as URL parsers read the user part.
    expect(problemsOf(document({ database: { url: 'mysql://kg:p@ss@db/kling?password=x' } }))).toEqual([
      'database.url: must start with sqlite: or postgres:// (got "mysql://…@db/kling?password=…")',
    ]);
    expect(problemsOf(document({ database: { url: 'postgres//db/kling' } }))).toEqual([
      'database.url: must start with sqlite: or postgres:// (got "postgres//db/kling")',
    ]);
    expect(parseConfig(document({ database: { url: 'postgresql://kg@db/kling' } }), {}, PROVIDER_IDS).database.url).toBe('postgresql://kg@db/kling');
  });

  it('refuses a SQLite URL it would read as another file than meant, saying the forms it takes', () => {
    // Each was opened as a file nobody asked for: `/x.db` at the filesystem root, a file named
    // `:memory`, `SQLITE:x.db` or `file:x.db` in the working directory.
    const forms = 'sqlite:<file> (sqlite:./data/kling-gateway.db, sqlite:/var/lib/kg.db), sqlite::memory: or postgres://…';
    expect(problemsOf(document({ database: { url: 'sqlite://x.db' } }))).toEqual([
      `database.url: sqlite:// is not a form it takes (read as a path, it names /x.db): write ${forms} (got "sqlite://x.db")`,
    ]);
    expect(problemsOf(document({ database: { url: 'sqlite:///var/lib/kg.db' } }))).toEqual([
      `database.url: sqlite:// is not a form it takes (read as a path, it names /var/lib/kg.db): write ${forms} (got "sqlite:///var/lib/kg.db")`,
    ]);
    expect(problemsOf(document({ database: { url: 'sqlite::memory' } }))).toEqual([
      `database.url: a file name starting with ":" is not one SQLite takes: the in-memory database is sqlite::memory:; write ${forms} (got "sqlite::memory")`,
    ]);
    for (const url of ['SQLITE:x.db', 'file:x.db', 'sqlite3:data/gw.sqlite']) {
      expect(problemsOf(document({ database: { url } })), url).toEqual([`database.url: must start with sqlite: or postgres:// (got "${url}")`]);
    }
    // The documented forms, and a bare file path, still open what they name.
    for (const url of ['sqlite:./data/kling-gateway.db', 'sqlite:/var/lib/kg.db', 'sqlite:data/gw.db', 'sqlite::memory:', 'sqlite:', './gateway.db', 'data/gateway.sqlite']) {
      expect(parseConfig(document({ database: { url } }), {}, PROVIDER_IDS).database.url, url).toBe(url);
    }
  });

  it('refuses an unknown field rather than ignoring it, naming each by its own path', () => {
    expect(problemsOf(document({ providers: { freepik: { api_kye: 'x', enabeld: true } } }))).toEqual([
      'providers.freepik.api_kye: unknown field',
      'providers.freepik.enabeld: unknown field',
    ]);
  });

  it('refuses a block for an unknown provider, listing the known ones', () => {
    expect(problemsOf(document({ providers: { freepick: {} } }))).toEqual([
      'providers.freepick: unknown provider (known: freepik, kling3api, kling-legacy)',
    ]);
  });

  it('refuses a tenant that no API key names', () => {
    expect(problemsOf(document({ tenants: { acme: {}, ghost: { webhook_secret: 'whsec_Z2hvc3Q=' } } }))).toEqual([
      'tenants.ghost: no API key names this tenant',
    ]);
  });

  it('refuses a tenant webhook secret that does not start with whsec_', () => {
    expect(problemsOf(document({ tenants: { acme: { webhook_secret: 'c2VjcmV0' } } }))).toEqual([
      'tenants.acme.webhook_secret: must start with whsec_',
    ]);
    const config = parseConfig(document({ tenants: { acme: { webhook_secret: 'whsec_c2VjcmV0' } } }), {}, PROVIDER_IDS);
    expect(config.tenants.acme?.webhook_secret).toEqual(['whsec_c2VjcmV0']);
  });

  it('refuses a whsec_ secret that cannot sign (not base64, or an empty key), in a block or from the environment', () => {
    const message = 'must be whsec_ followed by the base64 of a non-empty key';
    for (const secret of ['whsec_', 'whsec_abc', 'whsec_not base64!', 'whsec_-_-_']) {
      expect(problemsOf(document({ tenants: { acme: { webhook_secret: secret } } })), secret).toEqual([
        `tenants.acme.webhook_secret: ${message}`,
      ]);
      expect(problemsOf(document({ auth: { api_keys: 'acme:acme-key-123', webhook_secrets: `acme:${secret}` } })), secret).toEqual([
        `auth.webhook_secrets: the secret of entry 1 (tenant:secret) ${message}`,
      ]);
    }
    // What the gateway accepts, the Standard Webhooks library signs with.
    const config = parseConfig(document({ auth: { api_keys: 'acme:acme-key-123', webhook_secrets: 'acme:whsec_YWNtZS1zZWNyZXQ=' } }), {}, PROVIDER_IDS);
    expect(new Webhook(config.tenants.acme!.webhook_secret![0]!).sign('msg_1', new Date(0), '{}')).toMatch(/^v1,/);
  });

  it('takes an empty optional text (an unset ${VAR:-}) as absent, and trims the rest', () => {
    const doc = document({
      providers: { freepik: { api_key: '${FREEPIK_API_KEY:-}', base_url: '  https://api.freepik.com  ' } },
      tenants: { acme: { webhook_secret: '${ACME_SECRET:-}' } },
    });
    const config = parseConfig(doc, {}, PROVIDER_IDS);
    expect(config.providers.freepik?.api_key).toBeUndefined();
    expect(config.providers.freepik?.base_url).toBe('https://api.freepik.com');
    // Absent, so in the sandbox (no upstream key) the tenant signs with the shipped secret.
    expect(config.tenants.acme?.webhook_secret).toEqual([SHIPPED_SANDBOX_WEBHOOK_SECRET]);
  });

  it('refuses a public URL holding a user name or password (every content link and callback URL starts with it), without echoing it', () => {
    for (const url of ['https://callback:pub-pass-31c7@gateway.example.com', 'https://token-as-user-31c7@gateway.example.com/']) {
      const problems = problemsOf(document({ server: { public_url: url } }));
      expect(problems, url).toEqual([
        'server.public_url: must not hold a user name or password: content links carry it to every tenant, callback URLs to every upstream',
      ]);
    }
  });

  it('refuses a public URL with a query or a fragment (callback URLs and content links are appended to it), and takes a path prefix', () => {
    for (const url of ['https://gateway.example.com/?tenant=a', 'https://gateway.example.com/base?', 'https://gateway.example.com/#top']) {
      expect(problemsOf(document({ server: { public_url: url } })), url).toEqual([
        'server.public_url: must not hold a query or a fragment (? or #): callback URLs and content links are appended to it',
      ]);
    }
    expect(parseConfig(document({ server: { public_url: 'https://gateway.example.com/kling' } }), {}, PROVIDER_IDS).server.public_url).toBe(
      'https://gateway.example.com/kling',
    );
  });

  it('refuses a simulators URL holding a user name or password, without echoing it (the start failed quoting it whole)', () => {
    for (const url of ['http://sim:sim-pass-31c7@127.0.0.1:9100', 'http://token-as-user-31c7@simulators.internal:9100/']) {
      const problems = problemsOf(document({ sandbox: { simulators_url: url } }));
      expect(problems, url).toEqual(['sandbox.simulators_url: must not hold a user name or password: requests to the simulator host cannot carry them']);
    }
  });

  it('counts the metrics token among the secrets kept out of logs, as the keys are', () => {
    const config = parseConfig(
      document({ server: { public_url: 'https://g.example', metrics_token: '${METRICS_TOKEN}' } }),
      { METRICS_TOKEN: 'scrape-token-5150' },
      PROVIDER_IDS,
    );
    expect(configuredSecrets(config)).toContain('scrape-token-5150');
  });

  it("counts a base URL's credentials (a password, or a token given as the user name) among the secrets kept out of logs", () => {
    const config = parseConfig(
      document({
        server: { public_url: 'https://g.example' },
        providers: {
          freepik: { api_key: 'fpk-key-123456', base_url: 'https://reseller:pass%40word-77@api.reseller.example' },
          'kling-legacy': { accounts: [{ id: 'a', api_key: 'kl-key-123456', base_url: 'https://token-as-user-88@eu.reseller.example' }] },
        },
      }),
      {},
      PROVIDER_IDS,
    );
    expect(configuredSecrets(config)).toEqual(expect.arrayContaining(['pass@word-77', 'token-as-user-88']));
    expect(configuredSecrets(config)).not.toContain('reseller');
  });

  it('reads numbers that come from the environment as text', () => {
    const doc = document({
      server: { public_url: 'https://g.example', port: '${PORT}' },
      providers: { kling3api: { priority: '${P}', pricing: { credit_value: '${CV}' } } },
    });
    const config = parseConfig(doc, { PORT: '9090', P: '2', CV: '0.002' }, PROVIDER_IDS);
    expect(config.server.port).toBe(9090);
    expect(config.providers.kling3api?.priority).toBe(2);
    expect(config.providers.kling3api?.pricing?.credit_value).toBe(0.002);
  });

  it('refuses a number left blank or set to blanks, naming the field, rather than reading it as 0', () => {
    // `port:` with nothing after it (YAML null) was a random port; a credit value set to a space
    // in the environment made the provider free, so `cheapest` sent everything there.
    const blank = document({
      server: { public_url: 'https://g.example', port: null },
      providers: { kling3api: { priority: null, weight: '${W}', pricing: { credit_value: '${CV}' } } },
      tenants: { acme: { budget: { amount: '${AMOUNT}', currency: 'USD', period: 'day' } } },
      sandbox: { queued_ms: '' },
    });
    const problems = problemsOf(blank, { W: ' ', CV: ' ', AMOUNT: ' ' });
    expect(problems.map((problem) => problem.split(':')[0]).sort()).toEqual([
      'providers.kling3api.pricing.credit_value',
      'providers.kling3api.priority',
      'providers.kling3api.weight',
      'sandbox.queued_ms',
      'server.port',
      'tenants.acme.budget.amount',
    ]);
    for (const problem of problems) expect(problem).toMatch(/expected a number/);
    // Text that is not a number says what it got.
    expect(problemsOf(document({ providers: { freepik: { priority: 'first' } } }))).toEqual([
      'providers.freepik.priority: expected a number, got "first"',
    ]);
  });

  it.each([
    ['false', false],
    ['true', true],
    ['0', false],
    ['1', true],
  ])('reads the boolean "%s" from the environment as %s', (text, value) => {
    const doc = document({
      routing: { allow_fallbacks: '${FLAG}', failover_on_timeout: '${FLAG}' },
      providers: { freepik: { enabled: '${FLAG}' } },
      webhooks: { allow_private_targets: '${FLAG}' },
    });
    const config = parseConfig(doc, { FLAG: text }, PROVIDER_IDS);
    expect(config.routing.allow_fallbacks).toBe(value);
    expect(config.routing.failover_on_timeout).toBe(value);
    expect(config.providers.freepik?.enabled).toBe(value);
    expect(config.webhooks.allow_private_targets).toBe(value);
  });

  it('refuses a boolean it cannot read, naming the field', () => {
    const problems = problemsOf(document({ providers: { freepik: { enabled: '${FLAG}' } } }), { FLAG: 'maybe' });
    // What it takes, not just "Invalid input".
    expect(problems).toEqual(['providers.freepik.enabled: expected true or false (or yes/no, on/off, 1/0), got "maybe"']);
    expect(problemsOf(document({ routing: { allow_fallbacks: null } }))).toEqual([
      'routing.allow_fallbacks: expected true or false (or yes/no, on/off, 1/0), got nothing',
    ]);
  });

  it('never quotes a configured secret that lands in a field it refuses (two variables swapped)', () => {
    const upstreamKey = 'sk-live-ABCDEFGHIJ';
    const gatewayKey = 'acme-key-123';
    const tenantSecret = `whsec_${Buffer.from('a tenant signing key').toString('base64')}`;
    const metricsToken = 'metrics-token-987';
    const doc = document({
      auth: { api_keys: '${GATEWAY_API_KEYS}', webhook_secrets: '${GATEWAY_WEBHOOK_SECRETS}' },
      server: { public_url: 'https://gateway.example.com', port: '${PORT}', metrics_token: '${METRICS_TOKEN}' },
      providers: { freepik: { api_key: '${FREEPIK_API_KEY}', enabled: '${FREEPIK_ENABLED}' } },
      tasks: { deadline_ms: '${TASK_DEADLINE_MS}' },
      routing: { allow_fallbacks: '${ALLOW}' },
      limits: { creates_per_minute: '${LIMIT}' },
    });
    const problems = problemsOf(doc, {
      GATEWAY_API_KEYS: `acme:${gatewayKey}`,
      GATEWAY_WEBHOOK_SECRETS: `acme:${tenantSecret}`,
      METRICS_TOKEN: metricsToken,
      FREEPIK_API_KEY: upstreamKey,
      // Each secret also set, by mistake, where a number or a switch goes.
      TASK_DEADLINE_MS: upstreamKey,
      PORT: gatewayKey,
      FREEPIK_ENABLED: tenantSecret,
      ALLOW: metricsToken,
      LIMIT: `${upstreamKey}x`,
    });
    expect(problems.map((problem) => problem.split(':')[0]).sort()).toEqual([
      'limits.creates_per_minute',
      'providers.freepik.enabled',
      'routing.allow_fallbacks',
      'server.port',
      'tasks.deadline_ms',
    ]);
    const text = problems.join('\n');
    for (const secret of [upstreamKey, gatewayKey, tenantSecret, metricsToken]) expect(text).not.toContain(secret.slice(0, 8));
    // What was refused still says what it takes.
    expect(problems.find((problem) => problem.startsWith('tasks.deadline_ms'))).toMatch(/expected a number/);
  });
});

describe('a secret variable set only in the wrong field (two variables swapped)', () => {
  it('is never quoted: the environment says it is a secret, no secret field holds it', () => {
    const doc = document({
      auth: { api_keys: 'acme:acme-key-123', webhook_secrets: '${PORT}' },
      server: { public_url: 'https://gateway.example.com', port: '${FREEPIK_API_KEY}', trust_proxy: '${GATEWAY_WEBHOOK_SECRETS}' },
      providers: { freepik: { api_key: '${TRUST_PROXY}' } },
      tasks: { deadline_ms: '${DATABASE_URL}' },
    });
    const env = {
      FREEPIK_API_KEY: 'fpk-live-0123456789abcdef',
      GATEWAY_WEBHOOK_SECRETS: `acme:whsec_${Buffer.from('a tenant signing key').toString('base64')}`,
      DATABASE_URL: 'postgres://gateway:db-pass-5e6f7a@db.example/gateway',
      PORT: '',
      TRUST_PROXY: 'false',
    };
    const problems = problemsOf(doc, env);
    expect(problems.map((problem) => problem.split(':')[0]).sort()).toEqual(['server.port', 'server.trust_proxy', 'tasks.deadline_ms']);
    const text = problems.join('\n');
    for (const secret of ['fpk-live-0123456789abcdef', 'whsec_', 'db-pass-5e6f7a']) expect(text).not.toContain(secret);
    expect(problems.find((problem) => problem.startsWith('server.port'))).toBe('server.port: expected a number, got "[redacted]"');
  });
  it('a database password is not quoted however it is written (unescaped / ? # or @, or given in the query as sslpassword)', () => {
    const doc = document({ auth: { api_keys: 'acme:acme-key-123' }, server: { public_url: 'https://gateway.example.com', port: '${DATABASE_URL}' } });
    for (const url of [
      'postgres://gateway:gen/pass+5e6f7a@db.example/gateway',
      'postgres://gateway:gen#pass?5e6f7a@db.example/gateway',
      'postgres://gateway:gen@pass@5e6f7a@db.example/gateway',
      'postgres://gateway@db.example/gateway?sslpassword=gen-pass-5e6f7a',
      // A user name holding an `@` too, as `check-config` reads it.
      'postgres://gate@way:gen/pass+5e6f7a@db.example/gateway',
    ]) {
      const problems = problemsOf(doc, { DATABASE_URL: url });
      expect(problems.join('\n')).not.toContain('5e6f7a');
      expect(problems).toContain('server.port: expected a number, got "[redacted]"');
    }
  });
});

describe('a malformed ${…} in a secret field', () => {
  it('is refused by field without quoting the text, which holds the secret', () => {
    const upstreamKey = 'fpk-live-9a8b7c6d5e4f3a2b1c0d';
    const cases: [Record<string, unknown>, string][] = [
      // Unclosed: the default written after `:-` is the key itself.
      [{ providers: { freepik: { api_key: `\${FREEPIK_API_KEY:-${upstreamKey}` } } }, 'providers.freepik.api_key'],
      // A key pasted where the variable's name goes.
      [{ providers: { freepik: { api_key: `\${${upstreamKey}}` } } }, 'providers.freepik.api_key'],
      [{ auth: { api_keys: `\${GATEWAY_API_KEYS:-acme:${upstreamKey}` } }, 'auth.api_keys'],
      [{ database: { url: `\${DATABASE_URL:-postgres://gateway:${upstreamKey}@db/gateway` } }, 'database.url'],
    ];
    for (const [extra, field] of cases) {
      const problems = problemsOf(document(extra));
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(new RegExp(`^${field.replace('.', '\\.')}: `));
      expect(problems[0]).not.toContain(upstreamKey.slice(0, 12));
    }
  });

  it('quotes none of a secret holding a double quote or a backslash', () => {
    for (const password of ['pa"ss-word-7f3e9d', 'pa\\"ss-word-7f3e9d', 'ss-word-7f3e9d\\']) {
      for (const url of [`\${DATABASE_URL:-postgres://gw:${password}@db/gateway`, `\${postgres://gw:${password}@db/gateway}`]) {
        const problems = problemsOf(document({ database: { url } }));
        expect(problems).toHaveLength(1);
        expect(problems[0]).toMatch(/^database\.url: /);
        expect(problems[0]).not.toContain('ss-word');
      }
    }
  });

  it('still quotes the text of any other field, which says what is wrong', () => {
    expect(problemsOf(document({ server: { public_url: 'https://gateway.example.com', host: '${HOST:-0.0.0.0' } }))).toEqual([
      'server.host: unclosed ${ in "${HOST:-0.0.0.0"',
    ]);
  });
});

describe('GATEWAY_API_KEYS (auth.api_keys)', () => {
  const KEYS_FROM_ENV = document({ auth: { api_keys: '${GATEWAY_API_KEYS}' } });

  it('reads several tenant:key pairs, trimming spaces and skipping empty items', () => {
    const config = parseConfig(KEYS_FROM_ENV, { GATEWAY_API_KEYS: ' acme:acme-key-123 , beta:beta-key-456,, ' }, PROVIDER_IDS);
    expect(config.auth.api_keys).toEqual([
      { tenant: 'acme', key: 'acme-key-123' },
      { tenant: 'beta', key: 'beta-key-456' },
    ]);
  });

  it('keeps a colon inside the key', () => {
    const config = parseConfig(KEYS_FROM_ENV, { GATEWAY_API_KEYS: 'acme:abc:def:ghi' }, PROVIDER_IDS);
    expect(config.auth.api_keys).toEqual([{ tenant: 'acme', key: 'abc:def:ghi' }]);
  });

  it('refuses a pair without a tenant, without echoing the key', () => {
    const problems = problemsOf(KEYS_FROM_ENV, { GATEWAY_API_KEYS: 'acme:acme-key-123,:orphan-key-456' });
    expect(problems).toEqual(['auth.api_keys: entry 2 is not tenant:key']);
    expect(problems.join('\n')).not.toContain('orphan-key-456');
  });

  it('refuses a pair without a key', () => {
    expect(problemsOf(KEYS_FROM_ENV, { GATEWAY_API_KEYS: 'acme:' })).toEqual(['auth.api_keys: entry 1 is not tenant:key']);
  });

  it('refuses the same key given to two tenants', () => {
    expect(problemsOf(KEYS_FROM_ENV, { GATEWAY_API_KEYS: 'acme:same-key-123,other:same-key-123' })).toEqual([
      'auth.api_keys: entry 2 repeats a key already given (each key names one tenant)',
    ]);
  });

  // Regression: see the commit that fixed it.
  it('refuses a bare key without echoing it', () => {
    const problems = problemsOf(KEYS_FROM_ENV, { GATEWAY_API_KEYS: 'sk_live_barekey123' });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^auth\.api_keys: /);
    expect(problems.join('\n')).not.toContain('sk_live_barekey123');
  });

  it('refuses a key that no Authorization header could carry, naming its entry without echoing the key', () => {
    for (const keys of ['acme:key with space', 'acme:acme-key-123\nbeta:beta-key-456', 'acme:clé-secrète-123', 'acme:tab\tkey-123']) {
      const problems = problemsOf(KEYS_FROM_ENV, { GATEWAY_API_KEYS: keys });
      expect(problems, keys).toEqual([
        'auth.api_keys: the key of entry 1 (tenant:key) holds a space, a control or a non-ASCII character (separate entries with commas)',
      ]);
    }
  });

  it('refuses a metrics token that no Authorization header could carry', () => {
    expect(problemsOf(document({ server: { public_url: 'https://g.example', metrics_token: 'scrape me please' } }))).toEqual([
      'server.metrics_token: holds a space, a control or a non-ASCII character: no Authorization header could carry it',
    ]);
    expect(parseConfig(document({ server: { public_url: 'https://g.example', metrics_token: ' tok-123 ' } }), {}, PROVIDER_IDS).server.metrics_token).toBe('tok-123');
  });

  it('refuses entries separated by semicolons (one tenant whose key would hold the next pair), without echoing a key', () => {
    for (const keys of ['acme:acme-key-123;beta:beta-key-456', 'acme:acme-key-123; beta:beta-key-456']) {
      const problems = problemsOf(KEYS_FROM_ENV, { GATEWAY_API_KEYS: keys });
      expect(problems, keys).toEqual([
        'auth.api_keys: the key of entry 1 (tenant:key) holds ";" followed by another tenant:key: separate entries with commas (tenant:key,tenant:key)',
      ]);
      expect(problems.join('\n')).not.toMatch(/acme-key-123|beta-key-456/);
    }
    // A semicolon that starts no pair stays part of the key.
    expect(parseConfig(KEYS_FROM_ENV, { GATEWAY_API_KEYS: 'acme:abc;def-123' }, PROVIDER_IDS).auth.api_keys).toEqual([{ tenant: 'acme', key: 'abc;def-123' }]);
  });

  it('refuses a metrics token shorter than 6 characters, as a gateway key (a guessable bearer token, and one logs would not scrub)', () => {
    expect(problemsOf(document({ server: { public_url: 'https://g.example', metrics_token: '${METRICS_TOKEN}' } }), { METRICS_TOKEN: 'x' })).toEqual([
      'server.metrics_token: is shorter than 6 characters',
    ]);
    expect(parseConfig(document({ server: { public_url: 'https://g.example', metrics_token: 'abc123' } }), {}, PROVIDER_IDS).server.metrics_token).toBe('abc123');
  });

  it('refuses a key shorter than 6 characters, naming its entry', () => {
    expect(problemsOf(KEYS_FROM_ENV, { GATEWAY_API_KEYS: 'beta:beta-key-123,acme:abc12' })).toEqual([
      'auth.api_keys: the key of entry 2 (tenant:key) is shorter than 6 characters',
    ]);
  });

  it('never prints the secret of a pair written the other way round (secret:tenant)', () => {
    const cases: [Record<string, string>, string][] = [
      [{ GATEWAY_API_KEYS: 'sk-live-7f3a9c2e:acme' }, 'sk-live-7f3a9c2e'],
      [{ GATEWAY_API_KEYS: 'sk-live-7f3a9c2e:Acme Corp' }, 'sk-live-7f3a9c2e'],
      [{ GATEWAY_API_KEYS: 'acme:acme-key-123', GATEWAY_WEBHOOK_SECRETS: 'whsec_YWNtZS1zZWNyZXQ=:acme' }, 'YWNtZS1zZWNyZXQ'],
      [{ GATEWAY_API_KEYS: 'acme:acme-key-123', GATEWAY_WEBHOOK_SECRETS: 'YWNtZS1zZWNyZXQ=:acme' }, 'YWNtZS1zZWNyZXQ'],
    ];
    const both = document({ auth: { api_keys: '${GATEWAY_API_KEYS}', webhook_secrets: '${GATEWAY_WEBHOOK_SECRETS:-}' } });
    for (const [env, secret] of cases) {
      const problems = problemsOf(both, env);
      expect(problems, secret).toHaveLength(1);
      expect(problems.join('\n')).not.toContain(secret);
      expect(problems[0], secret).toMatch(/ of entry 1 \(tenant:(key|secret)\) /);
    }
  });

  it('refuses a tenant name every object already has, leaving other settings alone', () => {
    for (const tenant of ['__proto__', 'constructor', 'toString']) {
      expect(problemsOf(KEYS_FROM_ENV, { GATEWAY_API_KEYS: `acme:acme-key-123,${tenant}:some-key-123` }), tenant).toEqual([
        `auth.api_keys: entry 2: "${tenant}" cannot name a tenant (it is a reserved word)`,
      ]);
    }
    expect(({} as Record<string, unknown>).webhook_secret).toBeUndefined();
    expect((Object as unknown as Record<string, unknown>).webhook_secret).toBeUndefined();
  });

  it('refuses a tenants or providers block named __proto__, as YAML reads one, instead of ignoring it', () => {
    const doc = parseYaml(
      ['server: { public_url: "https://gateway.example.com" }', 'database: { url: "sqlite::memory:" }', 'auth: { api_keys: "acme:acme-key-123" }',
        'tenants:', '  __proto__: { admin: true }', 'providers:', '  __proto__: { enabled: false }'].join('\n'),
    ) as unknown;
    expect(problemsOf(doc)).toEqual([
      'tenants.__proto__: "__proto__" cannot name a tenant (it is a reserved word)',
      `providers.__proto__: unknown provider (known: ${PROVIDER_IDS.join(', ')})`,
    ]);
  });

  it('refuses a list with no pair in it', () => {
    expect(problemsOf(KEYS_FROM_ENV, { GATEWAY_API_KEYS: ' , ' })).toEqual(['auth.api_keys: at least one tenant:key is required']);
  });
});

describe('loadConfigFile', () => {
  it('loads the shipped config.yaml with an empty environment: every provider on its simulator', () => {
    const config = loadConfigFile(SHIPPED_CONFIG, {}, PROVIDER_IDS);
    expect(Object.keys(config.providers)).toEqual(PROVIDER_IDS);
    for (const id of PROVIDER_IDS) {
      expect(config.providers[id]?.enabled).toBe(true);
      expect(config.providers[id]?.api_key).toBeUndefined();
    }
    expect(config.server.public_url).toBe('http://127.0.0.1:8080');
    expect(config.server.port).toBe(8080);
    expect(config.database.url).toBe('sqlite:./data/kling-gateway.db');
    expect(config.auth.api_keys).toEqual([{ tenant: 'dev', key: 'dev-key' }]);
    expect(config.tenants.dev?.webhook_secret).toEqual([expect.stringMatching(/^whsec_/)]);
    expect(config.routing).toEqual({ strategy: 'priority', allow_fallbacks: true, failover_on_timeout: false });
    expect(config.providers.freepik?.rate_limits).toEqual([
      { limit: 250, window_ms: 5_000 },
      { limit: 1_200, window_ms: 120_000 },
    ]);
    expect(config.providers.freepik?.webhook_secret).toBeUndefined();
    // kling3api keeps its shipped credit table: config sets only what a credit costs.
    expect(config.providers.kling3api?.pricing).toEqual({ currency: 'USD', credit_value: 0.001 });
    expect(config.providers['kling-legacy']?.pricing?.rules?.length).toBeGreaterThan(0);
  });

  it('warns of an in-memory database in a live deployment (DATABASE_URL=sqlite:${DB_FILE} with DB_FILE empty), where every task is lost at a restart', () => {
    const live = { GATEWAY_API_KEYS: 'acme:acme-key-123', KLING3API_API_KEY: 'k3_live_123456', PUBLIC_URL: 'https://gateway.example.com' };
    const warningsWith = (env: NodeJS.ProcessEnv) =>
      configurationWarnings(loadConfigFile(SHIPPED_CONFIG, env, PROVIDER_IDS), SHIPPED_CONFIG, env, SIGNED_WEBHOOK_PROVIDER_IDS).map((warning) => warning.message);
    for (const url of ['sqlite:', 'sqlite::memory:']) {
      expect(warningsWith({ ...live, DATABASE_URL: url }), url).toEqual([
        `database.url ${url} is an in-memory database in a live deployment: every task (with what its upstream was paid), usage record and idempotency key is lost when the process stops; set DATABASE_URL to sqlite:<file> or postgres://…`,
      ]);
    }
    // In the sandbox, and on a file, there is nothing to say.
    expect(warningsWith({ DATABASE_URL: 'sqlite:' })).toEqual([]);
    expect(warningsWith({ ...live, DATABASE_URL: 'sqlite:./data/kling-gateway.db' })).toEqual([]);
  });

  it('loads the shipped config.yaml with real keys and overrides from the environment', () => {
    const config = loadConfigFile(
      SHIPPED_CONFIG,
      {
        FREEPIK_API_KEY: 'fpk_live_123456',
        FREEPIK_WEBHOOK_SECRET: 'whsec_ZnJlZXBpaw==',
        KLING3API_API_KEY: 'k3_live_123456',
        KLING_LEGACY_API_KEY: 'legacy_live_123456',
        KLING_LEGACY_ENABLED: 'false',
        KLING3API_CREDIT_VALUE: '0.0025',
        PORT: '9090',
        GATEWAY_API_KEYS: 'acme:acme-key-123,dev:dev-key-456',
        ROUTING_STRATEGY: 'cheapest',
        DATABASE_URL: 'postgres://kg@db.internal:5432/kling',
        TRUST_PROXY: 'true',
      },
      PROVIDER_IDS,
    );
    expect(config.providers.freepik?.api_key).toBe('fpk_live_123456');
    expect(config.providers.freepik?.webhook_secret).toEqual(['whsec_ZnJlZXBpaw==']);
    expect(config.providers.kling3api?.api_key).toBe('k3_live_123456');
    // While Freepik rotates its secret, the one it signed with before is taken too.
    const rotating = loadConfigFile(
      SHIPPED_CONFIG,
      { FREEPIK_API_KEY: 'fpk_live_123456', FREEPIK_WEBHOOK_SECRET: 'fpk-new-secret', FREEPIK_OLD_WEBHOOK_SECRET: 'fpk-old-secret', GATEWAY_API_KEYS: 'acme:acme-key-123' },
      PROVIDER_IDS,
    );
    expect(rotating.providers.freepik?.webhook_secret).toEqual(['fpk-new-secret', 'fpk-old-secret']);
    expect(config.providers['kling-legacy']?.api_key).toBe('legacy_live_123456');
    expect(config.providers['kling-legacy']?.enabled).toBe(false);
    expect(config.providers.kling3api?.pricing?.credit_value).toBe(0.0025);
    expect(config.server.port).toBe(9090);
    expect(config.server.public_url).toBe('http://127.0.0.1:9090');
    expect(config.server.trust_proxy).toBe(true);
    expect(config.auth.api_keys.map((entry) => entry.tenant)).toEqual(['acme', 'dev']);
    expect(config.routing.strategy).toBe('cheapest');
    expect(config.database.url).toBe('postgres://kg@db.internal:5432/kling');
  });

  it('says how to write a ${VAR} inside a flow map, where YAML cannot read it unquoted', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kg-config-'));
    const file = join(dir, 'config.yaml');
    const shipped = readFileSync(SHIPPED_CONFIG, 'utf8');
    writeFileSync(
      file,
      shipped.replace(
        '    api_key: ${KLING_LEGACY_API_KEY:-}\n',
        '    accounts:\n      - { id: team-a, access_key: ${KLING_A_AK}, secret_key: ${KLING_A_SK} }\n',
      ),
    );
    expect(() => loadConfigFile(file, { KLING_A_AK: 'ak-123456', KLING_A_SK: 'sk-123456' }, PROVIDER_IDS)).toThrow(
      /is not valid YAML: .*\n.*a \$\{VAR\} inside \{ \} or \[ \] must be quoted: "\$\{VAR\}"/s,
    );
  });

  it('says nothing of quoting a ${VAR} when its line breaks for another reason (a tab as indentation)', () => {
    const shipped = readFileSync(SHIPPED_CONFIG, 'utf8');
    const problems = (text: string) => {
      try {
        parseConfigText(text, 'config.yaml', {}, PROVIDER_IDS);
      } catch (error) {
        return (error as ConfigError).problems;
      }
      throw new Error('expected the configuration to be refused');
    };
    expect(problems(shipped.replace('  port: ${PORT:-8080}\n', '\tport: ${PORT:-8080}\n'))).toEqual([
      'is not valid YAML: Tabs are not allowed as indentation at line 8, column 1',
    ]);
    // A flow map over several lines: the line YAML stops at holds no brace, and quoting still mends it.
    expect(problems(shipped.replace('    api_key: ${FREEPIK_API_KEY:-}\n', '    accounts: [ {\n      id: a, api_key: ${FREEPIK_API_KEY} } ]\n'))[0]).toMatch(
      /\n {2}a \$\{VAR\} inside \{ \} or \[ \] must be quoted: "\$\{VAR\}"$/,
    );
  });

  it("loads config.yaml's commented accounts example once it is uncommented", () => {
    const dir = mkdtempSync(join(tmpdir(), 'kg-config-'));
    const file = join(dir, 'config.yaml');
    const shipped = readFileSync(SHIPPED_CONFIG, 'utf8');
    const example = shipped.match(/^ *# accounts:\n(?: *# +- \{.*\n)+/m)?.[0];
    expect(example).toBeDefined();
    const uncommented = example!.replace(/^( *)# /gm, '$1');
    writeFileSync(file, shipped.replace(example!, uncommented).replace('    api_key: ${KLING_LEGACY_API_KEY:-}\n', ''));
    const env = { KLING_A_ACCESS_KEY: 'ak-a-123456', KLING_A_SECRET_KEY: 'sk-a-123456', KLING_CN_ACCESS_KEY: 'ak-cn-123456', KLING_CN_SECRET_KEY: 'sk-cn-123456' };
    const config = loadConfigFile(file, { ...env, GATEWAY_API_KEYS: 'acme:acme-key-123', GATEWAY_WEBHOOK_SECRETS: 'acme:whsec_YWNtZS1zZWNyZXQ=' }, PROVIDER_IDS);
    expect(config.providers['kling-legacy']?.accounts?.map((account) => [account.id, account.access_key])).toEqual([
      ['team-a', 'ak-a-123456'],
      ['china', 'ak-cn-123456'],
    ]);
  });

  it('names only the port when a bad PORT also breaks the public URL built from it (PUBLIC_URL unset)', () => {
    const problemsWith = (env: NodeJS.ProcessEnv): string[] => {
      try {
        loadConfigFile(SHIPPED_CONFIG, env, PROVIDER_IDS);
      } catch (error) {
        return (error as ConfigError).problems;
      }
      throw new Error('expected the configuration to be refused');
    };
    const DIGITS = 'server.port: must be a whole number from 0 to 65535, written in digits';
    expect(problemsWith({ PORT: '70000' })).toEqual(['server.port: must be at most 65535']);
    // `1e3` is 1000 to a number field, but no URL takes it as a port: a port is written in digits.
    expect(problemsWith({ PORT: '1e3' })).toEqual([DIGITS]);
    expect(problemsWith({ PORT: '8080.0' })).toEqual([DIGITS]);
    expect(problemsWith({ PORT: 'http' })).toEqual(['server.port: expected a number, got "http"']);
    // A public URL of its own that is wrong is still named.
    expect(problemsWith({ PORT: '70000', PUBLIC_URL: 'ftp://gateway.example.com' })).toEqual([
      'server.port: must be at most 65535',
      'server.public_url: must be an http(s) URL',
    ]);
    expect(loadConfigFile(SHIPPED_CONFIG, { PORT: '9090' }, PROVIDER_IDS).server).toMatchObject({ port: 9090, public_url: 'http://127.0.0.1:9090' });
  });

  it('refuses the shipped config.yaml when the environment breaks it, naming the field', () => {
    expect(() => loadConfigFile(SHIPPED_CONFIG, { ROUTING_STRATEGY: 'random' }, PROVIDER_IDS)).toThrow(/routing\.strategy: /);
  });

  it('takes accounts as upstream credentials: the shipped key is refused then too', () => {
    const doc = document({
      auth: { api_keys: 'dev:dev-key' },
      providers: { kling3api: { accounts: [{ id: 'team-a', api_key: 'k3-team-a-123456' }] } },
    });
    expect(problemsOf(doc)[0]).toMatch(/^auth\.api_keys: the shipped sandbox key "dev-key" is in use .*set GATEWAY_API_KEYS/);
  });

  it('runs tenants named only by GATEWAY_API_KEYS, with webhook secrets from GATEWAY_WEBHOOK_SECRETS', () => {
    const sandbox = loadConfigFile(SHIPPED_CONFIG, { GATEWAY_API_KEYS: 'acme:acme-key-123' }, PROVIDER_IDS);
    expect(Object.keys(sandbox.tenants)).toEqual(['acme']);
    expect(sandbox.tenants.acme?.webhook_secret).toEqual([SHIPPED_SANDBOX_WEBHOOK_SECRET]);
    const live = loadConfigFile(
      SHIPPED_CONFIG,
      { FREEPIK_API_KEY: 'fpk-live-123456', GATEWAY_API_KEYS: 'acme:acme-key-123,beta:beta-key-123', GATEWAY_WEBHOOK_SECRETS: 'acme:whsec_YWNtZS1zZWNyZXQ=' },
      PROVIDER_IDS,
    );
    expect(live.tenants.acme?.webhook_secret).toEqual(['whsec_YWNtZS1zZWNyZXQ=']);
    expect(live.tenants.beta?.webhook_secret).toBeUndefined();
    expect(() => loadConfigFile(SHIPPED_CONFIG, { GATEWAY_WEBHOOK_SECRETS: 'ghost:whsec_Z2hvc3Q=' }, PROVIDER_IDS)).toThrow(
      'auth.webhook_secrets: no API key names tenant ghost (GATEWAY_API_KEYS)',
    );
    expect(() => loadConfigFile(SHIPPED_CONFIG, { GATEWAY_WEBHOOK_SECRETS: 'dev:not-a-whsec' }, PROVIDER_IDS)).toThrow(
      'auth.webhook_secrets: the secret of entry 1 (tenant:secret) must start with whsec_',
    );
  });

  it.each([
    ['FREEPIK_API_KEY', { FREEPIK_API_KEY: 'fpk-live-123456' }],
    ['KLING3API_API_KEY', { KLING3API_API_KEY: 'k3-live-123456' }],
    ['KLING_LEGACY_ACCESS_KEY', { KLING_LEGACY_ACCESS_KEY: 'ak-live-123456', KLING_LEGACY_SECRET_KEY: 'sk-live-123456' }],
  ])('refuses a live start (%s set) while the shipped key or the shipped webhook secret is in use, naming the variable', (_name, upstream) => {
    expect(problemsOf(loadDocument(), upstream)).toEqual([
      'auth.api_keys: the shipped sandbox key "dev-key" is in use while an upstream key is set (a live deployment); set GATEWAY_API_KEYS to your own tenant:key pairs',
    ]);
    expect(problemsOf(loadDocument(), { ...upstream, GATEWAY_API_KEYS: 'dev:dev-key,ops:ops-key-123' })[0]).toMatch(/set GATEWAY_API_KEYS/);
    expect(
      problemsOf(loadDocument(), { ...upstream, GATEWAY_API_KEYS: 'ops:ops-key-123', GATEWAY_WEBHOOK_SECRETS: `ops:${SHIPPED_SANDBOX_WEBHOOK_SECRET}` }),
    ).toEqual([
      'tenants.ops.webhook_secret: the shipped sandbox webhook secret is in use while an upstream key is set (a live deployment); set GATEWAY_WEBHOOK_SECRETS (tenant:whsec_…) or tenants.ops.webhook_secret',
    ]);
    // With keys of its own the live deployment starts.
    expect(loadConfigFile(SHIPPED_CONFIG, { ...upstream, GATEWAY_API_KEYS: 'ops:ops-key-123' }, PROVIDER_IDS).auth.api_keys).toEqual([
      { tenant: 'ops', key: 'ops-key-123' },
    ]);
  });

  it("refuses the PostgreSQL password deploy/docker-compose.yml ships (POSTGRES_PASSWORD's default) in a live start, and only then", () => {
    const compose = readFileSync(new URL('../../deploy/docker-compose.yml', import.meta.url), 'utf8');
    // The Compose file's own URL, with POSTGRES_PASSWORD unset.
    const shippedUrl = /DATABASE_URL: (postgres:\/\/\S+)/.exec(compose)![1]!.replace(/\$\{POSTGRES_PASSWORD:-([^}]*)\}/, '$1');
    expect(shippedUrl).toBe(`postgres://gateway:${SHIPPED_DATABASE_PASSWORD}@postgres:5432/gateway`);
    const live = { FREEPIK_API_KEY: 'fpk-live-123456', GATEWAY_API_KEYS: 'ops:ops-key-123' };
    const refusal =
      'database.url: the PostgreSQL password shipped in deploy/docker-compose.yml is in use while an upstream key is set (a live deployment); set POSTGRES_PASSWORD (Compose) or a password of your own in DATABASE_URL';
    expect(problemsOf(loadDocument(), { ...live, DATABASE_URL: shippedUrl })).toEqual([refusal]);
    expect(problemsOf(loadDocument(), { ...live, DATABASE_URL: 'postgres://gateway@db:5432/gateway?password=gateway' })).toEqual([refusal]);
    // A password of its own, no password (trust or a .pgpass), or the sandbox: it starts.
    for (const env of [
      { ...live, DATABASE_URL: 'postgres://gateway:Xk29-own-password@postgres:5432/gateway' },
      { ...live, DATABASE_URL: 'postgres://gateway@postgres:5432/gateway' },
      { DATABASE_URL: shippedUrl },
    ]) {
      expect(loadConfigFile(SHIPPED_CONFIG, env, PROVIDER_IDS).database.url).toBe(env.DATABASE_URL);
    }
  });

  it("refuses the shipped webhook secret as a provider's or an account's webhook secret in a live start (anyone could sign its webhooks), and only live", () => {
    const live = { FREEPIK_API_KEY: 'fpk-live-123456', GATEWAY_API_KEYS: 'ops:ops-key-123' };
    const refusal = (field: string) =>
      `${field}: the shipped sandbox webhook secret is in use while an upstream key is set (a live deployment): anyone could sign this provider's webhooks with it; set the secret the provider gives you`;
    expect(problemsOf(loadDocument(), { ...live, FREEPIK_WEBHOOK_SECRET: SHIPPED_SANDBOX_WEBHOOK_SECRET })).toEqual([refusal('providers.freepik.webhook_secret[0]')]);
    // In the place of a rotation list it was written in, and without its padding.
    const unpadded = SHIPPED_SANDBOX_WEBHOOK_SECRET.replace(/=+$/, '');
    expect(problemsOf(loadDocument(), { ...live, FREEPIK_WEBHOOK_SECRET: 'whsec_b3duLWZyZWVwaWstc2VjcmV0', FREEPIK_OLD_WEBHOOK_SECRET: unpadded })).toEqual([
      refusal('providers.freepik.webhook_secret[1]'),
    ]);
    const doc = loadDocument() as { providers: Record<string, Record<string, unknown>> };
    const withAccounts = {
      ...doc,
      providers: {
        ...doc.providers,
        freepik: { ...doc.providers.freepik, api_key: undefined, webhook_secret: undefined, accounts: [{ id: 'main', api_key: 'fpk-live-123456', webhook_secret: SHIPPED_SANDBOX_WEBHOOK_SECRET }] },
      },
    };
    expect(problemsOf(withAccounts, { GATEWAY_API_KEYS: 'ops:ops-key-123' })).toEqual([refusal('providers.freepik.accounts[0].webhook_secret')]);
    // The sandbox takes it (its simulators sign with secrets of their own).
    expect(loadConfigFile(SHIPPED_CONFIG, { FREEPIK_WEBHOOK_SECRET: SHIPPED_SANDBOX_WEBHOOK_SECRET }, PROVIDER_IDS).providers.freepik?.webhook_secret).toEqual([
      SHIPPED_SANDBOX_WEBHOOK_SECRET,
    ]);
  });

  it('refuses the shipped webhook secret live in another spelling of the same key (no base64 padding)', () => {
    // Standard Webhooks reads `whsec_…` with or without its padding as the same key: it signs alike.
    const unpadded = SHIPPED_SANDBOX_WEBHOOK_SECRET.replace(/=+$/, '');
    expect(new Webhook(unpadded).sign('msg_1', new Date(0), '{}')).toBe(new Webhook(SHIPPED_SANDBOX_WEBHOOK_SECRET).sign('msg_1', new Date(0), '{}'));
    const live = { FREEPIK_API_KEY: 'fpk-live-123456', GATEWAY_API_KEYS: 'ops:ops-key-123' };
    expect(problemsOf(loadDocument(), { ...live, GATEWAY_WEBHOOK_SECRETS: `ops:${unpadded}` })).toEqual([
      'tenants.ops.webhook_secret: the shipped sandbox webhook secret is in use while an upstream key is set (a live deployment); set GATEWAY_WEBHOOK_SECRETS (tenant:whsec_…) or tenants.ops.webhook_secret',
    ]);
    const doc = loadDocument() as Record<string, unknown>;
    expect(problemsOf({ ...doc, tenants: { ops: { webhook_secret: unpadded } } }, live)).toEqual([
      'tenants.ops.webhook_secret: the shipped sandbox webhook secret is in use while an upstream key is set (a live deployment); set GATEWAY_WEBHOOK_SECRETS (tenant:whsec_…) or tenants.ops.webhook_secret',
    ]);
  });

  it('says when the file cannot be read or is not YAML, naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kg-config-'));
    const missing = join(dir, 'missing.yaml');
    expect(() => loadConfigFile(missing, {}, PROVIDER_IDS)).toThrow(new RegExp(`^${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not valid:\n  - cannot be read: `));
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'server:\n  port: [8080\n');
    expect(() => loadConfigFile(broken, {}, PROVIDER_IDS)).toThrow(/is not valid YAML: /);
  });

  it('says where a file is not YAML without quoting its text, which may hold a key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kg-config-'));
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'providers:\n  freepik:\n    api_key: "sk-live-ABCDEFGHIJKL\n');
    let message = '';
    try {
      loadConfigFile(broken, {}, PROVIDER_IDS);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/is not valid YAML: .*line \d+, column \d+/);
    expect(message).not.toContain('sk-live-');
  });

  it('refuses a key YAML reads as an alias, a block scalar, a tag, an escape or an anchor by line and column, quoting none of it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kg-config-'));
    // Each a key written straight into the file whose first characters YAML takes for syntax.
    const written = [
      ['*', 'Qz7aliasABCDEFGH'],
      ['|', 'Qz7blockABCDEFGH'],
      ['!', 'Qz7tagABCDEFGHIJ extra'],
      ['"\\U', 'Qz7escABCDEFG"'],
      ['&', 'Qz7anchorABCDEF'],
    ] as const;
    const emitWarning = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      for (const [start, rest] of written) {
        const file = join(dir, 'broken.yaml');
        writeFileSync(file, `server:\n  public_url: https://gateway.example.com\nproviders:\n  freepik:\n    api_key: ${start}${rest}\n`);
        let message = '';
        try {
          loadConfigFile(file, {}, PROVIDER_IDS);
        } catch (error) {
          message = (error as Error).message;
        }
        // Refused where it breaks (the tag's key was taken as "extra" before, the anchor's as nothing, without a word).
        expect(message, start).toMatch(/is not valid YAML: .*line 5, column \d+/);
        expect(message, start).not.toMatch(/Qz7|ABCDEFG/);
      }
      // The parser's own warning (node prints it on stderr with the whole line) is not raised.
      expect(emitWarning).not.toHaveBeenCalled();
    } finally {
      emitWarning.mockRestore();
    }
  });

  it('names the file in its error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kg-config-'));
    const path = join(dir, 'gateway.yaml');
    writeFileSync(path, 'server:\n  public_url: not a url\ndatabase:\n  url: "sqlite::memory:"\nauth:\n  api_keys: acme:acme-key-123\n');
    try {
      loadConfigFile(path, {}, PROVIDER_IDS);
      expect.unreachable('the file should be refused');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).source).toBe(path);
      expect((error as ConfigError).problems).toHaveLength(1);
      expect((error as ConfigError).problems[0]).toMatch(/^server\.public_url: /);
    }
  });
});

describe('tenants: budgets, account events, admin', () => {
  it('reads a budget, an events URL and the admin flag (also from the environment as text)', () => {
    const config = parseConfig(
      document({
        tenants: {
          acme: {
            webhook_secret: 'whsec_c2VjcmV0',
            budget: { amount: '250', currency: 'USD', period: 'month', per_task_limit: '2.5' },
            events_url: 'https://hooks.example.com/kling',
            admin: '${ACME_ADMIN}',
          },
        },
      }),
      { ACME_ADMIN: 'true' },
      PROVIDER_IDS,
    );
    expect(config.tenants.acme).toEqual({
      webhook_secret: ['whsec_c2VjcmV0'],
      budget: { amount: 250, currency: 'USD', period: 'month', per_task_limit: 2.5 },
      events_url: 'https://hooks.example.com/kling',
      admin: true,
    });
  });

  it('takes an unset events URL as none, and admin as false by default', () => {
    const config = parseConfig(document({ tenants: { acme: { events_url: '${EVENTS_URL:-}' } } }), {}, PROVIDER_IDS);
    expect(config.tenants.acme?.events_url).toBeUndefined();
    expect(config.tenants.acme?.admin).toBe(false);
  });

  it('refuses a bad budget, naming each field', () => {
    expect(
      problemsOf(document({ tenants: { acme: { budget: { amount: 0, currency: 'usd', period: 'week', per_task_limit: -1 } } } })),
    ).toEqual([
      'tenants.acme.budget.amount: must be greater than 0',
      'tenants.acme.budget.currency: an ISO 4217 code in capitals, e.g. USD',
      'tenants.acme.budget.period: must be one of day, month',
      'tenants.acme.budget.per_task_limit: must be greater than 0',
    ]);
    expect(problemsOf(document({ tenants: { acme: { budget: { amount: 10, currency: 'USD' } } } }))).toEqual([
      'tenants.acme.budget.period: is required (one of day, month)',
    ]);
  });

  it('refuses a credit worth nothing (KLING3API_CREDIT_VALUE=0), which makes every price of the provider 0 to cheapest routing and budgets', () => {
    const WORTHLESS = 'must be more than 0: a credit worth nothing prices every task of the provider at 0 (cheapest routing would always pick it, budgets would never count it); price a free model with credits_per_task: 0';
    expect(() => loadConfigFile(SHIPPED_CONFIG, { KLING3API_CREDIT_VALUE: '0' }, PROVIDER_IDS)).toThrow(`providers.kling3api.pricing.credit_value: ${WORTHLESS}`);
    expect(problemsOf(document({ providers: { freepik: { pricing: { rules: [{ credits_per_task: 10, credit_value: 0, effective_from: '2027-01-01' }] } } } }))).toEqual([
      `providers.freepik.pricing.rules.0.credit_value: ${WORTHLESS}`,
    ]);
    // A free rule is still a price.
    expect(parseConfig(document({ providers: { freepik: { pricing: { rules: [{ credits_per_task: 0 }] } } } }), {}, PROVIDER_IDS).providers.freepik?.pricing?.rules).toEqual([{ credits_per_task: 0 }]);
  });

  it('refuses a price currency not in capitals, like a budget currency: usd beside USD would count as two currencies', () => {
    expect(problemsOf(document({ providers: { kling3api: { pricing: { currency: 'usd', credit_value: 0.001 } } } }))).toEqual([
      'providers.kling3api.pricing.currency: an ISO 4217 code in capitals, e.g. USD',
    ]);
  });

  it('refuses a per-task limit above the budget, and an events URL with nothing to sign it', () => {
    expect(
      problemsOf(
        document({
          tenants: { acme: { budget: { amount: 10, currency: 'USD', period: 'day', per_task_limit: 11 }, events_url: 'https://hooks.example.com' } },
          // Live: no sandbox secret fills in.
          providers: { freepik: { api_key: 'fpk-live-123456' } },
        }),
      ),
    ).toEqual([
      'tenants.acme.events_url: needs tenants.acme.webhook_secret to sign the events',
      'tenants.acme.budget.per_task_limit: larger than the budget amount 10',
    ]);
  });

  it('refuses an events URL that is not http(s)', () => {
    expect(problemsOf(document({ tenants: { acme: { webhook_secret: 'whsec_c2VjcmV0', events_url: 'ftp://example.com/x' } } }))[0]).toMatch(
      /^tenants\.acme\.events_url: /,
    );
  });
});

describe('provider accounts', () => {
  const accountsOf = (accounts: unknown, extra: Record<string, unknown> = {}) =>
    document({ providers: { 'kling-legacy': { base_url: 'https://api-singapore.klingai.com', accounts, ...extra } } });

  it('reads several accounts, each with its own credentials and optionally its own cap and rate windows', () => {
    const config = parseConfig(
      accountsOf([
        { id: 'main', access_key: 'ak-main', secret_key: 'sk-main', max_in_flight: '4' },
        { id: 'spare', api_key: '${SPARE_KEY}', rate_limits: [{ limit: 10, window_ms: 60_000 }] },
      ]),
      { SPARE_KEY: 'spare-key-123' },
      PROVIDER_IDS,
    );
    expect(config.providers['kling-legacy']?.accounts).toEqual([
      { id: 'main', access_key: 'ak-main', secret_key: 'sk-main', max_in_flight: 4 },
      { id: 'spare', api_key: 'spare-key-123', rate_limits: [{ limit: 10, window_ms: 60_000 }] },
    ]);
  });

  it('refuses two accounts with one id, naming the second', () => {
    expect(problemsOf(accountsOf([{ id: 'main', api_key: 'key-one-1' }, { id: 'main', api_key: 'key-two-2' }]))).toEqual([
      'providers.kling-legacy.accounts[1].id: "main" is used by an earlier account of kling-legacy',
    ]);
  });

  it('warns of two accounts with one key reached at one address (one upstream account counted twice), naming the second', () => {
    // A copied line: the one key gets twice its cap and rate windows, and two circuits.
    expect(
      sharedKeyWarnings(
        parseConfig(accountsOf([
          { id: 'main', api_key: '${KEY_ONE}' },
          { id: 'spare', api_key: '${KEY_ONE}' },
          { id: 'team-a', access_key: 'ak-team', secret_key: 'sk-one' },
          { id: 'team-b', access_key: 'ak-team', secret_key: 'sk-two', base_url: 'https://API-Singapore.klingai.com/' },
        ]), { KEY_ONE: 'key-one-123' }, PROVIDER_IDS),
      ),
    ).toEqual([
      'providers.kling-legacy.accounts[1].api_key: the key of accounts[0] (main), reached at the same address: unless a proxy there gives each account a key of its own, this is one upstream account, which gets twice its cap and rate windows; give each account its own key',
      'providers.kling-legacy.accounts[3].access_key: the key of accounts[2] (team-a), reached at the same address: unless a proxy there gives each account a key of its own, this is one upstream account, which gets twice its cap and rate windows; give each account its own key',
    ]);
  });

  it('does not warn of one key in two accounts of a provider switched off', () => {
    const config = parseConfig(accountsOf([{ id: 'main', api_key: 'key-one-123' }, { id: 'spare', api_key: 'key-one-123' }], { enabled: false }), {}, PROVIDER_IDS);
    expect(sharedKeyWarnings(config)).toEqual([]);
  });

  it('takes one key in two accounts reached at different addresses (another region, or a proxy in front)', () => {
    const config = parseConfig(
      accountsOf([
        { id: 'direct', api_key: 'key-one-123' },
        { id: 'proxy', api_key: 'key-one-123', base_url: 'https://kling-proxy.example.com' },
        { id: 'china', api_key: 'key-one-123', region: 'beijing' },
      ]),
      {},
      PROVIDER_IDS,
    );
    expect(config.providers['kling-legacy']?.accounts?.map((account) => account.id)).toEqual(['direct', 'proxy', 'china']);
    expect(sharedKeyWarnings(config)).toEqual([]);
  });

  it('refuses credentials both on the provider and in accounts', () => {
    expect(problemsOf(accountsOf([{ id: 'main', api_key: 'key-one-1' }], { api_key: 'provider-key' }))).toEqual([
      'providers.kling-legacy.api_key: give credentials either here (one account) or in accounts, not both',
    ]);
  });

  it('refuses an account without credentials, with both kinds, or with half a key pair', () => {
    expect(
      problemsOf(
        accountsOf([
          { id: 'none' },
          { id: 'both', api_key: 'key-one-1', access_key: 'ak', secret_key: 'sk' },
          { id: 'half', access_key: 'ak' },
        ]),
      ),
    ).toEqual([
      'providers.kling-legacy.accounts[0]: needs api_key (or access_key and secret_key)',
      'providers.kling-legacy.accounts[1].api_key: give api_key, or access_key and secret_key, not both',
      'providers.kling-legacy.accounts[2].secret_key: give access_key and secret_key together',
    ]);
  });

  it('refuses an account id that could not be a metrics label, and an empty list', () => {
    expect(problemsOf(accountsOf([{ id: 'Main Key', api_key: 'key-one-1' }]))).toEqual([
      expect.stringMatching(/^providers\.kling-legacy\.accounts\.0\.id: must be 1–32 lower-case letters/),
    ]);
    expect(problemsOf(accountsOf([]))).toEqual(['providers.kling-legacy.accounts: give at least one account, or leave accounts out']);
  });
});

describe('webhook secret rotation (several secrets at once)', () => {
  const NEW = `whsec_${Buffer.from('the new signing key').toString('base64')}`;
  const OLD = `whsec_${Buffer.from('the old signing key').toString('base64')}`;
  const live = { FREEPIK_API_KEY: 'fpk-live-123456', GATEWAY_API_KEYS: 'ops:ops-key-123' };
  const SHIPPED_REFUSAL =
    'the shipped sandbox webhook secret is in use while an upstream key is set (a live deployment); set GATEWAY_WEBHOOK_SECRETS (tenant:whsec_…) or tenants.ops.webhook_secret';

  it('takes a list in tenants.<name>.webhook_secret, in the order given, and one secret as before', () => {
    expect(parseConfig(document({ tenants: { acme: { webhook_secret: [NEW, OLD] } } }), {}, PROVIDER_IDS).tenants.acme?.webhook_secret).toEqual([NEW, OLD]);
    expect(parseConfig(document({ tenants: { acme: { webhook_secret: NEW } } }), {}, PROVIDER_IDS).tenants.acme?.webhook_secret).toEqual([NEW]);
    // An unset `${OLD:-}` leaves its entry out, and a repeated secret counts once.
    const rotated = document({ tenants: { acme: { webhook_secret: ['${NEW}', '${OLD:-}', ` ${NEW} `] } } });
    expect(parseConfig(rotated, { NEW }, PROVIDER_IDS).tenants.acme?.webhook_secret).toEqual([NEW]);
    expect(parseConfig(rotated, { NEW, OLD }, PROVIDER_IDS).tenants.acme?.webhook_secret).toEqual([NEW, OLD]);
    // Nothing left: absent, so the sandbox signs with its shipped secret as before.
    expect(parseConfig(document({ tenants: { acme: { webhook_secret: ['${OLD:-}'] } } }), {}, PROVIDER_IDS).tenants.acme?.webhook_secret).toEqual([
      SHIPPED_SANDBOX_WEBHOOK_SECRET,
    ]);
  });

  it('names the entry of a list it refuses, and refuses what is neither a secret nor a list of them', () => {
    expect(problemsOf(document({ tenants: { acme: { webhook_secret: [NEW, 'c2VjcmV0'] } } }))).toEqual(['tenants.acme.webhook_secret[1]: must start with whsec_']);
    expect(problemsOf(document({ tenants: { acme: { webhook_secret: ['whsec_abc', OLD] } } }))).toEqual([
      'tenants.acme.webhook_secret[0]: must be whsec_ followed by the base64 of a non-empty key',
    ]);
    // Named by its place as written, an unset entry before it or a repeat counted.
    expect(problemsOf(document({ tenants: { acme: { webhook_secret: ['${UNSET:-}', NEW, NEW, 'c2VjcmV0'] } } }))).toEqual([
      'tenants.acme.webhook_secret[3]: must start with whsec_',
    ]);
    for (const value of [[NEW, 42], { new: NEW }, 42, null]) {
      expect(problemsOf(document({ tenants: { acme: { webhook_secret: value } } })), JSON.stringify(value)).toEqual([
        'tenants.acme.webhook_secret: must be a secret, or a list of secrets (several while one is rotated)',
      ]);
    }
  });

  it('reads a tenant named twice in GATEWAY_WEBHOOK_SECRETS as two secrets, in the order given', () => {
    const config = parseConfig(
      document({ auth: { api_keys: 'acme:acme-key-123,beta:beta-key-123', webhook_secrets: `acme:${NEW},beta:${OLD},acme:${OLD},acme:${NEW}` } }),
      {},
      PROVIDER_IDS,
    );
    expect(config.tenants.acme?.webhook_secret).toEqual([NEW, OLD]);
    expect(config.tenants.beta?.webhook_secret).toEqual([OLD]);
    // A bad second secret of a tenant is named by its place, as the first would be.
    expect(problemsOf(document({ auth: { api_keys: 'acme:acme-key-123', webhook_secrets: `acme:${NEW},acme:whsec_abc` } }))).toEqual([
      'auth.webhook_secrets: the secret of entry 2 (tenant:secret) must be whsec_ followed by the base64 of a non-empty key',
    ]);
  });

  it('refuses the shipped sandbox secret in any place of a live tenant\'s list, from the file or the environment', () => {
    const unpadded = SHIPPED_SANDBOX_WEBHOOK_SECRET.replace(/=+$/, '');
    const doc = loadDocument() as Record<string, unknown>;
    expect(problemsOf({ ...doc, tenants: { ops: { webhook_secret: [NEW, SHIPPED_SANDBOX_WEBHOOK_SECRET] } } }, live)).toEqual([
      `tenants.ops.webhook_secret[1]: ${SHIPPED_REFUSAL}`,
    ]);
    expect(problemsOf(loadDocument(), { ...live, GATEWAY_WEBHOOK_SECRETS: `ops:${NEW},ops:${unpadded}` })).toEqual([
      `tenants.ops.webhook_secret[1]: ${SHIPPED_REFUSAL}`,
    ]);
    // Live with secrets of its own, or the sandbox with the shipped one among them: it starts.
    expect(loadConfigFile(SHIPPED_CONFIG, { ...live, GATEWAY_WEBHOOK_SECRETS: `ops:${NEW},ops:${OLD}` }, PROVIDER_IDS).tenants.ops?.webhook_secret).toEqual([NEW, OLD]);
    expect(parseConfig(document({ tenants: { acme: { webhook_secret: [NEW, SHIPPED_SANDBOX_WEBHOOK_SECRET] } } }), {}, PROVIDER_IDS).tenants.acme?.webhook_secret).toEqual([
      NEW,
      SHIPPED_SANDBOX_WEBHOOK_SECRET,
    ]);
  });

  it('takes several webhook secrets for a provider and for an account (the provider rotating its own), and scrubs every one', () => {
    const config = parseConfig(
      document({
        providers: {
          freepik: {
            base_url: 'https://api.freepik.com',
            webhook_secret: ['fp-provider-new-secret', 'fp-provider-old-secret'],
            accounts: [
              { id: 'main', api_key: 'fpk-main-123', webhook_secret: ['fp-main-new-secret', '${FP_MAIN_OLD:-}'] },
              { id: 'spare', api_key: 'fpk-spare-123' },
            ],
          },
        },
      }),
      { FP_MAIN_OLD: 'fp-main-old-secret' },
      PROVIDER_IDS,
    );
    expect(config.providers.freepik?.webhook_secret).toEqual(['fp-provider-new-secret', 'fp-provider-old-secret']);
    expect(config.providers.freepik?.accounts?.[0]?.webhook_secret).toEqual(['fp-main-new-secret', 'fp-main-old-secret']);
    expect(configuredSecrets(config)).toEqual(
      expect.arrayContaining(['fp-provider-new-secret', 'fp-provider-old-secret', 'fp-main-new-secret', 'fp-main-old-secret']),
    );
    expect(problemsOf(document({ providers: { freepik: { webhook_secret: ['fp-new-secret', 7] } } }))).toEqual([
      'providers.freepik.webhook_secret: must be a secret, or a list of secrets (several while one is rotated)',
    ]);
  });
});

describe('what an operator is told at the edges of the file', () => {
  it('inserts a variable as it is: a key holding ${ is never read as a reference of its own', () => {
    const config = parseConfig(document({ auth: { api_keys: '${GATEWAY_API_KEYS}' } }), { GATEWAY_API_KEYS: 'acme:ab${NOPE}cd' }, PROVIDER_IDS);
    expect(config.auth.api_keys).toEqual([{ tenant: 'acme', key: 'ab${NOPE}cd' }]);
  });

  it("refuses the shell's ${VAR-default}, naming the field, also while VAR is set (it would break on a machine without it)", () => {
    const written = document({ server: { public_url: 'https://g.example', port: '${PORT-8080}' } });
    const refusal = ['server.port: "${PORT-8080}": only ${NAME} and ${NAME:-default} are supported'];
    expect(problemsOf(written, { PORT: '9000' })).toEqual(refusal);
    expect(problemsOf(written, {})).toEqual(refusal);
  });

  it('refuses an unknown field at the top and in every block, naming each', () => {
    expect(
      problemsOf(
        document({
          loging: { level: 'debug' },
          server: { public_url: 'https://g.example', prot: 8080 },
          database: { url: 'sqlite::memory:', pool: 5 },
          auth: { api_keys: 'acme:acme-key-123', webhook_secret: 'whsec_Z2hvc3Q=' },
          tenants: { acme: { webhook_secrets: 'whsec_Z2hvc3Q=', limits: { creates_per_min: 5 } } },
          limits: { creates_per_min: 5 },
          routing: { stratgy: 'cheapest' },
          tasks: { deadline: 1000 },
          tracking: { poll_min_ms: 100 },
          webhooks: { allow_private: true },
          sandbox: { simulator: 'never' },
          storage: { backnd: 's3', filesystem: { dir: '/x' }, s3: { bukket: 'b' } },
          log: { levl: 'debug' },
          providers: { freepik: { circuit_breaker: { failures: 1 }, accounts: [{ id: 'a', api_key: 'fpk-123456', apikey: 'x' }], rate_limits: [{ limit: 1, window_ms: 1, burst: 2 }] } },
        }),
      ).sort(),
    ).toEqual(
      [
        'loging: unknown field',
        'server.prot: unknown field',
        'database.pool: unknown field',
        'auth.webhook_secret: unknown field',
        'tenants.acme.webhook_secrets: unknown field',
        'tenants.acme.limits.creates_per_min: unknown field',
        'limits.creates_per_min: unknown field',
        'routing.stratgy: unknown field',
        'tasks.deadline: unknown field',
        'tracking.poll_min_ms: unknown field',
        'webhooks.allow_private: unknown field',
        'sandbox.simulator: unknown field',
        'storage.backnd: unknown field',
        'storage.filesystem.dir: unknown field',
        'storage.s3.bukket: unknown field',
        'log.levl: unknown field',
        'providers.freepik.circuit_breaker.failures: unknown field',
        'providers.freepik.accounts.0.apikey: unknown field',
        'providers.freepik.rate_limits.0.burst: unknown field',
      ].sort(),
    );
  });

  it('refuses numbers just past their bounds, naming the field, and takes the bounds themselves', () => {
    expect(
      problemsOf(
        document({
          server: { public_url: 'https://g.example', port: 65536 },
          tasks: { idempotency_ttl_ms: 86_399_999 },
          tracking: { poll_jitter: 0.91 },
          webhooks: { max_attempts: 0 },
        }),
      ),
    ).toEqual([
      'server.port: must be at most 65535',
      'tasks.idempotency_ttl_ms: must be at least 86400000',
      'tracking.poll_jitter: must be at most 0.9',
      'webhooks.max_attempts: must be at least 1',
    ]);
    const config = parseConfig(
      document({
        server: { public_url: 'https://g.example', port: 65535 },
        tasks: { idempotency_ttl_ms: 86_400_000 },
        tracking: { poll_jitter: 0.9 },
        webhooks: { max_attempts: 1 },
      }),
      {},
      PROVIDER_IDS,
    );
    expect([config.server.port, config.tasks.idempotency_ttl_ms, config.tracking.poll_jitter, config.webhooks.max_attempts]).toEqual([65535, 86_400_000, 0.9, 1]);
  });

  it('refuses s3 storage without a bucket, naming storage.s3.bucket', () => {
    expect(problemsOf(document({ storage: { backend: 's3' } }))).toEqual(['storage.s3.bucket: required when storage.backend is s3']);
  });

  it('keeps a sandbox whose only upstream key belongs to a provider turned off: the shipped key and secret still work there', () => {
    const config = parseConfig(
      document({ auth: { api_keys: 'dev:dev-key' }, providers: { freepik: { enabled: false, api_key: 'fpk-live-key-123' } } }),
      {},
      PROVIDER_IDS,
    );
    expect(config.tenants.dev?.webhook_secret).toEqual([SHIPPED_SANDBOX_WEBHOOK_SECRET]);
    // The same decision as the simulators': the providers left on run theirs.
    expect(needsSimulator(config, PROVIDERS, 'kling3api')).toBe(true);
    expect(needsSimulator(config, PROVIDERS, 'freepik')).toBe(false);
  });

  it('never quotes a token or password variable set in the wrong field', () => {
    const env = { METRICS_TOKEN: 'scrape-token-5150', SMTP_PASSWORD: 'mail-pass-8a8a8a' };
    expect(
      problemsOf(document({ server: { public_url: 'https://g.example', port: '${METRICS_TOKEN}' }, tasks: { deadline_ms: '${SMTP_PASSWORD}' } }), env),
    ).toEqual(['server.port: expected a number, got "[redacted]"', 'tasks.deadline_ms: expected a number, got "[redacted]"']);
  });

  it('counts the storage secrets among the secrets kept out of logs', () => {
    const config = parseConfig(
      document({
        storage: {
          url_signing_secret: 'link-signing-5150',
          s3: { bucket: 'b', access_key_id: 'AKIAEXAMPLE1', secret_access_key: 's3-secret-5150', session_token: 's3-session-5150' },
        },
      }),
      {},
      PROVIDER_IDS,
    );
    expect(configuredSecrets(config)).toEqual(expect.arrayContaining(['link-signing-5150', 's3-secret-5150', 's3-session-5150']));
  });

  it('takes enabled and disabled as switches, as the README says', () => {
    const config = parseConfig(
      document({ providers: { freepik: { enabled: '${FREEPIK_ENABLED}' }, kling3api: { enabled: '${KLING3API_ENABLED}' } } }),
      { FREEPIK_ENABLED: 'Disabled', KLING3API_ENABLED: 'enabled' },
      PROVIDER_IDS,
    );
    expect([config.providers.freepik?.enabled, config.providers.kling3api?.enabled]).toEqual([false, true]);
  });

  it('reads retention days as every other number: hex, binary or octal text refused, not 16 days from 0x10', () => {
    const RETENTION = document({ storage: { retention_days: '${STORAGE_RETENTION_DAYS:-}' }, tenants: { acme: { retention_days: '${ACME_DAYS:-}' } } });
    for (const days of ['0x10', '0b101', '0o7', '1_000']) {
      expect(problemsOf(RETENTION, { STORAGE_RETENTION_DAYS: days, ACME_DAYS: days }).sort(), days).toEqual([
        `storage.retention_days: expected a number, got "${days}"`,
        `tenants.acme.retention_days: expected a number, got "${days}"`,
      ]);
    }
    const config = parseConfig(RETENTION, { STORAGE_RETENTION_DAYS: ' 30 ', ACME_DAYS: '1.5' }, PROVIDER_IDS);
    expect([config.storage.retention_days, config.tenants.acme?.retention_days]).toEqual([30, 1.5]);
    expect(parseConfig(RETENTION, {}, PROVIDER_IDS).storage.retention_days).toBeUndefined();
  });

  it('refuses the documented bounds of storage and accounts one step past them, naming the field', () => {
    expect(
      problemsOf(
        document({
          storage: { retention_days: 0, url_ttl_seconds: 59, copy_concurrency: 257 },
          tenants: { acme: { retention_days: '0' } },
          providers: { freepik: { accounts: [{ id: 'a'.repeat(33), api_key: 'fpk-123456' }] } },
        }),
      ).sort(),
    ).toEqual(
      [
        'storage.retention_days: must be a positive number of days',
        'storage.url_ttl_seconds: must be at least 60',
        'storage.copy_concurrency: must be at most 256',
        'tenants.acme.retention_days: must be a positive number of days',
        'providers.freepik.accounts.0.id: must be 1–32 lower-case letters, digits, - or _, starting with a letter or digit (it names the account in the API and metrics)',
      ].sort(),
    );
    const config = parseConfig(
      document({
        storage: { retention_days: 0.5, url_ttl_seconds: 60, copy_concurrency: 256 },
        providers: { freepik: { accounts: [{ id: 'a'.repeat(32), api_key: 'fpk-123456' }] } },
      }),
      {},
      PROVIDER_IDS,
    );
    expect([config.storage.retention_days, config.storage.url_ttl_seconds, config.storage.copy_concurrency, config.providers.freepik?.accounts?.[0]?.id]).toEqual([
      0.5,
      60,
      256,
      'a'.repeat(32),
    ]);
  });

  it('refuses a retention or a link lifetime past 100 years, which would name a moment no date can write', () => {
    expect(
      problemsOf(
        document({ storage: { retention_days: '${RETENTION}', url_ttl_seconds: 3_153_600_001 }, tenants: { acme: { retention_days: 1e9 } } }),
        { RETENTION: '36501' },
      ).sort(),
    ).toEqual(
      [
        'storage.retention_days: must be at most 36500 days (100 years)',
        'storage.url_ttl_seconds: must be at most 3153600000 seconds, 36500 days (100 years)',
        'tenants.acme.retention_days: must be at most 36500 days (100 years)',
      ].sort(),
    );
    const config = parseConfig(
      document({ storage: { retention_days: 36_500, url_ttl_seconds: 3_153_600_000 }, tenants: { acme: { retention_days: 36_500 } } }),
      {},
      PROVIDER_IDS,
    );
    expect([config.storage.retention_days, config.storage.url_ttl_seconds, config.tenants.acme?.retention_days]).toEqual([36_500, 3_153_600_000, 36_500]);
  });

  it('refuses a rate window or a circuit open time past 100 years, which would name a moment no date can write', () => {
    expect(
      problemsOf(
        document({
          providers: {
            freepik: {
              circuit_breaker: { half_open_after_ms: 9e15 },
              accounts: [{ id: 'a', api_key: 'fpk-123456', rate_limits: [{ limit: 1, window_ms: '3153600000001' }] }],
            },
            kling3api: { rate_limits: [{ limit: 1, window_ms: 9e15 }] },
          },
        }),
      ).sort(),
    ).toEqual(
      [
        'providers.freepik.circuit_breaker.half_open_after_ms: must be at most 3153600000000 ms, 36500 days (100 years)',
        'providers.freepik.accounts.0.rate_limits.0.window_ms: must be at most 3153600000000 ms, 36500 days (100 years)',
        'providers.kling3api.rate_limits.0.window_ms: must be at most 3153600000000 ms, 36500 days (100 years)',
      ].sort(),
    );
    const config = parseConfig(
      document({ providers: { kling3api: { circuit_breaker: { half_open_after_ms: 3_153_600_000_000 }, rate_limits: [{ limit: 1, window_ms: 3_153_600_000_000 }] } } }),
      {},
      PROVIDER_IDS,
    );
    expect(config.providers.kling3api?.rate_limits).toEqual([{ limit: 1, window_ms: 3_153_600_000_000 }]);
  });

  it('refuses private webhook targets when a webhooks block leaves allow_private_targets out', () => {
    const config = parseConfig(document({ webhooks: { max_attempts: 3 } }), {}, PROVIDER_IDS);
    expect(config.webhooks).toEqual({ allow_private_targets: false, max_attempts: 3, timeout_ms: 10_000 });
  });
});
