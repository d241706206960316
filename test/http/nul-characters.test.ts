/**
 * A NUL character in a path or a query, a cursor the API did not issue, or a control character in
 * a URL field is the caller's mistake on both engines: a 400 problem, never a 500 (PostgreSQL's
 * text cannot hold a NUL, its bigint no time past it, and a query that binds one fails), and
 * nothing is created. A NUL inside free text (a prompt, metadata) is kept as given, and one in an
 * upstream's message (which may echo what the caller sent) is stored as U+FFFD.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/database.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';
import { startTestGateway, TENANT_KEY, type TestGateway } from '../support/harness.js';

const postgres = await postgresAvailable();

/** A cursor shaped like the API's, carrying `position` (base64url JSON). */
const cursorOf = (position: unknown) => Buffer.from(JSON.stringify(position)).toString('base64url');

const engines: { name: string; available: boolean; store: () => Promise<{ store?: Store; drop(): Promise<void> }> }[] = [
  { name: 'SQLite', available: true, store: async () => ({ drop: async () => undefined }) },
  {
    name: 'PostgreSQL',
    available: postgres,
    store: async () => {
      const schema = newSchemaName();
      const store = await openPostgresStore(schema);
      return { store, drop: () => dropSchema(schema) };
    },
  },
];

describe.each(engines)('on $name', ({ available, store: openStore }) => {
  let gw: TestGateway;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    if (!available) return;
    const opened = await openStore();
    drop = opened.drop;
    gw = await startTestGateway({ ...(opened.store ? { store: opened.store } : {}), config: { webhooks: { allow_private_targets: false } } });
  });
  afterAll(async () => {
    if (!available) return;
    await gw.close();
    await drop();
  });

  const taskCount = async () => (await gw.request('GET', '/v1/videos?limit=100')).body.data.length as number;

  it.skipIf(!available).each([
    ['GET', '/v1/videos/%00'],
    ['GET', '/v1/videos/vid_a%00b?wait=1'],
    ['GET', '/v1/videos/%00/events'],
    ['GET', '/v1/videos/%00/content'],
    ['GET', '/v1/videos/%00/content?index=0&expires=1796266200&signature=abc'],
    ['GET', '/v1/videos?provider=%00'],
    ['GET', '/v1/videos?provider=freepik%00'],
    ['POST', '/v1/videos/%00/cancel'],
    ['POST', '/v1/webhooks/kling-legacy/%00'],
    ['POST', '/v1/webhooks/kling-legacy/token%00'],
  ])('%s %s is a 400 problem', async (method, path) => {
    const keys = path.includes('signature=') || path.startsWith('/v1/webhooks') ? [null] : [TENANT_KEY];
    for (const key of keys) {
      const answer = await gw.request(method, path, method === 'POST' ? {} : undefined, {}, key);
      expect(answer.status, JSON.stringify(answer.body)).toBe(400);
      expect(answer.headers.get('content-type')).toContain('application/problem+json');
    }
  });

  it.skipIf(!available).each([
    ['a NUL in the id', { c: Date.UTC(2026, 10, 22), i: 'vid_a\u0000' }],
    ['a time past any date', { c: 1e308, i: 'vid_a' }],
    ['a time below any date', { c: -1e308, i: 'vid_a' }],
    ['a fractional time', { c: 1.5, i: 'vid_a' }],
    ['a time past the safe integers', { c: 99999999999999999999, i: 'vid_a' }],
  ])('a forged cursor with %s is a 400 problem', async (_what, position) => {
    const answer = await gw.request('GET', `/v1/videos?limit=2&cursor=${cursorOf(position)}`);
    expect(answer.status, JSON.stringify(answer.body)).toBe(400);
    expect(answer.headers.get('content-type')).toContain('application/problem+json');
    expect(answer.body.errors).toEqual([{ path: 'cursor', message: 'not a cursor issued by this API' }]);
  });

  it.skipIf(!available)('a cursor the API issued still pages', async () => {
    for (const prompt of ['first', 'second']) expect((await gw.create({ model: 'kling-v3', prompt, duration: 5 })).status).toBe(202);
    const first = await gw.request('GET', '/v1/videos?limit=1');
    expect(first.body.next_cursor).toEqual(expect.any(String));
    const next = await gw.request('GET', `/v1/videos?limit=1&cursor=${first.body.next_cursor}`);
    expect(next.status).toBe(200);
    expect(next.body.data).toHaveLength(1);
    expect(next.body.data[0].id).not.toBe(first.body.data[0].id);
  });

  it.skipIf(!available).each([['webhook_url'], ['start_image_url']])('a control character in %s is a 400 naming the field, and creates nothing', async (field) => {
    const before = await taskCount();
    for (const url of ['https://hooks.example.com/a\u0000b', 'https://hooks.example.com/a\u0001b', 'https://hooks.example.com/a\u007fb']) {
      const answer = await gw.create({ model: 'kling-v3', prompt: 'control', duration: 5, [field]: url });
      expect(answer.status, JSON.stringify(answer.body)).toBe(400);
      expect(answer.headers.get('content-type')).toContain('application/problem+json');
      expect(answer.body.errors).toEqual([{ path: field, message: expect.stringContaining('control character') }]);
    }
    expect(await taskCount()).toBe(before);
  });

  it.skipIf(!available)('a NUL inside a prompt or metadata is kept as given', async () => {
    const created = await gw.create({ model: 'kling-v3', prompt: 'a\u0000b', duration: 5, metadata: { 'k\u0000': 'v\u0000' } });
    expect(created.status).toBe(202);
    const read = await gw.get(created.body.id);
    expect(read.body.request.prompt).toBe('a\u0000b');
    expect(read.body.metadata).toEqual({ 'k\u0000': 'v\u0000' });
  });

  it.skipIf(!available)('an upstream error message holding a NUL is kept (as U+FFFD), and the create fails over', async () => {
    gw.simulator('freepik').injectFault({ status: 400, body: { message: 'Invalid request', invalid_params: [{ name: 'prompt', reason: 'bad text "a\u0000b"' }] } });
    const created = await gw.create({ model: 'kling-v3', prompt: 'echoed', duration: 5 });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    expect(created.body.provider).toBe('kling3api');
    const read = await gw.get(created.body.id);
    expect(read.body.attempts[0]).toMatchObject({ provider: 'freepik', outcome: 'failed', http_status: 400 });
    expect(read.body.attempts[0].message).toContain('bad text "a\uFFFDb"');
  });
});
