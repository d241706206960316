/**
 * Writes the gateway's OpenAPI document (generated from the zod schemas, with the webhook routes
 * of every registered provider) to `openapi/gateway.json`. `--check` exits non-zero when the committed file is out of date.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { buildOpenApiDocument } from '../src/http/openapi.js';
import { PROVIDERS } from '../src/providers/registry.js';

export const GATEWAY_OPENAPI_PATH = new URL('../openapi/gateway.json', import.meta.url);

export function renderGatewayOpenApi(): string {
  return `${JSON.stringify(buildOpenApiDocument(PROVIDERS), null, 2)}\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rendered = renderGatewayOpenApi();
  const current = existsSync(GATEWAY_OPENAPI_PATH) ? readFileSync(GATEWAY_OPENAPI_PATH, 'utf8') : '';
  if (process.argv.includes('--check')) {
    if (current !== rendered) {
      console.error('openapi/gateway.json is out of date; run npm run generate:openapi');
      process.exit(1);
    }
  } else if (current !== rendered) {
    writeFileSync(GATEWAY_OPENAPI_PATH, rendered);
    console.log('wrote openapi/gateway.json');
  }
}
