/**
 * Every request an adapter can send is valid for the provider's documented contract, checked
 * by a JSON Schema validator (Ajv) against `openapi/<provider>.yaml` rather than by the
 * adapters' own types or the simulators' zod mirrors.
 *
 * The requests are generated from the capability declarations: for every offering and quality,
 * the required inputs alone, then each field the offering takes at every allowed value and at
 * the edges of its limits (longest prompt, most references, highest cfg). Objects in the
 * documents are closed for this check (`additionalProperties: false` where a schema lists its
 * properties), so a field the document does not name is caught too. The request-body schemas
 * of `openapi/freepik.yaml` are the seed's own (seeds 000/001/003, unchanged).
 */
import { describe, expect, it } from 'vitest';
import { CreateVideoRequest } from '../../src/core/model/canonical.js';
import { checkOffering, resolveRequest } from '../../src/core/model/capabilities.js';
import type { Offering } from '../../src/core/model/offerings.js';
import type { UpstreamClient, UpstreamRequest, UpstreamResponse, VideoProvider } from '../../src/core/upstream/provider.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { variants } from '../support/capability-requests.js';
import { contractOf, loadOpenApiContract } from '../support/openapi-contract.js';

/** A well-formed "accepted" answer per provider, so `submit` runs to the end. */
const CREATED: Record<string, unknown> = {
  freepik: { data: { task_id: '046b6c7f-0b8a-43b9-b35d-6489e6daee91', status: 'CREATED', generated: [] } },
  kling3api: { code: 200, message: 'success', data: { task_id: 'n75abc123kling3', status: 'IN_PROGRESS' } },
  'kling-legacy': {
    code: 0,
    message: 'SUCCEED',
    request_id: 'req-1',
    data: { task_id: '711540030950776026', task_status: 'submitted', created_at: 1722769557708, updated_at: 1722769557708 },
  },
};

class RecordingClient implements UpstreamClient {
  readonly sent: UpstreamRequest[] = [];
  constructor(private readonly answer: unknown) {}
  async send(request: UpstreamRequest): Promise<UpstreamResponse> {
    this.sent.push(request);
    return { status: 200, headers: { 'content-type': 'application/json' }, data: this.answer };
  }
}

async function sentBy(provider: VideoProvider, offering: Offering, input: CreateVideoRequest) {
  const resolved = resolveRequest(input);
  const check = checkOffering(offering, resolved);
  if (check.reasons.length > 0) return { served: false as const, reasons: check.reasons };
  const http = new RecordingClient(CREATED[provider.id]);
  const context = { http, taskId: 'task_1', attemptKey: 'task_1-1' };
  const callbackUrl =
    provider.inboundWebhook === 'signed'
      ? 'https://gateway.example.com/v1/webhooks/freepik'
      : 'https://gateway.example.com/v1/webhooks/kling-legacy/tok_0123456789abcdef';
  const result = await provider.submit(resolved.request, offering, {
    ...context,
    ...(provider.inboundWebhook === 'none' ? {} : { callbackUrl }),
  });
  // The status call for the task it just created, at whatever route the adapter chose.
  await provider.getStatus(result.ref, { http }).catch(() => undefined);
  return { served: true as const, sent: http.sent };
}

describe.each(PROVIDERS.map((provider) => [provider.id, provider] as const))(
  '%s: every request the adapter can send is valid for its OpenAPI document',
  (id, provider) => {
    const contract = contractOf(id);

    it.each(provider.offerings.map((offering) => [`${offering.model} ${offering.operation}`, offering] as const))(
      '%s',
      async (_name, offering) => {
        const refused: string[] = [];
        const invalid: string[] = [];
        const coveredFields = new Set<string>();
        for (const quality of offering.qualities) {
          for (const variant of variants(offering, quality)) {
            const parsed = CreateVideoRequest.safeParse(variant.input);
            if (!parsed.success) throw new Error(`test generated an invalid canonical request (${variant.label})`);
            const outcome = await sentBy(provider, offering, parsed.data);
            if (!outcome.served) {
              refused.push(`${quality} ${variant.label}: ${outcome.reasons.join('; ')}`);
              continue;
            }
            for (const field of Object.keys(variant.input)) coveredFields.add(field);
            expect(outcome.sent.map((r) => r.method)).toEqual(['POST', 'GET']);
            for (const request of outcome.sent) {
              for (const problem of contract.requestProblems(request)) {
                invalid.push(`${quality} ${variant.label} → ${request.method} ${request.path}: ${problem}`);
              }
            }
          }
        }
        expect(invalid).toEqual([]);
        // Every field the offering declares was sent at least once, so the check covered it.
        const uncovered = Object.keys(offering.fields).filter((field) => !coveredFields.has(field));
        expect({ uncovered, refused: uncovered.length > 0 ? refused : [] }).toEqual({ uncovered: [], refused: [] });
      },
    );
  },
);

describe('the conformance check itself', () => {
  const problemsOf = loadOpenApiContract('freepik.yaml').requestProblems;
  const body = { prompt: 'a fox', duration: '5', aspect_ratio: '16:9' };

  it('accepts a body the seed schema allows', () => {
    expect(problemsOf({ method: 'POST', path: '/v1/ai/video/kling-v3-pro', body })).toEqual([]);
  });

  it('names a field the document does not have, a value outside an enum, and an unknown route', () => {
    expect(
      problemsOf({ method: 'POST', path: '/v1/ai/video/kling-v3-pro', body: { ...body, image_url: 'x' } }),
    ).toEqual(['body / must NOT have additional properties: image_url']);
    expect(
      problemsOf({ method: 'POST', path: '/v1/ai/video/kling-v3-pro', body: { ...body, duration: 5 } }).join(),
    ).toContain('/duration');
    expect(problemsOf({ method: 'POST', path: '/v1/ai/video/kling-v4', body })).toEqual([
      'POST /v1/ai/video/kling-v4 is not in freepik.yaml',
    ]);
  });

  it('reads path templates and query parameters', () => {
    const kling3api = loadOpenApiContract('kling3api.yaml').requestProblems;
    expect(kling3api({ method: 'GET', path: '/api/status', query: { task_id: 'n75a' } })).toEqual([]);
    expect(kling3api({ method: 'GET', path: '/api/status' })).toEqual(['query task_id is required']);
    expect(
      problemsOf({ method: 'GET', path: '/v1/ai/video/kling-v3/046b6c7f-0b8a-43b9-b35d-6489e6daee91' }),
    ).toEqual([]);
  });

  it('checks answers: the status must be documented for the route and the body must fit its schema', () => {
    const contract = loadOpenApiContract('freepik.yaml');
    const create = { method: 'POST' as const, path: '/v1/ai/video/kling-v3-pro' };
    const taskId = '046b6c7f-0b8a-43b9-b35d-6489e6daee91';
    expect(contract.responseProblems(create, 200, { data: { task_id: taskId, status: 'CREATED', generated: [] } })).toEqual([]);
    expect(contract.responseProblems(create, 200, { data: { task_id: taskId, status: 'DONE', generated: [] } }).join()).toContain(
      '/data/status must be equal to one of the allowed values',
    );
    expect(contract.responseProblems(create, 418, {})).toEqual(['POST /v1/ai/video/kling-v3-pro documents no 418 answer']);
  });
});
