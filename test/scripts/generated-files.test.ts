import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GATEWAY_OPENAPI_PATH, renderGatewayOpenApi } from '../../scripts/generate-openapi.js';
import { generateUpstreamTypes } from '../../scripts/generate-upstream-types.js';
import { PROVIDER_IDS, PROVIDERS } from '../../src/providers/registry.js';

/** Where each registered provider's upstream calls back, by the kind of webhook it declares. */
const WEBHOOK_ROUTES = PROVIDERS.flatMap((provider) => {
  // A signed provider's webhooks come to its route, or to the path of the create they are about.
  if (provider.inboundWebhook === 'signed') return [`/v1/webhooks/${provider.id}`, `/v1/webhooks/${provider.id}/{attempt}`];
  if (provider.inboundWebhook === 'token') return [`/v1/webhooks/${provider.id}/{token}`];
  return [];
});

describe('generated files are committed up to date', () => {
  it('openapi/gateway.json matches the document generated from the zod schemas', () => {
    const committed = readFileSync(GATEWAY_OPENAPI_PATH, 'utf8');
    expect(committed, 'run npm run generate:openapi').toBe(renderGatewayOpenApi());
  });

  it('the gateway document describes every public route, and the webhook route of every provider that takes webhooks', () => {
    const document = JSON.parse(renderGatewayOpenApi()) as { paths: Record<string, Record<string, unknown>> };
    expect(Object.keys(document.paths).sort()).toEqual(
      [
        '/healthz',
        '/metrics',
        '/readyz',
        '/v1/models',
        '/v1/providers',
        '/v1/usage',
        '/v1/videos',
        '/v1/videos/quote',
        '/v1/videos/{id}',
        '/v1/videos/{id}/cancel',
        '/v1/videos/{id}/content',
        '/v1/videos/{id}/events',
        '/v1/videos/{id}/webhooks',
        ...WEBHOOK_ROUTES,
      ].sort(),
    );
    expect(Object.keys(document.paths['/v1/videos']!)).toEqual(['post', 'get']);
    expect(Object.keys(document.paths['/v1/videos/{id}/cancel']!)).toEqual(['post']);
    expect(Object.keys(document.paths['/v1/videos/{id}/content']!)).toEqual(['get']);
  });

  it('names every operation of the gateway document with its own operationId, for generated clients', () => {
    type Operations = Record<string, Record<string, { operationId?: string }>>;
    const document = JSON.parse(renderGatewayOpenApi()) as { paths: Operations; webhooks?: Operations };
    const operations = [...Object.entries(document.paths), ...Object.entries(document.webhooks ?? {})].flatMap(([path, item]) =>
      Object.entries(item).map(([method, operation]) => ({ where: `${method.toUpperCase()} ${path}`, id: operation.operationId })),
    );
    expect(operations.filter((operation) => !operation.id || !/^[a-z][A-Za-z0-9]*$/.test(operation.id)).map((operation) => operation.where)).toEqual([]);
    const ids = operations.map((operation) => operation.id);
    expect(ids.filter((id, index) => ids.indexOf(id) !== index)).toEqual([]);
    expect(Object.fromEntries(operations.filter((operation) => operation.where.includes(' /v1/videos')).map((operation) => [operation.where, operation.id]))).toMatchObject({
      'POST /v1/videos': 'createVideo',
      'GET /v1/videos': 'listVideos',
      'GET /v1/videos/{id}': 'getVideo',
    });
  });

  it('the gateway document describes the task and account events it sends', () => {
    const document = JSON.parse(renderGatewayOpenApi()) as { webhooks?: Record<string, unknown> };
    expect(Object.keys(document.webhooks ?? {})).toEqual(['video.processing', 'video.succeeded', 'video.failed', 'video.canceled', 'budget.warning', 'budget.exhausted']);
  });

  it('upstream types match what openapi-typescript generates from openapi/<provider>.yaml', async () => {
    const outputs = await generateUpstreamTypes();
    expect([...outputs.keys()].sort()).toEqual(PROVIDER_IDS.map((id) => `src/providers/${id}/${id}-api.generated.ts`).sort());
    for (const [path, content] of outputs) {
      expect(readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8'), `run npm run generate:upstream (${path})`).toBe(content);
    }
  });
});
