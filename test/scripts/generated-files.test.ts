import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GATEWAY_OPENAPI_PATH, renderGatewayOpenApi } from '../../scripts/generate-openapi.js';
import { generateUpstreamTypes } from '../../scripts/generate-upstream-types.js';

describe('generated files are committed up to date', () => {
  it('openapi/gateway.json matches the document generated from the zod schemas', () => {
    const committed = readFileSync(GATEWAY_OPENAPI_PATH, 'utf8');
    expect(committed, 'run npm run generate:openapi').toBe(renderGatewayOpenApi());
  });

  it('the gateway document describes every public route', () => {
    const document = JSON.parse(renderGatewayOpenApi()) as { paths: Record<string, Record<string, unknown>> };
    expect(Object.keys(document.paths).sort()).toEqual(
      [
        '/healthz',
        '/metrics',
        '/readyz',
        '/v1/models',
        '/v1/providers',
        '/v1/videos',
        '/v1/videos/quote',
        '/v1/videos/{id}',
        '/v1/videos/{id}/events',
        '/v1/webhooks/freepik',
        '/v1/webhooks/kling-legacy/{token}',
      ].sort(),
    );
    expect(Object.keys(document.paths['/v1/videos']!)).toEqual(['post', 'get']);
  });

  it('upstream types match what openapi-typescript generates from openapi/<provider>.yaml', async () => {
    const outputs = await generateUpstreamTypes();
    expect([...outputs.keys()].sort()).toEqual([
      'src/providers/freepik/freepik-api.generated.ts',
      'src/providers/kling-legacy/kling-legacy-api.generated.ts',
      'src/providers/kling3api/kling3api-api.generated.ts',
    ]);
    for (const [path, content] of outputs) {
      expect(readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8'), `run npm run generate:upstream (${path})`).toBe(content);
    }
  });
});
