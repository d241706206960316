import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

const IMAGE = 'https://assets.example.com/portrait.png';
const IMAGE_2 = 'https://assets.example.com/style.png';
const VIDEO = 'https://assets.example.com/source.mp4';

/** Every operation each provider documents, as a canonical request pinned to that provider. */
const CASES: [string, string, Record<string, unknown>, 'video' | 'image'][] = [
  ['freepik', 'kling-v3 text-to-video (multi-shot)', { model: 'kling-v3', multi_shot: [{ prompt: 'a', duration: 3 }, { prompt: 'b', duration: 4 }] }, 'video'],
  ['freepik', 'kling-v3 image-to-video with end frame', { model: 'kling-v3', quality: 'std', prompt: 'turn', start_image_url: IMAGE, end_image_url: IMAGE_2 }, 'video'],
  ['freepik', 'kling-v3 text-to-video with elements and voices', { model: 'kling-v3', prompt: '@Element1 says hi <<<voice_1>>>', elements: [{ frontal_image_url: IMAGE, reference_image_urls: [IMAGE_2] }], voice_ids: ['v1'] }, 'video'],
  ['freepik', 'kling-v3-omni text-to-video', { model: 'kling-v3-omni', prompt: 'a city at night' }, 'video'],
  ['freepik', 'kling-v3-omni image-to-video (auto aspect)', { model: 'kling-v3-omni', prompt: 'wave', start_image_url: IMAGE, aspect_ratio: 'auto' }, 'video'],
  ['freepik', 'kling-v3-omni reference-to-video (video)', { model: 'kling-v3-omni', prompt: 'dance like @Video1', reference_video_url: VIDEO, cfg_scale: 1.5 }, 'video'],
  ['freepik', 'kling-v3-omni reference-to-video (images)', { model: 'kling-v3-omni', prompt: 'in the style of @Image1', reference_images: [IMAGE, IMAGE_2] }, 'video'],
  ['kling3api', 'kling-v3 text-to-video', { model: 'kling-v3', prompt: 'an eagle', cfg_scale: 0.7, negative_prompt: 'blur' }, 'video'],
  ['kling3api', 'kling-v3 image-to-video', { model: 'kling-v3', quality: 'std', prompt: 'smile', start_image_url: IMAGE, end_image_url: IMAGE_2 }, 'video'],
  ['kling3api', 'kling-v3-omni text-to-video', { model: 'kling-v3-omni', prompt: 'mountains' }, 'video'],
  ['kling3api', 'kling-v3-omni image-to-video', { model: 'kling-v3-omni', quality: 'std', prompt: 'zoom', start_image_url: IMAGE }, 'video'],
  ['kling3api', 'kling-v3-omni reference-to-video', { model: 'kling-v3-omni', prompt: 'walks', reference_images: [IMAGE, IMAGE_2] }, 'video'],
  ['kling3api', 'kling-v3-omni video-edit', { model: 'kling-v3-omni', prompt: 'snowy background', video_url: VIDEO, keep_original_sound: true }, 'video'],
  ['kling-legacy', 'kling-v1 text-to-video with camera control', { model: 'kling-v1', quality: 'std', prompt: 'pan', camera_control: { type: 'simple', config: { pan: 5 } } }, 'video'],
  ['kling-legacy', 'kling-v1-6 image-to-video with end frame', { model: 'kling-v1-6', prompt: 'morph', start_image_url: IMAGE, end_image_url: IMAGE_2 }, 'video'],
  ['kling-legacy', 'kling-v2-master text-to-video', { model: 'kling-v2-master', prompt: 'a storm', duration: 10 }, 'video'],
  ['kling-legacy', 'kling-v2-1-master image-to-video', { model: 'kling-v2-1-master', prompt: 'blink', start_image_url: IMAGE }, 'video'],
  ['kling-legacy', 'kling-v2-5-turbo text-to-video', { model: 'kling-v2-5-turbo', prompt: 'a race' }, 'video'],
  ['kling-legacy', 'kling-v2-6 text-to-video with audio', { model: 'kling-v2-6', prompt: 'rain on a roof', audio: true }, 'video'],
  ['kling-legacy', 'kling-v3 text-to-video', { model: 'kling-v3', prompt: 'a lighthouse', duration: 7 }, 'video'],
  ['kling-legacy', 'video-extend', { model: 'kling-v1-6', operation: 'video-extend', video_id: 'vid-123', prompt: 'keep going' }, 'video'],
  ['kling-legacy', 'lip-sync from text', { model: 'kling-v1-6', video_id: 'vid-123', lip_sync: { text: 'hello there', voice_id: 'genshin_vindi2' } }, 'video'],
  ['kling-legacy', 'lip-sync from audio', { model: 'kling-v1-6', video_url: VIDEO, lip_sync: { audio_url: 'https://assets.example.com/voice.mp3' } }, 'video'],
  ['kling-legacy', 'image-generation', { model: 'kling-v1', operation: 'image-generation', prompt: 'a watercolor fox', aspect_ratio: '1:1' }, 'image'],
  ['kling-legacy', 'virtual-try-on', { model: 'kolors-virtual-try-on-v1', start_image_url: IMAGE, reference_images: [IMAGE_2] }, 'image'],
];

describe('every operation of every provider, end to end through the gateway', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ config: { tasks: { deadline_ms: 3_600_000 } } });
  });
  afterAll(async () => {
    await gw.close();
  });

  it.each(CASES)('%s: %s', async (provider, _name, body, outputType) => {
    const created = await gw.create({ ...body, routing: { providers: [provider] } });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    expect(created.body.provider).toBe(provider);
    // Freepik and the legacy API take a task into their queue (`queued`); kling3api's answer says it runs.
    expect(created.body.status).toBe(provider === 'kling3api' ? 'processing' : 'queued');
    const done = await gw.finish(created.body.id);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    expect(done.outputs.length).toBeGreaterThan(0);
    expect(done.outputs[0].type).toBe(outputType);
    const file = Buffer.from(await (await fetch(done.outputs[0].url)).arrayBuffer());
    if (outputType === 'video') expect(file.subarray(4, 8).toString('latin1')).toBe('ftyp');
    else expect(file.subarray(1, 4).toString('latin1')).toBe('PNG');
  });
});

describe('a legacy video used as the source of video-extend and lip-sync', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ config: { tasks: { deadline_ms: 3_600_000 } } });
  });
  afterAll(async () => {
    await gw.close();
  });

  it('names the upstream video id (task_result.videos[].id, seed 002) on the output, and extends by it', async () => {
    const created = await gw.create({ model: 'kling-v1-6', prompt: 'a lighthouse at dusk', routing: { providers: ['kling-legacy'] } });
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('succeeded');
    const videoId = done.outputs[0].upstream_id;
    expect(videoId).toBe(`${done.provider_task_id}-video`);

    const extended = await gw.create({ model: 'kling-v1-6', operation: 'video-extend', video_id: videoId, prompt: 'keep going' });
    expect(extended.status, JSON.stringify(extended.body)).toBe(202);
    const longer = await gw.finish(extended.body.id);
    expect(longer.status, JSON.stringify(longer.error)).toBe('succeeded');
    // The extension adds about 5 s to the 5 s source.
    expect(longer.outputs[0].duration).toBe(10);
    expect(longer.outputs[0].upstream_id).toBe(`${longer.provider_task_id}-video`);
  });

  it('names no upstream id where the provider gives none', async () => {
    const created = await gw.create({ model: 'kling-v3', prompt: 'waves', routing: { providers: ['kling3api'] } });
    const done = await gw.finish(created.body.id);
    expect(done.outputs[0].upstream_id).toBeNull();
  });
});
