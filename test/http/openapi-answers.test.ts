/**
 * `/openapi.json` against what the gateway really answers: every route called for each status it
 * can give a client, each answer held to the served document (status documented, body valid by
 * its schema), every answer with an `x-request-id`, and every problem with `type`, `title`,
 * `status` and `detail` (and `errors[]` of `{path, message}` for a validation failure).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { openApiContract, type OpenApiContract } from '../support/openapi-contract.js';
import type { StopGate } from '../../src/http/stop-gate.js';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import { OTHER_TENANT_KEY, startTestGateway, TENANT_KEY, type TestGateway } from '../support/harness.js';
import { followTaskFollowers } from '../support/task-followers.js';

const textToVideo = { model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5 };
/**
 * Headers a client acts on: each one an answer sends must be declared on its status in the
 * document (a generated client sees only those), and each declared required must be sent.
 */
const ACTIONABLE_HEADERS = ['retry-after', 'location', 'idempotent-replayed'];
/** A third tenant, held to one open stream and one open wait, for the caps' answers. */
const CAPPED_KEY = 'capped-secret-key';
/** A fourth tenant, whose budget no task fits in (402). */
const BROKE_KEY = 'broke-secret-key';

interface Exchange {
  method: 'GET' | 'POST';
  path: string;
  body?: string;
  headers?: Record<string, string>;
  key?: string | null;
}

describe('the OpenAPI document describes every real answer', () => {
  let gw: TestGateway;
  let served: OpenApiContract;
  const drift: string[] = [];
  const seen = new Set<string>();

  /** Sends one request; records every way its answer differs from the served document. */
  async function call({ method, path, body, headers = {}, key = TENANT_KEY }: Exchange): Promise<{ status: number; body: any }> {
    // A redirect is the gateway's answer, held to the document; the answer of where it points is not.
    const response = await fetch(`${gw.url}${path}`, {
      method,
      redirect: 'manual',
      headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body !== undefined ? { body } : {}),
    });
    const text = await response.text();
    const type = response.headers.get('content-type') ?? '';
    const parsed: unknown = type.includes('json') && text ? JSON.parse(text) : text;
    const where = `${method} ${path} → ${response.status}`;
    seen.add(where);
    if (!response.headers.get('x-request-id')) drift.push(`${where}: no x-request-id`);
    const pathname = new URL(path, gw.url).pathname;
    for (const problem of served.responseProblems({ method, path: pathname }, response.status, type.includes('json') ? parsed : undefined)) {
      drift.push(`${where}: ${problem}`);
    }
    const declared = served.responseHeaders({ method, path: pathname }, response.status);
    if (declared) {
      for (const name of ACTIONABLE_HEADERS) {
        if (response.headers.has(name) && !declared.has(name)) drift.push(`${where}: sends ${name}, not documented`);
      }
      for (const [name, required] of declared) {
        if (required && !response.headers.has(name)) drift.push(`${where}: no ${name}, documented as always sent`);
      }
    }
    if (response.status >= 400) {
      if (!type.startsWith('application/problem+json')) drift.push(`${where}: content-type ${type}`);
      const problem = parsed as Record<string, unknown>;
      for (const field of ['type', 'title', 'detail'] as const) {
        if (typeof problem[field] !== 'string' || problem[field] === '') drift.push(`${where}: problem without ${field}`);
      }
      if (problem.status !== response.status) drift.push(`${where}: problem status ${String(problem.status)}`);
    }
    return { status: response.status, body: parsed };
  }

  beforeAll(async () => {
    gw = await startTestGateway({
      config: {
        auth: { api_keys: `acme:${TENANT_KEY},other:${OTHER_TENANT_KEY},capped:${CAPPED_KEY},broke:${BROKE_KEY}` },
        tenants: {
          other: { limits: { creates_per_minute: 1, open_streams: 1, open_waits: 1 } },
          capped: { limits: { open_streams: 1, open_waits: 1 } },
          broke: { budget: { amount: 0.01, currency: 'USD', period: 'month' } },
        },
      },
    });
    served = openApiContract((await (await fetch(`${gw.url}/openapi.json`)).json()) as Record<string, unknown>, '/openapi.json');
  });
  afterAll(async () => {
    await gw.close();
  });
  beforeEach(() => {
    drift.length = 0;
  });

  it('creates, reads, lists and cancels as documented', async () => {
    const created = await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify(textToVideo), headers: { 'idempotency-key': 'doc-1' } });
    expect(created.status).toBe(202);
    const id = created.body.id as string;
    await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify(textToVideo), headers: { 'idempotency-key': 'doc-1' } });
    await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify({ ...textToVideo, duration: 6 }), headers: { 'idempotency-key': 'doc-1' } });
    await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify(textToVideo), headers: { 'idempotency-key': 'k'.repeat(300) } });
    await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify({ model: 'kling-v9' }) });
    await call({ method: 'POST', path: '/v1/videos', body: '{"model":' });
    await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify(textToVideo), headers: { 'content-type': 'text/plain' } });
    await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify({ ...textToVideo, prompt: 'x'.repeat(3_000_000) }) });
    await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify({ ...textToVideo, routing: { providers: ['kling3api'], allow_fallbacks: false }, cfg_scale: 2 }) });
    await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify({ ...textToVideo, model: 'kling-v1', operation: 'image-generation' }) });
    await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify(textToVideo), key: null });
    await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify(textToVideo), key: OTHER_TENANT_KEY });
    await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify(textToVideo), key: OTHER_TENANT_KEY });
    expect((await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify(textToVideo), key: BROKE_KEY })).status).toBe(402);
    await call({ method: 'POST', path: '/v1/videos/quote', body: JSON.stringify(textToVideo), key: BROKE_KEY });
    await call({ method: 'GET', path: '/v1/usage', key: BROKE_KEY });
    expect((await call({ method: 'GET', path: '/v1/usage?tenant=other' })).status).toBe(403);

    await call({ method: 'POST', path: '/v1/videos/quote', body: JSON.stringify(textToVideo) });
    await call({ method: 'POST', path: '/v1/videos/quote', body: JSON.stringify({ model: 'kling-v9' }) });
    await call({ method: 'POST', path: '/v1/videos/quote', body: '{"model":' });
    await call({ method: 'POST', path: '/v1/videos/quote', body: JSON.stringify(textToVideo), headers: { 'content-type': 'text/plain' } });
    await call({ method: 'POST', path: '/v1/videos/quote', body: JSON.stringify({ ...textToVideo, prompt: 'x'.repeat(3_000_000) }) });
    await call({ method: 'POST', path: '/v1/videos/quote', body: JSON.stringify({ ...textToVideo, webhook_url: 'https://example.com/hook' }), key: OTHER_TENANT_KEY });
    await call({ method: 'POST', path: '/v1/videos/quote', body: JSON.stringify(textToVideo), key: null });

    await call({ method: 'GET', path: `/v1/videos/${id}` });
    await call({ method: 'GET', path: `/v1/videos/${id}?wait=0` });
    await call({ method: 'GET', path: `/v1/videos/${id}?wait=61` });
    await call({ method: 'GET', path: `/v1/videos/${id}?wait=-1` });
    await call({ method: 'GET', path: `/v1/videos/${id}?wait=soon` });
    await call({ method: 'GET', path: `/v1/videos/${id}?other=1` });
    await call({ method: 'GET', path: `/v1/videos/${id}`, key: OTHER_TENANT_KEY });
    await call({ method: 'GET', path: '/v1/videos/vid_nothing' });
    await call({ method: 'GET', path: `/v1/videos/${id}`, key: 'wrong' });

    await call({ method: 'GET', path: '/v1/videos' });
    await call({ method: 'GET', path: '/v1/videos?limit=1&status=processing&provider=freepik' });
    await call({ method: 'GET', path: '/v1/videos?limit=101' });
    await call({ method: 'GET', path: '/v1/videos?limit=0' });
    await call({ method: 'GET', path: '/v1/videos?status=done' });
    await call({ method: 'GET', path: '/v1/videos?cursor=nonsense' });
    await call({ method: 'GET', path: '/v1/videos', key: null });

    await call({ method: 'GET', path: `/v1/videos/${id}/events`, key: OTHER_TENANT_KEY });
    await call({ method: 'GET', path: `/v1/videos/vid_nothing/events` });
    await call({ method: 'GET', path: `/v1/videos/${id}/events`, key: null });

    await call({ method: 'POST', path: `/v1/videos/${id}/cancel` });
    await call({ method: 'POST', path: '/v1/videos/vid_nothing/cancel' });
    await call({ method: 'POST', path: `/v1/videos/${id}/cancel`, key: null });

    await call({ method: 'GET', path: '/v1/models' });
    await call({ method: 'GET', path: '/v1/providers' });
    await call({ method: 'GET', path: '/v1/models', key: null });
    await call({ method: 'GET', path: '/v1/providers', key: null });
    await call({ method: 'GET', path: '/v1/usage' });
    await call({ method: 'GET', path: '/v1/usage?group_by=colour' });
    await call({ method: 'GET', path: '/v1/usage?group_by=tenant' });
    await call({ method: 'GET', path: '/healthz', key: null });
    await call({ method: 'GET', path: '/readyz', key: null });

    expect(drift).toEqual([]);
    // The statuses the calls above reached (so the check is not one that cannot fail).
    expect([...seen].filter((where) => /→ (400|401|402|403|404|409|413|415|422|429)$/.test(where)).length).toBeGreaterThan(20);
  });

  it('refuses (400) a create body exactly when the document refuses it', async () => {
    const bodies: Record<string, unknown>[] = [
      textToVideo,
      { ...textToVideo, metadata: Object.fromEntries(Array.from({ length: 16 }, (_, index) => [`k${index}`, 'v'])) },
      { ...textToVideo, metadata: Object.fromEntries(Array.from({ length: 17 }, (_, index) => [`k${index}`, 'v'])) },
      { ...textToVideo, metadata: { ['k'.repeat(64)]: 'v' } },
      { ...textToVideo, metadata: { ['k'.repeat(65)]: 'v' } },
      { ...textToVideo, metadata: { '': 'v' } },
      { ...textToVideo, metadata: { constructor: 'v' } },
      { ...textToVideo, webhook_url: 'https://example.com/hook' },
      { ...textToVideo, webhook_url: 'ftp://example.com/hook' },
      { ...textToVideo, webhook_url: 'http://' },
      { ...textToVideo, webhook_url: 'https:///hook' },
      { ...textToVideo, webhook_url: 'https://user:password@example.com/hook' },
      { ...textToVideo, webhook_url: 'https://user@example.com/hook' },
      { ...textToVideo, webhook_url: 'https://example.com:0/hook' },
      { ...textToVideo, webhook_url: 'https://example.com:65536/hook' },
      { ...textToVideo, webhook_url: 'https://example.com:8443/hook' },
      { ...textToVideo, webhook_url: 'https://example.com:00/hook' },
      { ...textToVideo, webhook_url: 'https://example.com:065535/hook' },
      { ...textToVideo, webhook_url: 'https://@example.com/hook' },
      { ...textToVideo, webhook_url: 'https://:@example.com/hook' },
      { ...textToVideo, webhook_url: 'https://::@example.com/hook' },
      { ...textToVideo, webhook_url: 'https://a@b@example.com/hook' },
      { ...textToVideo, webhook_url: 'https://example.com/hook@other.example:0' },
      { ...textToVideo, webhook_url: 'https://[::1]:0/hook' },
      { ...textToVideo, webhook_url: ' https://example.com/hook' },
      { ...textToVideo, webhook_url: `https://example.com/${'h'.repeat(2100)}` },
      { ...textToVideo, start_image_url: 'https://user:pw@example.com/a.png' },
      { ...textToVideo, start_image_url: 'https://example.com:0/a.png' },
      { ...textToVideo, start_image_url: 'https://example.com:99999/a.png' },
      { ...textToVideo, start_image_url: 'https://[2001:db8::1]:65536/a.png' },
      { ...textToVideo, start_image_url: 'https://example.com/a.png?port=:99999' },
      // Sent as written to upstreams whose fields are `format: uri`: only an RFC 3986 URI is taken.
      { ...textToVideo, start_image_url: 'https://example.com/my photo.png' },
      { ...textToVideo, start_image_url: 'https://example.com/\u00fc.png' },
      { ...textToVideo, start_image_url: 'https://example.com/%C3%BC.png' },
      { ...textToVideo, start_image_url: 'https://example.com/%c3%bc.png' },
      { ...textToVideo, start_image_url: 'https://b\u00fccher.example/a.png' },
      { ...textToVideo, start_image_url: 'https://xn--bcher-kva.example/a.png' },
      { ...textToVideo, start_image_url: 'https://example.com/a%zz.png' },
      { ...textToVideo, start_image_url: 'https://example.com/a.png?off=50%' },
      { ...textToVideo, start_image_url: 'https://example.com/a.png?off=50%25' },
      { ...textToVideo, start_image_url: 'https://example.com\\a.png' },
      { ...textToVideo, start_image_url: 'https://example.com/a.png?x=1|2' },
      { ...textToVideo, start_image_url: 'https://example.com/a.png?x={1}' },
      { ...textToVideo, start_image_url: 'https://example.com/a.png?list[]=1' },
      { ...textToVideo, start_image_url: 'https://example.com/a.png?list%5B%5D=1' },
      { ...textToVideo, start_image_url: 'https://[2001:db8::1]/a.png' },
      { ...textToVideo, start_image_url: 'https://[2001:db8::1]:8443/a.png' },
      { ...textToVideo, start_image_url: 'https://u[1]@example.com/a.png' },
      { ...textToVideo, start_image_url: 'https:///example.com/a.png' },
      { ...textToVideo, start_image_url: 'https://example.com:/a.png#frag/?@' },
      { ...textToVideo, start_image_url: "https://example.com/a.png?q=(1)*2;c=$,d!~'" },
      { ...textToVideo, start_image_url: 'https://example.com/\u{1F98A}.png' },
      { ...textToVideo, elements: [{ frontal_image_url: 'https://example.com/a b.png' }] },
      { ...textToVideo, lip_sync: { audio_url: 'https://example.com/\u00e9.mp3' }, video_id: 'v1' },
      { ...textToVideo, webhook_url: 'https://example.com/hook?x=1|2' },
      { ...textToVideo, webhook_url: 'https://h\u00f6oks.example/hook' },
      { ...textToVideo, webhook_url: 'https://[2001:db8::1]:8443/hook' },
      { ...textToVideo, prompt: '' },
      { ...textToVideo, prompt: ' ' },
      { ...textToVideo, prompt: 'p'.repeat(2500) },
      { ...textToVideo, prompt: 'p'.repeat(2501) },
      { ...textToVideo, prompt: '😀'.repeat(2500) },
      { ...textToVideo, duration: 5.5 },
      { ...textToVideo, duration: 2 },
      { ...textToVideo, cfg_scale: 2.0001 },
      { ...textToVideo, metadata: { k: 'v'.repeat(600) } },
      { ...textToVideo, metadata: { k: 5 } },
      { ...textToVideo, reference_images: ['https://example.com/1.png', 'https://example.com/2.png', 'https://example.com/3.png', 'https://example.com/4.png', 'https://example.com/5.png'] },
      { ...textToVideo, multi_shot: [{ prompt: 'a', duration: 5 }, { prompt: 'b' }] },
      { ...textToVideo, multi_shot: [{ prompt: 'a', duration: 5 }, { prompt: 'b', duration: 5 }] },
      { ...textToVideo, voice_ids: [] },
      { ...textToVideo, voice_ids: ['a', 'a'] },
      { ...textToVideo, lip_sync: { text: 'hi', voice_id: 'v', audio_url: 'https://example.com/a.mp3' } },
      { ...textToVideo, lip_sync: { text: 'hi', voice_id: 'v', voice_speed: 2.5 } },
      { ...textToVideo, camera_control: { type: 'down_back', config: { zoom: 5 } } },
      { ...textToVideo, camera_control: { type: 'down_back' } },
      { ...textToVideo, camera_control: { type: 'simple', config: { zoom: 5 } } },
      { ...textToVideo, multi_shot: [{ prompt: 'a' }, { prompt: 'b' }] },
      { ...textToVideo, routing: { exclude: [] } },
      { ...textToVideo, routing: { exclude: ['freepik', 'freepik'] } },
      { ...textToVideo, routing: { max_credits: -1 } },
      { ...textToVideo, routing: { providers: [] } },
      { ...textToVideo, elements: [{ frontal_image_url: 'https://example.com/a.png', reference_image_urls: [] }] },
      { ...textToVideo, elements: [] },
      { ...textToVideo, metadata: { k: '' } },
      { ...textToVideo, metadata: { ' ': 'v' } },
      { ...textToVideo, metadata: { __proto__x: 'v', prototype: 'v' } },
      { ...textToVideo, negative_prompt: '' },
      { ...textToVideo, prompt: 'a\u0000b' },
      { ...textToVideo, prompt: 'a\ud800b' },
      { ...textToVideo, reference_images: [] },
      { ...textToVideo, quality: 'std', audio: false },
      { ...textToVideo, duration: 15 },
      { ...textToVideo, duration: 16 },
      { ...textToVideo, cfg_scale: 0 },
      { ...textToVideo, video_id: 'x'.repeat(129), operation: 'video-extend' },
      { ...textToVideo, video_id: 'abc\u00a0def', operation: 'video-extend' },
      { ...textToVideo, cancel_after: 604800 },
      { ...textToVideo, cancel_after: 604801 },
      { ...textToVideo, cancel_after: 1.5 },
      { ...textToVideo, cancel_after: 0 },
      { ...textToVideo, cancel_after: 1 },
      { ...textToVideo, operation: 'video-extend', video_id: 'abc-123' },
      { ...textToVideo, operation: 'video-extend', video_id: ' abc' },
      { ...textToVideo, operation: 'video-extend', video_id: 'a\u0001b' },
      { ...textToVideo, operation: 'image-to-video', start_image_url: 'mailto:someone@example.com' },
      { ...textToVideo, operation: 'image-to-video', start_image_url: 'https://example.com/a.png', end_image_url: 'https://example.com/b.png' },
      { ...textToVideo, operation: 'image-to-video', end_image_url: 'https://example.com/b.png' },
      { ...textToVideo, routing: { providers: ['freepik', 'kling3api'] } },
      { ...textToVideo, routing: { providers: ['freepik', 'freepik'] } },
    ];
    const disagreements: string[] = [];
    for (const body of bodies) {
      const { status } = await call({ method: 'POST', path: '/v1/videos/quote', body: JSON.stringify(body) });
      const refusedByDocument = served.requestProblems({ method: 'POST', path: '/v1/videos/quote', body }).length > 0;
      if (refusedByDocument !== (status === 400)) disagreements.push(`${JSON.stringify(body).slice(0, 160)}: ${status}, the document ${refusedByDocument ? 'refuses' : 'allows'} it`);
    }
    expect(disagreements).toEqual([]);
    expect(drift).toEqual([]);
  });

  it('refuses (400) a query exactly when the document refuses it', async () => {
    const created = await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify(textToVideo) });
    const id = created.body.id as string;
    await gw.finish(id);
    const queries: [string, Record<string, string | number>][] = [
      ['/v1/videos', { limit: 100 }],
      ['/v1/videos', { cursor: '' }],
      ['/v1/videos', { cursor: 'c'.repeat(201) }],
      ['/v1/usage', { group_by: 'provider,model' }],
      ['/v1/usage', { group_by: 'provider, day' }],
      ['/v1/usage', { group_by: 'colour' }],
      ['/v1/usage', { group_by: 'model,'.repeat(40) }],
      ['/v1/usage', { from: '2026-11-01', to: '2026-11-02T10:00:00+01:00' }],
      ['/v1/usage', { from: '2026-11-01T00:00:00' }],
      ['/v1/usage', { from: '2026-11-01T10:00Z', to: '2026-11-02T10:00:00.5-05:00' }],
      ['/v1/usage', { to: '2026-13-01' }],
      ['/v1/usage', { to: '2026-11-02 10:00:00Z' }],
      ['/v1/usage', { from: '' }],
      ['/v1/usage', { tenant: '' }],
      [`/v1/videos/${id}/content`, { index: 1 }],
      [`/v1/videos/${id}/content`, { index: 1001 }],
      [`/v1/videos/${id}/content`, { expires: 0, signature: 'x' }],
      [`/v1/videos/${id}/content`, { signature: '' }],
      [`/v1/videos/${id}/content`, { index: '01' }],
      [`/v1/videos/${id}/content`, { index: '-0' }],
      [`/v1/videos/${id}/content`, { index: '+1' }],
      [`/v1/videos/${id}/content`, { index: '1.0' }],
      [`/v1/videos/${id}/content`, { expires: '9'.repeat(16), signature: 'x' }],
      [`/v1/videos/${id}/content`, { signature: 's'.repeat(201) }],
      [`/v1/videos/${id}`, { wait: '060' }],
      [`/v1/videos/${id}`, { wait: '60' }],
      [`/v1/videos/${id}`, { wait: '0.5' }],
      ['/v1/videos', { limit: '007' }],
      ['/v1/videos', { limit: '' }],
      ['/v1/videos', { status: 'SUCCEEDED' }],
      ['/v1/videos', { status: '' }],
      ['/v1/videos', { model: 'kling-v9' }],
      ['/v1/videos', { model: '' }],
      ['/v1/usage', { format: 'CSV' }],
      ['/v1/usage', { format: '' }],
      ['/v1/usage', { group_by: '' }],
      ['/v1/usage', { group_by: ' , ' }],
      ['/v1/usage', { group_by: 'account' }],
      ['/v1/usage', { group_by: 'account,model' }],
      ['/v1/usage', { group_by: 'account, provider' }],
      ['/v1/usage', { group_by: 'provider,provider' }],
      ['/v1/usage', { group_by: 'model, day ,model' }],
      ['/v1/usage', { group_by: 'provider,account,model,operation,quality,day' }],
      ['/v1/usage', { group_by: 'day,\nday' }],
      ['/v1/usage', { group_by: 'Provider' }],
      ['/v1/usage', { tenant: 'acme' }],
      ['/v1/usage', { tenant: 't'.repeat(65) }],
      ['/v1/usage', { from: '2026-11-01T10:00:00.123456Z' }],
      ['/v1/usage', { from: '2026-11-01t10:00:00z' }],
      ['/v1/usage', { from: '2026-11-01T10Z' }],
      ['/v1/usage', { from: '+002026-11-01' }],
      ['/v1/usage', { from: '2026-11-01T24:00:00Z' }],
      ['/v1/usage', { from: '2026-11-01T10:00:60Z' }],
      ['/v1/usage', { from: '2026-11-01T10:00:00+24:00' }],
    ];
    const disagreements: string[] = [];
    for (const [path, query] of queries) {
      const search = new URLSearchParams(Object.entries(query).map(([name, value]): [string, string] => [name, String(value)]));
      const { status } = await call({ method: 'GET', path: `${path}?${search}` });
      const refusedByDocument = served.requestProblems({ method: 'GET', path, query: query as Record<string, string> }).length > 0;
      if (refusedByDocument !== (status === 400)) disagreements.push(`${path}?${search}: ${status}, the document ${refusedByDocument ? 'refuses' : 'allows'} it`);
    }
    expect(disagreements).toEqual([]);
    expect(drift).toEqual([]);
  });

  it('answers a conditional read, the open-request caps and an event stream reconnect as documented', async () => {
    const created = await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify(textToVideo) });
    const id = created.body.id as string;
    const first = await fetch(`${gw.url}/v1/videos/${id}?wait=0`, { headers: { authorization: `Bearer ${TENANT_KEY}` } });
    const etag = first.headers.get('etag');
    await first.arrayBuffer();
    if (etag) await call({ method: 'GET', path: `/v1/videos/${id}`, headers: { 'if-none-match': etag } });

    // A tenant that may hold one stream and one wait open (and has its creates of the minute left).
    const mine = await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify(textToVideo), key: CAPPED_KEY });
    expect(mine.status, JSON.stringify(mine.body)).toBe(202);
    const theirs = mine.body.id as string;
    // A stream or a wait follows the task once it holds its tenant's place, and stops after giving it back.
    const followers = followTaskFollowers(gw);
    const streaming = new AbortController();
    const open = await fetch(`${gw.url}/v1/videos/${theirs}/events`, { headers: { authorization: `Bearer ${CAPPED_KEY}` }, signal: streaming.signal });
    expect(open.status).toBe(200);
    expect(open.headers.get('x-request-id')).toBeTruthy();
    // A second stream finds the tenant's one place taken (429).
    expect((await call({ method: 'GET', path: `/v1/videos/${theirs}/events`, key: CAPPED_KEY })).status).toBe(429);
    streaming.abort();
    await followers.until(theirs, 0);
    const wait = new AbortController();
    const waiting = fetch(`${gw.url}/v1/videos/${theirs}?wait=30`, { headers: { authorization: `Bearer ${CAPPED_KEY}` }, signal: wait.signal }).catch(() => undefined);
    // The second wait finds the tenant's one place taken (429).
    await followers.until(theirs, 1);
    expect((await call({ method: 'GET', path: `/v1/videos/${theirs}?wait=30`, key: CAPPED_KEY })).status).toBe(429);
    wait.abort();
    await waiting;
    await gw.finish(id);
    await call({ method: 'GET', path: `/v1/videos/${id}?wait=1` });
    await call({ method: 'GET', path: '/v1/videos?status=succeeded' });
    gw.simulator('freepik').setOutcome('fail');
    const failing = await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify(textToVideo) });
    await gw.finish(failing.body.id as string);
    await call({ method: 'GET', path: `/v1/videos/${failing.body.id as string}` });
    await call({ method: 'GET', path: '/v1/videos?status=failed' });
    const stream = await fetch(`${gw.url}/v1/videos/${id}/events`, { headers: { authorization: `Bearer ${TENANT_KEY}` } });
    const lastEventId = /^id: (\d+)$/m.exec(await stream.text())?.[1];
    expect(lastEventId).toBeDefined();
    const reconnect = await call({ method: 'GET', path: `/v1/videos/${id}/events`, headers: { 'last-event-id': lastEventId! } });
    expect(reconnect.status).toBe(204);
    expect(drift).toEqual([]);
  });

  it("documents the stopping gateway's 503 with Retry-After on every API route, also where a route has a 503 of its own, but not on provider webhooks", async () => {
    const document = (await (await fetch(`${gw.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { description?: string; responses: Record<string, { description: string; headers?: Record<string, unknown> }> }>>;
    };
    const missing: string[] = [];
    const webhooks: string[] = [];
    for (const [path, item] of Object.entries(document.paths)) {
      if (['/healthz', '/readyz', '/metrics'].includes(path)) continue;
      for (const [method, operation] of Object.entries(item)) {
        const answer = operation.responses['503'];
        if (path.startsWith('/v1/webhooks/')) {
          // A draining gateway still takes provider news: no stopping 503, and the route says so.
          if (answer && /stopping/.test(answer.description)) missing.push(`${method.toUpperCase()} ${path}: a stopping 503`);
          if (answer && !answer.headers?.['retry-after']) missing.push(`${method.toUpperCase()} ${path}: a 503 without Retry-After`);
          if (!/drains on a stop/.test(operation.description ?? '')) missing.push(`${method.toUpperCase()} ${path}: not said to be taken while draining`);
          webhooks.push(path);
          continue;
        }
        if (!answer?.headers?.['retry-after'] || !/stopping/.test(answer.description)) missing.push(`${method.toUpperCase()} ${path}`);
      }
    }
    expect(missing).toEqual([]);
    expect(webhooks.sort()).toEqual(['/v1/webhooks/freepik', '/v1/webhooks/freepik/{attempt}', '/v1/webhooks/kling-legacy/{token}']);
  });

  it('answers a conditional read whose ETag still matches (304) as documented, on every JSON route that reads', async () => {
    const created = await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify(textToVideo) });
    const id = created.body.id as string;
    await gw.finish(id);
    const paths = [`/v1/videos/${id}`, `/v1/videos/${id}/webhooks`, '/v1/models', '/v1/usage'];
    for (const path of paths) {
      const first = await fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${TENANT_KEY}` } });
      await first.arrayBuffer();
      const etag = first.headers.get('etag');
      expect(etag, path).toBeTruthy();
      // fetch would add `cache-control: no-cache` to a conditional request (and be sent the whole answer); curl and browsers' revalidations do not.
      expect((await call({ method: 'GET', path, headers: { 'if-none-match': etag!, 'cache-control': 'max-age=0' } })).status, path).toBe(304);
    }
    expect(drift).toEqual([]);
  });

  it('answers a query on a route that takes none, and a cancel body too large, as documented', async () => {
    const created = await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify(textToVideo) });
    const id = created.body.id as string;
    for (const path of ['/v1/models?x=1', '/v1/providers?x=1', `/v1/videos/${id}/webhooks?x=1`, `/v1/videos/${id}/events?x=1`]) {
      expect((await call({ method: 'GET', path })).status, path).toBe(400);
    }
    expect((await call({ method: 'POST', path: `/v1/videos/${id}/cancel`, body: JSON.stringify({ note: 'x'.repeat(300_000) }) })).status).toBe(413);
    expect(drift).toEqual([]);
  });

  it('gives task-id examples of the shape of the ids the gateway makes', async () => {
    const created = await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify(textToVideo) });
    const real = created.body.id as string;
    // The shape of a real id: its prefix, then as many characters of its alphabet (base64url).
    const prefix = /^[a-z]+_/.exec(real)![0];
    const shape = new RegExp(`^${prefix}[A-Za-z0-9_-]{${real.length - prefix.length}}$`);
    const document = (await (await fetch(`${gw.url}/openapi.json`)).json()) as unknown;
    const examples: string[] = [];
    const walk = (value: unknown): void => {
      if (Array.isArray(value)) value.forEach(walk);
      else if (value !== null && typeof value === 'object') {
        for (const [key, inner] of Object.entries(value)) {
          if (key === 'example' && typeof inner === 'string' && inner.startsWith(prefix)) examples.push(inner);
          walk(inner);
        }
      }
    };
    walk(document);
    expect(examples.length).toBeGreaterThan(0);
    expect(examples.filter((example) => !shape.test(example))).toEqual([]);
    // And one of them names no task, as a real id of another's would: a 404, as documented.
    expect((await call({ method: 'GET', path: `/v1/videos/${examples[0]!}` })).status).toBe(404);
    expect(drift).toEqual([]);
  });

  it('documents the empty JSON object a cancel takes as its body, and no field in it', async () => {
    const created = await call({ method: 'POST', path: '/v1/videos', body: JSON.stringify(textToVideo) });
    const path = `/v1/videos/${created.body.id as string}/cancel`;
    // A generated client can send only the body the document declares: `{}` must be one, optional.
    expect(served.requestProblems({ method: 'POST', path, body: {} })).toEqual([]);
    expect(served.requestProblems({ method: 'POST', path })).toEqual([]);
    expect(served.requestProblems({ method: 'POST', path, body: { reason: 'x' } })).not.toEqual([]);
    // Taken: canceled, or (a provider already holds the task) the documented 409; never a 400.
    expect([200, 409]).toContain((await call({ method: 'POST', path, body: '{}' })).status);
    expect((await call({ method: 'POST', path, body: JSON.stringify({ reason: 'x' }) })).status).toBe(400);
    expect(drift).toEqual([]);
  });

  it('answers provider webhooks and callbacks as documented: a body it cannot read, and a retry-later while a create is being recorded', async () => {
    // A body whose content-encoding lies cannot be read, on every webhook route.
    const unreadable = { body: 'not gzip', headers: { 'content-encoding': 'gzip' }, key: null };
    for (const path of ['/v1/webhooks/freepik', '/v1/webhooks/freepik/att_nothing', '/v1/webhooks/kling-legacy/some-token']) {
      expect((await call({ method: 'POST', path, ...unreadable })).status, path).toBe(400);
      // Provider webhooks are a few KB: a body over the routes' 256 KiB is not read.
      expect((await call({ method: 'POST', path, body: `{"pad":"${'x'.repeat(256 * 1024)}"}`, key: null })).status, path).toBe(413);
    }
    // A verified webhook naming no known task while a create to Freepik is being recorded: send it again.
    const raw = JSON.stringify({ task_id: 'not-recorded-yet', status: 'COMPLETED' });
    const timestamp = String(Math.floor(gw.clock.now() / 1000));
    const signature = signFreepikWebhook(gw.endpoints.get('freepik')!.webhookSecret!, 'wh_doc_1', timestamp, raw);
    const spy = vi.spyOn(gw.gateway.store, 'isSubmittingTo' as never).mockResolvedValue(true as never);
    try {
      const early = await call({
        method: 'POST',
        path: '/v1/webhooks/freepik',
        body: raw,
        headers: { 'webhook-id': 'wh_doc_1', 'webhook-timestamp': timestamp, 'webhook-signature': signature },
        key: null,
      });
      expect(early.status).toBe(503);
    } finally {
      spy.mockRestore();
    }
    expect(drift).toEqual([]);
  });

  // Last: the gateway stays stopping.
  it('answers every API route with a documented 503 once the gateway is stopping, and provider webhooks as usual', async () => {
    // The gateway's stop gate, closed as `Gateway.close` closes it first (the listener stays up here).
    (gw.gateway as unknown as { gate: StopGate }).gate.close();
    const routes: Exchange[] = [
      { method: 'POST', path: '/v1/videos', body: JSON.stringify(textToVideo) },
      { method: 'POST', path: '/v1/videos/quote', body: JSON.stringify(textToVideo) },
      { method: 'GET', path: '/v1/videos' },
      { method: 'GET', path: '/v1/videos/vid_nothing' },
      { method: 'GET', path: '/v1/videos/vid_nothing?wait=5' },
      { method: 'GET', path: '/v1/videos/vid_nothing/events' },
      { method: 'POST', path: '/v1/videos/vid_nothing/cancel' },
      { method: 'GET', path: '/v1/videos/vid_nothing/content' },
      { method: 'GET', path: '/v1/models' },
      { method: 'GET', path: '/v1/providers' },
      { method: 'GET', path: '/v1/usage' },
      { method: 'GET', path: '/v1/videos/vid_nothing/webhooks' },
    ];
    for (const route of routes) {
      const response = await fetch(`${gw.url}${route.path}`, {
        method: route.method,
        headers: { ...(route.key === null ? {} : { authorization: `Bearer ${TENANT_KEY}` }), ...(route.body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(route.body !== undefined ? { body: route.body } : {}),
      });
      await response.text();
      expect(response.headers.get('retry-after'), `${route.method} ${route.path}`).toMatch(/^[0-9]+$/);
    }
    for (const route of routes) expect((await call(route)).status, `${route.method} ${route.path}`).toBe(503);
    // Provider webhooks and callbacks are still taken (the legacy API sends a callback once):
    // answered as they would be before the stop, as documented.
    const news: [Exchange, number][] = [
      [{ method: 'POST', path: '/v1/webhooks/freepik', body: '{}', key: null }, 401],
      [{ method: 'POST', path: '/v1/webhooks/kling-legacy/some-token', body: '{}', key: null }, 404],
      [{ method: 'POST', path: '/v1/webhooks/freepik/att_nothing', body: '{}', key: null }, 401],
    ];
    for (const [route, status] of news) expect((await call(route)).status, `${route.method} ${route.path}`).toBe(status);
    expect(drift).toEqual([]);
  });
});


describe('the OpenAPI document describes the answers of the content route', () => {
  let gw: TestGateway;
  let document: { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown>; headers?: Record<string, unknown> }> }>> };
  let served: OpenApiContract;

  beforeAll(async () => {
    gw = await startTestGateway({ config: { storage: { mode: 'copy' } } });
    document = (await (await fetch(`${gw.url}/openapi.json`)).json()) as typeof document;
    served = openApiContract(document as unknown as Record<string, unknown>, '/openapi.json');
  });
  afterAll(async () => {
    await gw.close();
  });

  /** The ways one answer of the content route differs from what the document says of its status. */
  async function contentDrift(method: 'GET' | 'HEAD', path: string, headers: Record<string, string> = {}, key: string | null = TENANT_KEY) {
    const response = await fetch(`${gw.url}${path}`, { method, redirect: 'manual', headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...headers } });
    const text = await response.text();
    const where = `${method} ${path.replace(/signature=[^&]+/, 'signature=…')} → ${response.status}`;
    const documented = document.paths['/v1/videos/{id}/content']!.get!.responses[String(response.status)];
    if (!documented) return { status: response.status, drift: [`${where}: not documented`] };
    const drift: string[] = [];
    const type = (response.headers.get('content-type') ?? '').split(';')[0]!.trim();
    const types = Object.keys(documented.content ?? {});
    // A media range (`video/*`) covers the types it names.
    if (types.length > 0 && !types.some((range) => range === type || (range.endsWith('/*') && type.startsWith(range.slice(0, -1))))) {
      drift.push(`${where}: content-type ${type}, documented ${types.join(', ')}`);
    }
    if (types.length === 0 && text !== '') drift.push(`${where}: a body, none documented`);
    for (const header of Object.keys(documented.headers ?? {})) if (!response.headers.has(header)) drift.push(`${where}: no ${header}`);
    if (type.includes('json') && method === 'GET') {
      const pathname = new URL(path, gw.url).pathname;
      for (const problem of served.responseProblems({ method, path: pathname }, response.status, JSON.parse(text))) drift.push(`${where}: ${problem}`);
    }
    return { status: response.status, drift };
  }

  it('serves a stored output, a range of it, a signed link and each refusal with a documented status, content type and headers', async () => {
    const created = await gw.create(textToVideo);
    const id = created.body.id as string;
    const answers = [await contentDrift('GET', `/v1/videos/${id}/content`)];
    const task = await gw.finish(id);
    const signed = new URL(task.outputs[0].url as string);
    const whole = await fetch(`${gw.url}/v1/videos/${id}/content`, { headers: { authorization: `Bearer ${TENANT_KEY}` } });
    await whole.arrayBuffer();
    answers.push(
      await contentDrift('GET', `/v1/videos/${id}/content`),
      await contentDrift('HEAD', `/v1/videos/${id}/content`),
      await contentDrift('GET', `/v1/videos/${id}/content`, { range: 'bytes=0-9' }),
      await contentDrift('GET', `/v1/videos/${id}/content`, { range: 'bytes=99999999-' }),
      await contentDrift('GET', `/v1/videos/${id}/content`, { 'if-none-match': whole.headers.get('etag')!, 'cache-control': 'max-age=0' }),
      await contentDrift('GET', `${signed.pathname}${signed.search}`, {}, null),
      await contentDrift('GET', `${signed.pathname}${signed.search.replace(/signature=[^&]+/, 'signature=wrong')}`, {}, null),
      await contentDrift('GET', `/v1/videos/${id}/content?index=5`),
      await contentDrift('GET', `/v1/videos/${id}/content?index=first`),
      await contentDrift('GET', '/v1/videos/vid_nothing/content'),
    );
    expect(answers.map((answer) => answer.status)).toEqual([409, 200, 200, 206, 416, 304, 200, 401, 404, 400, 404]);
    expect(answers.flatMap((answer) => answer.drift)).toEqual([]);
  });
});

describe('the OpenAPI document says which routes ask for a bearer token', () => {
  it('declares the metrics token, which /metrics asks for once server.metrics_token is set', async () => {
    const gw = await startTestGateway({ config: { server: { metrics_token: 'metrics-secret-token' } } });
    try {
      const document = (await (await fetch(`${gw.url}/openapi.json`)).json()) as {
        paths: Record<string, { get?: { security?: Record<string, string[]>[] } }>;
        components: { securitySchemes: Record<string, { type: string; scheme?: string }> };
      };
      const refused = await fetch(`${gw.url}/metrics`);
      await refused.arrayBuffer();
      expect(refused.status).toBe(401);
      const taken = await fetch(`${gw.url}/metrics`, { headers: { authorization: 'Bearer metrics-secret-token' } });
      await taken.arrayBuffer();
      expect(taken.status).toBe(200);
      // A requirement naming an HTTP bearer scheme; an empty one beside it, as the token is optional to configure.
      const security = document.paths['/metrics']!.get!.security ?? [];
      const bearerSchemes = security.flatMap((requirement) => Object.keys(requirement)).filter((name) => {
        const scheme = document.components.securitySchemes[name];
        return scheme?.type === 'http' && scheme.scheme === 'bearer';
      });
      expect(bearerSchemes).toHaveLength(1);
      expect(bearerSchemes[0]).not.toBe('gatewayKey');
      expect(security).toContainEqual({});
    } finally {
      await gw.close();
    }
  });
});
