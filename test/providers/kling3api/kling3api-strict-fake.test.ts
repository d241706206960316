/**
 * The gateway against a strict fake of kling3api.com written from seed 004 alone (not the repo's
 * simulator): `POST /api/generate` with a JSON body of the seed's fields only (`type`, `prompt`,
 * `duration`, `aspect_ratio`, `image`, the end frame, `video`, `images`, `sound`,
 * `negative_prompt`, prompt adherence, and the video-edit example's `keep_original_sound`),
 * `GET /api/status?task_id=`, Bearer auth, the `{code: 200, message, data}` answers, and the
 * error table (400 INVALID_PROMPT / INVALID_DURATION / INVALID_TYPE / MISSING_IMAGE /
 * MISSING_VIDEO, 401 INVALID_API_KEY, 402 INSUFFICIENT_CREDITS, 429 RATE_LIMITED, 500
 * INTERNAL_ERROR).
 *
 * The seed names three request fields only by their description; the fake takes the names the
 * adapter documents (`end_image`, `negative_prompt`, `cfg_scale`) and checks their types and
 * the types they are allowed on, as the descriptions give them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { kling3apiProvider } from '../../../src/providers/kling3api/kling3api-provider.js';
import { startTestGateway, type TestGateway } from '../../support/harness.js';
import { gatewayAtFake, LoopbackFake } from '../../support/loopback-fake.js';

const API_KEY = 'sk-kling3-strict-fake';

/** Seed 004 "Available Models": type → credits per second with / without audio, or a fixed price. */
const TYPES: Record<string, { perSecond?: [withAudio: number, silent: number]; fixed?: number }> = {
  'pro-text-to-video': { perSecond: [80, 54] },
  'pro-image-to-video': { perSecond: [80, 54] },
  'std-text-to-video': { perSecond: [60, 40] },
  'std-image-to-video': { perSecond: [60, 40] },
  'o3-pro-text-to-video': { perSecond: [48, 48] },
  'o3-pro-image-to-video': { perSecond: [48, 48] },
  'o3-pro-reference-to-video': { perSecond: [72, 72] },
  'o3-pro-video-edit': { fixed: 435 },
  'o3-std-text-to-video': { perSecond: [36, 36] },
  'o3-std-image-to-video': { perSecond: [36, 36] },
  'o3-std-reference-to-video': { perSecond: [20, 20] },
  'o3-std-video-edit': { fixed: 360 },
};

/** Seed 004 "Error Codes". */
const ERRORS = {
  INVALID_PROMPT: [400, 'The prompt is invalid or empty'],
  INVALID_DURATION: [400, 'Duration out of supported range'],
  INVALID_TYPE: [400, 'Unsupported task type'],
  MISSING_IMAGE: [400, 'Image is required for image-to-video tasks'],
  MISSING_VIDEO: [400, 'Video is required for video-edit tasks'],
  INVALID_API_KEY: [401, 'API key is missing or invalid'],
  INSUFFICIENT_CREDITS: [402, 'Not enough credits for this operation'],
  RATE_LIMITED: [429, 'Too many requests, please slow down'],
  INTERNAL_ERROR: [500, 'Server error, please try again later'],
} as const;
type ErrorName = keyof typeof ERRORS;

/** Every request field of seed 004 "Request Body" (plus `keep_original_sound` of its video-edit example). */
const FIELDS = new Set(['type', 'prompt', 'duration', 'aspect_ratio', 'image', 'end_image', 'video', 'images', 'sound', 'negative_prompt', 'cfg_scale', 'keep_original_sound']);

const isUrl = (value: unknown): boolean => typeof value === 'string' && /^https?:\/\/[^\s]+$/.test(value);

/** The seed's refusal for a body, or `undefined` when it is one the seed accepts; `why` says what broke. */
function refusalOf(body: any): { error: ErrorName; why: string } | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return { error: 'INVALID_TYPE', why: 'not an object' };
  const extra = Object.keys(body).filter((key) => !FIELDS.has(key));
  if (extra.length > 0) return { error: 'INVALID_TYPE', why: `undocumented fields ${extra.join(',')}` };
  const type = body.type;
  if (typeof type !== 'string' || !TYPES[type]) return { error: 'INVALID_TYPE', why: `type ${type}` };
  const o3 = type.startsWith('o3-');
  const imageToVideo = type.endsWith('image-to-video');
  const reference = type.endsWith('reference-to-video');
  const edit = type.endsWith('video-edit');
  // "Text description of the video to generate (max 2000 chars)"
  if (typeof body.prompt !== 'string' || body.prompt.trim() === '' || [...body.prompt].length > 2000) return { error: 'INVALID_PROMPT', why: 'prompt' };
  // "Kling 3.0: 3-15. O3: 3-15." and "auto" for video edit.
  if (body.duration !== undefined) {
    if (edit) return { error: 'INVALID_DURATION', why: 'duration on a video edit (auto)' };
    if (!Number.isInteger(body.duration) || body.duration < 3 || body.duration > 15) return { error: 'INVALID_DURATION', why: 'duration' };
  }
  if (body.aspect_ratio !== undefined && !['16:9', '9:16', '1:1'].includes(body.aspect_ratio)) return { error: 'INVALID_TYPE', why: 'aspect_ratio' };
  // "Image URL for image-to-video tasks" / "End frame image URL (image-to-video only)"
  if (imageToVideo && body.image === undefined) return { error: 'MISSING_IMAGE', why: 'image' };
  if (body.image !== undefined && (!imageToVideo || !isUrl(body.image))) return { error: 'INVALID_TYPE', why: 'image' };
  if (body.end_image !== undefined && (!imageToVideo || !isUrl(body.end_image))) return { error: 'INVALID_TYPE', why: 'end_image' };
  // "Video URL for reference-to-video or video-edit tasks"
  if (edit && body.video === undefined) return { error: 'MISSING_VIDEO', why: 'video' };
  if (body.video !== undefined && (!(edit || reference) || !isUrl(body.video))) return { error: 'INVALID_TYPE', why: 'video' };
  // "Array of reference image URLs (O3 reference-to-video, max 7)"
  if (body.images !== undefined) {
    if (!reference || !Array.isArray(body.images) || body.images.length === 0 || body.images.length > 7 || !body.images.every(isUrl)) {
      return { error: 'INVALID_TYPE', why: 'images' };
    }
  }
  if (reference && body.images === undefined && body.video === undefined) return { error: 'MISSING_IMAGE', why: 'nothing to refer to' };
  if (body.sound !== undefined && typeof body.sound !== 'boolean') return { error: 'INVALID_TYPE', why: 'sound' };
  if (body.negative_prompt !== undefined && typeof body.negative_prompt !== 'string') return { error: 'INVALID_PROMPT', why: 'negative_prompt' };
  // "Prompt adherence (0-1, Kling 3.0 only)"
  if (body.cfg_scale !== undefined && (o3 || typeof body.cfg_scale !== 'number' || body.cfg_scale < 0 || body.cfg_scale > 1)) return { error: 'INVALID_TYPE', why: 'cfg_scale' };
  if (body.keep_original_sound !== undefined && (!edit || typeof body.keep_original_sound !== 'boolean')) return { error: 'INVALID_TYPE', why: 'keep_original_sound' };
  return undefined;
}

/** What the seed's table charges for an accepted body. */
function creditsOf(body: any): number {
  const price = TYPES[body.type]!;
  if (price.fixed !== undefined) return price.fixed;
  const [withAudio, silent] = price.perSecond!;
  return (body.sound === false ? silent : withAudio) * (body.duration ?? 5);
}

interface FakeTask {
  task_id: string;
  status: string;
  consumed_credits: number;
  created_at: string;
  request: Record<string, unknown>;
  response: string[] | null;
  error_message: string | null;
  type: string;
}

/** How an error answer's body looks: the seed shows the table, not the body. */
type ErrorShape = 'string-code' | 'envelope';

class StrictFake extends LoopbackFake {
  creates: { headers: IncomingMessage['headers']; body: any }[] = [];
  polls: string[] = [];
  /** Requests the seed would refuse, with why: a test expects none unless it asks for one. */
  refusals: string[] = [];
  tasks = new Map<string, FakeTask>();
  /**
   * Answers the next creates get instead of a task: an error of the table, `drop` (accepted,
   * answer lost), `hang`, `made-then-500` (accepted, answered INTERNAL_ERROR beside its task id under
   * HTTP 200), `made-then-http-500` (the same under HTTP 500, as the seed's error table gives it).
   */
  createErrors: (ErrorName | 'drop' | 'hang' | 'made-then-500' | 'made-then-http-500' | { status: number; body: unknown; headers?: Record<string, string> })[] = [];
  pollErrors: ErrorName[] = [];
  errorShape: ErrorShape = 'string-code';
  /** What the next accepted create is charged, when not the table's figure. */
  charge: number | undefined;
  private next = 1;


  task(id: string): FakeTask {
    const task = this.tasks.get(id);
    if (!task) throw new Error(`no task ${id}`);
    return task;
  }

  private answer(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  }

  private error(res: ServerResponse, name: ErrorName, why?: string) {
    const [status, description] = ERRORS[name];
    if (why) this.refusals.push(`${name}: ${why}`);
    const body = this.errorShape === 'string-code' ? { code: name, message: description } : { code: status, message: description, data: null };
    return this.answer(res, status, body);
  }

  private accept(body: any): FakeTask {
    // "Routes based on task_id prefix (n75 for Kling 3.0, n71 for Kling O3)".
    const id = `${body.type.startsWith('o3-') ? 'n71' : 'n75'}task${this.next++}`;
    const task: FakeTask = {
      task_id: id,
      status: 'IN_PROGRESS',
      consumed_credits: this.charge ?? creditsOf(body),
      created_at: '2026-11-22T12:00:00Z',
      request: body,
      response: null,
      error_message: null,
      type: body.type,
    };
    this.charge = undefined;
    this.tasks.set(id, task);
    return task;
  }

  protected async handle(req: IncomingMessage, res: ServerResponse) {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    if (req.headers.authorization !== `Bearer ${API_KEY}`) return this.error(res, 'INVALID_API_KEY');
    const url = new URL(req.url ?? '/', 'http://fake');
    if (req.method === 'POST' && url.pathname === '/api/generate') {
      if (url.search !== '') return this.error(res, 'INVALID_TYPE', `query ${url.search}`);
      if (!/^application\/json(;|$)/.test(req.headers['content-type'] ?? '')) return this.error(res, 'INVALID_TYPE', 'content-type');
      let body: any;
      try {
        body = JSON.parse(raw);
      } catch {
        return this.error(res, 'INVALID_TYPE', 'not JSON');
      }
      this.creates.push({ headers: req.headers, body });
      const refusal = refusalOf(body);
      if (refusal) return this.error(res, refusal.error, refusal.why);
      const planned = this.createErrors.shift();
      if (planned === 'drop') {
        this.accept(body);
        req.socket.destroy();
        return;
      }
      if (planned === 'hang') {
        // Accepted, and the answer never comes.
        this.accept(body);
        return;
      }
      if (planned === 'made-then-500' || planned === 'made-then-http-500') {
        const task = this.accept(body);
        return this.answer(res, planned === 'made-then-500' ? 200 : 500, { code: 'INTERNAL_ERROR', message: ERRORS.INTERNAL_ERROR[1], data: { task_id: task.task_id } });
      }
      if (typeof planned === 'string') return this.error(res, planned);
      if (planned) return this.answer(res, planned.status, planned.body, planned.headers);
      const task = this.accept(body);
      return this.answer(res, 200, { code: 200, message: 'success', data: { task_id: task.task_id, status: task.status, consumed_credits: task.consumed_credits } });
    }
    if (req.method === 'GET' && url.pathname === '/api/status') {
      if (raw !== '') return this.error(res, 'INVALID_TYPE', 'a body on GET');
      const params = [...url.searchParams.keys()];
      if (params.length !== 1 || params[0] !== 'task_id') return this.error(res, 'INVALID_TYPE', `status query ${url.search}`);
      const id = url.searchParams.get('task_id')!;
      this.polls.push(id);
      const planned = this.pollErrors.shift();
      if (planned) return this.error(res, planned);
      const task = this.tasks.get(id);
      if (!task) return this.error(res, 'INVALID_TYPE', `unknown task ${id}`);
      return this.answer(res, 200, { code: 200, message: 'success', data: task });
    }
    this.refusals.push(`${req.method} ${url.pathname}`);
    return this.answer(res, 404, { code: 404, message: 'Not Found' });
  }
}

let gw: TestGateway | undefined;
let fake: StrictFake | undefined;
afterEach(async () => {
  await gw?.close();
  await fake?.close();
  gw = undefined;
  fake = undefined;
});

/** A gateway whose only provider is kling3api, at the fake. */
async function start() {
  fake = new StrictFake();
  gw = await gatewayAtFake(kling3apiProvider, fake, { apiKey: API_KEY });
  return { gw, fake };
}

/** The registry's gateway (Freepik and legacy simulated) with kling3api at the fake. */
async function startWithOthers() {
  fake = new StrictFake();
  const baseUrl = await fake.listen();
  gw = await startTestGateway({ endpointOverrides: { kling3api: { baseUrl, apiKey: API_KEY, simulated: false } } });
  return { gw, fake };
}

function succeed(task: FakeTask, urls: string[], word = 'SUCCESS') {
  task.status = word;
  task.response = urls;
}

const IMG = 'https://img.example.com/a.png';
const IMG2 = 'https://img.example.com/b.png';
const VID = 'https://cdn.example.com/source.mp4';

describe('the gateway against a fake that keeps to seed 004', () => {
  // Every (model, quality, operation) the adapter claims, with the body the seed must accept.
  it.each([
    [{ model: 'kling-v3', quality: 'pro', prompt: 'a fox' }, { type: 'pro-text-to-video', prompt: 'a fox', duration: 5, aspect_ratio: '16:9', sound: true }, 400],
    [
      { model: 'kling-v3', quality: 'std', prompt: 'a fox', duration: 10, aspect_ratio: '9:16', audio: false, cfg_scale: 0.7, negative_prompt: 'blur' },
      { type: 'std-text-to-video', prompt: 'a fox', duration: 10, aspect_ratio: '9:16', sound: false, cfg_scale: 0.7, negative_prompt: 'blur' },
      400,
    ],
    [
      { model: 'kling-v3', quality: 'pro', prompt: 'turn', start_image_url: IMG, end_image_url: IMG2, audio: false, duration: 3 },
      { type: 'pro-image-to-video', prompt: 'turn', image: IMG, end_image: IMG2, duration: 3, aspect_ratio: '16:9', sound: false },
      162,
    ],
    [
      { model: 'kling-v3', quality: 'std', prompt: 'turn', start_image_url: IMG },
      { type: 'std-image-to-video', prompt: 'turn', image: IMG, duration: 5, aspect_ratio: '16:9', sound: true },
      300,
    ],
    [
      { model: 'kling-v3-omni', quality: 'pro', prompt: 'a city', duration: 15, aspect_ratio: '1:1' },
      { type: 'o3-pro-text-to-video', prompt: 'a city', duration: 15, aspect_ratio: '1:1', sound: true },
      720,
    ],
    [
      { model: 'kling-v3-omni', quality: 'std', prompt: 'a city', audio: false },
      { type: 'o3-std-text-to-video', prompt: 'a city', duration: 5, aspect_ratio: '16:9', sound: false },
      180,
    ],
    [
      { model: 'kling-v3-omni', quality: 'pro', prompt: 'walk', start_image_url: IMG, end_image_url: IMG2 },
      { type: 'o3-pro-image-to-video', prompt: 'walk', image: IMG, end_image: IMG2, duration: 5, aspect_ratio: '16:9', sound: true },
      240,
    ],
    [
      { model: 'kling-v3-omni', quality: 'std', prompt: 'walk', start_image_url: IMG },
      { type: 'o3-std-image-to-video', prompt: 'walk', image: IMG, duration: 5, aspect_ratio: '16:9', sound: true },
      180,
    ],
    [
      { model: 'kling-v3-omni', quality: 'pro', operation: 'reference-to-video', prompt: 'walk', reference_images: [IMG, IMG2] },
      { type: 'o3-pro-reference-to-video', prompt: 'walk', images: [IMG, IMG2], duration: 5, aspect_ratio: '16:9', sound: true },
      360,
    ],
    [
      { model: 'kling-v3-omni', quality: 'std', operation: 'reference-to-video', prompt: 'walk', reference_video_url: VID, reference_images: [IMG] },
      { type: 'o3-std-reference-to-video', prompt: 'walk', video: VID, images: [IMG], duration: 5, aspect_ratio: '16:9', sound: true },
      100,
    ],
    [
      { model: 'kling-v3-omni', quality: 'pro', operation: 'video-edit', prompt: 'snow', video_url: VID, keep_original_sound: true },
      { type: 'o3-pro-video-edit', prompt: 'snow', video: VID, keep_original_sound: true },
      435,
    ],
    [
      { model: 'kling-v3-omni', quality: 'std', operation: 'video-edit', prompt: 'snow', video_url: VID },
      { type: 'o3-std-video-edit', prompt: 'snow', video: VID },
      360,
    ],
  ])('%j is sent as the seed accepts it, tracked to its video, and charged what the upstream reported', async (request, body, credits) => {
    const { gw, fake } = await start();
    const quote = await gw.request('POST', '/v1/videos/quote', request);
    expect(quote.status).toBe(200);
    expect(quote.body.providers).toEqual([expect.objectContaining({ provider: 'kling3api', eligible: true, estimated_credits: credits })]);
    const created = await gw.create(request);
    expect(created.status).toBe(202);
    expect(fake.refusals).toEqual([]);
    expect(fake.creates).toHaveLength(1);
    expect(fake.creates[0]!.body).toStrictEqual(body);
    expect(fake.creates[0]!.headers['content-type']).toMatch(/^application\/json/);
    const id = created.body.provider_task_id;
    expect(id).toMatch(body.type.startsWith('o3-') ? /^n71/ : /^n75/);
    expect(created.body).toMatchObject({ status: 'processing', provider: 'kling3api', provider_status: 'IN_PROGRESS' });
    // The seed's table is the shipped price list: the estimate is the figure the upstream states.
    expect(created.body.cost.credits).toBe(credits);

    // Past the adapter's floor for a 15 s video (75 s), so that every case has been polled.
    await gw.advance(80_000);
    expect((await gw.get(created.body.id)).body).toMatchObject({ status: 'processing', provider_status: 'IN_PROGRESS' });
    expect(fake.polls.length).toBeGreaterThan(0);
    expect(new Set(fake.polls)).toEqual(new Set([id]));

    succeed(fake.task(id), ['https://cdn.example.com/videos/abc123.mp4']);
    const done = await gw.finish(created.body.id, 5_000);
    expect(done).toMatchObject({ status: 'succeeded', provider_status: 'SUCCESS', error: null });
    expect(done.outputs).toEqual([expect.objectContaining({ type: 'video', url: 'https://cdn.example.com/videos/abc123.mp4' })]);
    expect(done.cost).toMatchObject({ credits, estimated: false });
    expect(fake.refusals).toEqual([]);
  });

  it('the charge the upstream reports replaces the estimate, from the create on', async () => {
    const { gw, fake } = await start();
    fake.charge = 350;
    const created = await gw.create({ model: 'kling-v3', prompt: 'a fox' });
    // While it runs the figure may still change: the upstream's, but not yet final.
    expect(created.body.cost).toMatchObject({ credits: 350, estimated: true });
    const task = fake.task(created.body.provider_task_id);
    succeed(task, ['https://cdn.example.com/one.mp4', 'https://cdn.example.com/two.mp4'], 'COMPLETED');
    const done = await gw.finish(created.body.id, 5_000);
    expect(done).toMatchObject({ status: 'succeeded', provider_status: 'COMPLETED', cost: { credits: 350, estimated: false } });
    expect(done.outputs.map((output: { url: string }) => output.url)).toEqual(['https://cdn.example.com/one.mp4', 'https://cdn.example.com/two.mp4']);
  });

  it('FAILED is provider_error with the upstream message; a moderation message is content_policy; EXPIRED is expired', async () => {
    const { gw, fake } = await start();
    const a = await gw.create({ model: 'kling-v3', prompt: 'a' });
    const b = await gw.create({ model: 'kling-v3', prompt: 'b' });
    const c = await gw.create({ model: 'kling-v3-omni', prompt: 'c' });
    Object.assign(fake.task(a.body.provider_task_id), { status: 'FAILED', error_message: 'Generation failed' });
    Object.assign(fake.task(b.body.provider_task_id), { status: 'FAILED', error_message: 'Content moderation: the prompt violates the content policy', consumed_credits: 0 });
    Object.assign(fake.task(c.body.provider_task_id), { status: 'EXPIRED' });
    const [doneA, doneB, doneC] = [await gw.finish(a.body.id, 5_000), await gw.finish(b.body.id, 5_000), await gw.finish(c.body.id, 5_000)];
    expect(doneA).toMatchObject({ status: 'failed', provider_status: 'FAILED', error: { code: 'provider_error', provider_code: 'FAILED' } });
    expect(doneA.error.message).toContain('Generation failed');
    expect(doneA.cost).toMatchObject({ credits: 400, estimated: false });
    expect(doneB).toMatchObject({ status: 'failed', error: { code: 'content_policy' }, cost: { credits: 0, estimated: false } });
    expect(doneC).toMatchObject({ status: 'failed', provider_status: 'EXPIRED', error: { code: 'expired', provider_code: 'EXPIRED' } });
  });

  it('an unknown status word is never success: the task stays processing with the raw word', async () => {
    const { gw, fake } = await start();
    const created = await gw.create({ model: 'kling-v3', prompt: 'a' });
    succeed(fake.task(created.body.provider_task_id), ['https://cdn.example.com/x.mp4'], 'RENDERING');
    await gw.advance(60_000);
    await gw.advance(10_000);
    expect((await gw.get(created.body.id)).body).toMatchObject({ status: 'processing', provider_status: 'RENDERING', outputs: [] });
  });

  it('polls the seed refuses (429, 500, 401) do not end the task; the next answer does', async () => {
    const { gw, fake } = await start();
    const created = await gw.create({ model: 'kling-v3', prompt: 'a' });
    fake.pollErrors.push('RATE_LIMITED', 'INTERNAL_ERROR', 'INVALID_API_KEY');
    succeed(fake.task(created.body.provider_task_id), ['https://cdn.example.com/p.mp4']);
    const done = await gw.finish(created.body.id, 5_000);
    expect(done.status).toBe('succeeded');
    expect(fake.polls.length).toBeGreaterThanOrEqual(4);
  });

  it('a prompt of 2000 characters is sent; one of 2001 is not kling3api\'s (422 when pinned to it)', async () => {
    const { gw, fake } = await start();
    const ok = await gw.create({ model: 'kling-v3', prompt: 'x'.repeat(2000) });
    expect(ok.status).toBe(202);
    const long = await gw.create({ model: 'kling-v3', prompt: 'x'.repeat(2001) });
    expect(long.status).toBe(422);
    // "max 2000 chars": counted in characters (code points), as the gateway counts them; an
    // emoji is one character, two UTF-16 units.
    const astral = await gw.create({ model: 'kling-v3', prompt: '🦊'.repeat(2000) });
    expect(astral.status).toBe(202);
    expect(fake.creates).toHaveLength(2);
    expect(fake.refusals).toEqual([]);
  });

  it.each([
    [{ multi_shot: [{ prompt: 'a', duration: 5 }] }],
    [{ aspect_ratio: 'auto', model: 'kling-v3-omni' }],
    [{ cfg_scale: 1.5 }],
    [{ cfg_scale: 0.5, model: 'kling-v3-omni' }],
    [{ voice_ids: ['v1'] }],
    [{ model: 'kling-v3-omni', operation: 'video-edit', video_url: VID, duration: 5 }],
    [{ model: 'kling-v3-omni', operation: 'reference-to-video' }],
    // INVALID_PROMPT: "The prompt is invalid or empty"; one of spaces is empty.
    [{ prompt: ' \n\t ' }],
    // An edit is not silent: the source's sound goes with keep_original_sound, which the seed
    // shows without a default; "no audio" has no field to go in, so it is not dropped unsaid.
    [{ model: 'kling-v3-omni', operation: 'video-edit', video_url: VID, audio: false }],
  ])('a request the seed cannot take (%j) is refused with 422 and never sent', async (extra) => {
    const { gw, fake } = await start();
    const answer = await gw.create({ model: 'kling-v3', prompt: 'x', ...extra });
    expect(answer.status).toBe(422);
    expect(fake.creates).toHaveLength(0);
  });

  it('a reference-to-video with neither reference is a 422 under the group\'s first field', async () => {
    const { gw, fake } = await start();
    const answer = await gw.create({ model: 'kling-v3-omni', operation: 'reference-to-video', prompt: 'walk' });
    expect(answer.status).toBe(422);
    expect(answer.body.errors).toEqual([
      expect.objectContaining({
        path: 'reference_images',
        message: 'kling3api: reference_images or reference_video_url is required for kling-v3-omni reference-to-video',
      }),
    ]);
    expect(fake.creates).toHaveLength(0);
  });

  it('a blank prompt pinned to kling3api is a 422 under prompt that names the provider once', async () => {
    const { gw, fake } = await start();
    const answer = await gw.create({ model: 'kling-v3', prompt: ' \n\t ' });
    expect(answer.status).toBe(422);
    expect(answer.body.errors).toEqual([expect.objectContaining({ path: 'prompt', message: 'kling3api: prompt is blank; kling-v3 text-to-video needs a prompt' })]);
    expect(fake.creates).toHaveLength(0);
  });

  it.each([
    ['INVALID_API_KEY', 'string-code', 'provider_error'],
    ['INSUFFICIENT_CREDITS', 'string-code', 'insufficient_credits'],
    ['INSUFFICIENT_CREDITS', 'envelope', 'insufficient_credits'],
    ['RATE_LIMITED', 'string-code', 'provider_error'],
    ['RATE_LIMITED', 'envelope', 'provider_error'],
    ['INTERNAL_ERROR', 'string-code', 'provider_error'],
    ['INTERNAL_ERROR', 'envelope', 'provider_error'],
    ['INVALID_DURATION', 'string-code', 'invalid_request'],
    ['INVALID_PROMPT', 'envelope', 'invalid_request'],
  ] as const)('a create refused with %s (%s body) fails over to the next provider (%s)', async (name, shape, code) => {
    const { gw, fake } = await startWithOthers();
    fake.errorShape = shape;
    fake.createErrors.push(name);
    const created = await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api', 'freepik'] } });
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({ provider: 'freepik', provider_task_id: expect.any(String) });
    expect(created.body.attempts.map((attempt: { provider: string; error_code: string | null; http_status: number | null }) => [attempt.provider, attempt.error_code, attempt.http_status])).toEqual([
      ['kling3api', code, ERRORS[name][0]],
      ['freepik', null, expect.anything()],
    ]);
  });

  it('a wrong key: the seed\'s 401 fails the create over, the key never shows', async () => {
    fake = new StrictFake();
    const baseUrl = await fake.listen();
    gw = await startTestGateway({ endpointOverrides: { kling3api: { baseUrl, apiKey: 'sk-wrong', simulated: false } } });
    const created = await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api', 'freepik'] } });
    expect(created.body).toMatchObject({ provider: 'freepik' });
    expect(created.body.attempts[0]).toMatchObject({ provider: 'kling3api', error_code: 'provider_error', http_status: 401 });
    expect(JSON.stringify(created.body)).not.toContain('sk-wrong');
  });

  it('an HTTP 200 carrying the envelope of a 402 is the refusal it names, failed over', async () => {
    const { gw, fake } = await startWithOthers();
    fake.createErrors.push({ status: 200, body: { code: 402, message: 'Not enough credits for this operation', data: null } });
    const created = await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api', 'freepik'] } });
    expect(created.body).toMatchObject({ provider: 'freepik' });
    expect(created.body.attempts[0]).toMatchObject({ provider: 'kling3api', error_code: 'insufficient_credits' });
  });

  it('a create accepted but its answer lost is not failed over (it may be billed) and is not sent again', async () => {
    const { gw, fake } = await startWithOthers();
    fake.createErrors.push('drop');
    const created = await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api', 'freepik'] } });
    expect(created.body.attempts.map((attempt: { provider: string }) => attempt.provider)).toEqual(['kling3api']);
    expect(created.body.attempts[0]).toMatchObject({ outcome: 'ambiguous' });
    await gw.advance(5_000);
    await gw.advance(60_000);
    const later = (await gw.get(created.body.id)).body;
    // Nothing can find it again (the seed has no lookup): failed at once, saying why, at the estimate.
    expect(later).toMatchObject({ status: 'failed', provider: 'kling3api', provider_task_id: null, error: { code: 'provider_error' } });
    expect(later.error.message).toMatch(/may have been created \(and billed\)/);
    expect(later.cost).toMatchObject({ credits: 400, estimated: true });
    expect(fake.creates).toHaveLength(1);
  });

  it.each(['made-then-500', 'made-then-http-500'] as const)('a create answered INTERNAL_ERROR beside the task it made (%s) is adopted once its status shows it: tracked to its video, never sent elsewhere', async (answer) => {
    const { gw, fake } = await startWithOthers();
    fake.createErrors.push(answer);
    const created = await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api', 'freepik'] } });
    expect(created.status).toBe(202);
    expect(fake.creates).toHaveLength(1);
    const [made] = [...fake.tasks.keys()];
    expect(created.body).toMatchObject({ status: 'processing', provider: 'kling3api', provider_task_id: made, error: null });
    expect(created.body.attempts).toEqual([
      expect.objectContaining({
        provider: 'kling3api',
        outcome: 'accepted',
        recovered_by: 'answer',
        http_status: 500,
        provider_code: 'INTERNAL_ERROR',
        message: 'kling3api answered the create with a server error naming a task, and its status shows that task',
      }),
    ]);
    // Its status was asked once, for the task the answer named.
    expect(fake.polls).toEqual([made]);
    succeed(fake.task(made!), ['https://cdn.example.com/videos/abc123.mp4']);
    const done = await gw.finish(created.body.id, 120_000);
    expect(done).toMatchObject({ status: 'succeeded', provider: 'kling3api', cost: { credits: 400, estimated: false } });
    expect(done.attempts).toHaveLength(1);
    expect(fake.creates).toHaveLength(1);
    expect(fake.refusals).toEqual([]);
  });

  it('a create answered INTERNAL_ERROR beside a task id its status does not show is not adopted, nor sent elsewhere', async () => {
    const { gw, fake } = await startWithOthers();
    fake.createErrors.push({ status: 200, body: { code: 'INTERNAL_ERROR', message: ERRORS.INTERNAL_ERROR[1], data: { task_id: 'n75never' } } });
    const created = await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api', 'freepik'] } });
    expect(fake.polls).toEqual(['n75never']);
    // Not shown right after the create's answer: kling3api may still be making it, so the task
    // waits in doubt and is asked again until the create's time limit + 5 s have passed.
    expect(created.body).toMatchObject({ status: 'queued', provider: 'kling3api', provider_task_id: null, error: null });
    const done = await gw.finish(created.body.id);
    expect(done.attempts.map((attempt: { provider: string }) => attempt.provider)).toEqual(['kling3api']);
    expect(done).toMatchObject({ status: 'failed', provider: 'kling3api', provider_task_id: null, error: { code: 'provider_error' } });
    expect(done.error.message).toMatch(/may have created the task/);
    expect(done.attempts[0]).toMatchObject({ outcome: 'ambiguous', recovered_by: null });
    expect(new Set(fake.polls)).toEqual(new Set(['n75never']));
    await gw.advance(60_000);
    expect(fake.creates).toHaveLength(1);
  });

  it.each([
    ['INSUFFICIENT_CREDITS', 'insufficient_credits'],
    ['INVALID_DURATION', 'invalid_request'],
    ['MISSING_IMAGE', 'invalid_request'],
    ['INVALID_API_KEY', 'provider_error'],
    ['INTERNAL_ERROR', 'provider_error'],
  ] as const)('with no other provider, a create refused with %s fails at once (%s), charged nothing', async (name, code) => {
    const { gw, fake } = await start();
    fake.createErrors.push(name);
    const created = await gw.create({ model: 'kling-v3', prompt: 'x' });
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({
      status: 'failed',
      provider: 'kling3api',
      provider_task_id: null,
      error: { code, provider_code: name, message: `kling3api (${name}): ${ERRORS[name][1]}` },
      cost: { credits: 0, estimated: false },
    });
    expect(created.body.attempts).toEqual([expect.objectContaining({ outcome: 'failed', error_code: code, http_status: ERRORS[name][0] })]);
    await gw.advance(10_000);
    expect(fake.creates).toHaveLength(1);
  });

  it('with no other provider, RATE_LIMITED waits queued and is sent again', async () => {
    const { gw, fake } = await start();
    fake.createErrors.push('RATE_LIMITED');
    const created = await gw.create({ model: 'kling-v3', prompt: 'x' });
    expect(created.body).toMatchObject({ status: 'queued', provider_task_id: null, error: null });
    await gw.advance(10_000);
    await gw.advance(10_000);
    const later = (await gw.get(created.body.id)).body;
    expect(later).toMatchObject({ status: 'processing', provider_status: 'IN_PROGRESS', provider_task_id: expect.stringMatching(/^n75/) });
    expect(later.attempts.map((attempt: { outcome: string }) => attempt.outcome)).toEqual(['failed', 'accepted']);
    expect(fake.creates).toHaveLength(2);
  });

  it('with no other provider, a RATE_LIMITED with Retry-After is not sent again before it says', async () => {
    const { gw, fake } = await start();
    fake.createErrors.push({ status: 429, body: { code: 'RATE_LIMITED', message: ERRORS.RATE_LIMITED[1] }, headers: { 'retry-after': '30' } });
    const created = await gw.create({ model: 'kling-v3', prompt: 'x' });
    expect(created.body).toMatchObject({ status: 'queued' });
    for (let i = 0; i < 5; i++) await gw.advance(5_000);
    expect(fake.creates).toHaveLength(1);
    await gw.advance(10_000);
    await gw.advance(5_000);
    expect(fake.creates).toHaveLength(2);
    expect((await gw.get(created.body.id)).body).toMatchObject({ status: 'processing', provider_status: 'IN_PROGRESS' });
  });

  it('/v1/models names kling3api for the seed\'s twelve types, and says what reference-to-video needs', async () => {
    const { gw } = await start();
    const models = (await gw.request('GET', '/v1/models')).body.data;
    const served = models.flatMap((model: any) =>
      model.operations.flatMap((operation: any) =>
        operation.providers
          .filter((provider: any) => provider.provider === 'kling3api')
          .flatMap((provider: any) => provider.qualities.map((quality: string) => `${model.model} ${quality} ${operation.operation}`)),
      ),
    );
    expect(served).toHaveLength(Object.keys(TYPES).length);
    const reference = models
      .find((model: any) => model.model === 'kling-v3-omni')
      .operations.find((operation: any) => operation.operation === 'reference-to-video')
      .providers.find((provider: any) => provider.provider === 'kling3api');
    // The router refuses a reference-to-video with neither (above): the catalogue says so too.
    expect(reference.required_one_of).toEqual([['reference_images', 'reference_video_url']]);
  });

  it('a create that gets no answer in time is not failed over (it may be billed)', async () => {
    const { gw, fake } = await startWithOthers();
    fake.createErrors.push('hang');
    const created = await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api', 'freepik'] } });
    expect(created.body.attempts).toEqual([expect.objectContaining({ provider: 'kling3api', outcome: 'ambiguous', error_code: 'timeout' })]);
    expect(created.body.provider).toBe('kling3api');
    expect(fake.creates).toHaveLength(1);
  });

  it('a refusal worded as content policy is content_policy and not failed over', async () => {
    const { gw, fake } = await startWithOthers();
    fake.createErrors.push({ status: 400, body: { code: 'INVALID_PROMPT', message: 'The prompt was flagged by content moderation' } });
    const created = await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api', 'freepik'] } });
    expect(created.body).toMatchObject({ status: 'failed', provider: 'kling3api', error: { code: 'content_policy', provider_code: 'INVALID_PROMPT' } });
    expect(created.body.attempts).toHaveLength(1);
  });

  it('all of the gateway\'s requests carried the Bearer key', async () => {
    const { gw, fake } = await start();
    const created = await gw.create({ model: 'kling-v3', prompt: 'a' });
    succeed(fake.task(created.body.provider_task_id), ['https://cdn.example.com/y.mp4']);
    await gw.finish(created.body.id, 5_000);
    expect(fake.creates.every((create) => create.headers.authorization === `Bearer ${API_KEY}`)).toBe(true);
    expect(fake.refusals).toEqual([]);
  });
});
