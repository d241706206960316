/**
 * The gateway against a strict fake of Freepik's Kling 3 / Kling 3 Omni API written from seeds
 * 000, 001 and 003 alone (not the repo's simulator): `POST /v1/ai/video/kling-v3-{pro|std}`
 * (`kling-v3-request`), `POST /v1/ai/video/kling-v3-omni-{pro|std}` (`kling-v3-omni-request`),
 * `POST /v1/ai/reference-to-video/kling-v3-omni-{pro|std}` (`kling-v3-omni-video-reference-request`),
 * `GET <family>/{task-id}` answering `{data: {task_id, status, generated}}`, the task lists, the
 * `x-freepik-api-key` header, the documented `{message}` error bodies, and webhooks signed as seed
 * 001 "Webhook security" says. Every body is checked against its schema, undocumented fields refused.
 */
import { createHmac, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import { FREEPIK_OFFERINGS } from '../../../src/providers/freepik/freepik-capabilities.js';
import { freepikProvider } from '../../../src/providers/freepik/freepik-provider.js';
import { variants } from '../../support/capability-requests.js';
import { startTestGateway, type TestGateway } from '../../support/harness.js';
import { gatewayAtFake, LoopbackFake } from '../../support/loopback-fake.js';
import { closedSchema } from '../../support/openapi-contract.js';

const API_KEY = 'fpk-strict-fake';
const WEBHOOK_SECRET = 'freepik-dashboard-secret';

// The schemas, copied from the seeds (001 and 003; the OpenAPI schemas, not the overview prose).
type Spec = Record<string, unknown>;

const DURATION: Spec = { type: 'string', enum: ['3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14', '15'] };
const TEXT: Spec = { type: 'string', maxLength: 2500 };
const URI: Spec = { type: 'string', format: 'uri' };
const STRING: Spec = { type: 'string' };
const STRINGS: Spec = { type: 'array', items: STRING };
const CFG: Spec = { type: 'number', minimum: 0, maximum: 2 };
const ELEMENT: Spec = { type: 'object', properties: { reference_image_urls: STRINGS, frontal_image_url: STRING } };
const OMNI_ASPECT: Spec = { type: 'string', enum: ['auto', '16:9', '9:16', '1:1'] };

/** seed 001, `kling-v3-request`. */
const KLING_V3_REQUEST: Spec = {
  type: 'object',
  properties: {
    webhook_url: URI,
    prompt: TEXT,
    multi_prompt: { type: 'array', maxItems: 6, items: { type: 'object', properties: { prompt: TEXT, duration: DURATION } } },
    start_image_url: STRING,
    end_image_url: STRING,
    elements: { type: 'array', items: ELEMENT },
    generate_audio: { type: 'boolean' },
    voice_ids: STRINGS,
    shot_type: { type: 'string', enum: ['customize', 'intelligent'] },
    aspect_ratio: { type: 'string', enum: ['16:9', '9:16', '1:1'] },
    duration: DURATION,
    negative_prompt: TEXT,
    cfg_scale: CFG,
  },
};

/** seed 001, `kling-v3-omni-request`. */
const OMNI_REQUEST: Spec = {
  type: 'object',
  properties: {
    webhook_url: URI,
    prompt: TEXT,
    multi_prompt: { type: 'array', maxItems: 6, items: STRING },
    shot_type: { type: 'string', enum: ['customize'] },
    image_url: STRING,
    start_image_url: STRING,
    end_image_url: STRING,
    image_urls: STRINGS,
    elements: { type: 'array', items: ELEMENT },
    generate_audio: { type: 'boolean' },
    voice_ids: STRINGS,
    aspect_ratio: OMNI_ASPECT,
    duration: DURATION,
  },
};

/** seeds 001 and 003, `kling-v3-omni-video-reference-request`. */
const OMNI_REFERENCE_REQUEST: Spec = {
  type: 'object',
  required: ['video_url'],
  properties: {
    webhook_url: URI,
    prompt: TEXT,
    image_url: STRING,
    video_url: URI,
    duration: DURATION,
    aspect_ratio: OMNI_ASPECT,
    cfg_scale: CFG,
    negative_prompt: TEXT,
  },
};

/**
 * Create path → [the problems with a body by its request schema (Ajv, every object closed, so an
 * undocumented field is one), the family its task is polled and listed under].
 */
const CREATES: Record<string, [(body: unknown) => string[], string]> = {
  '/v1/ai/video/kling-v3-pro': [closedSchema(KLING_V3_REQUEST), '/v1/ai/video/kling-v3'],
  '/v1/ai/video/kling-v3-std': [closedSchema(KLING_V3_REQUEST), '/v1/ai/video/kling-v3'],
  '/v1/ai/video/kling-v3-omni-pro': [closedSchema(OMNI_REQUEST), '/v1/ai/video/kling-v3-omni'],
  '/v1/ai/video/kling-v3-omni-std': [closedSchema(OMNI_REQUEST), '/v1/ai/video/kling-v3-omni'],
  '/v1/ai/reference-to-video/kling-v3-omni-pro': [closedSchema(OMNI_REFERENCE_REQUEST), '/v1/ai/reference-to-video/kling-v3-omni'],
  '/v1/ai/reference-to-video/kling-v3-omni-std': [closedSchema(OMNI_REFERENCE_REQUEST), '/v1/ai/reference-to-video/kling-v3-omni'],
};

interface FakeTask {
  task_id: string;
  status: 'CREATED' | 'IN_PROGRESS' | 'COMPLETED' | 'FAILED';
  generated: string[];
  family: string;
  webhookUrl?: string;
}

/** `drop`: accepted, the answer lost; `hang`: accepted, never answered; `lost`: the connection cut before the task was made. */
type Answer = [number, unknown] | 'drop' | 'hang' | 'lost';

class StrictFreepik extends LoopbackFake {
  creates: { path: string; body: any }[] = [];
  gets: string[] = [];
  lists: string[] = [];
  /** Bodies the fake refused as the seeds' schemas would, with why. */
  refusals: string[] = [];
  tasks = new Map<string, FakeTask>();
  createErrors: Answer[] = [];
  /** The create answer's shape: seed 001 gives it no schema (`task-detail-200-default-response`). */
  createAnswer: 'envelope' | 'bare' = 'envelope';
  /** The webhook payload's shape: seed 001 says only that it "includes the task status and result URL". */
  webhookPayload: 'bare' | 'envelope' = 'bare';
  getErrors: [number, unknown][] = [];
  /** Set: the task runs at once, and its IN_PROGRESS webhook is sent before the create is answered; the answers to it are kept. */
  early?: { nowMs: () => number; statuses: number[] };

  private answer(res: ServerResponse, status: number, body: unknown, type = 'application/json') {
    res.writeHead(status, { 'content-type': type });
    res.end(JSON.stringify(body));
  }

  /** The task as the status answer's `task-detail` has it (and the webhook payload). */
  detail(task: FakeTask) {
    return { task_id: task.task_id, status: task.status, generated: task.generated };
  }

  protected async handle(req: IncomingMessage, res: ServerResponse) {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    // seed 001, every operation's `401`.
    const key = req.headers['x-freepik-api-key'];
    if (key === undefined) return this.answer(res, 401, { message: 'Missing API key' });
    if (key !== API_KEY) return this.answer(res, 401, { message: 'Invalid API key' });
    const url = new URL(req.url ?? '/', this.baseUrl);
    const path = url.pathname;
    if (req.method === 'POST' && CREATES[path]) {
      const [problems, family] = CREATES[path]!;
      let body: unknown;
      try {
        if (!/^application\/json/.test(req.headers['content-type'] ?? '')) throw new Error('not JSON');
        body = JSON.parse(raw);
      } catch {
        return this.answer(res, 400, { message: "Parameter ':attribute' is not valid" });
      }
      this.creates.push({ path, body });
      const reasons = problems(body);
      if (reasons.length > 0) {
        this.refusals.push(...reasons);
        // The problem form of seed 001's `400`.
        return this.answer(
          res,
          400,
          { problem: { message: "Your request parameters didn't validate.", invalid_params: reasons.map((reason) => ({ name: 'body', reason })) } },
          'application/problem+json',
        );
      }
      const error = this.createErrors.shift();
      if (error === 'lost') {
        req.socket.destroy();
        return;
      }
      const task: FakeTask = { task_id: randomUUID(), status: 'CREATED', generated: [], family };
      const webhookUrl = (body as { webhook_url?: string }).webhook_url;
      if (webhookUrl) task.webhookUrl = webhookUrl;
      if (error === 'drop' || error === 'hang') {
        // Accepted, but the answer is lost (or never comes: the socket is closed with the server).
        this.tasks.set(task.task_id, task);
        if (error === 'drop') req.socket.destroy();
        return;
      }
      if (error) return this.answer(res, error[0], error[1]);
      this.tasks.set(task.task_id, task);
      if (this.early && task.webhookUrl) {
        task.status = 'IN_PROGRESS';
        this.early.statuses.push(await this.notify(task, this.early.nowMs()));
      }
      return this.answer(res, 200, this.createAnswer === 'bare' ? this.detail(task) : { data: this.detail(task) });
    }
    if (req.method === 'GET') {
      const family = Object.values(CREATES).find(([, candidate]) => path === candidate || path.startsWith(`${candidate}/`))?.[1];
      const rest = family ? path.slice(family.length) : '';
      if (family && /^\/[^/]+$/.test(rest)) {
        this.gets.push(`${path}${url.search}`);
        // The status operations take the task id in the path and nothing else.
        if (url.search !== '') return this.answer(res, 400, { message: "Parameter ':attribute' is not valid" });
        const getError = this.getErrors.shift();
        if (getError) return this.answer(res, getError[0], getError[1]);
        const task = this.tasks.get(decodeURIComponent(rest.slice(1)));
        // A task is found only under the family it was created in.
        if (!task || task.family !== family) return this.answer(res, 404, { message: 'Not found' });
        return this.answer(res, 200, { data: this.detail(task) });
      }
      if (family && rest === '') {
        this.lists.push(`${path}${url.search}`);
        // Only the reference-to-video list documents parameters (`page` ≥ 1, 1 ≤ `page_size` ≤ 100).
        const paged = family === '/v1/ai/reference-to-video/kling-v3-omni';
        const names = [...url.searchParams.keys()];
        if (!paged && names.length > 0) return this.answer(res, 400, { message: "Parameter ':attribute' is not valid" });
        const page = Number(url.searchParams.get('page') ?? '1');
        const size = Number(url.searchParams.get('page_size') ?? '20');
        if (names.some((name) => name !== 'page' && name !== 'page_size') || !(page >= 1) || !(size >= 1 && size <= 100)) {
          return this.answer(res, 400, { message: "Parameter 'page' must be greater than 0" });
        }
        const all = [...this.tasks.values()].filter((task) => task.family === family);
        const shown = paged ? all.slice((page - 1) * size, page * size) : all;
        return this.answer(res, 200, { data: shown.map((task) => ({ task_id: task.task_id, status: task.status })) });
      }
    }
    return this.answer(res, 404, { message: 'Not found' });
  }

  /**
   * Sends the task to its `webhook_url` as seed 001 signs: `webhook-id`, `webhook-timestamp`
   * (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`, keyed
   * with the secret's bytes.
   */
  async notify(task: FakeTask, nowMs: number, secret = WEBHOOK_SECRET, id = `msg_${randomUUID()}`): Promise<number> {
    const body = JSON.stringify(this.webhookPayload === 'bare' ? this.detail(task) : { data: this.detail(task) });
    const timestamp = String(Math.floor(nowMs / 1000));
    const signature = createHmac('sha256', Buffer.from(secret, 'utf8')).update(`${id}.${timestamp}.${body}`).digest('base64');
    const response = await fetch(task.webhookUrl!, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${signature}` },
      body,
    });
    return response.status;
  }
}

let gw: TestGateway | undefined;
let fake: StrictFreepik | undefined;
afterEach(async () => {
  await gw?.close();
  await fake?.close();
  gw = undefined;
  fake = undefined;
});

/** A gateway whose only provider is Freepik at the fake; webhooks on unless `webhooks: false`. */
async function start(webhooks = true) {
  fake = new StrictFreepik();
  gw = await gatewayAtFake(
    freepikProvider,
    fake,
    { apiKey: API_KEY, ...(webhooks ? { webhookSecrets: [WEBHOOK_SECRET] } : {}) },
    // Room for every create of the sweep below at once.
    { config: { providers: { freepik: { max_in_flight: 1_000 } }, limits: { creates_per_minute: 1_000 } }, clock: new ManualClock(Date.now()) },
  );
  return { gw, fake };
}

/** The full registry (other providers simulated) with Freepik at the fake, for failover. */
async function startWithOthers() {
  fake = new StrictFreepik();
  const baseUrl = await fake.listen();
  gw = await startTestGateway({ endpointOverrides: { freepik: { baseUrl, apiKey: API_KEY, simulated: false, webhookSecrets: [WEBHOOK_SECRET] } } });
  return { gw, fake };
}

const taskOf = (id: string) => fake!.tasks.get(id)!;

describe('the gateway against a fake that keeps to seeds 000, 001 and 003', () => {
  it.each([
    [
      'kling-v3 text-to-video, every field',
      {
        model: 'kling-v3',
        quality: 'pro',
        prompt: 'a fox',
        negative_prompt: 'blur',
        duration: 10,
        aspect_ratio: '9:16',
        cfg_scale: 1.5,
        audio: false,
        voice_ids: ['v1', 'v2'],
      },
      '/v1/ai/video/kling-v3-pro',
      { prompt: 'a fox', negative_prompt: 'blur', duration: '10', aspect_ratio: '9:16', cfg_scale: 1.5, generate_audio: false, voice_ids: ['v1', 'v2'] },
    ],
    [
      'kling-v3 multi-shot',
      { model: 'kling-v3', quality: 'std', multi_shot: [{ prompt: 'one', duration: 3 }, { prompt: 'two', duration: 4 }], duration: 7 },
      '/v1/ai/video/kling-v3-std',
      { multi_prompt: [{ prompt: 'one', duration: '3' }, { prompt: 'two', duration: '4' }], shot_type: 'customize', duration: '7' },
    ],
    [
      'kling-v3 image-to-video with both frames and an element',
      {
        model: 'kling-v3',
        quality: 'pro',
        prompt: '@Element1 walks',
        start_image_url: 'https://img.example.com/a.png',
        end_image_url: 'https://img.example.com/b.png',
        elements: [{ frontal_image_url: 'https://img.example.com/f.png', reference_image_urls: ['https://img.example.com/r.png'] }],
        duration: 5,
      },
      '/v1/ai/video/kling-v3-pro',
      {
        start_image_url: 'https://img.example.com/a.png',
        end_image_url: 'https://img.example.com/b.png',
        elements: [{ frontal_image_url: 'https://img.example.com/f.png', reference_image_urls: ['https://img.example.com/r.png'] }],
      },
    ],
    [
      'kling-v3-omni text-to-video in shots',
      { model: 'kling-v3-omni', quality: 'std', multi_shot: [{ prompt: 'one' }, { prompt: 'two' }], duration: 8, aspect_ratio: '1:1' },
      '/v1/ai/video/kling-v3-omni-std',
      { multi_prompt: ['one', 'two'], shot_type: 'customize', duration: '8', aspect_ratio: '1:1' },
    ],
    [
      'kling-v3-omni image-to-video with both frames',
      {
        model: 'kling-v3-omni',
        quality: 'pro',
        prompt: 'turn',
        start_image_url: 'https://img.example.com/a.png',
        end_image_url: 'https://img.example.com/b.png',
        aspect_ratio: 'auto',
        audio: true,
        voice_ids: ['v1'],
        duration: 5,
      },
      '/v1/ai/video/kling-v3-omni-pro',
      { image_url: 'https://img.example.com/a.png', end_image_url: 'https://img.example.com/b.png', aspect_ratio: 'auto', generate_audio: true, voice_ids: ['v1'] },
    ],
    [
      'kling-v3-omni reference images',
      {
        model: 'kling-v3-omni',
        quality: 'pro',
        operation: 'reference-to-video',
        prompt: '@Image1 and @Element1',
        reference_images: ['https://img.example.com/1.png', 'https://img.example.com/2.png'],
        elements: [{ frontal_image_url: 'https://img.example.com/f.png', reference_image_urls: [] }],
        duration: 5,
      },
      '/v1/ai/video/kling-v3-omni-pro',
      { image_urls: ['https://img.example.com/1.png', 'https://img.example.com/2.png'], elements: [{ frontal_image_url: 'https://img.example.com/f.png' }] },
    ],
    [
      'kling-v3-omni video reference with a start frame',
      {
        model: 'kling-v3-omni',
        quality: 'std',
        operation: 'reference-to-video',
        prompt: 'like @Video1',
        negative_prompt: 'blur',
        reference_video_url: 'https://cdn.example.com/ref%20clip.mp4',
        start_image_url: 'https://img.example.com/a.png',
        aspect_ratio: '16:9',
        cfg_scale: 0,
        duration: 6,
      },
      '/v1/ai/reference-to-video/kling-v3-omni-std',
      {
        video_url: 'https://cdn.example.com/ref%20clip.mp4',
        image_url: 'https://img.example.com/a.png',
        prompt: 'like @Video1',
        negative_prompt: 'blur',
        aspect_ratio: '16:9',
        cfg_scale: 0,
        duration: '6',
      },
    ],
  ])('%s: a body its schema accepts, on its endpoint, with the signed webhook_url', async (_name, request, path, expected) => {
    const { gw, fake } = await start();
    const created = await gw.create(request);
    expect(fake.refusals).toEqual([]);
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({ status: 'queued', provider: 'freepik', provider_status: 'CREATED', provider_task_id: expect.any(String) });
    expect(fake.creates).toEqual([{ path, body: expect.objectContaining(expected) }]);
    expect(fake.creates[0]!.body.webhook_url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1\/webhooks\/freepik\/[^/]+$/);
  });

  it('every request the capabilities declare served (each field at its values and edges) reaches its endpoint in a body the seed accepts', async () => {
    const { gw, fake } = await start();
    const sent: string[] = [];
    for (const offering of FREEPIK_OFFERINGS) {
      for (const quality of offering.qualities) {
        for (const variant of variants(offering, quality)) {
          const before = fake.creates.length;
          // Within Freepik's documented 50 hits/s, which the gateway keeps to.
          await gw.clock.advance(50);
          const created = await gw.create(variant.input);
          const label = `${offering.model} ${offering.operation} ${quality} ${variant.label}`;
          // A variant the offering does not serve (shots with no durations on Kling 3) is refused before Freepik.
          if (created.status === 422) {
            expect(fake.creates.length, label).toBe(before);
            continue;
          }
          expect(created.status, label).toBe(202);
          expect(fake.refusals, label).toEqual([]);
          expect(fake.creates.length, label).toBe(before + 1);
          const { path } = fake.creates.at(-1)!;
          const family = (variant.input as { reference_video_url?: string }).reference_video_url ? '/v1/ai/reference-to-video/' : '/v1/ai/video/';
          expect(path, label).toBe(`${family}${offering.model}-${quality}`);
          sent.push(path);
        }
      }
    }
    expect(new Set(sent)).toEqual(new Set(Object.keys(CREATES)));
    expect(sent.length).toBeGreaterThan(150);
  });

  it('a webhook-tracked task: CREATED is queued with its id, IN_PROGRESS processing, COMPLETED succeeded with the generated URL and an estimated cost', async () => {
    const { gw, fake } = await start();
    const created = await gw.create({ model: 'kling-v3', quality: 'pro', prompt: 'a fox', duration: 5 });
    const task = taskOf(created.body.provider_task_id);
    expect(task.webhookUrl).toBe(fake.creates[0]!.body.webhook_url);
    expect((await gw.get(created.body.id)).body).toMatchObject({ status: 'queued', provider_task_id: task.task_id });
    task.status = 'IN_PROGRESS';
    expect(await fake.notify(task, gw.clock.now())).toBe(200);
    await gw.gateway.runOnce();
    expect((await gw.get(created.body.id)).body).toMatchObject({ status: 'processing', provider_status: 'IN_PROGRESS' });
    task.status = 'COMPLETED';
    task.generated = ['https://cdn.example.com/fox.mp4'];
    expect(await fake.notify(task, gw.clock.now())).toBe(200);
    await gw.gateway.runOnce();
    const done = (await gw.get(created.body.id)).body;
    expect(done).toMatchObject({ status: 'succeeded', provider_status: 'COMPLETED' });
    expect(done.outputs).toEqual([expect.objectContaining({ type: 'video', url: 'https://cdn.example.com/fox.mp4' })]);
    // Freepik reports no charge: the estimate stands (11.2 credits a second, 5 s, Pro).
    expect(done.cost).toMatchObject({ credits: 56, estimated: true });
  });

  it.each([
    ['bare', 'envelope'],
    ['envelope', 'envelope'],
    ['bare', 'bare'],
  ] as const)('the seed leaves the create answer and the webhook payload without a schema: a %s create answer and a webhook under %s are read', async (createAnswer, webhookPayload) => {
    const { gw, fake } = await start();
    fake.createAnswer = createAnswer;
    fake.webhookPayload = webhookPayload;
    const created = await gw.create({ model: 'kling-v3-omni', quality: 'pro', prompt: 'x', duration: 5 });
    expect(created.body).toMatchObject({ status: 'queued', provider_status: 'CREATED', provider_task_id: expect.any(String) });
    const task = taskOf(created.body.provider_task_id);
    task.status = 'COMPLETED';
    task.generated = ['https://cdn.example.com/shape.mp4'];
    expect(await fake.notify(task, gw.clock.now())).toBe(200);
    const done = await gw.finish(created.body.id);
    expect(done).toMatchObject({ status: 'succeeded', outputs: [expect.objectContaining({ url: 'https://cdn.example.com/shape.mp4' })] });
  });

  it('an IN_PROGRESS webhook that comes before the create answer is held (200) and makes the task processing, with no poll', async () => {
    const { gw, fake } = await start();
    const statuses: number[] = [];
    fake.early = { nowMs: () => gw.clock.now(), statuses };
    const created = await gw.create({ model: 'kling-v3', quality: 'pro', prompt: 'quick', duration: 5 });
    expect(created.body).toMatchObject({ provider_task_id: expect.any(String) });
    expect(statuses).toEqual([200]);
    expect(created.body).toMatchObject({ status: 'processing', provider_status: 'IN_PROGRESS' });
    await gw.advance(1_000);
    expect((await gw.get(created.body.id)).body.status).toBe('processing');
    expect(fake.gets).toEqual([]);
  });

  it('a webhook sent again with its webhook-id (a retry) is acknowledged and changes nothing more', async () => {
    const { gw, fake } = await start();
    const created = await gw.create({ model: 'kling-v3', quality: 'pro', prompt: 'twice', duration: 5 });
    const task = taskOf(created.body.provider_task_id);
    task.status = 'COMPLETED';
    task.generated = ['https://cdn.example.com/twice.mp4'];
    const first = await fake.notify(task, gw.clock.now(), WEBHOOK_SECRET, 'msg_retry');
    await gw.gateway.runOnce();
    const again = await fake.notify(task, gw.clock.now(), WEBHOOK_SECRET, 'msg_retry');
    expect([first, again]).toEqual([200, 200]);
    expect((await gw.get(created.body.id)).body.status).toBe('succeeded');
  });

  it('a webhook signed with another secret is refused (401) and changes nothing', async () => {
    const { gw, fake } = await start();
    const created = await gw.create({ model: 'kling-v3', quality: 'std', prompt: 'x', duration: 5 });
    const task = taskOf(created.body.provider_task_id);
    task.status = 'COMPLETED';
    task.generated = ['https://cdn.example.com/forged.mp4'];
    expect(await fake.notify(task, gw.clock.now(), 'another-secret')).toBe(401);
    await gw.gateway.runOnce();
    expect((await gw.get(created.body.id)).body.status).toBe('queued');
  });

  it.each([
    ['/v1/ai/video/kling-v3', { model: 'kling-v3', quality: 'std', prompt: 'x', duration: 5 }],
    ['/v1/ai/video/kling-v3-omni', { model: 'kling-v3-omni', quality: 'std', prompt: 'x', duration: 5 }],
    [
      '/v1/ai/reference-to-video/kling-v3-omni',
      { model: 'kling-v3-omni', quality: 'pro', operation: 'reference-to-video', reference_video_url: 'https://cdn.example.com/r.mp4', prompt: '@Video1', duration: 5 },
    ],
  ])('a poll-tracked task (no webhook secret) is polled at %s/{task-id} and ends there', async (family, request) => {
    const { gw, fake } = await start(false);
    const created = await gw.create(request);
    expect(fake.refusals).toEqual([]);
    expect(fake.creates[0]!.body.webhook_url).toBeUndefined();
    const task = taskOf(created.body.provider_task_id);
    // Seed 001: "Typical generation takes 30-120 seconds": no poll before the shortest job could end.
    for (let i = 0; i < 5; i++) await gw.advance(5_000);
    expect(fake.gets).toEqual([]);
    task.status = 'IN_PROGRESS';
    await gw.advanceUntil(async () => (await gw.get(created.body.id)).body.status === 'processing', 5_000, 30);
    task.status = 'COMPLETED';
    task.generated = ['https://cdn.example.com/done.mp4'];
    const done = await gw.finish(created.body.id, 5_000);
    expect(done).toMatchObject({ status: 'succeeded', outputs: [expect.objectContaining({ url: 'https://cdn.example.com/done.mp4' })] });
    expect(new Set(fake.gets)).toEqual(new Set([`${family}/${task.task_id}`]));
  });

  it('a FAILED task is failed with a provider_error, at its estimated cost', async () => {
    const { gw } = await start(false);
    const created = await gw.create({ model: 'kling-v3', quality: 'std', prompt: 'x', duration: 5 });
    taskOf(created.body.provider_task_id).status = 'FAILED';
    const done = await gw.finish(created.body.id, 5_000);
    expect(done).toMatchObject({ status: 'failed', provider_status: 'FAILED', error: { code: 'provider_error' } });
    // No charge is reported and none of the seeds says a failure is free: the estimate (8.4 credits a second, 5 s, Standard).
    expect(done.cost).toMatchObject({ credits: 42, estimated: true });
  });

  it('polls answered 500, 503 and 401 do not end the task; the next answer does', async () => {
    const { gw, fake } = await start(false);
    const created = await gw.create({ model: 'kling-v3', quality: 'std', prompt: 'x', duration: 5 });
    fake.getErrors.push([500, { message: 'Internal Server Error' }], [503, { message: 'Service Unavailable. Please try again later.' }], [401, { message: 'Invalid API key' }]);
    const task = taskOf(created.body.provider_task_id);
    task.status = 'COMPLETED';
    task.generated = ['https://cdn.example.com/p.mp4'];
    const done = await gw.finish(created.body.id, 5_000);
    expect(done.status).toBe('succeeded');
    expect(fake.gets.length).toBeGreaterThanOrEqual(4);
  });

  it('a prompt over 2500 characters never reaches Freepik', async () => {
    const { gw, fake } = await start();
    const created = await gw.create({ model: 'kling-v3', quality: 'std', prompt: 'x'.repeat(2501), duration: 5 });
    expect(created.status).toBeGreaterThanOrEqual(400);
    expect(fake.creates).toEqual([]);
  });

  it('a create answered 400 {message} with no other provider fails as invalid_request with the message', async () => {
    const { gw, fake } = await start();
    fake.createErrors.push([400, { message: "Parameter 'prompt' is not valid" }]);
    const created = await gw.create({ model: 'kling-v3', quality: 'std', prompt: 'x', duration: 5 });
    expect(created.body).toMatchObject({ status: 'failed', error: { code: 'invalid_request', message: expect.stringContaining("Parameter 'prompt' is not valid") } });
    // Certainly never accepted: nothing to pay.
    expect(created.body.cost).toMatchObject({ credits: 0, estimated: false });
  });

  it('a prompt of 2500 characters outside the BMP is sent (maxLength counts characters)', async () => {
    const { gw, fake } = await start();
    const created = await gw.create({ model: 'kling-v3-omni', quality: 'std', prompt: '🦊'.repeat(2500), duration: 5 });
    expect(fake.refusals).toEqual([]);
    expect(created.body).toMatchObject({ status: 'queued', provider_task_id: expect.any(String) });
  });

  it('a reference-to-video create cut off before Freepik made a task is found absent in the paged list, and not sent twice', async () => {
    const { gw, fake } = await start();
    const request = {
      model: 'kling-v3-omni',
      quality: 'pro',
      operation: 'reference-to-video',
      reference_video_url: 'https://cdn.example.com/r.mp4',
      prompt: '@Video1',
      duration: 5,
    };
    const earlier = await gw.create(request);
    expect(earlier.body.provider_task_id).toEqual(expect.any(String));
    fake.createErrors.push('lost');
    const created = await gw.create(request);
    expect(created.body.attempts).toEqual([expect.objectContaining({ provider: 'freepik', outcome: 'ambiguous' })]);
    const ended = await gw.finish(created.body.id, 5_000);
    // Only this list documents paging (`page` ≥ 1, `page_size` ≤ 100): read to its empty page, it holds only the task the gateway knows.
    expect(fake.lists.slice(0, 2)).toEqual([
      '/v1/ai/reference-to-video/kling-v3-omni?page=1&page_size=100',
      '/v1/ai/reference-to-video/kling-v3-omni?page=2&page_size=100',
    ]);
    // No other provider serves it: failed, not sent to Freepik a second time.
    expect(ended).toMatchObject({ status: 'failed', error: { code: 'no_provider_available', message: expect.stringContaining('not accepted upstream') } });
    expect(fake.creates).toHaveLength(2);
  });

  it('COMPLETED with no generated URL is not a success', async () => {
    const { gw } = await start(false);
    const created = await gw.create({ model: 'kling-v3', quality: 'std', prompt: 'x', duration: 5 });
    taskOf(created.body.provider_task_id).status = 'COMPLETED';
    const done = await gw.finish(created.body.id, 5_000);
    expect(done).toMatchObject({ status: 'failed', provider_status: 'COMPLETED' });
  });

  it('a create refused in the problem form of 400 shows the invalid params to the user', async () => {
    const { gw, fake } = await start();
    fake.createErrors.push([400, { problem: { message: "Your request parameters didn't validate.", invalid_params: [{ name: 'duration', reason: 'too long for the plan' }] } }]);
    const created = await gw.create({ model: 'kling-v3', quality: 'std', prompt: 'x', duration: 5 });
    expect(created.body).toMatchObject({ status: 'failed', error: { code: 'invalid_request', message: expect.stringContaining('duration: too long for the plan') } });
  });

  it('a create accepted but unanswered is not sent again, and is adopted by the webhook on its attempt path', async () => {
    const { gw, fake } = await start();
    fake.createErrors.push('drop');
    const created = await gw.create({ model: 'kling-v3', quality: 'std', prompt: 'lost', duration: 5 });
    expect(created.body.attempts).toEqual([expect.objectContaining({ provider: 'freepik', outcome: 'ambiguous' })]);
    await gw.advance(5_000);
    // The list holds a task the gateway does not know: ours or another client's, it proves nothing.
    expect(fake.lists.every((list) => list === '/v1/ai/video/kling-v3')).toBe(true);
    const [task] = [...fake.tasks.values()];
    task!.status = 'COMPLETED';
    task!.generated = ['https://cdn.example.com/lost.mp4'];
    expect(await fake.notify(task!, gw.clock.now())).toBe(200);
    await gw.advanceUntil(async () => (await gw.get(created.body.id)).body.status === 'succeeded', 5_000, 20);
    expect((await gw.get(created.body.id)).body).toMatchObject({ status: 'succeeded', provider_task_id: task!.task_id });
    expect(fake.creates).toHaveLength(1);
  });

  it.each([
    [429, { message: 'Too Many Requests' }, 'provider_error'],
    [500, { message: 'Internal Server Error' }, 'provider_error'],
    [503, { message: 'Service Unavailable. Please try again later.' }, 'provider_error'],
    [401, { message: 'Invalid API key' }, 'provider_error'],
    [402, { message: 'Insufficient credits' }, 'insufficient_credits'],
    [400, { message: "Parameter ':attribute' is not valid" }, 'invalid_request'],
  ])('a create refused with HTTP %s %j fails over to the next provider (%s)', async (status, body, code) => {
    const { gw, fake } = await startWithOthers();
    fake.createErrors.push([status, body]);
    const created = await gw.create({ model: 'kling-v3', prompt: 'x', duration: 5, routing: { providers: ['freepik', 'kling3api'] } });
    expect(created.body).toMatchObject({ provider: 'kling3api', provider_task_id: expect.any(String) });
    expect(created.body.attempts.map((attempt: { provider: string; error_code: string | null }) => [attempt.provider, attempt.error_code])).toEqual([
      ['freepik', code],
      ['kling3api', null],
    ]);
  });

  it.each([
    [{ message: 'The prompt violates our content policy' }],
    [{ problem: { message: "Your request parameters didn't validate.", invalid_params: [{ name: 'prompt', reason: 'flagged by content moderation' }] } }],
  ])('a create refused for its content (%j) is not failed over', async (body) => {
    const { gw, fake } = await startWithOthers();
    fake.createErrors.push([400, body]);
    const created = await gw.create({ model: 'kling-v3', prompt: 'x', duration: 5, routing: { providers: ['freepik', 'kling3api'] } });
    expect(created.body).toMatchObject({ status: 'failed', provider: 'freepik', error: { code: 'content_policy' } });
    expect(created.body.attempts).toHaveLength(1);
  });

  it.each(['drop', 'hang'] as const)('a create whose answer is lost (%s) is not failed over', async (loss) => {
    const { gw, fake } = await startWithOthers();
    fake.createErrors.push(loss);
    const created = await gw.create({ model: 'kling-v3', prompt: 'x', duration: 5, routing: { providers: ['freepik', 'kling3api'] } });
    expect(created.body.provider).toBe('freepik');
    expect(created.body.attempts).toEqual([expect.objectContaining({ provider: 'freepik', outcome: 'ambiguous' })]);
  });
});
