/**
 * `/readyz`: 200 while the store answers, 503 when it fails or does not answer in time (a load
 * balancer's probe gets an answer rather than waiting on a store that hangs).
 */
import { afterEach, expect, it } from 'vitest';
import { READINESS_TIMEOUT_MS } from '../../src/core/tasks/task-service.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

it('answers 503 when the store refuses the probe', async () => {
  gw = await startTestGateway();
  gw.gateway.engine.tasks.ping = () => Promise.reject(new Error('connect ECONNREFUSED'));
  const answer = await gw.request('GET', '/readyz', undefined, {}, null);
  expect(answer).toMatchObject({ status: 503, body: { status: 'unavailable', store: 'sqlite' } });
});

it('answers 503 when the store does not answer in time, instead of leaving the probe waiting', async () => {
  gw = await startTestGateway();
  let pinged!: () => void;
  const asked = new Promise<void>((resolve) => (pinged = resolve));
  // A PostgreSQL server that stopped answering (frozen, or its packets dropped): no error, no answer.
  gw.gateway.engine.tasks.ping = () => {
    pinged();
    return new Promise<void>(() => undefined);
  };
  const answer = gw.request('GET', '/readyz', undefined, {}, null);
  await asked;
  await gw.clock.advance(READINESS_TIMEOUT_MS);
  expect(await answer).toMatchObject({ status: 503, body: { status: 'unavailable', store: 'sqlite' } });
});
