/**
 * An extension finishes through the gateway on both kinds of legacy upstream: one that polls it
 * at Kling's own `videos/video-extend/<id>`, and one that keeps to seed 002's list of action2
 * (no `video-extend`) and answers for it at `videos/text2video/<id>`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KlingLegacySimulator } from '../../src/providers/kling-legacy/kling-legacy-simulator.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;

afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

function legacySimulator(gateway: TestGateway): KlingLegacySimulator {
  const simulator = gateway.simulator('kling-legacy');
  if (!(simulator instanceof KlingLegacySimulator)) throw new Error('the sandbox runs no in-process kling-legacy simulator');
  return simulator;
}

/** A finished legacy video, then an extension of it, through the gateway. */
async function extendAVideo(gateway: TestGateway) {
  const source = await gateway.create({ model: 'kling-v1-6', prompt: 'a lighthouse at dusk', routing: { providers: ['kling-legacy'] } });
  const video = await gateway.finish(source.body.id, 2_000);
  expect(video.status, JSON.stringify(video.error)).toBe('succeeded');
  const created = await gateway.create({ model: 'kling-v1-6', operation: 'video-extend', video_id: video.outputs[0].upstream_id, prompt: 'keep going' });
  expect(created.status, JSON.stringify(created.body)).toBe(202);
  return gateway.finish(created.body.id, 2_000);
}

function polls(gateway: TestGateway, path: string): number {
  return legacySimulator(gateway).requests.filter((request) => request.method === 'GET' && request.path === path).length;
}

describe('polling a legacy extension', () => {
  it('finishes on an upstream that refuses video-extend as action2, asking there once and then at text2video only', async () => {
    // Long enough a run that the extension is polled several times.
    gw = await startTestGateway({ config: { tasks: { deadline_ms: 3_600_000 }, sandbox: { queued_ms: 1_000, processing_ms: 40_000 } } });
    legacySimulator(gw).setStatusActions('seed');
    const extended = await extendAVideo(gw);
    expect(extended.status, JSON.stringify(extended.error)).toBe('succeeded');
    expect(extended.outputs[0].duration).toBe(10);
    const id = extended.provider_task_id;
    expect(polls(gw, `/kling/v1/videos/video-extend/${id}`)).toBe(1);
    expect(polls(gw, `/kling/v1/videos/text2video/${id}`)).toBeGreaterThanOrEqual(2);
  });

  it('finishes on an upstream that answers at video-extend, with no call anywhere else', async () => {
    gw = await startTestGateway({ config: { tasks: { deadline_ms: 3_600_000 } } });
    const extended = await extendAVideo(gw);
    expect(extended.status, JSON.stringify(extended.error)).toBe('succeeded');
    const id = extended.provider_task_id;
    expect(polls(gw, `/kling/v1/videos/video-extend/${id}`)).toBeGreaterThanOrEqual(1);
    expect(polls(gw, `/kling/v1/videos/text2video/${id}`)).toBe(0);
  });

  it('adopts a lost extension on an upstream that refuses video-extend as action2: its callback is confirmed at text2video', async () => {
    gw = await startTestGateway({ config: { tasks: { deadline_ms: 3_600_000 } } });
    const simulator = legacySimulator(gw);
    simulator.setStatusActions('seed');
    simulator.injectFault({ transport: 'drop_after_accept' });
    const created = await gw.create({ model: 'kling-v1-6', operation: 'video-extend', video_id: 'vid-123', prompt: 'keep going' });
    expect(created.body.status).toBe('queued');
    const finished = await gw.finish(created.body.id);
    expect(finished.status, JSON.stringify(finished.error)).toBe('succeeded');
    expect(finished.provider_task_id).toBe(simulator.tasks[0]!.id);
    expect(finished.attempts).toEqual([expect.objectContaining({ provider: 'kling-legacy', outcome: 'accepted', recovered_by: 'webhook' })]);
    expect(simulator.tasks).toHaveLength(1);
  });
});
