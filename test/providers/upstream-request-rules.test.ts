/**
 * Random canonical requests, routed as the gateway routes them (`resolveRequest` +
 * `matchOffering`), sent through each adapter's real `submit` and `getStatus`, and every call it
 * makes checked against rules transcribed here, by hand, from the providers' own documentation —
 * not from `openapi/*.yaml`, the adapters' types or the simulators, which share the adapters'
 * reading. `upstream-request-conformance.test.ts` checks each field against the OpenAPI
 * documents; this file adds what a schema cannot say (which field goes with which mode, fields
 * that exclude each other, totals across fields) and checks the field names, types and ranges a
 * second time, independently.
 *
 * Sources, per provider:
 * - freepik: seed 001/003 request schemas `kling-v3-request`, `kling-v3-omni-request`,
 *   `kling-v3-omni-video-reference-request` and their descriptions (the schema wins over the prose:
 *   no `multi_shot` boolean, no `index` on a shot, cfg_scale 0-2).
 * - kling3api: seed 004 "Request Body" and its four JSON examples, "Available Models".
 * - kling-legacy: seed 002 "Get task" (route and action2 words) and the official Kling API
 *   create pages it resells.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CreateVideoRequest } from '../../src/core/model/canonical.js';
import { matchOffering, resolveRequest } from '../../src/core/model/capabilities.js';
import type { FieldRule } from '../../src/core/model/offerings.js';
import type { UpstreamRequest, UpstreamResponse, VideoProvider } from '../../src/core/upstream/provider.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { RecordingClient } from '../support/recording-client.js';

type Body = Record<string, unknown>;

// ---- freepik (seeds 001 and 003) ----

const FREEPIK_DURATIONS = ['3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14', '15'];
const FREEPIK_FIELDS: Record<string, ReadonlySet<string>> = {
  'kling-v3-request': new Set([
    'webhook_url', 'prompt', 'multi_prompt', 'start_image_url', 'end_image_url', 'elements', 'generate_audio',
    'voice_ids', 'shot_type', 'aspect_ratio', 'duration', 'negative_prompt', 'cfg_scale',
  ]),
  'kling-v3-omni-request': new Set([
    'webhook_url', 'prompt', 'multi_prompt', 'shot_type', 'image_url', 'start_image_url', 'end_image_url',
    'image_urls', 'elements', 'generate_audio', 'voice_ids', 'aspect_ratio', 'duration',
  ]),
  'kling-v3-omni-video-reference-request': new Set([
    'webhook_url', 'prompt', 'image_url', 'video_url', 'duration', 'aspect_ratio', 'cfg_scale', 'negative_prompt',
  ]),
};

function freepikSchemaOf(path: string): string | undefined {
  const match = /^\/v1\/ai\/(video|reference-to-video)\/(kling-v3|kling-v3-omni)-(pro|std)$/.exec(path);
  if (!match) return undefined;
  if (match[1] === 'reference-to-video') return match[2] === 'kling-v3-omni' ? 'kling-v3-omni-video-reference-request' : undefined;
  return match[2] === 'kling-v3' ? 'kling-v3-request' : 'kling-v3-omni-request';
}

/** `format: uri` (RFC 3986): a URI's characters only, each `%` starting an escape. */
const isUri = (value: unknown) => typeof value === 'string' && /^https?:\/\/(?:[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+$/.test(value);
const isString = (value: unknown) => typeof value === 'string';
const isStringList = (value: unknown) => Array.isArray(value) && value.every(isString);

function freepikProblems(sent: UpstreamRequest): string[] {
  if (sent.method === 'GET') {
    const status = /^\/v1\/ai\/(video\/kling-v3|video\/kling-v3-omni|reference-to-video\/kling-v3-omni)\/[^/]+$/;
    return status.test(sent.path) && sent.query === undefined ? [] : [`GET ${sent.path} is no documented status route`];
  }
  const schema = freepikSchemaOf(sent.path);
  if (sent.method !== 'POST' || !schema) return [`${sent.method} ${sent.path} is no documented create route`];
  const body = sent.body as Body;
  const problems: string[] = [];
  const fields = FREEPIK_FIELDS[schema]!;
  for (const key of Object.keys(body)) if (!fields.has(key)) problems.push(`${schema} has no field ${key}`);
  const bad = (field: string, why: string) => problems.push(`${schema}.${field} ${why}`);
  for (const field of ['prompt', 'negative_prompt']) {
    if (body[field] !== undefined && (!isString(body[field]) || [...(body[field] as string)].length > 2500)) bad(field, 'is no string of at most 2500');
  }
  if (body.duration !== undefined && !FREEPIK_DURATIONS.includes(body.duration as string)) bad('duration', `${JSON.stringify(body.duration)} is not '3'..'15'`);
  const ratios = schema === 'kling-v3-request' ? ['16:9', '9:16', '1:1'] : ['auto', '16:9', '9:16', '1:1'];
  if (body.aspect_ratio !== undefined && !ratios.includes(body.aspect_ratio as string)) bad('aspect_ratio', `${JSON.stringify(body.aspect_ratio)}`);
  if (body.cfg_scale !== undefined && !(typeof body.cfg_scale === 'number' && body.cfg_scale >= 0 && body.cfg_scale <= 2)) bad('cfg_scale', 'is not 0-2');
  for (const field of ['webhook_url', 'video_url']) if (body[field] !== undefined && !isUri(body[field])) bad(field, 'is no URI');
  for (const field of ['image_url', 'start_image_url', 'end_image_url']) if (body[field] !== undefined && !isString(body[field])) bad(field, 'is no string');
  if (body.generate_audio !== undefined && typeof body.generate_audio !== 'boolean') bad('generate_audio', 'is no boolean');
  if (body.voice_ids !== undefined && !(isStringList(body.voice_ids) && (body.voice_ids as unknown[]).length <= 2)) bad('voice_ids', 'is not at most 2 strings');
  if (body.image_urls !== undefined && !isStringList(body.image_urls)) bad('image_urls', 'is no string list');
  if (body.elements !== undefined) {
    const elements = body.elements as Body[];
    for (const element of elements) {
      for (const key of Object.keys(element)) if (key !== 'frontal_image_url' && key !== 'reference_image_urls') bad('elements', `item has ${key}`);
      if (element.reference_image_urls !== undefined && !isStringList(element.reference_image_urls)) bad('elements', 'reference_image_urls is no string list');
    }
  }
  const shots = body.multi_prompt as unknown[] | undefined;
  if (shots !== undefined && (!Array.isArray(shots) || shots.length > 6)) bad('multi_prompt', 'is not at most 6 items');
  if (body.shot_type !== undefined && shots === undefined) bad('shot_type', 'without multi_prompt');

  if (schema === 'kling-v3-request') {
    if (body.prompt === undefined && shots === undefined) bad('prompt', 'is required when not using multi_prompt');
    if (shots) {
      let total = 0;
      for (const shot of shots as Body[]) {
        for (const key of Object.keys(shot)) if (key !== 'prompt' && key !== 'duration') bad('multi_prompt', `item has ${key}`);
        if (!FREEPIK_DURATIONS.includes(shot.duration as string)) bad('multi_prompt', `item duration ${JSON.stringify(shot.duration)}`);
        total += Number(shot.duration);
      }
      if (total > 15) bad('multi_prompt', `durations add up to ${total} s`);
      if (body.duration !== undefined && Number(body.duration) !== total) bad('duration', `${String(body.duration)} is not the shots' ${total} s`);
      if (body.shot_type !== 'customize') bad('shot_type', 'is not customize with multi_prompt');
    }
    if (body.end_image_url !== undefined && body.start_image_url === undefined) bad('end_image_url', 'without start_image_url');
  }
  if (schema === 'kling-v3-omni-request') {
    // "Either prompt or multi_prompt must be provided, but not both".
    if ((body.prompt === undefined) === (shots === undefined)) bad('prompt', 'and multi_prompt: exactly one is needed');
    if (shots && !isStringList(shots)) bad('multi_prompt', 'items are not strings');
    if (body.shot_type !== undefined && body.shot_type !== 'customize') bad('shot_type', 'is not customize');
    const references = ((body.image_urls as unknown[] | undefined)?.length ?? 0) + ((body.elements as unknown[] | undefined)?.length ?? 0);
    if (references > 4) bad('image_urls', `and elements are ${references}, at most 4 together`);
    if (body.end_image_url !== undefined && body.image_url === undefined && body.start_image_url === undefined) bad('end_image_url', 'without a start frame');
    if (body.aspect_ratio === 'auto' && body.image_url === undefined) bad('aspect_ratio', 'auto without an input image');
  }
  if (schema === 'kling-v3-omni-video-reference-request') {
    if (body.video_url === undefined) bad('video_url', 'is required');
    if (body.aspect_ratio === 'auto' && body.image_url === undefined) bad('aspect_ratio', 'auto without an input image');
  }
  return problems;
}

// ---- kling3api (seed 004) ----

const KLING3API_FIELDS = new Set([
  'type', 'prompt', 'duration', 'aspect_ratio', 'image', 'end_image', 'video', 'images', 'sound', 'negative_prompt', 'cfg_scale',
  'keep_original_sound',
]);
const KLING3API_TYPES = new Set(
  ['pro', 'std', 'o3-pro', 'o3-std'].flatMap((prefix) =>
    ['text-to-video', 'image-to-video', ...(prefix.startsWith('o3') ? ['reference-to-video', 'video-edit'] : [])].map((kind) => `${prefix}-${kind}`),
  ),
);

function kling3apiProblems(sent: UpstreamRequest): string[] {
  if (sent.method === 'GET') {
    const query = sent.query ?? {};
    return sent.path === '/api/status' && Object.keys(query).join() === 'task_id' && query.task_id ? [] : [`GET ${sent.path} ${JSON.stringify(query)}`];
  }
  if (sent.method !== 'POST' || sent.path !== '/api/generate') return [`${sent.method} ${sent.path} is no documented route`];
  const body = sent.body as Body;
  const type = String(body.type);
  const problems: string[] = [];
  const bad = (field: string, why: string) => problems.push(`${type}: ${field} ${why}`);
  for (const key of Object.keys(body)) if (!KLING3API_FIELDS.has(key)) bad(key, 'is no documented field');
  if (!KLING3API_TYPES.has(type)) bad('type', 'is not in "Available Models"');
  const o3 = type.startsWith('o3-');
  const is = (kind: string) => type.endsWith(kind);
  if (!isString(body.prompt) || [...(body.prompt as string)].length > 2000) bad('prompt', 'is not 1-2000 characters');
  // INVALID_PROMPT: "The prompt is invalid or empty"; one of white space only is empty.
  else if ((body.prompt as string).trim() === '') bad('prompt', 'is blank');
  if (body.duration !== undefined && !(Number.isInteger(body.duration) && (body.duration as number) >= 3 && (body.duration as number) <= 15)) bad('duration', 'is no integer 3-15');
  if (body.duration !== undefined && is('video-edit')) bad('duration', 'on a video edit ("auto")');
  if (body.aspect_ratio !== undefined && !['16:9', '9:16', '1:1'].includes(body.aspect_ratio as string)) bad('aspect_ratio', String(body.aspect_ratio));
  if (is('image-to-video') !== (body.image !== undefined)) bad('image', 'is for (and required by) image-to-video only');
  if (body.end_image !== undefined && !is('image-to-video')) bad('end_image', 'is image-to-video only');
  if (body.video !== undefined && !is('reference-to-video') && !is('video-edit')) bad('video', 'is for reference-to-video or video-edit only');
  if (is('video-edit') && body.video === undefined) bad('video', 'is required by video-edit');
  if (body.images !== undefined && !(is('reference-to-video') && isStringList(body.images) && (body.images as unknown[]).length <= 7)) bad('images', 'is O3 reference-to-video only, max 7');
  if (is('reference-to-video') && body.images === undefined && body.video === undefined) bad('images', 'or video is needed to refer to');
  if (body.cfg_scale !== undefined && (o3 || typeof body.cfg_scale !== 'number' || body.cfg_scale < 0 || body.cfg_scale > 1)) bad('cfg_scale', 'is 0-1, Kling 3.0 only');
  if (body.sound !== undefined && typeof body.sound !== 'boolean') bad('sound', 'is no boolean');
  if (body.keep_original_sound !== undefined && !(is('video-edit') && typeof body.keep_original_sound === 'boolean')) bad('keep_original_sound', 'is a video-edit boolean');
  for (const field of ['image', 'end_image', 'video']) if (body[field] !== undefined && !isUri(body[field])) bad(field, 'is no URL');
  return problems;
}

// ---- kling-legacy (seed 002 and the official create pages) ----

const LEGACY_FIELDS: Record<string, ReadonlySet<string>> = {
  text2video: new Set(['model_name', 'prompt', 'negative_prompt', 'cfg_scale', 'mode', 'sound', 'camera_control', 'aspect_ratio', 'duration', 'callback_url', 'external_task_id']),
  image2video: new Set(['model_name', 'image', 'image_tail', 'prompt', 'negative_prompt', 'cfg_scale', 'mode', 'sound', 'camera_control', 'duration', 'callback_url', 'external_task_id']),
  'video-extend': new Set(['video_id', 'prompt', 'negative_prompt', 'cfg_scale', 'callback_url']),
  'lip-sync': new Set(['input', 'callback_url']),
  generations: new Set(['model_name', 'prompt', 'negative_prompt', 'image', 'image_reference', 'image_fidelity', 'n', 'aspect_ratio', 'callback_url']),
  'kolors-virtual-try-on': new Set(['model_name', 'human_image', 'cloth_image', 'callback_url']),
};
/** Seed 002 "Get task": action2 words (video-extend, Kling's own status route for an extension, besides). */
const LEGACY_STATUS_ACTIONS: Record<string, string> = {
  generations: 'images', text2video: 'videos', image2video: 'videos', 'lip-sync': 'videos', 'kolors-virtual-try-on': 'images', 'video-extend': 'videos',
};

function legacyProblems(sent: UpstreamRequest): string[] {
  const route = /^\/kling\/v1\/(videos|images)\/([a-z0-9-]+)(?:\/([^/]+))?$/.exec(sent.path);
  if (!route) return [`${sent.method} ${sent.path} is not under /kling/v1/{action}/{action2}`];
  const [, family, action, taskId] = route;
  if (sent.method === 'GET') {
    return LEGACY_STATUS_ACTIONS[action!] === family && taskId ? [] : [`GET ${sent.path} is no "Get task" route`];
  }
  const fields = LEGACY_FIELDS[action!];
  if (sent.method !== 'POST' || taskId !== undefined || !fields || LEGACY_STATUS_ACTIONS[action!] !== family) return [`${sent.method} ${sent.path} is no create route`];
  const body = sent.body as Body;
  const problems: string[] = [];
  const bad = (field: string, why: string) => problems.push(`${action}: ${field} ${why}`);
  for (const key of Object.keys(body)) if (!fields.has(key)) bad(key, 'is no field of this create page');
  if (body.duration !== undefined && !(isString(body.duration) && /^(?:[3-9]|1[0-5])$/.test(body.duration as string))) bad('duration', `${JSON.stringify(body.duration)} is no string 3-15`);
  if (body.cfg_scale !== undefined && !(typeof body.cfg_scale === 'number' && body.cfg_scale >= 0 && body.cfg_scale <= 1)) bad('cfg_scale', 'is not 0-1');
  // "Not supported by the kling-v2.x models".
  if (body.cfg_scale !== undefined && /^kling-v2/.test(String(body.model_name ?? ''))) bad('cfg_scale', `on ${String(body.model_name)}`);
  if (body.mode !== undefined && !['std', 'pro'].includes(body.mode as string)) bad('mode', String(body.mode));
  if (body.sound !== undefined && !['on', 'off'].includes(body.sound as string)) bad('sound', String(body.sound));
  const ratios = action === 'generations' ? ['16:9', '9:16', '1:1', '4:3', '3:4', '3:2', '2:3', '21:9'] : ['16:9', '9:16', '1:1'];
  if (body.aspect_ratio !== undefined && !ratios.includes(body.aspect_ratio as string)) bad('aspect_ratio', String(body.aspect_ratio));
  const promptMax = action === 'generations' ? 500 : 2500;
  if (body.prompt !== undefined && (!isString(body.prompt) || [...(body.prompt as string)].length > promptMax)) bad('prompt', `is no string of at most ${promptMax}`);
  // "Required": one of white space only is none (the simulator answers 1201 "prompt is required").
  if ((action === 'text2video' || action === 'generations') && !(isString(body.prompt) && (body.prompt as string).trim() !== '')) bad('prompt', 'is required');
  const negativeMax = action === 'generations' ? 200 : 2500;
  if (body.negative_prompt !== undefined && [...String(body.negative_prompt)].length > negativeMax) bad('negative_prompt', `is longer than ${negativeMax}`);
  if (action === 'image2video' && !body.image) bad('image', 'is required');
  if (action === 'video-extend' && !body.video_id) bad('video_id', 'is required');
  if (action === 'kolors-virtual-try-on' && (!body.human_image || !body.cloth_image)) bad('human_image', 'and cloth_image are required');
  if (action === 'generations' && body.n !== undefined && !(Number.isInteger(body.n) && (body.n as number) >= 1 && (body.n as number) <= 9)) bad('n', 'is not 1-9');
  if (action === 'lip-sync') {
    const input = (body.input ?? {}) as Body;
    if ((input.video_id === undefined) === (input.video_url === undefined)) bad('input', 'needs video_id or video_url, one of them');
    if (input.mode === 'text2video') {
      const given = (value: unknown) => isString(value) && (value as string).trim() !== '';
      if (!given(input.text) || !given(input.voice_id) || [...String(input.text)].length > 120) bad('input.text', 'and voice_id are required (text at most 120)');
      if (input.voice_language !== undefined && !['zh', 'en'].includes(input.voice_language as string)) bad('input.voice_language', String(input.voice_language));
      if (input.voice_speed !== undefined && !((input.voice_speed as number) >= 0.8 && (input.voice_speed as number) <= 2)) bad('input.voice_speed', 'is not 0.8-2');
    } else if (input.mode === 'audio2video') {
      if (input.audio_type !== 'url' || !input.audio_url) bad('input.audio_url', 'with audio_type url is required');
    } else bad('input.mode', String(input.mode));
  }
  if (body.callback_url !== undefined && !isUri(body.callback_url)) bad('callback_url', 'is no URL');
  return problems;
}

// ---- the property ----

const PROBLEMS_OF: Record<string, (sent: UpstreamRequest) => string[]> = {
  freepik: freepikProblems,
  kling3api: kling3apiProblems,
  'kling-legacy': legacyProblems,
};

/** What each provider answers a create and a status call with, as its documentation shows. */
const ANSWERS: Record<string, UpstreamResponse> = {
  freepik: { status: 200, headers: {}, data: { data: { task_id: '046b6c7f-0b8a-43b9-b35d-6489e6daee91', status: 'CREATED', generated: [] } } },
  kling3api: { status: 200, headers: {}, data: { code: 200, message: 'success', data: { task_id: 'n75abc123kling3', status: 'IN_PROGRESS', consumed_credits: 400 } } },
  'kling-legacy': { status: 200, headers: {}, data: { code: 0, message: 'SUCCEED', request_id: 'req-1', data: { task_id: '831922345719271433', task_status: 'submitted' } } },
};

const CALLBACKS: Record<string, string | undefined> = {
  freepik: 'https://gateway.example.com/v1/webhooks/freepik/att_0123456789abcdef',
  kling3api: undefined,
  'kling-legacy': 'https://gateway.example.com/v1/webhooks/kling-legacy/tok_0123456789abcdef',
};

// URIs as the gateway takes them (a space, `|` or `ü` is a 400 there), escapes and an IPv6 host included.
const URLS = ['https://assets.example.com/a.png', 'https://Assets.example.com:443/a%20b/./c.png?x=1%7C2', 'https://xn--exmple-cua.com/%C3%BC.png', 'https://[2001:db8::1]/a.png'];
const url = fc.constantFrom(...URLS);
const videoUrl = url.map((value) => value.replace('.png', '.mp4'));
const text = (lengths: number[]) => fc.oneof(fc.constant('a red fox in the snow'), fc.constantFrom(...lengths).map((n) => 'p'.repeat(n)));
/** A prompt of white space only: the schema's `minLength: 1` lets it through, and some upstreams take it as none. */
const blank = fc.constantFrom(' ', '\u00a0\n\t ');

/** Every canonical field at ordinary values and at the edges of what some provider takes. */
const fields = {
  quality: fc.constantFrom('pro', 'std'),
  prompt: fc.oneof({ weight: 6, arbitrary: text([120, 500, 501, 2000, 2001, 2500]) }, { weight: 1, arbitrary: blank }),
  negative_prompt: text([200, 201, 2500]),
  duration: fc.integer({ min: 3, max: 15 }),
  aspect_ratio: fc.constantFrom('16:9', '9:16', '1:1', 'auto'),
  cfg_scale: fc.constantFrom(0, 0.5, 1, 1.5, 2),
  start_image_url: url,
  end_image_url: url,
  reference_images: fc.array(url, { minLength: 1, maxLength: 7 }),
  reference_video_url: videoUrl,
  video_url: videoUrl,
  video_id: fc.constantFrom('vid_1', '831922345719271433'),
  multi_shot: fc.oneof(
    fc.array(fc.record({ prompt: text([2500]) }), { minLength: 1, maxLength: 6 }),
    fc.array(fc.record({ prompt: text([2500]), duration: fc.integer({ min: 1, max: 5 }) }), { minLength: 1, maxLength: 5 }),
  ),
  elements: fc.array(fc.record({ frontal_image_url: url, reference_image_urls: fc.array(url, { maxLength: 4 }) }), { minLength: 1, maxLength: 4 }),
  audio: fc.boolean(),
  voice_ids: fc.array(fc.constantFrom('voice_a', 'voice_b'), { minLength: 1, maxLength: 2 }),
  keep_original_sound: fc.boolean(),
  lip_sync: fc.oneof(
    fc.record({ audio_url: url.map((value) => value.replace('.png', '.mp3')) }),
    fc.record({
      text: fc.oneof({ weight: 6, arbitrary: text([120]) }, { weight: 1, arbitrary: blank }),
      voice_id: fc.oneof({ weight: 6, arbitrary: fc.constant('voice_a') }, { weight: 1, arbitrary: blank }),
      voice_language: fc.constantFrom('zh', 'en'),
      voice_speed: fc.constantFrom(0.8, 1, 2),
    }),
  ),
  camera_control: fc.oneof(
    fc.record({ type: fc.constant('simple'), config: fc.record({ zoom: fc.constantFrom(-10, 5, 10) }) }),
    fc.record({ type: fc.constantFrom('down_back', 'forward_up') }),
  ),
};

/** A request aimed at one offering: its model and operation, some of its fields, now and then one it lacks. */
function requestsFor(provider: VideoProvider) {
  return fc.constantFrom(...provider.offerings).chain((offering) => {
    const rules: Partial<Record<string, FieldRule>> = offering.fields;
    const own = Object.keys(rules).filter((field) => field in fields) as (keyof typeof fields)[];
    const others = (Object.keys(fields) as (keyof typeof fields)[]).filter((field) => !own.includes(field));
    return fc
      .tuple(
        fc.subarray(own),
        fc.oneof({ weight: 4, arbitrary: fc.constant([] as (keyof typeof fields)[]) }, { weight: 1, arbitrary: fc.subarray(others, { maxLength: 1 }) }),
        fc.boolean(),
      )
      .chain(([chosen, extra, named]) => {
        const required = own.filter((field) => rules[field]?.required);
        const keys = [...new Set([...required, ...chosen, ...extra, 'quality' as const])];
        return fc
          .record(Object.fromEntries(keys.map((key) => [key, fields[key]])) as Record<string, fc.Arbitrary<unknown>>)
          .map((values) => ({ model: offering.model, ...(named ? { operation: offering.operation } : {}), ...values }));
      });
  });
}

describe.each(PROVIDERS.map((provider) => [provider.id, provider] as const))(
  '%s: random requests it accepts are sent as its documentation allows',
  (id, provider) => {
    it('every create and status call keeps to the documented routes, fields, types and cross-field rules', { timeout: 120_000 }, async () => {
      const check = PROBLEMS_OF[id];
      if (!check) throw new Error(`no documented rules transcribed for ${id}`);
      let served = 0;
      await fc.assert(
        fc.asyncProperty(requestsFor(provider), async (input) => {
          const parsed = CreateVideoRequest.safeParse(input);
          if (!parsed.success) return;
          const resolved = resolveRequest(parsed.data);
          const { offering } = matchOffering(provider.offerings, resolved);
          if (!offering) return;
          served++;
          const http = new RecordingClient(ANSWERS[id]!);
          const callbackUrl = CALLBACKS[id];
          const result = await provider.submit(resolved.request, offering, {
            http,
            taskId: 'task_1',
            attemptKey: 'task_1-1',
            ...(callbackUrl ? { callbackUrl } : {}),
          });
          await provider.getStatus(result.ref, { http });
          expect(http.sent.map((sent) => sent.method)).toEqual(['POST', 'GET']);
          const problems = http.sent.flatMap((sent) => check(sent).map((problem) => `${problem} (sent ${JSON.stringify(sent.body ?? sent.query ?? null)})`));
          expect(problems).toEqual([]);
        }),
        { numRuns: 1500, seed: 20261205 },
      );
      // The generator reaches the adapter, not only the capability check.
      expect(served).toBeGreaterThan(300);
    });
  },
);

describe('the transcribed rules themselves', () => {
  const post = (path: string, body: Body): UpstreamRequest => ({ method: 'POST', path, body, operation: 'submit' });

  it('name what each seed forbids', () => {
    expect(freepikProblems(post('/v1/ai/video/kling-v3-pro', { prompt: 'x', multi_shot: true }))).toEqual(['kling-v3-request has no field multi_shot']);
    expect(freepikProblems(post('/v1/ai/video/kling-v3-pro', { prompt: 'x', duration: 5 })).join()).toContain('duration');
    expect(freepikProblems(post('/v1/ai/video/kling-v3-omni-std', { prompt: 'x', multi_prompt: ['a'], shot_type: 'customize' })).join()).toContain('exactly one');
    expect(freepikProblems(post('/v1/ai/video/kling-v3-omni-std', { prompt: 'x', cfg_scale: 0.5 })).join()).toContain('no field cfg_scale');
    expect(kling3apiProblems(post('/api/generate', { type: 'o3-pro-text-to-video', prompt: 'x', cfg_scale: 0.5 })).join()).toContain('Kling 3.0 only');
    expect(kling3apiProblems(post('/api/generate', { type: 'pro-text-to-video', prompt: 'x', duration: '5' })).join()).toContain('integer');
    expect(kling3apiProblems(post('/api/generate', { type: 'pro-text-to-video', prompt: ' \n ' }))).toEqual(['pro-text-to-video: prompt is blank']);
    expect(legacyProblems(post('/kling/v1/videos/text2video', { model_name: 'kling-v2-master', prompt: 'x', cfg_scale: 0.5 })).join()).toContain('kling-v2-master');
    expect(legacyProblems(post('/kling/v1/videos/text2video', { prompt: 'x', duration: 5 })).join()).toContain('duration');
    expect(legacyProblems(post('/kling/v1/videos/text2video', { prompt: ' ' }))).toEqual(['text2video: prompt is required']);
  });

  it('accept the seeds own examples', () => {
    expect(kling3apiProblems(post('/api/generate', { type: 'o3-pro-video-edit', prompt: 'Change the background', video: 'https://example.com/original-video.mp4', keep_original_sound: true }))).toEqual([]);
    expect(kling3apiProblems(post('/api/generate', { type: 'o3-pro-reference-to-video', prompt: 'x', images: ['https://example.com/a.jpg'], duration: 5, aspect_ratio: '16:9' }))).toEqual([]);
    expect(freepikProblems(post('/v1/ai/reference-to-video/kling-v3-omni-pro', { video_url: 'https://example.com/v.mp4', prompt: '@Video1 x', duration: '5' }))).toEqual([]);
    expect(legacyProblems({ method: 'GET', path: '/kling/v1/images/kolors-virtual-try-on/123', operation: 'status' })).toEqual([]);
  });
});
