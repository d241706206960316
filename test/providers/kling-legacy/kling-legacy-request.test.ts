import { describe, expect, it } from 'vitest';
import { toKlingLegacyRequest, type KlingLegacyCallOptions } from '../../../src/providers/kling-legacy/kling-legacy-request.js';
import { CALLBACK, END_IMAGE, GARMENT, IMAGE, SOURCE_VIDEO, served } from './kling-legacy-fixtures.js';

const options: KlingLegacyCallOptions = { callbackUrl: CALLBACK, externalTaskId: 'task_1-1' };

function map(input: unknown, withOptions: KlingLegacyCallOptions = options) {
  const { request, offering } = served(input);
  return toKlingLegacyRequest(request, offering, withOptions);
}

describe('toKlingLegacyRequest: text2video', () => {
  it('maps kling-v1 std with camera control, cfg and every optional field', () => {
    const call = map({
      model: 'kling-v1',
      quality: 'std',
      prompt: 'a red fox in snow',
      negative_prompt: 'blur',
      cfg_scale: 0.7,
      aspect_ratio: '9:16',
      camera_control: { type: 'simple', config: { zoom: 5 } },
    });
    expect(call.path).toBe('/kling/v1/videos/text2video');
    expect(call.statusPath).toBe('/kling/v1/videos/text2video');
    expect(call.body).toEqual({
      model_name: 'kling-v1',
      prompt: 'a red fox in snow',
      negative_prompt: 'blur',
      cfg_scale: 0.7,
      mode: 'std',
      camera_control: { type: 'simple', config: { zoom: 5 } },
      aspect_ratio: '9:16',
      duration: '5',
      callback_url: CALLBACK,
      external_task_id: 'task_1-1',
    });
  });

  it('sends no mode for the master models, and the duration as a string', () => {
    const call = map({ model: 'kling-v2-master', prompt: 'waves', duration: 10 });
    expect(call.body).toEqual({
      model_name: 'kling-v2-master',
      prompt: 'waves',
      aspect_ratio: '16:9',
      duration: '10',
      callback_url: CALLBACK,
      external_task_id: 'task_1-1',
    });
    expect(map({ model: 'kling-v2-1-master', prompt: 'waves' }).body).not.toHaveProperty('mode');
  });

  it('sends sound on kling-v2-6 (audio defaults to true), off when the caller turns it off', () => {
    expect(map({ model: 'kling-v2-6', prompt: 'rain' }, {}).body).toEqual({
      model_name: 'kling-v2-6',
      prompt: 'rain',
      mode: 'pro',
      sound: 'on',
      aspect_ratio: '16:9',
      duration: '5',
    });
    expect(map({ model: 'kling-v2-6', prompt: 'rain', audio: false }, {}).body).toMatchObject({ sound: 'off' });
    expect(map({ model: 'kling-v2-6', prompt: 'rain', quality: 'std', audio: false }, {}).body).toMatchObject({
      mode: 'std',
      sound: 'off',
    });
  });

  it('sends no sound where the model has no audio', () => {
    expect(map({ model: 'kling-v2-5-turbo', prompt: 'rain' }, {}).body).not.toHaveProperty('sound');
  });

  it('maps kling-v3 with a 12 s duration and cfg_scale', () => {
    expect(map({ model: 'kling-v3', prompt: 'city', duration: 12, cfg_scale: 0.4, audio: false }, {}).body).toEqual({
      model_name: 'kling-v3',
      prompt: 'city',
      cfg_scale: 0.4,
      mode: 'pro',
      sound: 'off',
      aspect_ratio: '16:9',
      duration: '12',
    });
  });
});

describe('toKlingLegacyRequest: image2video', () => {
  it('maps the start and end frames to image and image_tail, without an aspect ratio', () => {
    const call = map({ model: 'kling-v1-6', start_image_url: IMAGE, end_image_url: END_IMAGE, prompt: 'turns' });
    expect(call.path).toBe('/kling/v1/videos/image2video');
    expect(call.body).toEqual({
      model_name: 'kling-v1-6',
      image: IMAGE,
      image_tail: END_IMAGE,
      prompt: 'turns',
      mode: 'pro',
      duration: '5',
      callback_url: CALLBACK,
      external_task_id: 'task_1-1',
    });
  });

  it('sends sound off with an end frame on kling-v2-6 pro when the caller turns audio off', () => {
    expect(
      map({ model: 'kling-v2-6', start_image_url: IMAGE, end_image_url: END_IMAGE, audio: false, duration: 10 }, {}).body,
    ).toEqual({ model_name: 'kling-v2-6', image: IMAGE, image_tail: END_IMAGE, mode: 'pro', sound: 'off', duration: '10' });
  });

  it('sends sound off with an end frame on kling-v2-6 pro when audio was only defaulted (the model cannot)', () => {
    expect(
      map({ model: 'kling-v2-6', start_image_url: IMAGE, end_image_url: END_IMAGE, duration: 10 }, {}).body,
    ).toEqual({ model_name: 'kling-v2-6', image: IMAGE, image_tail: END_IMAGE, mode: 'pro', sound: 'off', duration: '10' });
  });

  it('maps kling-v2-5-turbo std without prompt', () => {
    expect(map({ model: 'kling-v2-5-turbo', quality: 'std', start_image_url: IMAGE }, {}).body).toEqual({
      model_name: 'kling-v2-5-turbo',
      image: IMAGE,
      mode: 'std',
      duration: '5',
    });
  });
});

describe('toKlingLegacyRequest: video-extend', () => {
  it('sends video_id, prompts and cfg_scale, no model_name and no external_task_id', () => {
    const call = map({
      model: 'kling-v1',
      video_id: '8309-video',
      prompt: 'keeps walking',
      negative_prompt: 'cuts',
      cfg_scale: 0.3,
    });
    expect(call.path).toBe('/kling/v1/videos/video-extend');
    expect(call.statusPath).toBe('/kling/v1/videos/video-extend');
    expect(call.body).toEqual({
      video_id: '8309-video',
      prompt: 'keeps walking',
      negative_prompt: 'cuts',
      cfg_scale: 0.3,
      callback_url: CALLBACK,
    });
  });
});

describe('toKlingLegacyRequest: lip-sync', () => {
  it('maps text with a voice to input mode text2video', () => {
    const call = map({
      model: 'kling-v1-6',
      video_id: '8309-video',
      lip_sync: { text: 'Hello there', voice_id: 'oversea_male1', voice_language: 'en', voice_speed: 1.2 },
    });
    expect(call.path).toBe('/kling/v1/videos/lip-sync');
    expect(call.body).toEqual({
      input: {
        video_id: '8309-video',
        mode: 'text2video',
        text: 'Hello there',
        voice_id: 'oversea_male1',
        voice_language: 'en',
        voice_speed: 1.2,
      },
      callback_url: CALLBACK,
    });
  });

  it('maps an audio file URL to input mode audio2video with audio_type url', () => {
    expect(
      map({ model: 'kling-v2-6', video_url: SOURCE_VIDEO, lip_sync: { audio_url: 'https://assets.example.com/a.mp3' } }, {}).body,
    ).toEqual({
      input: { video_url: SOURCE_VIDEO, mode: 'audio2video', audio_type: 'url', audio_url: 'https://assets.example.com/a.mp3' },
    });
  });

  it('fills the canonical voice defaults (en, speed 1)', () => {
    expect(map({ model: 'kling-v1', video_id: 'v1', lip_sync: { text: 'Hi', voice_id: 'uk_boy1' } }, {}).body).toEqual({
      input: { video_id: 'v1', mode: 'text2video', text: 'Hi', voice_id: 'uk_boy1', voice_language: 'en', voice_speed: 1 },
    });
  });
});

describe('toKlingLegacyRequest: image generation', () => {
  it('maps kling-v1 with a reference image to images/generations', () => {
    const call = map({
      model: 'kling-v1',
      operation: 'image-generation',
      prompt: 'a lighthouse',
      start_image_url: IMAGE,
      aspect_ratio: '1:1',
    });
    expect(call.path).toBe('/kling/v1/images/generations');
    expect(call.statusPath).toBe('/kling/v1/images/generations');
    expect(call.family).toBe('images');
    expect(call.body).toEqual({
      model_name: 'kling-v1',
      prompt: 'a lighthouse',
      image: IMAGE,
      aspect_ratio: '1:1',
      n: 1,
      callback_url: CALLBACK,
    });
  });

  it('maps kling-v2-master to kling-v2 and kling-v2-1-master to kling-v2-1', () => {
    expect(map({ model: 'kling-v2-master', operation: 'image-generation', prompt: 'p', negative_prompt: 'n' }, {}).body).toEqual({
      model_name: 'kling-v2',
      prompt: 'p',
      negative_prompt: 'n',
      n: 1,
    });
    expect(map({ model: 'kling-v2-1-master', operation: 'image-generation', prompt: 'p' }, {}).body).toEqual({
      model_name: 'kling-v2-1',
      prompt: 'p',
      n: 1,
    });
  });
});

describe('toKlingLegacyRequest: virtual try-on', () => {
  it('maps the person to human_image and the one garment to cloth_image', () => {
    const call = map({ model: 'kolors-virtual-try-on-v1-5', start_image_url: IMAGE, reference_images: [GARMENT] });
    expect(call.path).toBe('/kling/v1/images/kolors-virtual-try-on');
    expect(call.body).toEqual({
      model_name: 'kolors-virtual-try-on-v1-5',
      human_image: IMAGE,
      cloth_image: GARMENT,
      callback_url: CALLBACK,
    });
  });

  it('names kolors-virtual-try-on-v1 as such', () => {
    expect(map({ model: 'kolors-virtual-try-on-v1', start_image_url: IMAGE, reference_images: [GARMENT] }, {}).body).toEqual({
      model_name: 'kolors-virtual-try-on-v1',
      human_image: IMAGE,
      cloth_image: GARMENT,
    });
  });
});
