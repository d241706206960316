/**
 * The typed client is generated from openapi/gateway.json and must not drift from it: its types
 * are regenerated here and compared with the committed file, and the endpoints it calls without
 * generated types (cancel, content, usage, webhooks: optional, as an older gateway's document may
 * lack them) are checked against this gateway's document, which describes each of them.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { IDEMPOTENCY_KEY_IN_PROGRESS, IDEMPOTENCY_KEY_REUSED, OPTIONAL_ENDPOINTS } from '../../packages/client/src/index.js';
import { CLIENT_TYPES_PATH, generateClientTypes } from '../../scripts/generate-client-types.js';

type Json = Record<string, any>;
const document = JSON.parse(readFileSync(new URL('../../openapi/gateway.json', import.meta.url), 'utf8')) as Json;

function operation(endpoint: string): Json | undefined {
  const [method, path] = endpoint.split(' ') as [string, string];
  return document.paths?.[path]?.[method.toLowerCase()];
}

describe('the typed client follows openapi/gateway.json', () => {
  it('has the types openapi-typescript generates from the committed document', async () => {
    expect(readFileSync(CLIENT_TYPES_PATH, 'utf8'), 'run npm run generate:client').toBe(await generateClientTypes());
  });

  it("tells a create's two Idempotency-Key 409s apart by the types the document gives them", () => {
    const conflict = operation('POST /v1/videos')?.responses?.['409'] as Json | undefined;
    const ref = conflict?.content?.['application/problem+json']?.schema?.$ref as string | undefined;
    const schema = document.components?.schemas?.[ref?.split('/').pop() ?? ''] as Json | undefined;
    expect(schema?.properties?.type?.enum).toEqual([IDEMPOTENCY_KEY_REUSED, IDEMPOTENCY_KEY_IN_PROGRESS]);
    expect(conflict?.headers?.['retry-after'], 'the 409 documents Retry-After').toBeDefined();
  });

  it('calls each optional endpoint the way the document describes it', () => {
    // This gateway's document describes all four (the client still asks a gateway whether its document does).
    const described = (name: keyof typeof OPTIONAL_ENDPOINTS): Json => {
      const found = operation(OPTIONAL_ENDPOINTS[name]);
      expect(found, `openapi/gateway.json describes ${OPTIONAL_ENDPOINTS[name]}`).toBeDefined();
      return found!;
    };
    expect(Object.keys(OPTIONAL_ENDPOINTS)).toEqual(['cancel', 'content', 'usage', 'webhooks']);
    const cancel = described('cancel');
    const success = cancel.responses?.['200'] ?? cancel.responses?.['202'];
    expect(success?.content?.['application/json']?.schema?.$ref, 'cancelVideo reads a Task').toBe('#/components/schemas/Task');
    const content = described('content');
    const parameters = (content.parameters ?? []) as Json[];
    expect(parameters.find((parameter) => parameter.in === 'query' && parameter.name === 'index'), 'downloadOutput sends ?index=N').toBeDefined();
    const usage = described('usage');
    const schema = usage.responses?.['200']?.content?.['application/json']?.schema as Json | undefined;
    const resolved = schema?.$ref ? document.components.schemas[String(schema.$ref).split('/').pop()!] : schema;
    expect(resolved?.properties?.data, 'usage reads {data: rows}').toBeDefined();
    const names = ((usage.parameters ?? []) as Json[]).filter((parameter) => parameter.in === 'query').map((parameter) => parameter.name);
    expect(names, 'usage sends group_by, from, to and format').toEqual(expect.arrayContaining(['group_by', 'from', 'to']));
    const webhooks = described('webhooks');
    expect(webhooks.responses?.['200']?.content?.['application/json']?.schema?.$ref, 'webhookDeliveries reads a WebhookDeliveryList').toBe(
      '#/components/schemas/WebhookDeliveryList',
    );
  });
});
