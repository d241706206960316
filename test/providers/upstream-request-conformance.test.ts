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
import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CreateVideoRequest } from '../../src/core/canonical.js';
import { checkOffering, resolveRequest } from '../../src/core/capabilities.js';
import type {
  FieldRule,
  Offering,
  UpstreamClient,
  UpstreamRequest,
  UpstreamResponse,
  VideoProvider,
} from '../../src/core/provider.js';
import { PROVIDERS } from '../../src/providers/registry.js';

// ajv-formats is CommonJS with a default export; under NodeNext the callable is on `.default`.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

type Json = Record<string, unknown>;

/** Adds `additionalProperties: false` to every object schema that lists its properties. */
function closeObjects(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(closeObjects);
  if (!node || typeof node !== 'object') return node;
  const copy: Json = Object.fromEntries(Object.entries(node).map(([key, value]) => [key, closeObjects(value)]));
  if (copy.properties && typeof copy.properties === 'object' && copy.additionalProperties === undefined) {
    copy.additionalProperties = false;
  }
  return copy;
}

interface Operation {
  pathPattern: RegExp;
  pathParams: { name: string; validate: ValidateFunction }[];
  queryParams: { name: string; required: boolean; validate: ValidateFunction }[];
  body?: ValidateFunction;
}

/** The operations of one OpenAPI document, compiled for checking requests. */
function loadContract(file: string) {
  const document = parse(readFileSync(new URL(`../../openapi/${file}`, import.meta.url), 'utf8')) as Json;
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  // OpenAPI 3.0 `format: float` is informational; Ajv would refuse an unknown format.
  ajv.addFormat('float', true);
  const components = closeObjects((document.components as Json | undefined)?.schemas ?? {});
  ajv.addSchema({ $id: 'doc', components: { schemas: components } });
  const compile = (schema: unknown) =>
    ajv.compile({ $id: `op-${Math.random()}`, ...(closeObjects(rebase(schema)) as Json) });
  const operations = new Map<string, Operation[]>();
  for (const [path, item] of Object.entries(document.paths as Record<string, Json>)) {
    for (const method of ['get', 'post'] as const) {
      const op = item[method] as Json | undefined;
      if (!op) continue;
      const parameters = [...((item.parameters as Json[] | undefined) ?? []), ...((op.parameters as Json[] | undefined) ?? [])];
      const pattern = new RegExp(`^${path.replace(/\{[^}]+\}/g, '([^/]+)')}$`);
      const body = ((op.requestBody as Json | undefined)?.content as Json | undefined)?.['application/json'] as Json | undefined;
      const entry: Operation = {
        pathPattern: pattern,
        pathParams: [...path.matchAll(/\{([^}]+)\}/g)].map(([, name]) => {
          const declared = parameters.find((p) => p.in === 'path' && p.name === name);
          return { name: name!, validate: compile(declared?.schema ?? { type: 'string' }) };
        }),
        queryParams: parameters
          .filter((p) => p.in === 'query')
          .map((p) => ({ name: p.name as string, required: p.required === true, validate: compile(p.schema) })),
        ...(body ? { body: compile(body.schema) } : {}),
      };
      const key = method.toUpperCase();
      operations.set(key, [...(operations.get(key) ?? []), entry]);
    }
  }

  /** Problems with one request, empty when the document allows it. */
  return (request: UpstreamRequest): string[] => {
    const candidates = operations.get(request.method) ?? [];
    // A literal path wins over a template that also matches it.
    const match = candidates
      .map((op) => ({ op, groups: op.pathPattern.exec(request.path) }))
      .filter((m) => m.groups)
      .sort((a, b) => a.op.pathParams.length - b.op.pathParams.length)[0];
    if (!match) return [`${request.method} ${request.path} is not in ${file}`];
    const problems: string[] = [];
    match.op.pathParams.forEach((param, index) => {
      const value = decodeURIComponent(match.groups![index + 1]!);
      if (!param.validate(value)) problems.push(`path {${param.name}} = ${value}: ${describeErrors(param.validate.errors)}`);
    });
    const query = request.query ?? {};
    for (const param of match.op.queryParams) {
      const value = query[param.name];
      if (value === undefined) {
        if (param.required) problems.push(`query ${param.name} is required`);
      } else if (!param.validate(value)) {
        problems.push(`query ${param.name}: ${describeErrors(param.validate.errors)}`);
      }
    }
    for (const name of Object.keys(query)) {
      if (!match.op.queryParams.some((p) => p.name === name)) problems.push(`query ${name} is not documented`);
    }
    if (match.op.body) {
      if (!match.op.body(request.body)) problems.push(`body ${describeErrors(match.op.body.errors)}`);
    } else if (request.body !== undefined) {
      problems.push('sends a body the operation does not take');
    }
    return problems;
  };
}

/** Ajv's errors as one line, naming the property an object does not allow. */
function describeErrors(errors: ValidateFunction['errors']): string {
  return (errors ?? [])
    .map((error) => {
      const extra = (error.params as { additionalProperty?: string }).additionalProperty;
      return `${error.instancePath || '/'} ${error.message}${extra ? `: ${extra}` : ''}`;
    })
    .join('; ');
}

/** Points `#/components/...` references at the shared `doc` schema. */
function rebase(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(rebase);
  if (!node || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node).map(([key, value]) => [
      key,
      key === '$ref' && typeof value === 'string' && value.startsWith('#/') ? `doc${value}` : rebase(value),
    ]),
  );
}

// --- requests generated from the capability declarations -------------------------------------

const URL_OF = (name: string) => `https://assets.example.com/${name}`;

/** Values worth trying for one field under its rule: allowed values, limits and edges. */
function valuesFor(field: string, rule: FieldRule): unknown[] {
  const most = (cap: number) => Math.min(rule.maxItems ?? cap, cap);
  switch (field) {
    case 'prompt':
    case 'negative_prompt':
      return ['a red fox in snow', 'x'.repeat(rule.maxLength ?? 2500)];
    case 'duration':
    case 'cfg_scale': {
      if (rule.values) return [...rule.values];
      return [rule.min, rule.max].filter((v) => v !== undefined);
    }
    case 'aspect_ratio':
      return rule.values ? [...rule.values] : ['16:9', '9:16', '1:1', 'auto'];
    case 'audio':
    case 'keep_original_sound':
      return rule.values ? [...rule.values] : [true, false];
    case 'start_image_url':
    case 'end_image_url':
      return [URL_OF(`${field}.png`)];
    case 'reference_video_url':
    case 'video_url':
      return [URL_OF('source.mp4')];
    case 'video_id':
      return ['vid-1234'];
    case 'reference_images': {
      const n = most(7);
      return [[URL_OF('ref-1.png')], Array.from({ length: n }, (_, i) => URL_OF(`ref-${i + 1}.png`))];
    }
    case 'voice_ids':
      return [['voice-a'], Array.from({ length: most(2) }, (_, i) => `voice-${i}`)];
    case 'elements': {
      const element = (i: number) => ({
        frontal_image_url: URL_OF(`el-${i}.png`),
        reference_image_urls: [URL_OF(`el-${i}-a.png`), URL_OF(`el-${i}-b.png`)],
      });
      return [[element(1)], Array.from({ length: most(4) }, (_, i) => element(i + 1))];
    }
    case 'multi_shot': {
      const n = most(6);
      return [
        Array.from({ length: n }, (_, i) => ({ prompt: `shot ${i + 1}` })),
        Array.from({ length: Math.min(n, 5) }, (_, i) => ({ prompt: `shot ${i + 1}`, duration: 3 })),
        [
          { prompt: 'wide', duration: 7 },
          { prompt: 'close', duration: 8 },
        ],
      ];
    }
    case 'lip_sync':
      return [
        { text: 'Hello there', voice_id: 'genshin_vindi2', voice_language: 'en', voice_speed: 1.5 },
        { audio_url: URL_OF('speech.mp3') },
      ];
    case 'camera_control':
      return [{ type: 'simple', config: { zoom: 5 } }, { type: 'down_back' }];
    default:
      throw new Error(`no test values for capability field ${field}`);
  }
}

interface Variant {
  label: string;
  input: Json;
}

function served(offering: Offering, input: Json): boolean {
  const parsed = CreateVideoRequest.safeParse(input);
  return parsed.success && checkOffering(offering, resolveRequest(parsed.data)).reasons.length === 0;
}

/** The offering's required inputs (and a prompt where it takes one). */
function requiredRequest(offering: Offering, quality: string): Json {
  const base: Json = { model: offering.model, quality, operation: offering.operation };
  for (const [field, rule] of Object.entries(offering.fields)) {
    if (rule?.required) base[field] = valuesFor(field, rule)[0];
  }
  if (base.prompt === undefined && offering.fields.prompt) base.prompt = 'a red fox in snow';
  return base;
}

/**
 * The smallest request the offering serves: its required inputs, plus one optional input when
 * a rule across fields asks for it (reference-to-video needs images or a video).
 */
function baseRequest(offering: Offering, quality: string): Json {
  const base = requiredRequest(offering, quality);
  if (served(offering, base)) return base;
  for (const [field, rule] of Object.entries(offering.fields)) {
    if (!rule || base[field] !== undefined) continue;
    const widened = { ...base, [field]: valuesFor(field, rule)[0] };
    if (served(offering, widened)) return widened;
  }
  return base;
}

function withField(offering: Offering, base: Json, field: string, value: unknown): Json {
  const input: Json = { ...base, [field]: value };
  // An end frame needs a start frame (canonical rule).
  if (field === 'end_image_url' && input.start_image_url === undefined) input.start_image_url = URL_OF('start.png');
  // Shots replace the prompt where an offering takes one or the other.
  if (field === 'multi_shot' && !offering.fields.prompt?.required) delete input.prompt;
  return input;
}

function variants(offering: Offering, quality: string): Variant[] {
  const required = requiredRequest(offering, quality);
  const base = baseRequest(offering, quality);
  const out: Variant[] = [{ label: 'base request', input: base }];
  for (const [field, rule] of Object.entries(offering.fields)) {
    if (!rule) continue;
    for (const value of valuesFor(field, rule)) {
      // On the base; failing that, on the required inputs alone (lip-sync takes a video id
      // or a video URL, not both).
      const onBase = withField(offering, base, field, value);
      const input = served(offering, onBase) ? onBase : withField(offering, required, field, value);
      out.push({ label: `${field} = ${JSON.stringify(value).slice(0, 60)}`, input });
    }
  }
  return out;
}

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

const CONTRACT_FILES: Record<string, string> = {
  freepik: 'freepik.yaml',
  kling3api: 'kling3api.yaml',
  'kling-legacy': 'kling-legacy.yaml',
};

async function sentBy(provider: VideoProvider, offering: Offering, input: Json) {
  const resolved = resolveRequest(CreateVideoRequest.parse(input));
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
    const problemsOf = loadContract(CONTRACT_FILES[id]!);

    it.each(provider.offerings.map((offering) => [`${offering.model} ${offering.operation}`, offering] as const))(
      '%s',
      async (_name, offering) => {
        const refused: string[] = [];
        const invalid: string[] = [];
        const coveredFields = new Set<string>();
        for (const quality of offering.qualities) {
          for (const variant of variants(offering, quality)) {
            if (!CreateVideoRequest.safeParse(variant.input).success) {
              throw new Error(`test generated an invalid canonical request (${variant.label})`);
            }
            const outcome = await sentBy(provider, offering, variant.input);
            if (!outcome.served) {
              refused.push(`${quality} ${variant.label}: ${outcome.reasons.join('; ')}`);
              continue;
            }
            for (const field of Object.keys(variant.input)) coveredFields.add(field);
            expect(outcome.sent.map((r) => r.method)).toEqual(['POST', 'GET']);
            for (const request of outcome.sent) {
              for (const problem of problemsOf(request)) {
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
  const problemsOf = loadContract('freepik.yaml');
  const body = { prompt: 'a fox', duration: '5', aspect_ratio: '16:9' };

  it('accepts a body the seed schema allows', () => {
    expect(problemsOf({ method: 'POST', path: '/v1/ai/video/kling-v3-pro', body, operation: 'submit' })).toEqual([]);
  });

  it('names a field the document does not have, a value outside an enum, and an unknown route', () => {
    expect(
      problemsOf({ method: 'POST', path: '/v1/ai/video/kling-v3-pro', body: { ...body, image_url: 'x' }, operation: 'submit' }),
    ).toEqual(['body / must NOT have additional properties: image_url']);
    expect(
      problemsOf({ method: 'POST', path: '/v1/ai/video/kling-v3-pro', body: { ...body, duration: 5 }, operation: 'submit' }).join(),
    ).toContain('/duration');
    expect(problemsOf({ method: 'POST', path: '/v1/ai/video/kling-v4', body, operation: 'submit' })).toEqual([
      'POST /v1/ai/video/kling-v4 is not in freepik.yaml',
    ]);
  });

  it('reads path templates and query parameters', () => {
    const kling3api = loadContract('kling3api.yaml');
    expect(kling3api({ method: 'GET', path: '/api/status', query: { task_id: 'n75a' }, operation: 'status' })).toEqual([]);
    expect(kling3api({ method: 'GET', path: '/api/status', operation: 'status' })).toEqual(['query task_id is required']);
    expect(
      problemsOf({ method: 'GET', path: '/v1/ai/video/kling-v3/046b6c7f-0b8a-43b9-b35d-6489e6daee91', operation: 'status' }),
    ).toEqual([]);
  });
});
