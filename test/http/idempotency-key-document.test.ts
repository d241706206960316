/**
 * The OpenAPI document's `Idempotency-Key` is the key the gateway takes: a client generated from
 * the document (or checking against it) refuses, before sending, what the gateway would answer 400.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(async () => {
  await gw.close();
});

it("describes the Idempotency-Key the create takes: what the document allows, the gateway takes, and what it refuses, the gateway answers 400", async () => {
  const document = (await gw.request('GET', '/openapi.json', undefined, {}, null)).body;
  const parameter = document.paths['/v1/videos'].post.parameters.find((each: { in: string; name: string }) => each.in === 'header' && each.name === 'idempotency-key');
  const schema = parameter.schema as { minLength?: number; maxLength?: number; pattern?: string };
  const allowed = (key: string) =>
    key.length >= (schema.minLength ?? 0) && key.length <= (schema.maxLength ?? Infinity) && (schema.pattern === undefined || new RegExp(schema.pattern, 'u').test(key));
  const printable = Array.from({ length: 94 }, (_, i) => String.fromCharCode(0x21 + i)).join('');
  const keys = ['order-42', printable, 'x'.repeat(255), 'x'.repeat(256), 'order 42', 'café', 'a\tb'];
  const body = { model: 'kling-v3', prompt: 'a key the document describes', duration: 5 };
  for (const key of keys) {
    const answer = await gw.create(body, { 'idempotency-key': key });
    const refusedForKey = answer.status === 400 && answer.body.errors?.[0]?.path === 'header.idempotency-key';
    expect({ key, allowed: allowed(key) }).toEqual({ key, allowed: !refusedForKey });
  }
});
