/**
 * What kling3api.com cannot serve, read through the same functions as quotes and the router
 * (`resolveRequest` + `matchOffering` from src/core/capabilities.ts).
 */
import { describe, expect, it } from 'vitest';
import { KLING3API_OFFERINGS } from '../../../src/providers/kling3api/kling3api-capabilities.js';
import { match, matchUnparsed, served } from './kling3api-fixtures.js';

describe('kling3api offerings', () => {
  it('declares one offering per (model, operation), each at pro and std', () => {
    const keys = KLING3API_OFFERINGS.map((o) => `${o.model} ${o.operation}`);
    expect(keys).toEqual([
      'kling-v3 text-to-video',
      'kling-v3 image-to-video',
      'kling-v3-omni text-to-video',
      'kling-v3-omni image-to-video',
      'kling-v3-omni reference-to-video',
      'kling-v3-omni video-edit',
    ]);
    for (const offering of KLING3API_OFFERINGS) expect(offering.qualities).toEqual(['pro', 'std']);
    expect(KLING3API_OFFERINGS[0]?.upstream).toBe('POST /api/generate type=pro-text-to-video|std-text-to-video');
  });

  it('serves a 2000-character prompt and misses at 2001 (Freepik takes 2500)', () => {
    expect(match({ model: 'kling-v3', prompt: 'a'.repeat(2000) }).offering).toBeDefined();
    const miss = match({ model: 'kling-v3', prompt: 'a'.repeat(2001) });
    expect(miss.offering).toBeUndefined();
    expect(miss.reasons).toEqual(['prompt is longer than 2000 characters']);
  });

  it('misses cfg_scale on O3 (Kling 3.0 only)', () => {
    const miss = match({ model: 'kling-v3-omni', prompt: 'x', cfg_scale: 0.5 });
    expect(miss.offering).toBeUndefined();
    expect(miss.reasons).toEqual(['cfg_scale is not supported for kling-v3-omni text-to-video']);
  });

  it('misses cfg_scale 1.5 on Kling 3.0 (0-1 here; Freepik takes 0-2)', () => {
    const miss = match({ model: 'kling-v3', prompt: 'x', cfg_scale: 1.5 });
    expect(miss.reasons).toEqual(['cfg_scale must be at most 1']);
  });

  it('misses reference images on text-to-video', () => {
    const miss = match({
      model: 'kling-v3-omni',
      operation: 'text-to-video',
      prompt: 'x',
      reference_images: ['https://example.com/a.png'],
    });
    expect(miss.reasons).toEqual(['reference_images is not supported for kling-v3-omni text-to-video']);
  });

  it('misses 8 reference images (the canonical schema caps at 7 already; this is the provider rule)', () => {
    const images = Array.from({ length: 8 }, (_, i) => `https://example.com/${i}.png`);
    const miss = matchUnparsed({ model: 'kling-v3-omni', prompt: 'x', reference_images: images });
    expect(miss.reasons).toEqual(['reference_images has 8 items; at most 7']);
    expect(match({ model: 'kling-v3-omni', prompt: 'x', reference_images: images.slice(0, 7) }).offering).toBeDefined();
  });

  it('misses duration on video edit ("auto"), and aspect_ratio and audio there too', () => {
    const edit = { model: 'kling-v3-omni', prompt: 'x', video_url: 'https://example.com/v.mp4' } as const;
    expect(match({ ...edit, duration: 5 }).reasons).toEqual(['duration is not supported for kling-v3-omni video-edit']);
    expect(match({ ...edit, aspect_ratio: '9:16' }).reasons).toEqual([
      'aspect_ratio is not supported for kling-v3-omni video-edit',
    ]);
    expect(match({ ...edit, audio: true }).reasons).toEqual([
      "audio is not supported for kling-v3-omni video-edit; keep_original_sound keeps or drops the source video's sound",
    ]);
    expect(match(edit).offering?.operation).toBe('video-edit');
  });

  it('misses multi_shot, elements, voice_ids and camera_control: no rule, no service', () => {
    expect(match({ model: 'kling-v3', multi_shot: [{ prompt: 'a', duration: 5 }], prompt: 'x' }).reasons).toEqual([
      'multi_shot is not supported for kling-v3 text-to-video',
    ]);
    expect(
      match({
        model: 'kling-v3',
        prompt: 'x',
        elements: [{ frontal_image_url: 'https://example.com/f.png' }],
        voice_ids: ['v1'],
        camera_control: { type: 'down_back' },
      }).reasons,
    ).toEqual([
      'elements is not supported for kling-v3 text-to-video',
      'voice_ids is not supported for kling-v3 text-to-video',
      'camera_control is not supported for kling-v3 text-to-video',
    ]);
  });

  it('misses an end frame on text-to-video (image-to-video only)', () => {
    const miss = matchUnparsed({
      model: 'kling-v3',
      operation: 'text-to-video',
      prompt: 'x',
      end_image_url: 'https://example.com/end.png',
    });
    expect(miss.reasons).toEqual(['end_image_url is not supported for kling-v3 text-to-video']);
  });

  it('misses `auto` aspect ratio, which Omni has elsewhere but not here', () => {
    expect(match({ model: 'kling-v3-omni', prompt: 'x', aspect_ratio: 'auto' }).reasons).toEqual([
      'aspect_ratio "auto" is not supported (allowed: "16:9", "9:16", "1:1")',
    ]);
  });

  it('requires a prompt, a start image for image-to-video, a video for edit, and a reference for reference-to-video', () => {
    expect(matchUnparsed({ model: 'kling-v3' }).reasons).toEqual(['prompt is required for kling-v3 text-to-video']);
    expect(
      matchUnparsed({ model: 'kling-v3-omni', operation: 'image-to-video', prompt: 'x' }).reasons,
    ).toEqual(['start_image_url is required for kling-v3-omni image-to-video']);
    expect(matchUnparsed({ model: 'kling-v3-omni', operation: 'video-edit', prompt: 'x' }).reasons).toEqual([
      'video_url is required for kling-v3-omni video-edit',
    ]);
    expect(matchUnparsed({ model: 'kling-v3-omni', operation: 'reference-to-video', prompt: 'x' }).reasons).toEqual([
      'reference_images or reference_video_url is required for kling-v3-omni reference-to-video',
    ]);
  });

  it('refuses a prompt of spaces only, the seed\'s empty prompt (INVALID_PROMPT)', () => {
    // Quoted after the provider's name ("kling3api: …"), so the reason does not name it again.
    expect(matchUnparsed({ model: 'kling-v3', prompt: ' \t ' }).reasons).toEqual(['prompt is blank; kling-v3 text-to-video needs a prompt']);
    expect(matchUnparsed({ model: 'kling-v3-omni', operation: 'video-edit', prompt: ' ', video_url: 'https://example.com/v.mp4' }).reasons).toEqual([
      'prompt is blank; kling-v3-omni video-edit needs a prompt',
    ]);
    expect(match({ model: 'kling-v3', prompt: ' a ' }).reasons).toEqual([]);
  });

  it('takes a prompt of invisible characters only (zero-width spaces, joiners, a byte-order mark) for blank too', () => {
    expect(matchUnparsed({ model: 'kling-v3', prompt: '\u200b\u200c\u200d\u2060\ufeff \u00ad' }).reasons).toEqual([
      'prompt is blank; kling-v3 text-to-video needs a prompt',
    ]);
    expect(match({ model: 'kling-v3', prompt: '\u200ba\u200b' }).reasons).toEqual([]);
  });

  it('refuses audio on a video edit, whichever way it is asked, with one reason', () => {
    const edit = { model: 'kling-v3-omni' as const, prompt: 'x', video_url: 'https://example.com/v.mp4' };
    expect(matchUnparsed({ ...edit, audio: false }).reasons).toEqual([
      "audio is not supported for kling-v3-omni video-edit; keep_original_sound keeps or drops the source video's sound",
    ]);
    expect(matchUnparsed({ ...edit, audio: true }).reasons).toEqual([
      "audio is not supported for kling-v3-omni video-edit; keep_original_sound keeps or drops the source video's sound",
    ]);
    expect(match({ ...edit, keep_original_sound: false }).reasons).toEqual([]);
  });

  it('misses operations and models it does not serve', () => {
    expect(match({ model: 'kling-v3', prompt: 'x', video_url: 'https://example.com/v.mp4' }).reasons).toEqual([
      'does not serve video-edit with kling-v3; it serves kling-v3 for text-to-video, image-to-video',
    ]);
    expect(match({ model: 'kling-v2-6', prompt: 'x' }).reasons).toEqual(['does not serve text-to-video with kling-v2-6']);
    expect(
      match({ model: 'kling-v3-omni', prompt: 'x', video_url: 'https://example.com/v.mp4', keep_original_sound: true, reference_images: ['https://example.com/a.png'] }).reasons,
    ).toEqual(['reference_images is not supported for kling-v3-omni video-edit']);
    expect(match({ model: 'kling-v3', prompt: 'x', keep_original_sound: true }).reasons).toEqual([
      'keep_original_sound is not supported for kling-v3 text-to-video',
    ]);
  });

  it('takes sound on every generating type, so the canonical audio default draws no warning', () => {
    for (const input of [
      { model: 'kling-v3', prompt: 'x' },
      { model: 'kling-v3-omni', prompt: 'x' },
      { model: 'kling-v3-omni', prompt: 'x', start_image_url: 'https://example.com/a.png' },
      { model: 'kling-v3-omni', prompt: 'x', reference_images: ['https://example.com/a.png'] },
    ]) {
      expect(served(input).warnings).toEqual([]);
    }
  });
});
