/**
 * The express application: middleware order, routes, and errors as problem details.
 */
import express, { type Express } from 'express';
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { bodyLimitBytes, isLiveConfig, type GatewayConfig } from '../config/config.js';
import type { Clock } from '../core/clock.js';
import type { InboundWebhooks } from '../core/tasks/inbound-webhooks.js';
import type { OutputContent } from '../core/tasks/output-content.js';
import type { ProviderCatalog } from '../core/tasks/provider-catalog.js';
import type { TaskService } from '../core/tasks/task-service.js';
import type { VideoProvider } from '../core/upstream/provider.js';
import type { UsageReport } from '../core/tasks/usage-report.js';
import type { Logger } from '../observability/logger.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import { catalogRoutes } from './catalog-routes.js';
import { consoleHasFile, consoleRoutes, findConsoleAssets } from './console-routes.js';
import { contentRoutes } from './content-routes.js';
import { DOCS_FILES, DOCS_PAGES, docsRoutes } from './docs-routes.js';
import { READ_VIDEO_ROUTE, withHotRead, type RequestListener } from './hot-read.js';
import { withHotWebhooks } from './hot-webhook.js';
import { jsonBodyBytes } from './json-body-bytes.js';
import { bearerAuth, bearerKeyOf, everyRequest, jsonInUtf8, keyTenants, methodNotAllowedHandler, notFoundHandler, optionalBearerAuth, optionsHandler, problemHandler, refuseProtoKeys, refuseTransferCodings, RequestRecording, type StoreTrouble } from './middleware.js';
import { buildOpenApiDocument } from './openapi.js';
import { documentRoutes, RouteTable, type Route } from './route-table.js';
import { bodyTimeout, closeLateBodies, createRateLimit, giveBackRefusedCreate, giveBackReplayedCreate, metricsAccess, OpenRequestCaps, oversizeBody, refuseOversizeBody, type CreateLimiter, type TenantLimitSettings } from './tenant-limits.js';
import type { StopGate } from './stop-gate.js';
import { usageRoutes } from './usage-routes.js';
import { readVideo, videoRoutes } from './video-routes.js';
import { WebhookBodyBudget } from './webhook-body-budget.js';
import { webhookRoutes } from './webhook-routes.js';

/** The core services the routes call; routes never reach the store themselves. */
export interface AppDependencies {
  config: GatewayConfig;
  service: TaskService;
  /** Stored outputs (`/v1/videos/{id}/content`). */
  content: OutputContent;
  catalog: ProviderCatalog;
  usage: UsageReport;
  inbound: InboundWebhooks;
  metrics: GatewayMetrics;
  logger: Logger;
  /** The providers the gateway serves: their inbound webhook routes are in the API document. */
  providers: readonly VideoProvider[];
  /** Every provider id the gateway knows, run or not (what `GET /v1/videos?provider=` takes). */
  providerIds: readonly string[];
  /** The gateway's clock (body time limits). */
  clock: Clock;
  /** Counts creates per tenant (shared by replicas on PostgreSQL). */
  createLimiter: CreateLimiter;
  /** Refuses new requests once the gateway is stopping, and counts those still running. */
  gate?: StopGate;
  /** Whether an error says the store is unreachable right now or full (answered 503 + Retry-After, not 500). */
  storeTrouble: StoreTrouble;
}

/** A tenant's limits: its own `tenants.<name>.limits` over the top-level `limits`. */
export function tenantLimits(config: GatewayConfig): (tenant: string) => TenantLimitSettings {
  return (tenant) => {
    const own = config.tenants[tenant]?.limits ?? {};
    return {
      creates_per_minute: own.creates_per_minute ?? config.limits.creates_per_minute,
      open_streams: own.open_streams ?? config.limits.open_streams,
      open_waits: own.open_waits ?? config.limits.open_waits,
    };
  };
}

/** Probes and scrapes (`/readyz` is the Compose health check): frequent, and not worth a log line each. */
const UNLOGGED_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

/** The express app, and what the HTTP server runs: the app behind the hot read and webhooks (`hot-read.ts`, `hot-webhook.ts`). */
export interface GatewayHttp {
  app: Express;
  listener: RequestListener;
  /** Whether a request announces a body over its route's limit (the limit, or undefined): the server's `checkContinue` asks. */
  oversizeBody: (req: IncomingMessage) => number | undefined;
  /** Logs and counts answers; also those the server gives before any route (`refuseBeforeRoutes`). */
  recording: RequestRecording;
}

export function createHttp(dependencies: AppDependencies): GatewayHttp {
  const { config, service, inbound, metrics, logger, clock, gate } = dependencies;
  const recording = new RequestRecording(metrics, logger, UNLOGGED_PATHS);
  // One budget for the webhook bodies read at once, on the hot webhook and express alike.
  const budget = new WebhookBodyBudget(config.server.webhook_bodies_max_bytes);
  const app = createApp(dependencies, recording, budget);
  const tenantOfKey = keyTenants(config.auth.api_keys);
  const etagOf = app.get('etag fn') as ((body: Buffer) => string | undefined) | undefined;
  const etag = (body: Buffer) => etagOf?.(body);
  const webhooks = withHotWebhooks(app as unknown as RequestListener, {
    inbound,
    recording,
    logger,
    gate,
    bodyTimeoutMs: config.server.body_timeout_ms,
    clock,
    etag,
    storeTrouble: dependencies.storeTrouble,
    budget,
  });
  const listener = withHotRead(webhooks, {
    service,
    tenantOf: (authorization) => {
      const key = bearerKeyOf(authorization);
      return key === undefined ? undefined : tenantOfKey(key);
    },
    recording,
    stopping: () => gate?.closed ?? false,
    etag,
  });
  return {
    app,
    listener: closeLateBodies(listener, config.server.body_timeout_ms, clock),
    oversizeBody: oversizeBody(bodyLimitBytes(config.server.body_limit)),
    recording,
  };
}

/**
 * The routes the API document leaves out, for the route table (`OPTIONS`, `405`): the document
 * itself, its Swagger UI page and the files that page loads, the console's files, and `/`.
 */
function gatewayPages(consoleHas: (file: string) => boolean): Route[] {
  return [
    { path: '/openapi.json', methods: ['GET'] },
    ...DOCS_PAGES.map((page) => ({ path: `/docs${page === '/' ? '' : page}`, methods: ['GET'] })),
    ...DOCS_FILES.map((file) => ({ path: `/docs/${file}`, methods: ['GET'] })),
    { path: '/console', methods: ['GET'] },
    { path: '/console/{file*}', methods: ['GET'], has: consoleHas },
    { path: '/', methods: ['GET'] },
  ];
}

/** The express app alone (`createHttp` puts the hot read and webhooks in front of it). */
export function createApp(
  { config, service, content, catalog, usage, inbound, metrics, logger, providers, providerIds, clock, createLimiter, gate, storeTrouble }: AppDependencies,
  recording = new RequestRecording(metrics, logger, UNLOGGED_PATHS),
  webhookBudget = new WebhookBodyBudget(config.server.webhook_bodies_max_bytes),
): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.server.trust_proxy);
  app.set('query parser', 'simple');

  // Built when first asked for, not at start: it is about a tenth of a start's CPU, and a
  // restarted gateway should listen (for webhooks naming its tasks) as soon as it can.
  let built: ReturnType<typeof buildOpenApiDocument> | undefined;
  const document = () => (built ??= buildOpenApiDocument(providers, providerIds));
  const consoleDirectory = findConsoleAssets();
  const routes = new RouteTable(() => [...documentRoutes(document().paths ?? {}), ...gatewayPages(consoleHasFile(consoleDirectory))]);

  app.use(everyRequest(recording, routes));
  if (gate) app.use(gate.middleware());
  app.use(optionsHandler(routes));
  // A body announced over its route's limit is refused before anything would read it.
  const bodyLimit = bodyLimitBytes(config.server.body_limit);
  app.use(refuseOversizeBody(oversizeBody(bodyLimit)));
  app.use(refuseTransferCodings());
  app.use(bodyTimeout(config.server.body_timeout_ms, clock));

  const auth = bearerAuth(config.auth.api_keys);
  const bodyBytes = jsonBodyBytes();
  const json = [
    jsonInUtf8(),
    express.json({ limit: bodyLimit, strict: true, type: 'application/json', reviver: refuseProtoKeys, verify: bodyBytes.verify }),
    bodyBytes.check,
  ];
  const limitsFor = tenantLimits(config);
  const caps = new OpenRequestCaps(limitsFor);
  // The hot read first, as a route of its own right after what every request gets: it skips the
  // layers of the document, probe, webhook, content and video routes (no other route matches it).
  // Its plain case rarely gets here: `createHttp` answers it ahead of express (`hot-read.ts`).
  app.get(READ_VIDEO_ROUTE, auth, json, readVideo(service, caps));

  app.get('/openapi.json', (_req, res) => {
    res.json(document());
  });
  app.use('/docs', docsRoutes(document));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const { ready, store, reason } = await service.readiness();
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'unavailable', store, ...(reason ? { reason } : {}) });
  });
  const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
  app.get('/metrics', metricsAccess(config.server.metrics_token, isLiveConfig(config), sha256), async (_req, res) => {
    const { contentType, body } = await metrics.exposition();
    res.type(contentType).send(body);
  });

  // Webhooks read their raw body (signatures are over the exact bytes): before the JSON parser.
  app.use('/v1/webhooks', webhookRoutes(inbound, webhookBudget));
  // A webhook route takes no gateway key: another method there is 405 before `/v1` asks for one.
  const methodNotAllowed = methodNotAllowedHandler(routes);
  app.all(['/v1/webhooks/:provider', '/v1/webhooks/:provider/:token'], methodNotAllowed);

  // Content takes the gateway key or a signed link (for <video src>, downloads, webhook receivers).
  app.use('/v1/videos', contentRoutes(content, metrics, optionalBearerAuth(config.auth.api_keys)));
  app.use('/v1/videos', auth, json, videoRoutes(service, {
      createLimit: createRateLimit(createLimiter, limitsFor, (tenant, key) => service.isRepeat(tenant, key)),
      createRefused: giveBackRefusedCreate(createLimiter),
      createReplayed: giveBackReplayedCreate(createLimiter),
      caps,
    }, clock));
  app.use('/v1', auth, catalogRoutes(catalog));
  app.use('/v1/usage', auth, usageRoutes(usage));

  app.use('/console', consoleRoutes(consoleDirectory));
  app.get('/', (_req, res) => res.redirect(302, '/console/'));

  app.use(methodNotAllowed);
  app.use(notFoundHandler());
  app.use(problemHandler(logger, storeTrouble));
  return app;
}
