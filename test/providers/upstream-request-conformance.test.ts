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
 *
 * Every call is answered with what the provider's own simulator answered to one create, so
 * `submit` runs to the end on a well-formed answer and the status call goes where the adapter
 * really polls; the check itself reads only the documents.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { CreateVideoRequest } from '../../src/core/model/canonical.js';
import { checkOffering, resolveRequest } from '../../src/core/model/capabilities.js';
import type { Offering } from '../../src/core/model/offerings.js';
import type { UpstreamClient, UpstreamRequest, UpstreamResponse, VideoProvider } from '../../src/core/upstream/provider.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { RecordingClient } from '../support/recording-client.js';
import { resolvedBaseRequest, variants } from '../support/capability-requests.js';
import { contractOf, loadOpenApiContract } from '../support/openapi-contract.js';

const API_KEY = 'conformance-key';

/** Plain HTTP to a simulator, the provider's auth headers included; non-2xx answers throw. */
class SimulatorClient implements UpstreamClient {
  constructor(
    private readonly provider: VideoProvider,
    private readonly baseUrl: string,
  ) {}

  async send(request: UpstreamRequest): Promise<UpstreamResponse> {
    const response = await fetch(this.baseUrl + request.path, {
      method: request.method,
      headers: { ...this.provider.authHeaders(API_KEY), 'content-type': 'application/json' },
      body: JSON.stringify(request.body),
    });
    const data: unknown = await response.json();
    if (!response.ok) throw new Error(`the ${this.provider.id} simulator answered ${response.status}: ${JSON.stringify(data)}`);
    return { status: response.status, headers: Object.fromEntries(response.headers), data };
  }
}

/** What the provider's simulator answers when it accepts a create (its first offering's smallest request). */
async function acceptedAnswerOf(provider: VideoProvider): Promise<UpstreamResponse> {
  const simulator = provider.createSimulator({ clock: new ManualClock(), apiKey: API_KEY });
  try {
    const baseUrl = await simulator.listen(0);
    let answer: UpstreamResponse | undefined;
    const http: UpstreamClient = {
      send: async (request) => (answer = await new SimulatorClient(provider, baseUrl).send(request)),
    };
    const offering = provider.offerings[0]!;
    await provider.submit(resolvedBaseRequest(offering), offering, { http, taskId: 'task_0', attemptKey: 'task_0-1' });
    if (!answer) throw new Error(`${provider.id} sent nothing to create a task`);
    return answer;
  } finally {
    await simulator.close();
  }
}

/** Where the gateway would ask the upstream to call back, by the kind of webhook the provider takes. */
function callbackUrlOf(provider: VideoProvider): string | undefined {
  switch (provider.inboundWebhook) {
    case 'signed':
      return `https://gateway.example.com/v1/webhooks/${provider.id}`;
    case 'token':
      return `https://gateway.example.com/v1/webhooks/${provider.id}/tok_0123456789abcdef`;
    case 'none':
      return undefined;
  }
}

async function sentBy(provider: VideoProvider, accepted: UpstreamResponse, offering: Offering, input: CreateVideoRequest) {
  const resolved = resolveRequest(input);
  const check = checkOffering(offering, resolved);
  if (check.reasons.length > 0) return { served: false as const, reasons: check.reasons };
  const http = new RecordingClient(accepted);
  const context = { http, taskId: 'task_1', attemptKey: 'task_1-1' };
  const callbackUrl = callbackUrlOf(provider);
  const result = await provider.submit(resolved.request, offering, { ...context, ...(callbackUrl ? { callbackUrl } : {}) });
  // The status call for the task it just created, at whatever route the adapter chose.
  await provider.getStatus(result.ref, { http }).catch(() => undefined);
  return { served: true as const, sent: http.sent };
}

describe.each(PROVIDERS.map((provider) => [provider.id, provider] as const))(
  '%s: every request the adapter can send is valid for its OpenAPI document',
  (id, provider) => {
    const contract = contractOf(id);
    let accepted: UpstreamResponse;

    beforeAll(async () => {
      accepted = await acceptedAnswerOf(provider);
    });

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
            const outcome = await sentBy(provider, accepted, offering, parsed.data);
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

describe.each(PROVIDERS.filter((provider) => provider.findCreate).map((provider) => [provider.id, provider] as const))(
  '%s: every lookup of a create whose answer was lost is valid for its OpenAPI document',
  (id, provider) => {
    const contract = contractOf(id);

    it.each(provider.offerings.map((offering) => [`${offering.model} ${offering.operation}`, offering] as const))(
      '%s',
      async (_name, offering) => {
        // An empty answer of every shape: a task list ends at once, a task query finds nothing.
        const http = new RecordingClient({ status: 200, headers: {}, data: { code: 0, data: [] } });
        const request = resolvedBaseRequest(offering);
        await provider
          .findCreate!({ request, offering, attemptKey: 'task_1-1' }, { http, knownTaskIds: async () => new Set(), recordedTaskCount: async () => 0 })
          .catch(() => undefined);
        const invalid = http.sent.flatMap((sent) => contract.requestProblems(sent).map((problem) => `${sent.method} ${sent.path}: ${problem}`));
        expect(invalid).toEqual([]);
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
