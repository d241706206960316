import { describe, expect, it } from 'vitest';
import { fieldOfReason, refusalsByField } from '../../../src/core/model/capabilities.js';
import { KLING_LEGACY_OFFERINGS } from '../../../src/providers/kling-legacy/kling-legacy-capabilities.js';
import { END_IMAGE, GARMENT, IMAGE, SOURCE_VIDEO, matchLegacy } from './kling-legacy-fixtures.js';

function reasonsFor(input: unknown): string[] {
  const match = matchLegacy(input);
  expect(match.offering, 'the request should not be served').toBeUndefined();
  return match.reasons;
}

function servedBy(input: unknown): string {
  const match = matchLegacy(input);
  expect(match.reasons).toEqual([]);
  expect(match.offering).toBeDefined();
  return match.offering?.upstream ?? '';
}

describe('kling-legacy capability misses', () => {
  it('refuses duration 7 on kling-v2-6 (5 or 10 only)', () => {
    expect(reasonsFor({ model: 'kling-v2-6', prompt: 'x', duration: 7 })).toContain(
      'duration 7 is not supported (allowed: 5, 10)',
    );
  });

  it('refuses camera_control on a model without it', () => {
    expect(reasonsFor({ model: 'kling-v1-6', prompt: 'x', camera_control: { type: 'down_back' } })).toContain(
      'camera_control is not supported for kling-v1-6 text-to-video',
    );
  });

  it('refuses camera_control on kling-v1 outside std 5 s', () => {
    expect(reasonsFor({ model: 'kling-v1', prompt: 'x', camera_control: { type: 'down_back' } })).toEqual([
      'camera_control on kling-v1 needs quality std',
    ]);
    expect(
      reasonsFor({ model: 'kling-v1', quality: 'std', duration: 10, prompt: 'x', camera_control: { type: 'down_back' } }),
    ).toEqual(['camera_control on kling-v1 needs duration 5']);
  });

  it('refuses cfg_scale on the kling-v2.x models and above 1 elsewhere', () => {
    expect(reasonsFor({ model: 'kling-v2-5-turbo', prompt: 'x', cfg_scale: 0.5 })).toContain(
      'cfg_scale is not supported for kling-v2-5-turbo text-to-video',
    );
    expect(reasonsFor({ model: 'kling-v1', prompt: 'x', cfg_scale: 1.5 })).toContain('cfg_scale must be at most 1');
  });

  it('refuses a quality the model does not offer', () => {
    expect(reasonsFor({ model: 'kling-v2-1-master', quality: 'std', prompt: 'x' })).toContain(
      'kling-v2-1-master text-to-video is served at quality pro, not std',
    );
    expect(reasonsFor({ model: 'kolors-virtual-try-on-v1', quality: 'std', start_image_url: IMAGE, reference_images: [GARMENT] })).toContain(
      'kolors-virtual-try-on-v1 virtual-try-on is served at quality pro, not std',
    );
  });

  it('refuses aspect ratio auto', () => {
    expect(reasonsFor({ model: 'kling-v1-6', prompt: 'x', aspect_ratio: 'auto' })).toContain(
      'aspect_ratio "auto" is not supported (allowed: "16:9", "9:16", "1:1")',
    );
  });

  it('refuses an explicit aspect ratio on image-to-video (the image decides)', () => {
    expect(reasonsFor({ model: 'kling-v1-6', start_image_url: IMAGE, aspect_ratio: '9:16' })).toContain(
      'aspect_ratio is not supported for kling-v1-6 image-to-video',
    );
  });

  it('refuses lip_sync without a source video, and with two', () => {
    expect(reasonsFor({ model: 'kling-v1', lip_sync: { audio_url: 'https://a.example.com/a.mp3' } })).toEqual([
      'video_id or video_url is required for lip-sync: the source video (video_id a Kling video, or its URL)',
    ]);
    expect(
      reasonsFor({
        model: 'kling-v1',
        operation: 'lip-sync',
        video_id: 'v',
        video_url: SOURCE_VIDEO,
        lip_sync: { audio_url: 'https://a.example.com/a.mp3' },
      }),
    ).toEqual(['video_id and video_url together: lip-sync takes one source video, not both']);
  });

  it('refuses try-on without a garment image, and with two', () => {
    expect(reasonsFor({ model: 'kolors-virtual-try-on-v1', start_image_url: IMAGE })).toEqual([
      'reference_images is required for kolors-virtual-try-on-v1 virtual-try-on',
    ]);
    expect(reasonsFor({ model: 'kolors-virtual-try-on-v1-5', start_image_url: IMAGE, reference_images: [GARMENT, GARMENT] })).toEqual([
      'reference_images has 2 items; at most 1',
    ]);
  });

  it('refuses an end frame where the Capability Map has none, or at the wrong quality or duration', () => {
    expect(reasonsFor({ model: 'kling-v2-master', start_image_url: IMAGE, end_image_url: END_IMAGE })).toContain(
      'end_image_url is not supported for kling-v2-master image-to-video',
    );
    expect(reasonsFor({ model: 'kling-v1-6', quality: 'std', start_image_url: IMAGE, end_image_url: END_IMAGE })).toEqual([
      'end_image_url on kling-v1-6 needs quality pro',
    ]);
    expect(reasonsFor({ model: 'kling-v1', start_image_url: IMAGE, end_image_url: END_IMAGE, duration: 10 })).toEqual([
      'end_image_url on kling-v1 needs duration 5',
    ]);
  });

  it('refuses an explicit audio: true with an end frame on kling-v2-6 pro, and says what to change', () => {
    expect(reasonsFor({ model: 'kling-v2-6', start_image_url: IMAGE, end_image_url: END_IMAGE, audio: true })).toEqual([
      'audio is not possible here: kling-v2-6 generates no audio with an end frame (end_image_url): send audio: false',
    ]);
    expect(servedBy({ model: 'kling-v2-6', start_image_url: IMAGE, end_image_url: END_IMAGE, audio: false })).toBe(
      'POST /kling/v1/videos/image2video (model_name kling-v2-6)',
    );
  });

  it('serves a defaulted audio with an end frame on kling-v2-6 as silent video, with a warning', () => {
    const match = matchLegacy({ model: 'kling-v2-6', start_image_url: IMAGE, end_image_url: END_IMAGE });
    expect(match.reasons).toEqual([]);
    expect(match.warnings).toEqual([
      'audio defaulted to true but kling-v2-6 generates no audio with an end frame (end_image_url); the video will be silent',
    ]);
  });

  it('refuses an explicit audio: true at quality std on kling-v2-6 (audio is pro only); a defaulted one is a warning', () => {
    const reason = 'audio is not possible here: kling-v2-6 generates audio only at quality pro: send audio: false or quality pro';
    expect(reasonsFor({ model: 'kling-v2-6', quality: 'std', prompt: 'x', audio: true })).toEqual([reason]);
    const defaulted = matchLegacy({ model: 'kling-v2-6', quality: 'std', prompt: 'x' });
    expect(defaulted.reasons).toEqual([]);
    expect(defaulted.warnings).toEqual([
      'audio defaulted to true but kling-v2-6 generates audio only at quality pro; the video will be silent',
    ]);
    expect(servedBy({ model: 'kling-v2-6', quality: 'std', prompt: 'x', audio: false })).toContain('kling-v2-6');
  });

  it('refuses explicit audio on models that generate none', () => {
    expect(reasonsFor({ model: 'kling-v2-5-turbo', prompt: 'x', audio: true })).toEqual([
      'audio is not supported for kling-v2-5-turbo text-to-video',
    ]);
  });

  it('refuses video-extend on models the Capability Map does not extend, and without video_id', () => {
    expect(reasonsFor({ model: 'kling-v2-6', video_id: 'v' })).toEqual([
      'does not serve video-extend with kling-v2-6; it serves kling-v2-6 for text-to-video, image-to-video, lip-sync',
    ]);
    expect(reasonsFor({ model: 'kling-v1', operation: 'video-extend', prompt: 'x' })).toContain(
      'video_id is required for kling-v1 video-extend',
    );
  });

  it('refuses a negative prompt with a reference image, and a reference image on kling-v2', () => {
    expect(
      reasonsFor({ model: 'kling-v1', operation: 'image-generation', prompt: 'x', negative_prompt: 'y', start_image_url: IMAGE }),
    ).toEqual(['negative_prompt is not supported with a reference image (start_image_url) on image-generation']);
    expect(reasonsFor({ model: 'kling-v2-master', operation: 'image-generation', prompt: 'x', start_image_url: IMAGE })).toContain(
      'start_image_url is not supported for kling-v2-master image-generation',
    );
  });

  it('refuses an image prompt over 500 characters and a video prompt is allowed 2500', () => {
    expect(reasonsFor({ model: 'kling-v1', operation: 'image-generation', prompt: 'x'.repeat(501) })).toContain(
      'prompt is longer than 500 characters',
    );
    expect(servedBy({ model: 'kling-v1', prompt: 'x'.repeat(2500) })).toContain('text2video');
  });

  it('refuses a prompt of white space only where the prompt is required (text-to-video, image-generation)', () => {
    // Sent, it was answered 1201 "prompt is required": a 202, then a failed task.
    expect(reasonsFor({ model: 'kling-v1', prompt: ' \n\t ' })).toEqual(['prompt is blank; kling-v1 text-to-video needs a prompt']);
    expect(reasonsFor({ model: 'kling-v1', operation: 'image-generation', prompt: '\u00a0' })).toEqual([
      'prompt is blank; kling-v1 image-generation needs a prompt',
    ]);
    // Where the prompt is optional, a blank one is no obstacle.
    expect(reasonsFor({ model: 'kling-v1', prompt: '\u200b\u2060' })).toEqual(['prompt is blank; kling-v1 text-to-video needs a prompt']);
    expect(servedBy({ model: 'kling-v1', prompt: ' ', start_image_url: IMAGE })).toContain('image2video');
  });

  it('refuses lip-sync words or a voice of white space only', () => {
    // Sent, either was answered 1201 ("text is required", "voice_id is required"): a 202, then a failed task.
    expect(reasonsFor({ model: 'kling-v1', video_url: SOURCE_VIDEO, lip_sync: { text: '  ', voice_id: 'v' } })).toEqual([
      'lip_sync text is blank; kling-v1 lip-sync needs words to speak',
    ]);
    expect(reasonsFor({ model: 'kling-v1', video_url: SOURCE_VIDEO, lip_sync: { text: 'hi', voice_id: '\t' } })).toEqual([
      'lip_sync voice_id is blank; kling-v1 lip-sync needs a voice',
    ]);
    expect(reasonsFor({ model: 'kling-v1', video_url: SOURCE_VIDEO, lip_sync: { text: '\u200b', voice_id: '\ufeff' } })).toEqual([
      'lip_sync text is blank; kling-v1 lip-sync needs words to speak',
      'lip_sync voice_id is blank; kling-v1 lip-sync needs a voice',
    ]);
  });

  it('does not serve operations or models it does not have', () => {
    expect(reasonsFor({ model: 'kling-v3-omni', prompt: 'x' })).toEqual(['does not serve text-to-video with kling-v3-omni']);
    expect(reasonsFor({ model: 'kling-v1-6', operation: 'image-generation', prompt: 'x' })[0]).toMatch(
      /^does not serve image-generation with kling-v1-6/,
    );
    expect(reasonsFor({ model: 'kling-v1', prompt: 'x', multi_shot: [{ prompt: 'a', duration: 5 }] })).toContain(
      'multi_shot is not supported for kling-v1 text-to-video',
    );
  });
});

describe('kling-legacy capability matches', () => {
  it('serves every legacy model for text and image to video, and kling-v3 from 3 to 15 s', () => {
    for (const model of ['kling-v1', 'kling-v1-6', 'kling-v2-master', 'kling-v2-1-master', 'kling-v2-5-turbo', 'kling-v2-6', 'kling-v3']) {
      expect(servedBy({ model, prompt: 'x' })).toBe(`POST /kling/v1/videos/text2video (model_name ${model})`);
      expect(servedBy({ model, start_image_url: IMAGE })).toBe(`POST /kling/v1/videos/image2video (model_name ${model})`);
    }
    expect(servedBy({ model: 'kling-v3', prompt: 'x', duration: 3, quality: 'std' })).toContain('kling-v3');
    expect(servedBy({ model: 'kling-v3', start_image_url: IMAGE, end_image_url: END_IMAGE, duration: 15 })).toContain('kling-v3');
  });

  it('warns instead of refusing when the audio default cannot be honoured', () => {
    const match = matchLegacy({ model: 'kling-v1', prompt: 'x' });
    expect(match.offering).toBeDefined();
    expect(match.warnings).toEqual(['audio defaults to true but kling-v1 text-to-video here cannot generate it']);
    expect(matchLegacy({ model: 'kling-v2-6', prompt: 'x' }).warnings).toEqual([]);
  });

  it('serves extend, lip-sync, image generation and try-on', () => {
    expect(servedBy({ model: 'kling-v1-6', video_id: 'v', prompt: 'x', cfg_scale: 0.5 })).toBe('POST /kling/v1/videos/video-extend');
    expect(servedBy({ model: 'kling-v2-master', video_url: SOURCE_VIDEO, lip_sync: { text: 'hi', voice_id: 'v' } })).toBe(
      'POST /kling/v1/videos/lip-sync',
    );
    expect(servedBy({ model: 'kling-v1', operation: 'image-generation', prompt: 'x', start_image_url: IMAGE })).toBe(
      'POST /kling/v1/images/generations (model_name kling-v1)',
    );
    expect(servedBy({ model: 'kolors-virtual-try-on-v1', start_image_url: IMAGE, reference_images: [GARMENT] })).toBe(
      'POST /kling/v1/images/kolors-virtual-try-on (model_name kolors-virtual-try-on-v1)',
    );
  });

  it('declares camera control, cfg_scale and extension only where the Capability Map has them', () => {
    const withField = (field: string) =>
      [...new Set(KLING_LEGACY_OFFERINGS.filter((o) => field in o.fields).map((o) => `${o.model} ${o.operation}`))].sort();
    expect(withField('camera_control')).toEqual(['kling-v1 text-to-video']);
    expect(withField('audio')).toEqual([
      'kling-v2-6 image-to-video',
      'kling-v2-6 text-to-video',
      'kling-v3 image-to-video',
      'kling-v3 text-to-video',
    ]);
    expect(KLING_LEGACY_OFFERINGS.filter((o) => o.operation === 'video-extend').map((o) => o.model)).toEqual(['kling-v1', 'kling-v1-6']);
    const cfgModels = new Set(KLING_LEGACY_OFFERINGS.filter((o) => 'cfg_scale' in o.fields && o.operation === 'text-to-video').map((o) => o.model));
    expect([...cfgModels].sort()).toEqual(['kling-v1', 'kling-v1-6', 'kling-v3']);
  });
});

describe('kling-legacy audio refusals name their field', () => {
  // A 422's errors[] has one entry per field some provider cannot serve as asked: an explicit
  // `audio: true` kling-v2-6 cannot honour used to be left out of it (its reason opened with the
  // model's name, not the field's), so a client reading errors[] saw nothing about `audio`.
  it('reads `audio` as the field of each refusal of an explicit audio: true', () => {
    const atStd = reasonsFor({ model: 'kling-v2-6', quality: 'std', prompt: 'x', audio: true });
    const withEndFrame = reasonsFor({ model: 'kling-v2-6', start_image_url: IMAGE, end_image_url: END_IMAGE, audio: true });
    for (const reason of [...atStd, ...withEndFrame]) expect(fieldOfReason(reason)).toBe('audio');
    expect(refusalsByField([{ provider: 'kling-legacy', reasons: atStd }]).map((entry) => entry.path)).toEqual(['audio']);
  });
});
