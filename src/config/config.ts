/**
 * `config.yaml`, validated at start (SPEC §6). A bad file stops the start with a message that
 * names the field. Every provider block is keyed by provider id; which ids exist is decided by
 * the provider registry, not here.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { z } from 'zod';
import { BudgetSettings } from '../core/model/budget.js';
import { configNumber, isNumericText } from '../core/model/config-number.js';
import { RoutingStrategy } from '../core/model/canonical.js';
import { PricingOverride } from '../core/model/pricing.js';
import { addressOf } from '../core/upstream/base-url-address.js';
import { issueMessage } from '../core/model/issue-messages.js';
import { urlCredentials } from '../observability/secret-scrubber.js';
import { databaseUrlProblem, parseDatabaseUrl, userPartPassword } from '../store/database-url.js';
import { ConfigFieldError, expandEnvironmentDeep } from './env-expansion.js';
import { unreadVariables, unreadVariableWarning } from './unread-variables.js';
import { parseYamlText, YamlTextError } from './yaml-text.js';

const TRUE_TEXT = new Set(['true', '1', 'yes', 'on', 'y', 'enabled']);
const FALSE_TEXT = new Set(['false', '0', 'no', 'off', 'n', 'disabled']);
/** A boolean that may come from an environment variable as text; anything else says what it takes. */
const booleanish = z.preprocess((value, ctx) => {
  if (typeof value === 'boolean') return value;
  const text = typeof value === 'string' ? value.trim().toLowerCase() : undefined;
  if (text !== undefined && TRUE_TEXT.has(text)) return true;
  if (text !== undefined && FALSE_TEXT.has(text)) return false;
  ctx.addIssue({
    code: 'custom',
    message: `expected true or false (or yes/no, on/off, 1/0), got ${value === null || value === undefined ? 'nothing' : JSON.stringify(value)}`,
  });
  return z.NEVER;
}, z.boolean());
const count = (min = 0) => configNumber(z.number().int().min(min));
/** Longest delay node's timers keep: a longer one fires at once (TimeoutOverflowWarning). */
const MAX_TIMER_MS = 2_147_483_647;
/** A time limit the gateway sets a timer for. */
const timerMs = (min = 0) =>
  configNumber(z.number().int().min(min).max(MAX_TIMER_MS, `must be at most ${MAX_TIMER_MS} ms (about 24 days), the longest timer node keeps`));
/** An optional string where an empty value (an unset `${VAR:-}`) means absent. */
const optionalText = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value.trim()));

/** What a webhook secret field says of anything but text or a list of texts. */
const NOT_A_SECRET_LIST = 'must be a secret, or a list of secrets (several while one is rotated)';

/**
 * A webhook secret field: one secret, or a list of them while a secret is rotated (each signs, or
 * each verifies), parsed as the list in the order given. An empty entry (an unset `${VAR:-}`) is
 * left out and a repeated one kept once; none left: absent, as an empty `optionalText` is.
 */
const webhookSecrets = z
  .unknown()
  .transform((value, ctx): string[] | undefined => {
    if (value === undefined) return undefined;
    const entries: unknown[] = Array.isArray(value) ? value : [value];
    if (!entries.every((entry): entry is string => typeof entry === 'string')) {
      ctx.addIssue({ code: 'custom', message: NOT_A_SECRET_LIST });
      return z.NEVER;
    }
    const secrets = [...new Set(entries.map((entry) => entry.trim()).filter((entry) => entry !== ''))];
    return secrets.length > 0 ? secrets : undefined;
  })
  .optional();

/** What an http(s) URL field says of anything else (`ftp://…` is a URL, just not one the gateway can call). */
/** A body size as `server.body_limit` takes it: `256kb`, `1mb`, `1.5mb`, `512` (bytes). */
const BODY_SIZE = /^([1-9]\d*(?:\.\d+)?) *(b|kb|mb|gb)?$/i;
const SIZE_UNIT_BYTES: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/**
 * The bytes of a `server.body_limit` as express's body parsers read it: 1024 per step, a fraction
 * rounded down (the config accepts only sizes this reads).
 */
export function bodyLimitBytes(size: string): number {
  const match = BODY_SIZE.exec(size.trim());
  if (!match) throw new Error(`not a size: ${JSON.stringify(size)}`);
  return Math.floor(Number(match[1]) * SIZE_UNIT_BYTES[(match[2] ?? 'b').toLowerCase()]!);
}

const NOT_HTTP_URL = 'must be an http(s) URL';

/** An optional http(s) URL where an empty value (an unset `${VAR:-}`) means absent. */
const optionalHttpUrl = optionalText.pipe(z.url({ protocol: /^https?$/, error: NOT_HTTP_URL }).optional());

/**
 * An upstream's base URL (a provider's or an account's), where an empty value means absent. The
 * path of every call is appended to it, so a query or a fragment would take them in (`…?key=1/v1/…`)
 * and every call would reach one wrong URL: refused, as for `server.public_url`.
 */
const optionalBaseUrl = optionalHttpUrl.refine((url) => url === undefined || !/[?#]/.test(url), {
  message: 'must not hold a query or a fragment (? or #): the path of every call is appended to it',
});

/**
 * Longest span a setting may add to the time of day to name a moment the API shows as a date
 * (when a stored copy is deleted, when a content link stops working): 100 years. Far past it the
 * moment lies beyond the last date JavaScript can write, and every read of such a task would fail.
 */
const MAX_DAYS_AHEAD = 100 * 365;
const MAX_SPAN_WORDS = `${MAX_DAYS_AHEAD} days (100 years)`;
const MAX_SPAN_MS = MAX_DAYS_AHEAD * 24 * 3600_000;
/** A span in ms the gateway adds to the time to name a moment it may show as a date (a rate window's end, a circuit's probe). */
const spanMs = (min: number) => configNumber(z.number().int().min(min).max(MAX_SPAN_MS, `must be at most ${MAX_SPAN_MS} ms, ${MAX_SPAN_WORDS}`));

/** A number of days where an empty value (an unset `${VAR:-}`) means "not set". */
const optionalDays = z
  .union([z.number(), z.string()])
  .optional()
  .transform((value, ctx) => {
    if (value === undefined || (typeof value === 'string' && value.trim() === '')) return undefined;
    // As every other number is read: `Number` would take `0x10` as 16 days.
    if (typeof value === 'string' && !isNumericText(value)) {
      ctx.addIssue({ code: 'custom', message: `expected a number, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    const days = Number(value);
    if (!Number.isFinite(days) || days <= 0) {
      ctx.addIssue({ code: 'custom', message: 'must be a positive number of days' });
      return z.NEVER;
    }
    if (days > MAX_DAYS_AHEAD) {
      ctx.addIssue({ code: 'custom', message: `must be at most ${MAX_SPAN_WORDS}` });
      return z.NEVER;
    }
    return days;
  });

/** Result custody: where copies of outputs are kept and how (SPEC §7). */
export const StorageConfig = z
  .strictObject({
    /** `copy`: outputs are copied before a task reports `succeeded`; `passthrough`: upstream URLs only. */
    mode: z.enum(['copy', 'passthrough']).default('copy'),
    /** `filesystem` (embedded default) or `s3` (S3-compatible object storage, for replicas). */
    backend: z.enum(['filesystem', 's3']).default('filesystem'),
    filesystem: z
      .strictObject({ path: z.string().min(1).default('./data/outputs') })
      .prefault({}),
    s3: z
      .strictObject({
        bucket: optionalText,
        /** Key prefix, e.g. `kling-gateway/`. */
        prefix: z.string().default(''),
        region: z.string().min(1).default('us-east-1'),
        /** Endpoint of an S3-compatible server; absent: AWS. */
        endpoint: optionalHttpUrl,
        /** Bucket in the path, not the host name (MinIO, Ceph, most self-hosted stores). */
        force_path_style: booleanish.default(false),
        /** Static credentials; absent: the AWS SDK's default chain (AWS_ACCESS_KEY_ID …, profile, role). */
        access_key_id: optionalText,
        secret_access_key: optionalText,
        session_token: optionalText,
        part_size_mb: configNumber(z.number().int().min(5).max(512)).default(8),
        /** Serve content by redirecting to a presigned URL, or stream it through the gateway. */
        serve: z.enum(['redirect', 'proxy']).default('redirect'),
        /** Lifetime of those presigned URLs. */
        presign_ttl_seconds: configNumber(z.number().int().min(1).max(7 * 24 * 3600)).default(900),
      })
      .prefault({}),
    /** Days a stored copy is kept unless its tenant says otherwise; absent: kept until deleted by hand. */
    retention_days: optionalDays,
    /** Copies of one output tried (with back-off from 5 s) before it is reported as not stored. */
    max_attempts: count(1).default(6),
    /**
     * Tasks whose outputs one process copies at once; each slot is freed the moment its copy ends,
     * so a slow or silent file host holds only its own slot (up to `copy_timeout_ms`).
     */
    copy_concurrency: configNumber(z.number().int().min(1).max(256)).default(8),
    copy_timeout_ms: timerMs(1000).default(10 * 60_000),
    /** Longest the source may send nothing mid-copy; also how long the S3 bucket has to answer a read or a delete. */
    idle_timeout_ms: timerMs(1000).default(30_000),
    max_bytes: count(1).default(2 * 1024 ** 3),
    /** Let result URLs point at private, loopback or link-local addresses (the sandbox's own simulators always may). */
    allow_private_sources: booleanish.default(false),
    /** How long the signed content links on a Task work. */
    url_ttl_seconds: configNumber(
      z.number().int().min(60).max(MAX_DAYS_AHEAD * 24 * 3600, `must be at most ${MAX_DAYS_AHEAD * 24 * 3600} seconds, ${MAX_SPAN_WORDS}`),
    ).default(24 * 3600),
    /** Signs content links together with each tenant's key; set it to invalidate every link at once. */
    url_signing_secret: optionalText,
  })
  .superRefine((storage, ctx) => {
    if (storage.backend === 's3' && !storage.s3.bucket) {
      ctx.addIssue({ code: 'custom', path: ['s3', 'bucket'], message: 'required when storage.backend is s3' });
    }
    if (Boolean(storage.s3.access_key_id) !== Boolean(storage.s3.secret_access_key)) {
      ctx.addIssue({ code: 'custom', path: ['s3', 'secret_access_key'], message: 'give access_key_id and secret_access_key together' });
    }
  });
export type StorageConfig = z.infer<typeof StorageConfig>;

export const RateLimitWindow = z.strictObject({
  /** Requests allowed within `window_ms`. */
  limit: count(1),
  window_ms: spanMs(1),
});

/**
 * One upstream account of a provider (`providers.<id>.accounts[]`): its own credentials, and
 * optionally its own in-flight cap and rate windows (the provider's when absent). Its id names it
 * in `/v1/providers`, on attempts and as a metrics label, so it is a short closed word.
 */
export const ProviderAccountConfig = z.strictObject({
  id: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'must be 1–32 lower-case letters, digits, - or _, starting with a letter or digit (it names the account in the API and metrics)'),
  api_key: optionalText,
  access_key: optionalText,
  secret_key: optionalText,
  /**
   * Secret that signs this account's webhooks to the gateway (Freepik), or a list of them while the
   * provider rotates it (one that verifies is enough); the provider's `webhook_secret` when absent.
   */
  webhook_secret: webhookSecrets,
  /** Where this account is reached when not at the provider's `base_url` / `region` (a Kling key belongs to one region). */
  base_url: optionalBaseUrl,
  region: optionalText,
  max_in_flight: count(1).optional(),
  rate_limits: z.array(RateLimitWindow).optional(),
});
export type ProviderAccountConfig = z.infer<typeof ProviderAccountConfig>;

export const ProviderConfig = z.strictObject({
  enabled: booleanish.default(true),
  /** Upstream base URL. Ignored when the provider runs against its simulator. */
  base_url: optionalBaseUrl,
  /** Upstream key. Absent (with no access key either): the provider runs against its built-in simulator. */
  api_key: optionalText,
  /** Access key + secret key, signed into a short-lived token per call (Kling's own API), instead of `api_key`. */
  access_key: optionalText,
  secret_key: optionalText,
  /** A base URL by name, for providers that declare regions (Kling: `singapore`, `beijing`, `global`); `base_url` wins when both are set. */
  region: optionalText,
  /** Which API shape the endpoint speaks, for providers with more than one (legacy Kling-API: `aggregator` or `official`). */
  api_shape: optionalText,
  /** Secret that signs the provider's webhooks to the gateway (Freepik), or a list of them while it is rotated. */
  webhook_secret: webhookSecrets,
  /**
   * Several upstream accounts, each with its own credentials, cap, rate windows and circuit,
   * instead of `api_key` / `access_key` + `secret_key` (the one-account shorthand, account id `default`).
   */
  accounts: z.array(ProviderAccountConfig).min(1, 'give at least one account, or leave accounts out').optional(),
  /** Rank for the `priority` strategy (lower first). */
  priority: configNumber(z.number().int()).default(100),
  /** Share for the `weighted` strategy. */
  weight: configNumber(z.number().min(0)).default(1),
  /** Time limit for one upstream call. */
  timeout_ms: timerMs(1).default(30_000),
  /**
   * Time limit for opening a connection (TCP and TLS), within `timeout_ms`. A create that
   * cannot connect sent nothing, so it fails over at once instead of waiting out `timeout_ms`
   * and ending as an ambiguous timeout.
   */
  connect_timeout_ms: timerMs(1).default(5_000),
  /** Tasks in flight (submitting or tracked) at once, per account; more wait as `queued`. */
  max_in_flight: count(1).default(20),
  /** Upstream request-rate limits per account, all enforced together; absent: the provider's documented ones. */
  rate_limits: z.array(RateLimitWindow).optional(),
  circuit_breaker: z
    .strictObject({
      consecutive_failures: count(1).default(5),
      half_open_after_ms: spanMs(0).default(30_000),
    })
    .default({ consecutive_failures: 5, half_open_after_ms: 30_000 }),
  /** Price list; parts left out come from the provider's shipped default. */
  pricing: PricingOverride.optional(),
});
export type ProviderConfig = z.infer<typeof ProviderConfig>;

/**
 * How a `tenant:secret` pair whose secret is refused is named: by its place, not its tenant. A
 * pair written the other way round (`key:tenant`) has the secret where the tenant goes, and a
 * message naming "the tenant" would print the secret.
 */
function refusedPair(index: number, what: 'key' | 'secret'): string {
  return `the ${what} of entry ${index + 1} (tenant:${what})`;
}

/** Fewest characters of a gateway key or the metrics token. */
const MIN_BEARER_SECRET = 6;

/** What `Authorization: Bearer <token>` can carry: one run of visible ASCII. */
const BEARER_TOKEN = /^[\x21-\x7e]+$/;

/** A `;` followed by what reads as `tenant:`: a list separated by semicolons, not one key. */
const LIST_SEPARATED_BY_SEMICOLONS = /;\s*[^\s;:,]+:/;

const apiKeyList = z
  .string()
  .transform((text, ctx) => {
    const keys: { tenant: string; key: string }[] = [];
    const pairs = text.split(',').map((item) => item.trim()).filter(Boolean);
    for (const [index, pair] of pairs.entries()) {
      const separator = pair.indexOf(':');
      const tenant = pair.slice(0, separator).trim();
      const key = pair.slice(separator + 1).trim();
      if (separator <= 0 || !key) {
        // Never echo the entry: a pasted bare key is a secret.
        ctx.addIssue({ code: 'custom', message: `entry ${index + 1} is not tenant:key` });
        return z.NEVER;
      }
      if (LIST_SEPARATED_BY_SEMICOLONS.test(key)) {
        // `acme:k1;beta:k2` would be one tenant whose key is `k1;beta:k2`, and beta no tenant.
        ctx.addIssue({ code: 'custom', message: `${refusedPair(index, 'key')} holds ";" followed by another tenant:key: separate entries with commas (tenant:key,tenant:key)` });
        return z.NEVER;
      }
      if (tenant in Object.prototype) {
        ctx.addIssue({ code: 'custom', message: `entry ${index + 1}: "${tenant}" cannot name a tenant (it is a reserved word)` });
        return z.NEVER;
      }
      if (keys.some((entry) => entry.key === key)) {
        ctx.addIssue({ code: 'custom', message: `entry ${index + 1} repeats a key already given (each key names one tenant)` });
        return z.NEVER;
      }
      if (!BEARER_TOKEN.test(key)) {
        // `Authorization: Bearer <key>` carries one run of visible ASCII: such a key could never be sent.
        ctx.addIssue({ code: 'custom', message: `${refusedPair(index, 'key')} holds a space, a control or a non-ASCII character (separate entries with commas)` });
        return z.NEVER;
      }
      if (key.length < MIN_BEARER_SECRET) {
        ctx.addIssue({ code: 'custom', message: `${refusedPair(index, 'key')} is shorter than ${MIN_BEARER_SECRET} characters` });
        return z.NEVER;
      }
      keys.push({ tenant, key });
    }
    if (keys.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'at least one tenant:key is required' });
      return z.NEVER;
    }
    return keys;
  });

/** Why a `whsec_` secret is refused when it cannot sign (see `canSign`). */
const UNSIGNABLE = 'must be whsec_ followed by the base64 of a non-empty key';

/**
 * True when Standard Webhooks can sign with `secret`: what follows `whsec_` is base64 of a
 * non-empty key. Checked at start, since every delivery signed with it would fail otherwise.
 */
function canSign(secret: string): boolean {
  try {
    new Webhook(secret);
    return true;
  } catch {
    return false;
  }
}

/**
 * `tenant:whsec_…` pairs, comma-separated (`GATEWAY_WEBHOOK_SECRETS`): each tenant's outbound
 * webhook secret from the environment, for tenants that have no `tenants:` block. A tenant named
 * twice has two secrets (a rotation), in the order given. Empty: none.
 */
const webhookSecretList = z
  .string()
  .default('')
  .transform((text, ctx) => {
    const secrets: { tenant: string; secret: string }[] = [];
    const pairs = text.split(',').map((item) => item.trim()).filter(Boolean);
    for (const [index, pair] of pairs.entries()) {
      const separator = pair.indexOf(':');
      const tenant = pair.slice(0, separator).trim();
      const secret = pair.slice(separator + 1).trim();
      if (separator <= 0 || !secret) {
        ctx.addIssue({ code: 'custom', message: `entry ${index + 1} is not tenant:whsec_…` });
        return z.NEVER;
      }
      if (!secret.startsWith('whsec_')) {
        ctx.addIssue({ code: 'custom', message: `${refusedPair(index, 'secret')} must start with whsec_` });
        return z.NEVER;
      }
      if (!canSign(secret)) {
        ctx.addIssue({ code: 'custom', message: `${refusedPair(index, 'secret')} ${UNSIGNABLE}` });
        return z.NEVER;
      }
      // A tenant named again has one more secret (a rotation); the same pair again, nothing more.
      if (!secrets.some((entry) => entry.tenant === tenant && entry.secret === secret)) secrets.push({ tenant, secret });
    }
    return secrets;
  });

/** Per-tenant request limits; a tenant's own block overrides the top-level `limits`. */
export const TenantLimits = z.strictObject({
  /** Creates (`POST /v1/videos`) per minute, across replicas; beyond it 429 with Retry-After. */
  creates_per_minute: count(1).optional(),
  /** Event streams (`GET /v1/videos/{id}/events`) open at once, per replica. */
  open_streams: count(1).optional(),
  /** `GET /v1/videos/{id}?wait=` requests held at once, per replica. */
  open_waits: count(1).optional(),
});

/** One tenant's settings (`tenants.<name>`); a tenant named only by an API key gets the defaults. */
export const TenantConfig = z.strictObject({
  /**
   * `whsec_…` secret that signs this tenant's outbound webhooks, or a list of them while it is
   * rotated (`[new, old]`): each delivery then carries one signature per secret.
   */
  webhook_secret: webhookSecrets,
  /** Days this tenant's stored outputs are kept (overrides `storage.retention_days`). */
  retention_days: optionalDays,
  /** Spending cap per UTC day or month, with an optional per-task ceiling. */
  budget: BudgetSettings.optional(),
  /**
   * Where account events (`budget.warning`, `budget.exhausted`) are POSTed, signed like
   * task events with `webhook_secret`. Task events still go to each task's `webhook_url`.
   */
  events_url: optionalHttpUrl,
  /** Keys of an admin tenant read every tenant's usage (`GET /v1/usage`, `group_by=tenant`). */
  admin: booleanish.default(false),
  /** This tenant's request limits (unset fields: the top-level `limits`). */
  limits: TenantLimits.optional(),
});
export type TenantConfig = z.infer<typeof TenantConfig>;

export const GatewayConfig = z.strictObject({
  server: z
    .strictObject({
      port: z
        .preprocess((value, ctx) => {
          // `1e3` or `8080.0` is a number, but no URL takes it as a port (the public URL built from it would be refused).
          if (typeof value === 'string' && isNumericText(value) && !/^\d+$/.test(value.trim())) {
            ctx.addIssue({ code: 'custom', message: 'must be a whole number from 0 to 65535, written in digits' });
            return z.NEVER;
          }
          return value;
        }, configNumber(z.number().int().min(0).max(65535)))
        .default(8080),
      host: z.string().default('0.0.0.0'),
      /** How upstreams reach the gateway's webhook routes. */
      public_url: z
        // Left out, it "is required" (the parse's own words), not a URL of the wrong kind.
        .url({ protocol: /^https?$/, error: (issue) => (issue.input === undefined ? undefined : NOT_HTTP_URL) })
        // Every content link and callback URL starts with it: a password in it would go to every
        // tenant (in each output's url) and to every upstream.
        .refine((url) => !/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(url), {
          message: 'must not hold a user name or password: content links carry it to every tenant, callback URLs to every upstream',
        })
        .refine((url) => !/[?#]/.test(url), {
          message: 'must not hold a query or a fragment (? or #): callback URLs and content links are appended to it',
        }),
      /**
       * Largest request body, as express reads it. Anything else is refused here: express would
       * take `256kib` as 256 bytes (its parser stops at the first non-digit).
       */
      body_limit: z
        // A bare number of bytes (`body_limit: 1048576`) is a YAML number: read as the same text from a variable.
        .preprocess((value) => (typeof value === 'number' && Number.isFinite(value) ? String(value) : value), z.string())
        .pipe(z.string().trim().regex(BODY_SIZE, 'must be a size such as 256kb or 1mb (b, kb, mb or gb)'))
        .default('256kb'),
      /** Express `trust proxy` (client IPs behind a load balancer). */
      trust_proxy: booleanish.default(false),
      /**
       * How long an idle keep-alive connection stays open. Longer than a load balancer's idle
       * timeout (60 s on common ones), or the balancer may reuse a connection the gateway closes.
       */
      keep_alive_timeout_ms: timerMs(1000).default(65_000),
      /** Longest a client may take to send a request body (408 after it), webhook routes included. */
      body_timeout_ms: timerMs(100).default(10_000),
      /**
       * Bytes of webhook bodies (the routes take no key) read at once, each counted as its
       * `Content-Length`, or as the routes' 256 KiB limit when chunked; a webhook past it is
       * refused before its body is read (503 with Retry-After). At least that limit.
       */
      webhook_bodies_max_bytes: count(256 * 1024).default(64 * 1024 * 1024),
      /** Bearer token `/metrics` asks for; unset: open to loopback only in a live deployment, open in the sandbox. */
      metrics_token: optionalText.pipe(
        z
          .string()
          .regex(BEARER_TOKEN, 'holds a space, a control or a non-ASCII character: no Authorization header could carry it')
          // As a gateway key: shorter is guessed, and the log scrubber takes it for an ordinary word.
          .min(MIN_BEARER_SECRET, `is shorter than ${MIN_BEARER_SECRET} characters`)
          .optional(),
      ),
      /**
       * Longest a graceful stop (SIGTERM) waits for creates, cancels and dispatches still running
       * before the process exits. Unset: the longest upstream `timeout_ms` plus 5 s.
       */
      drain_timeout_ms: timerMs(0).optional(),
    }),
  database: z.strictObject({
    /** `sqlite:<file>`, `sqlite::memory:` or `postgres://…`: refused here as opening the store would refuse it. */
    url: z
      .string()
      .min(1)
      .superRefine((url, ctx) => {
        // An empty URL is already refused as such.
        const problem = url === '' ? undefined : databaseUrlProblem(url);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
  }),
  auth: z.strictObject({
    /** Comma-separated `tenant:key` pairs. */
    api_keys: apiKeyList,
    /** Comma-separated `tenant:whsec_…` pairs: webhook secrets of tenants from the environment (a tenant twice: two secrets). */
    webhook_secrets: webhookSecretList,
  }),
  tenants: z.record(z.string(), TenantConfig).default({}),
  /** Every tenant's request limits unless its `tenants.<name>.limits` says otherwise. */
  limits: z
    .strictObject({
      creates_per_minute: count(1).default(300),
      open_streams: count(1).default(20),
      open_waits: count(1).default(50),
    })
    .prefault({}),
  routing: z
    .strictObject({
      strategy: RoutingStrategy.default('priority'),
      allow_fallbacks: booleanish.default(true),
      /** Fail over after a timeout that happened once the request was sent (may duplicate). */
      failover_on_timeout: booleanish.default(false),
    })
    .default({ strategy: 'priority', allow_fallbacks: true, failover_on_timeout: false }),
  tasks: z
    .strictObject({
      /** A task not finished this long after creation fails with `timeout`. */
      deadline_ms: count(1000).default(30 * 60_000),
      /** How long an Idempotency-Key is remembered (at least 24 h). */
      idempotency_ttl_ms: count(24 * 3600_000).default(24 * 3600_000),
    })
    .default({ deadline_ms: 30 * 60_000, idempotency_ttl_ms: 24 * 3600_000 }),
  tracking: z
    .strictObject({
      poll_min_interval_ms: count(100).default(2_000),
      poll_max_interval_ms: count(100).default(60_000),
      poll_backoff: configNumber(z.number().min(1)).default(1.5),
      /** Fraction of each delay randomized either way. */
      poll_jitter: configNumber(z.number().min(0).max(0.9)).default(0.2),
      /** Poll interval while an upstream webhook is expected (polling is then only a safety net). */
      webhook_safety_poll_ms: count(1000).default(60_000),
      /** How long a replica owns a task it is tracking or submitting before another may take over (a copy renews it on a timer). */
      lease_ms: timerMs(1000).default(60_000),
      /** How often each worker loop looks for work. */
      tick_ms: timerMs(50).default(1_000),
    })
    .superRefine((tracking, ctx) => {
      // The schedule keeps every delay between the two: a minimum past the maximum is ignored.
      if (tracking.poll_min_interval_ms > tracking.poll_max_interval_ms) {
        ctx.addIssue({
          code: 'custom',
          path: ['poll_min_interval_ms'],
          message: `must be at most poll_max_interval_ms (${tracking.poll_max_interval_ms}), got ${tracking.poll_min_interval_ms}`,
        });
      }
    })
    .default({
      poll_min_interval_ms: 2_000,
      poll_max_interval_ms: 60_000,
      poll_backoff: 1.5,
      poll_jitter: 0.2,
      webhook_safety_poll_ms: 60_000,
      lease_ms: 60_000,
      tick_ms: 1_000,
    }),
  webhooks: z
    .strictObject({
      /** Let `webhook_url` point at private, loopback or link-local addresses. */
      allow_private_targets: booleanish.default(false),
      max_attempts: count(1).default(8),
      timeout_ms: timerMs(100).default(10_000),
    })
    .default({ allow_private_targets: false, max_attempts: 8, timeout_ms: 10_000 }),
  sandbox: z
    .strictObject({
      /**
       * `auto`: providers without a key run their simulator only when no provider has a key (the
       * sandbox); in a live deployment a keyless provider is disabled. `always`: simulate keyless
       * providers beside live ones (development). `never`: no simulators.
       */
      simulators: z.enum(['auto', 'always', 'never']).default('auto'),
      /** Simulated time a task spends queued and processing (each phase ends on a timer). */
      queued_ms: timerMs(0).default(1_000),
      processing_ms: timerMs(0).default(4_000),
      /**
       * Control URL of simulators running in a process of their own (`npm run simulators`), shared
       * by several replicas, instead of simulators inside this process.
       */
      simulators_url: optionalHttpUrl.refine((url) => url === undefined || !/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(url), {
        // fetch refuses such a URL, and its refusal (the start's last words) quotes it whole.
        message: 'must not hold a user name or password: requests to the simulator host cannot carry them',
      }),
    })
    .superRefine((sandbox, ctx) => {
      // A task is done on a timer set from its creation: queued and processing together.
      if (sandbox.queued_ms <= MAX_TIMER_MS && sandbox.processing_ms <= MAX_TIMER_MS && sandbox.queued_ms + sandbox.processing_ms > MAX_TIMER_MS) {
        ctx.addIssue({
          code: 'custom',
          path: ['processing_ms'],
          message: `queued_ms + processing_ms must be at most ${MAX_TIMER_MS} ms (about 24 days), the longest timer node keeps`,
        });
      }
    })
    .default({ simulators: 'auto', queued_ms: 1_000, processing_ms: 4_000, simulators_url: undefined }),
  storage: StorageConfig.prefault({}),
  log: z
    .strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info') })
    .default({ level: 'info' }),
  providers: z.record(z.string(), ProviderConfig).default({}),
});
export type GatewayConfig = z.infer<typeof GatewayConfig>;

/**
 * The credentials config.yaml ships with for the sandbox. Public (they are in the repository):
 * a live deployment refuses to start while either is in use.
 */
export const SHIPPED_SANDBOX_KEY = 'dev-key';
export const SHIPPED_SANDBOX_WEBHOOK_SECRET = 'whsec_ZGV2LXNhbmRib3gtc2VjcmV0LWNoYW5nZS1tZQ==';

/** The PostgreSQL password `deploy/docker-compose.yml` falls back to when `POSTGRES_PASSWORD` is not set. */
export const SHIPPED_DATABASE_PASSWORD = 'gateway';

/** The passwords a PostgreSQL URL carries, in its user part (however written) or as `?password=` / `?sslpassword=`; none for any other URL. */
function databasePasswords(url: string): string[] {
  if (!/^postgres(ql)?:\/\//i.test(url)) return [];
  const passwords: string[] = [];
  // As written, as `check-config` reads it: a generated password may hold an unescaped `/`, `?`,
  // `#` or `@`, which URL parsers read otherwise (or refuse).
  const written = userPartPassword(url);
  if (written) {
    passwords.push(written);
    try {
      passwords.push(decodeURIComponent(written));
    } catch {
      // A stray `%` stays as written.
    }
  }
  try {
    const parsed = new URL(url);
    passwords.push(decodeURIComponent(parsed.password), ...parsed.searchParams.getAll('password'), ...parsed.searchParams.getAll('sslpassword'));
  } catch {
    // Not a URL: the password as written is all there is.
  }
  return [...new Set(passwords.filter((password) => password !== ''))];
}

/**
 * True when a PostgreSQL URL carries the password shipped in `deploy/docker-compose.yml`: anyone
 * who read the repository knows it.
 */
function usesShippedDatabasePassword(url: string): boolean {
  return databasePasswords(url).includes(SHIPPED_DATABASE_PASSWORD);
}

/**
 * True when `secret` signs with the shipped sandbox secret's key. Standard Webhooks decodes what
 * follows `whsec_`, so another spelling of the same base64 (without its padding) is the same
 * public key, and as refused live as the shipped text itself.
 */
function isShippedWebhookSecret(secret: string): boolean {
  const keyOf = (text: string) => Buffer.from(text.replace(/^whsec_/, ''), 'base64');
  return secret === SHIPPED_SANDBOX_WEBHOOK_SECRET || keyOf(secret).equals(keyOf(SHIPPED_SANDBOX_WEBHOOK_SECRET));
}

/**
 * The URL upstreams call back and content links name: `server.public_url`, unless it names port 0
 * (the default with `PORT=0`, a port picked when listening), which nothing can reach: then the
 * address the gateway listens on.
 */
export function reachablePublicUrl(configured: string, listening: string): string {
  return new URL(configured).port === '0' ? listening : configured;
}

/** A host name or address that names this machine only (`localhost`, `127.0.0.0/8`, `::1`, the unspecified addresses). */
function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
  return host === 'localhost' || host.endsWith('.localhost') || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '::1' || host === '0.0.0.0' || host === '::';
}

/**
 * What is wrong, though allowed, with the public URL of a live deployment: a loopback one (the
 * default), which only an upstream on this machine can call back (creates still ask for webhooks
 * and callbacks there) and whose content links work on this machine only,
 * or a plain http one, over which callbacks carry their tokens and content links their
 * signatures unencrypted. The start logs it as a warning and `check-config` warns the same. The
 * sandbox's simulators call back on loopback, so it is fine there.
 */
function publicUrlWarning(config: Pick<GatewayConfig, 'providers' | 'server'>): string | undefined {
  if (!isLiveConfig(config)) return undefined;
  const url = new URL(config.server.public_url);
  if (isLoopbackHost(url.hostname)) {
    return `server.public_url ${config.server.public_url} is a loopback address in a live deployment: only an upstream on this machine can call back there (webhooks and callbacks from anywhere else are lost, and their tasks are followed by polling only), and the links in outputs[].url work on this machine only; set PUBLIC_URL to the https address clients and upstreams reach the gateway at`;
  }
  if (url.protocol === 'http:') {
    return `server.public_url ${config.server.public_url} is plain http in a live deployment: upstream callbacks (with their tokens) and the signed links in outputs[].url would travel unencrypted; put TLS in front of the gateway and set PUBLIC_URL to its https address`;
  }
  return undefined;
}

/**
 * For each live provider among `signedProviders` (those whose webhooks are signed: Freepik), the
 * first account with no webhook secret, its own or the provider's. Such an account is sent no
 * webhook URL: its tasks are followed by polling only, and a create whose answer was lost cannot
 * be found again. The start logs it as a warning and `check-config` warns the same.
 */
function missingWebhookSecretWarnings(config: Pick<GatewayConfig, 'providers'>, signedProviders: readonly string[]): string[] {
  const warnings: string[] = [];
  for (const id of signedProviders) {
    const settings = config.providers[id];
    if (!settings?.enabled) continue;
    let field: string | undefined;
    if (settings.accounts?.length) {
      const index = settings.accounts.findIndex((account) => !(account.webhook_secret ?? settings.webhook_secret));
      if (index >= 0) field = `providers.${id}.accounts[${index}].webhook_secret`;
    } else if (hasCredentials(settings) && !settings.webhook_secret) {
      field = `providers.${id}.webhook_secret`;
    }
    if (field) {
      warnings.push(
        `${field} is not set: ${id} is sent no webhook URL, so its tasks are followed by polling only, and a create whose answer was lost cannot be found again; ` +
          `set it to the secret ${id} signs the webhooks of this key with`,
      );
    }
  }
  return warnings;
}

/** A configuration that starts but is likely not what was meant: its words, and the fields of its log line. */
export interface ConfigWarning {
  message: string;
  fields: Record<string, unknown>;
}

/**
 * What the start logs as warnings and `check-config` prints, for `config` as read from `path`
 * with `env`: a loopback or plain-http public URL of a live deployment, a live account of a
 * provider among `signedProviders` with no webhook secret, an in-memory database in a live
 * deployment, two accounts of a provider sharing one
 * key at one address, a variable that looks like one the
 * file reads but is not it (a misspelt upstream key leaves the sandbox running).
 */
export function configurationWarnings(config: GatewayConfig, path: string, env: NodeJS.ProcessEnv, signedProviders: readonly string[]): ConfigWarning[] {
  const warnings: ConfigWarning[] = [];
  const publicUrl = publicUrlWarning(config);
  if (publicUrl) warnings.push({ message: publicUrl, fields: { public_url: config.server.public_url } });
  // `DATABASE_URL=sqlite:${DB_FILE}` with DB_FILE empty is `sqlite:`, the in-memory database.
  if (isLiveConfig(config) && parseDatabaseUrl(config.database.url).location === ':memory:') {
    warnings.push({
      message: `database.url ${config.database.url} is an in-memory database in a live deployment: every task (with what its upstream was paid), usage record and idempotency key is lost when the process stops; set DATABASE_URL to sqlite:<file> or postgres://…`,
      fields: { database: config.database.url },
    });
  }
  for (const message of missingWebhookSecretWarnings(config, signedProviders)) warnings.push({ message, fields: {} });
  for (const message of sharedKeyWarnings(config)) warnings.push({ message, fields: {} });
  for (const variable of unreadVariables(readFileSync(path, 'utf8'), env)) {
    warnings.push({ message: unreadVariableWarning(variable, basename(path)), fields: { variable: variable.name, did_you_mean: variable.meant } });
  }
  return warnings;
}

/**
 * How long a graceful stop waits for creates, cancels and dispatches still running:
 * `server.drain_timeout_ms`, or the longest upstream `timeout_ms` of `providerIds` (the default
 * for one the file leaves out) plus 5 s.
 */
export function drainTimeoutMs(config: GatewayConfig, providerIds: Iterable<string>): number {
  if (config.server.drain_timeout_ms !== undefined) return config.server.drain_timeout_ms;
  let longest = 0;
  for (const id of providerIds) longest = Math.max(longest, (config.providers[id] ?? ProviderConfig.parse({})).timeout_ms);
  return longest + 5_000;
}

/** Whether a provider block names upstream credentials: an API key, an access key + secret key, or accounts. */
export function hasCredentials(settings: GatewayConfig['providers'][string] | undefined): boolean {
  return Boolean(settings?.api_key || (settings?.access_key && settings.secret_key) || (settings?.accounts?.length ?? 0) > 0);
}

/** True when an enabled provider has upstream credentials: real money. */
export function isLiveConfig(config: Pick<GatewayConfig, 'providers'>): boolean {
  return Object.values(config.providers).some((settings) => settings.enabled && hasCredentials(settings));
}

/**
 * Every secret the configuration holds: gateway keys, webhook secrets, upstream credentials,
 * storage credentials. Logs and what tenants see are scrubbed of each, in every encoding.
 */
export function configuredSecrets(config: GatewayConfig): string[] {
  const secrets: (string | undefined)[] = [
    ...config.auth.api_keys.map((entry) => entry.key),
    ...Object.values(config.tenants).flatMap((tenant) => tenant.webhook_secret ?? []),
    ...Object.values(config.providers).flatMap((provider) => [
      provider.api_key,
      provider.access_key,
      provider.secret_key,
      ...(provider.webhook_secret ?? []),
      ...urlCredentials(provider.base_url),
      ...(provider.accounts ?? []).flatMap((account) => [
        account.api_key,
        account.access_key,
        account.secret_key,
        ...(account.webhook_secret ?? []),
        ...urlCredentials(account.base_url),
      ]),
    ]),
    config.storage.s3.secret_access_key,
    config.storage.s3.session_token,
    config.storage.url_signing_secret,
    config.server.metrics_token,
  ];
  return secrets.filter((secret): secret is string => typeof secret === 'string' && secret.length > 0);
}

/** Fields whose text is a secret, wherever they sit in the document. */
const SECRET_FIELDS = new Set([
  'api_key',
  'access_key',
  'secret_key',
  'webhook_secret',
  'metrics_token',
  'access_key_id',
  'secret_access_key',
  'session_token',
  'url_signing_secret',
]);
/** Fields holding comma-separated `tenant:secret` pairs. */
const SECRET_PAIR_FIELDS = new Set(['api_keys', 'webhook_secrets']);

/**
 * Every secret an expanded document holds, read without validating it (it is being refused):
 * the text of secret fields, the secret half of each `tenant:secret` pair, a database password.
 */
function documentSecrets(value: unknown, field = ''): string[] {
  if (typeof value === 'string') {
    if (SECRET_FIELDS.has(field)) return [value.trim()];
    if (SECRET_PAIR_FIELDS.has(field)) {
      return value.split(',').flatMap((pair) => {
        const colon = pair.indexOf(':');
        return [(colon < 0 ? pair : pair.slice(colon + 1)).trim()];
      });
    }
    return field === 'url' ? databasePasswords(value.trim()) : [];
  }
  if (Array.isArray(value)) return value.flatMap((item) => documentSecrets(item, field));
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).flatMap(([key, item]) => documentSecrets(item, key));
  }
  return [];
}

/** Names of environment variables that hold a secret: `…_KEY(S)`, `…_SECRET(S)`, `…_TOKEN`, `…_PASSWORD`. */
const SECRET_VARIABLE = /(?:KEYS?|SECRETS?|TOKEN|PASSWORD|PASSWD|CREDENTIALS?)$/i;

/**
 * The secrets the environment holds, wherever the document uses them: a variable whose name says
 * it is one, and the password of a database URL in any variable. A variable set in the wrong
 * field (`port: ${FREEPIK_API_KEY}`, its own field given `${PORT}`) is no secret field's text.
 */
function environmentSecrets(env: NodeJS.ProcessEnv): string[] {
  return Object.entries(env).flatMap(([name, value]) => {
    if (!value) return [];
    return SECRET_VARIABLE.test(name) ? [value.trim(), ...documentSecrets(value, 'api_keys')] : databasePasswords(value.trim());
  });
}

/** Secrets shorter than this are ordinary words (as the log scrubber takes them). */
const MIN_QUOTED_SECRET = 6;

/** `message` with every quoted text (`"…"`) that holds one of `secrets` shown as `"[redacted]"`. */
function withoutQuotedSecrets(message: string, secrets: readonly string[]): string {
  const known = secrets.filter((secret) => secret.length >= MIN_QUOTED_SECRET);
  if (known.length === 0) return message;
  return message.replace(/"(?:[^"\\]|\\.)*"/g, (quoted) => {
    let text: string;
    try {
      text = JSON.parse(quoted) as string;
    } catch {
      text = quoted;
    }
    return known.some((secret) => text.includes(secret)) ? '"[redacted]"' : quoted;
  });
}

/**
 * A refusal of `config` made after it was read (a provider block that does not add up, judged by
 * the provider's own regions and shapes) with every quoted text that holds one of its secrets
 * shown as `"[redacted]"`, as the config's own refusals are: a key pasted into the wrong variable
 * lands in a field that is no secret field.
 */
export function withoutConfiguredSecrets(message: string, config: GatewayConfig): string {
  return withoutQuotedSecrets(message, configuredSecrets(config));
}

/** Fields whose text may hold a secret besides the secret fields: a URL's `user:password@`. */
const CREDENTIAL_URL_FIELDS = new Set(['url', 'base_url']);

/**
 * A malformed `${…}` refused before the document is read: its message quotes the field's text,
 * which in a secret field is the secret (`${FREEPIK_API_KEY:-<key>` unclosed, a key pasted as a
 * variable's name), so there every quoted text goes; elsewhere only a secret of the environment's.
 */
function withoutQuotedText(error: ConfigFieldError, env: NodeJS.ProcessEnv): string {
  const field = [...error.path].reverse().find((part) => !/^\d+$/.test(part)) ?? '';
  if (SECRET_FIELDS.has(field) || SECRET_PAIR_FIELDS.has(field) || CREDENTIAL_URL_FIELDS.has(field)) {
    // From the first quote to the last: the text is quoted as it is, so a `"` or `\\` in the secret ends no quote.
    return error.message.replace(/"[\s\S]*"/, '"[redacted]"');
  }
  return withoutQuotedSecrets(error.message, environmentSecrets(env));
}

/**
 * The exit status of a start refused over its configuration (EX_CONFIG of sysexits.h, as
 * `kling-gateway check-config` exits): a supervisor restarting on failure gets the same refusal.
 */
export const CONFIG_REFUSED_EXIT = 78;

/**
 * A configuration refusal found after the file was validated (a provider block the gateway cannot
 * place: an unknown region or API shape, credentials that do not add up), its message naming the
 * field: the start exits `CONFIG_REFUSED_EXIT` with it, as for a `ConfigError`, not 1 as a crash.
 */
export class ConfigRefusal extends Error {
  override readonly name = 'ConfigRefusal';
}

/** Why a configuration was refused, one line per field. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source} is not valid:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
  }
}

/**
 * True when the public URL the document wrote carries its `server.port` as written (the shipped
 * `http://127.0.0.1:${PORT}` with PUBLIC_URL unset): when that port is refused, the URL is refused
 * only for it, and the port alone is named.
 */
function publicUrlHoldsPort(expanded: unknown): boolean {
  const port = writtenAt(expanded, ['server', 'port']);
  const publicUrl = writtenAt(expanded, ['server', 'public_url']);
  if ((typeof port !== 'string' && typeof port !== 'number') || typeof publicUrl !== 'string') return false;
  const text = String(port).trim();
  return text !== '' && publicUrl.includes(`:${text}`);
}

function describePath(path: readonly PropertyKey[]): string {
  return path.map(String).join('.') || '(root)';
}

/**
 * Validates a parsed document. `knownProviders` are the ids in the registry: a block for any
 * other id is refused, so a typo never silently disables a provider.
 */
export function parseConfig(
  document: unknown,
  env: NodeJS.ProcessEnv,
  knownProviders: readonly string[],
  source = 'config.yaml',
): GatewayConfig {
  let expanded: unknown;
  try {
    expanded = expandEnvironmentDeep(document ?? {}, env);
  } catch (error) {
    if (error instanceof ConfigFieldError) throw new ConfigError(source, [withoutQuotedText(error, env)]);
    throw error;
  }
  const result = GatewayConfig.safeParse(expanded, { error: issueMessage });
  if (!result.success) {
    // A message may quote what it got (`expected a number, got "…"`): when two variables are
    // swapped, that is a key, so every secret the document and the environment hold is scrubbed
    // from the lines.
    const secrets = [...documentSecrets(expanded), ...environmentSecrets(env)];
    const portRefused = result.error.issues.some((issue) => describePath(issue.path) === 'server.port');
    throw new ConfigError(
      source,
      result.error.issues.filter((issue) => !(portRefused && describePath(issue.path) === 'server.public_url' && publicUrlHoldsPort(expanded))).flatMap((issue) =>
        // Each unknown field by its own path, as the API names them (zod puts them together at their object's).
        issue.code === 'unrecognized_keys'
          ? issue.keys.map((key) => withoutQuotedSecrets(`${describePath([...issue.path, key])}: unknown field`, secrets))
          : [withoutQuotedSecrets(`${describePath(issue.path)}: ${issue.message}`, secrets)],
      ),
    );
  }
  const problems: string[] = prototypeKeyProblems(expanded, knownProviders);
  for (const id of Object.keys(result.data.providers)) {
    if (!knownProviders.includes(id)) {
      problems.push(`providers.${id}: unknown provider (known: ${knownProviders.join(', ')})`);
    }
  }
  for (const [id, settings] of Object.entries(result.data.providers)) {
    problems.push(...providerCredentialProblems(id, settings));
  }
  const config = result.data;
  const tenants = new Set(config.auth.api_keys.map((entry) => entry.tenant));
  for (const tenant of Object.keys(config.tenants)) {
    if (!tenants.has(tenant)) problems.push(`tenants.${tenant}: no API key names this tenant`);
  }
  for (const { tenant } of config.auth.webhook_secrets) {
    if (!tenants.has(tenant)) problems.push(`auth.webhook_secrets: no API key names tenant ${tenant} (GATEWAY_API_KEYS)`);
  }
  // Tenants named only by a key work with the defaults; their secret may come from the environment.
  const live = isLiveConfig(config);
  for (const tenant of tenants) {
    const settings = (config.tenants[tenant] ??= TenantConfig.parse({}));
    const fromEnvironment = config.auth.webhook_secrets.filter((entry) => entry.tenant === tenant).map((entry) => entry.secret);
    if (fromEnvironment.length > 0) settings.webhook_secret ??= fromEnvironment;
    // The sandbox signs with the shipped secret, so webhooks work with nothing configured.
    if (!live) settings.webhook_secret ??= [SHIPPED_SANDBOX_WEBHOOK_SECRET];
  }
  // Each tenant's webhook secrets, each with the field that names it (the shipped-secret and the whsec_ checks below).
  const tenantSecrets = new Map(
    Object.entries(config.tenants).map(([tenant, settings]) => [tenant, secretFields(`tenants.${tenant}.webhook_secret`, settings.webhook_secret, writtenTenantSecret(expanded, tenant))]),
  );
  if (live) {
    if (config.auth.api_keys.some((entry) => entry.key === SHIPPED_SANDBOX_KEY)) {
      problems.push(
        `auth.api_keys: the shipped sandbox key "${SHIPPED_SANDBOX_KEY}" is in use while an upstream key is set (a live deployment); set GATEWAY_API_KEYS to your own tenant:key pairs`,
      );
    }
    if (usesShippedDatabasePassword(config.database.url)) {
      problems.push(
        'database.url: the PostgreSQL password shipped in deploy/docker-compose.yml is in use while an upstream key is set (a live deployment); set POSTGRES_PASSWORD (Compose) or a password of your own in DATABASE_URL',
      );
    }
    for (const [tenant, fields] of tenantSecrets) {
      // In any place of a list: a receiver that still takes it would take anyone's webhooks.
      for (const [field, secret] of fields) {
        if (!isShippedWebhookSecret(secret)) continue;
        problems.push(
          `${field}: the shipped sandbox webhook secret is in use while an upstream key is set (a live deployment); set GATEWAY_WEBHOOK_SECRETS (tenant:whsec_…) or tenants.${tenant}.webhook_secret`,
        );
      }
    }
    // Verifying a provider's webhooks with it, the gateway would take anyone's word that a task is done.
    for (const [field, secret] of providerWebhookSecretFields(config, expanded)) {
      if (!isShippedWebhookSecret(secret)) continue;
      problems.push(
        `${field}: the shipped sandbox webhook secret is in use while an upstream key is set (a live deployment): anyone could sign this provider's webhooks with it; set the secret the provider gives you`,
      );
    }
  }
  for (const [tenant, settings] of Object.entries(config.tenants)) {
    for (const [field, secret] of tenantSecrets.get(tenant) ?? []) {
      if (!secret.startsWith('whsec_')) problems.push(`${field}: must start with whsec_`);
      else if (!canSign(secret)) problems.push(`${field}: ${UNSIGNABLE}`);
    }
    if (settings.events_url && !settings.webhook_secret) {
      problems.push(`tenants.${tenant}.events_url: needs tenants.${tenant}.webhook_secret to sign the events`);
    }
    const budget = settings.budget;
    if (budget?.per_task_limit !== undefined && budget.per_task_limit > budget.amount) {
      problems.push(`tenants.${tenant}.budget.per_task_limit: larger than the budget amount ${budget.amount}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(source, problems);
  return config;
}

/**
 * Each secret of a webhook secret field with the field that names it: the field itself for one
 * secret, `field[i]` for each of a list, `i` its place in the list as `written` (the document's
 * text, where unset entries and repeats still count) when it was written as one.
 */
function secretFields(field: string, secrets: readonly string[] | undefined, written: unknown): [string, string][] {
  if (!secrets) return [];
  return secrets.map((secret, index) => {
    const place = Array.isArray(written) ? written.findIndex((entry) => typeof entry === 'string' && entry.trim() === secret) : -1;
    if (place >= 0) return [`${field}[${place}]`, secret];
    return [secrets.length === 1 ? field : `${field}[${index}]`, secret];
  });
}

/** What the expanded document wrote at `path` (keys of maps, places in lists), before it was read. */
function writtenAt(expanded: unknown, path: readonly (string | number)[]): unknown {
  let value = expanded;
  for (const step of path) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, step)) return undefined;
    value = (value as Record<string | number, unknown>)[step];
  }
  return value;
}

/** The `webhook_secret` of `tenant` as the expanded document wrote it, before it was read. */
function writtenTenantSecret(expanded: unknown, tenant: string): unknown {
  return writtenAt(expanded, ['tenants', tenant, 'webhook_secret']);
}

/** Each webhook secret of every provider block and of each of its accounts, with the field that names it. */
function providerWebhookSecretFields(config: GatewayConfig, expanded: unknown): [string, string][] {
  return Object.entries(config.providers).flatMap(([id, settings]) => [
    ...secretFields(`providers.${id}.webhook_secret`, settings.webhook_secret, writtenAt(expanded, ['providers', id, 'webhook_secret'])),
    ...(settings.accounts ?? []).flatMap((account, index) =>
      secretFields(`providers.${id}.accounts[${index}].webhook_secret`, account.webhook_secret, writtenAt(expanded, ['providers', id, 'accounts', index, 'webhook_secret'])),
    ),
  ]);
}

/**
 * A `tenants` or `providers` block named `__proto__` (YAML makes it an ordinary key): zod leaves
 * such a key out of a record without a word, so it is named here rather than ignored.
 */
function prototypeKeyProblems(expanded: unknown, knownProviders: readonly string[]): string[] {
  const named = (field: 'tenants' | 'providers') => {
    const map = expanded !== null && typeof expanded === 'object' ? (expanded as Record<string, unknown>)[field] : undefined;
    return map !== null && typeof map === 'object' && Object.hasOwn(map, '__proto__');
  };
  return [
    ...(named('tenants') ? ['tenants.__proto__: "__proto__" cannot name a tenant (it is a reserved word)'] : []),
    ...(named('providers') ? [`providers.__proto__: unknown provider (known: ${knownProviders.join(', ')})`] : []),
  ];
}

/** What does not add up in a provider block's credentials and accounts, one line per field. */
function providerCredentialProblems(id: string, settings: ProviderConfig): string[] {
  const problems: string[] = [];
  const pairProblem = (path: string, block: { access_key?: string | undefined; secret_key?: string | undefined }) => {
    if (Boolean(block.access_key) !== Boolean(block.secret_key)) {
      problems.push(`${path}.${block.access_key ? 'secret_key' : 'access_key'}: give access_key and secret_key together`);
    }
  };
  pairProblem(`providers.${id}`, settings);
  if (!settings.accounts) return problems;
  for (const field of ['api_key', 'access_key', 'secret_key'] as const) {
    if (settings[field]) {
      problems.push(`providers.${id}.${field}: give credentials either here (one account) or in accounts, not both`);
    }
  }
  const seen = new Set<string>();
  for (const [index, account] of settings.accounts.entries()) {
    const path = `providers.${id}.accounts[${index}]`;
    if (seen.has(account.id)) problems.push(`${path}.id: "${account.id}" is used by an earlier account of ${id}`);
    seen.add(account.id);
    pairProblem(path, account);
    if (!account.api_key && !account.access_key) {
      problems.push(`${path}: needs api_key (or access_key and secret_key)`);
    } else if (account.api_key && account.access_key) {
      problems.push(`${path}.api_key: give api_key, or access_key and secret_key, not both`);
    }
  }
  return problems;
}

/**
 * Two accounts of a provider with one key reached at one address: one upstream account, which
 * gets twice its cap and rate windows, and two circuits (a copied `api_key: "${KEY_1}"` line).
 * Warned about, not refused: a proxy in front may hand each account's calls to a key of its own.
 * The start logs it and `check-config` warns the same, naming the second account's field.
 */
export function sharedKeyWarnings(config: Pick<GatewayConfig, 'providers'>): string[] {
  const warnings: string[] = [];
  for (const [id, settings] of Object.entries(config.providers)) {
    if (!settings?.enabled || !settings.accounts) continue;
    const keyHolders = new Map<string, number>();
    for (const [index, account] of settings.accounts.entries()) {
      const key = account.api_key ?? account.access_key;
      if (!key) continue;
      const field = account.api_key ? 'api_key' : 'access_key';
      const holder = `${field}\n${key}\n${accountAddress(settings, account)}`;
      const earlier = keyHolders.get(holder);
      if (earlier === undefined) keyHolders.set(holder, index);
      else {
        warnings.push(
          `providers.${id}.accounts[${index}].${field}: the key of accounts[${earlier}] (${settings.accounts[earlier]!.id}), reached at the same address: ` +
            // Said as the condition it is: behind a proxy that maps each account to a key of its own, it is right as it is.
            'unless a proxy there gives each account a key of its own, this is one upstream account, which gets twice its cap and rate windows; give each account its own key',
        );
      }
    }
  }
  return warnings;
}

/**
 * Where an account is reached, as its configuration names it: its own `base_url` or `region`, else
 * the provider's. Base URLs that differ only in the case of scheme or host, a trailing slash, a
 * default port or a user part are one address (as the router counts them).
 */
function accountAddress(settings: ProviderConfig, account: ProviderAccountConfig): string {
  const own = account.base_url !== undefined || account.region !== undefined;
  const baseUrl = own ? account.base_url : settings.base_url;
  const region = own ? account.region : settings.region;
  return baseUrl === undefined ? `region ${region ?? ''}` : addressOf(baseUrl);
}

/**
 * A `${VAR}` written unquoted in a flow collection (`- { api_key: ${KEY} }`) is not YAML: `{` opens a
 * map there. When the line YAML stopped at holds one, the error says how to write it.
 */
function flowPlaceholderHint(text: string, error: YamlTextError): string {
  const line = error.line;
  const lines = text.split('\n');
  const written = line === undefined ? undefined : lines[line - 1];
  if (line === undefined || written === undefined) return '';
  // Said only when quoting them is what mends the line: a line that breaks for another reason (a
  // tab as indentation) may hold a ${VAR} all the same.
  const quoted = written.replace(/(^|[^"'])(\$\{[^}]*\})/g, '$1"$2"');
  if (quoted === written) return '';
  lines[line - 1] = quoted;
  try {
    parseYamlText(lines.join('\n'));
  } catch (reparsed) {
    if (!(reparsed instanceof YamlTextError) || reparsed.line === line) return '';
  }
  return '\n  a ${VAR} inside { } or [ ] must be quoted: "${VAR}"';
}

/** Reads, expands and validates a YAML file. */
export function loadConfigFile(path: string, env: NodeJS.ProcessEnv, knownProviders: readonly string[]): GatewayConfig {
  return parseConfigText(readConfigText(path), path, env, knownProviders);
}

/** The text of the configuration file at `path`, or the `ConfigError` saying why it cannot be read. */
export function readConfigText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [`cannot be read: ${(error as Error).message}`]);
  }
}

/** Expands and validates `text`, the YAML of the configuration file at `path` (named in the problems). */
export function parseConfigText(text: string, path: string, env: NodeJS.ProcessEnv, knownProviders: readonly string[]): GatewayConfig {
  let document: unknown;
  try {
    document = parseYamlText(text);
  } catch (error) {
    if (!(error instanceof YamlTextError)) throw error;
    // Where, not what: a line may hold a key (the error quotes none of the file's text).
    throw new ConfigError(path, [`is not valid YAML: ${error.message}${flowPlaceholderHint(text, error)}`]);
  }
  return parseConfig(document, env, knownProviders, path);
}
