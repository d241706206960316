/**
 * Capability checks (SPEC §1, §3) on hand-written offerings: which operation a request means,
 * which defaults it gets, and every reason an offering cannot serve it. These are the reasons a
 * `422` and a quote show, so their wording is part of the contract.
 */
import { describe, expect, it } from 'vitest';
import type { CreateVideoRequest, VideoRequest } from '../../../src/core/model/canonical.js';
import {
  checkOffering,
  fieldOfReason,
  inferOperation,
  matchOffering,
  outputTypeOf,
  refusalsByField,
  resolveRequest,
} from '../../../src/core/model/capabilities.js';
import type { Offering } from '../../../src/core/model/offerings.js';

const IMAGE = 'https://example.com/frame.png';
const VIDEO = 'https://example.com/clip.mp4';

function request(input: Partial<CreateVideoRequest> = {}): CreateVideoRequest {
  return { model: 'kling-v3', prompt: 'a lighthouse at dusk', ...input };
}

const TEXT: Offering = {
  model: 'kling-v3',
  qualities: ['pro', 'std'],
  operation: 'text-to-video',
  upstream: 'POST /text',
  fields: {
    prompt: { required: true, maxLength: 20 },
    negative_prompt: { maxLength: 10 },
    duration: { values: [5, 10] },
    aspect_ratio: { values: ['16:9', '9:16'] },
    cfg_scale: { min: 0, max: 1 },
    audio: { values: [true, false] },
    multi_shot: { maxItems: 2 },
    voice_ids: { maxItems: 1 },
  },
};

describe('inferOperation', () => {
  it.each<[string, Partial<CreateVideoRequest>, string]>([
    ['a prompt alone', {}, 'text-to-video'],
    ['a start frame', { start_image_url: IMAGE }, 'image-to-video'],
    ['start and end frames', { start_image_url: IMAGE, end_image_url: IMAGE }, 'image-to-video'],
    ['reference images', { reference_images: [IMAGE] }, 'reference-to-video'],
    ['a reference video', { reference_video_url: VIDEO }, 'reference-to-video'],
    ['reference images beside a start frame', { start_image_url: IMAGE, reference_images: [IMAGE] }, 'reference-to-video'],
    ['a source video', { video_url: VIDEO }, 'video-edit'],
    ['a source video with reference images', { video_url: VIDEO, reference_images: [IMAGE] }, 'video-edit'],
    ['a legacy video id', { video_id: 'vid_123' }, 'video-extend'],
    ['a video id beside a video url', { video_id: 'vid_123', video_url: VIDEO }, 'video-extend'],
    ['lip-sync text', { lip_sync: { text: 'hello', voice_id: 'v1', voice_language: 'en', voice_speed: 1 } }, 'lip-sync'],
    ['lip-sync audio over a video', { lip_sync: { audio_url: 'https://example.com/a.mp3' }, video_url: VIDEO }, 'lip-sync'],
  ])('%s → %s', (_label, input, operation) => {
    expect(inferOperation(request(input))).toBe(operation);
  });

  it('takes a Kolors try-on model as virtual-try-on', () => {
    expect(inferOperation({ model: 'kolors-virtual-try-on-v1' })).toBe('virtual-try-on');
    expect(inferOperation({ model: 'kolors-virtual-try-on-v1-5', start_image_url: IMAGE })).toBe('virtual-try-on');
  });

  it('a named operation wins over the inputs', () => {
    expect(inferOperation(request({ operation: 'image-generation', start_image_url: IMAGE }))).toBe('image-generation');
    expect(inferOperation(request({ operation: 'text-to-video', video_url: VIDEO }))).toBe('text-to-video');
  });
});

describe('resolveRequest', () => {
  it.each(['text-to-video', 'image-to-video', 'reference-to-video'] as const)(
    '%s gets quality pro, duration 5, aspect 16:9 and audio true',
    (operation) => {
      const { request: resolved } = resolveRequest(request({ operation }));
      expect(resolved).toMatchObject({ quality: 'pro', operation, duration: 5, aspect_ratio: '16:9', audio: true });
    },
  );

  it.each(['video-edit', 'video-extend', 'lip-sync', 'image-generation', 'virtual-try-on'] as const)(
    '%s gets quality pro and no duration, aspect ratio or audio',
    (operation) => {
      const { request: resolved } = resolveRequest(request({ operation }));
      expect(resolved.quality).toBe('pro');
      expect(resolved.operation).toBe(operation);
      expect(resolved).not.toHaveProperty('duration');
      expect(resolved).not.toHaveProperty('aspect_ratio');
      expect(resolved).not.toHaveProperty('audio');
    },
  );

  it('applies the defaults to the inferred operation', () => {
    expect(resolveRequest(request({ video_url: VIDEO })).request).not.toHaveProperty('duration');
    expect(resolveRequest(request({ start_image_url: IMAGE })).request.duration).toBe(5);
  });

  it('takes the duration from timed shots: their sum', () => {
    const { request: resolved, explicit } = resolveRequest(
      request({ multi_shot: [{ prompt: 'wide', duration: 3 }, { prompt: 'close', duration: 4 }] }),
    );
    expect(resolved.duration).toBe(7);
    expect(explicit.has('duration')).toBe(false);
  });

  it('gives untimed shots the default 5 seconds', () => {
    const { request: resolved } = resolveRequest(request({ multi_shot: [{ prompt: 'wide' }, { prompt: 'close' }] }));
    expect(resolved.duration).toBe(5);
  });

  it('keeps what the caller wrote over every default', () => {
    const input = request({ quality: 'std', duration: 10, aspect_ratio: '9:16', audio: false });
    const { request: resolved } = resolveRequest(input);
    expect(resolved).toMatchObject({ quality: 'std', duration: 10, aspect_ratio: '9:16', audio: false });
    const shots = resolveRequest(request({ duration: 12, multi_shot: [{ prompt: 'a', duration: 3 }] }));
    expect(shots.request.duration).toBe(12);
  });

  it('records exactly the fields the caller wrote in explicit', () => {
    const { explicit } = resolveRequest({ model: 'kling-v3', prompt: 'x', audio: false, duration: undefined });
    expect([...explicit].sort()).toEqual(['audio', 'model', 'prompt']);
  });

  it('does not change the input it was given', () => {
    const input = request();
    resolveRequest(input);
    expect(input).toEqual({ model: 'kling-v3', prompt: 'a lighthouse at dusk' });
  });
});

describe('checkOffering', () => {
  function check(offering: Offering, input: Partial<CreateVideoRequest> = {}) {
    return checkOffering(offering, resolveRequest(request(input)));
  }

  it('accepts a request within every rule', () => {
    expect(check(TEXT, { duration: 10, aspect_ratio: '9:16', cfg_scale: 0.5, negative_prompt: 'blur' })).toEqual({
      reasons: [],
      warnings: [],
    });
  });

  it('refuses a field the caller wrote that the offering has no rule for', () => {
    expect(check(TEXT, { end_image_url: IMAGE }).reasons).toEqual([
      'end_image_url is not supported for kling-v3 text-to-video',
    ]);
  });

  it('warns, without refusing, when a defaulted audio: true cannot be honoured', () => {
    const silent: Offering = { ...TEXT, fields: { prompt: {}, duration: { values: [5] }, aspect_ratio: {} } };
    expect(check(silent)).toEqual({
      reasons: [],
      warnings: ['audio defaults to true but kling-v3 text-to-video here cannot generate it'],
    });
  });

  it('refuses an explicit audio: true the offering cannot honour', () => {
    const silent: Offering = { ...TEXT, fields: { prompt: {}, duration: {}, aspect_ratio: {} } };
    expect(check(silent, { audio: true })).toEqual({
      reasons: ['audio is not supported for kling-v3 text-to-video'],
      warnings: [],
    });
  });

  it('accepts an explicit audio: false from an offering that only makes silent video', () => {
    const silent: Offering = { ...TEXT, fields: { prompt: {}, duration: {}, aspect_ratio: {} } };
    expect(check(silent, { audio: false })).toEqual({ reasons: [], warnings: [] });
  });

  it('drops other defaults it has no rule for quietly (they are defaults, not asks)', () => {
    const bare: Offering = { ...TEXT, fields: { prompt: {}, audio: {} } };
    expect(check(bare)).toEqual({ reasons: [], warnings: [] });
  });

  it.each<[string, Partial<CreateVideoRequest>, string]>([
    ['a value not in the list', { duration: 15 }, 'duration 15 is not supported (allowed: 5, 10)'],
    ['a string value not in the list', { aspect_ratio: '1:1' }, 'aspect_ratio "1:1" is not supported (allowed: "16:9", "9:16")'],
    ['a number above max', { cfg_scale: 1.5 }, 'cfg_scale must be at most 1'],
    ['a string past maxLength', { prompt: 'x'.repeat(21) }, 'prompt is longer than 20 characters'],
    ['too many items', { voice_ids: ['a', 'b'] }, 'voice_ids has 2 items; at most 1'],
    [
      'too many shots',
      { multi_shot: [{ prompt: 'a', duration: 2 }, { prompt: 'b', duration: 2 }, { prompt: 'c', duration: 1 }] },
      'multi_shot has 3 items; at most 2',
    ],
  ])('refuses %s', (_label, input, reason) => {
    expect(check(TEXT, input).reasons).toContain(reason);
  });

  it('counts a string\'s length in characters (Unicode code points, as JSON Schema\'s maxLength and the API do), not UTF-16 units', () => {
    // 20 emoji are 40 UTF-16 units: within a 20-character limit; 21 are not.
    expect(check(TEXT, { prompt: '🦊'.repeat(20) }).reasons).toEqual([]);
    expect(check(TEXT, { prompt: '🦊'.repeat(21) }).reasons).toEqual(['prompt is longer than 20 characters']);
  });

  it('refuses a number below min', () => {
    const offering: Offering = { ...TEXT, fields: { ...TEXT.fields, cfg_scale: { min: 0.5, max: 1 } } };
    expect(check(offering, { cfg_scale: 0.2 }).reasons).toEqual(['cfg_scale must be at least 0.5']);
  });

  it('accepts the bounds themselves', () => {
    expect(check(TEXT, { cfg_scale: 1, prompt: 'x'.repeat(20), voice_ids: ['a'] }).reasons).toEqual([]);
    expect(check(TEXT, { cfg_scale: 0 }).reasons).toEqual([]);
  });

  it('refuses a request missing a required field', () => {
    const { prompt: _prompt, ...noPrompt } = request();
    expect(checkOffering(TEXT, resolveRequest(noPrompt)).reasons).toEqual([
      'prompt is required for kling-v3 text-to-video',
    ]);
  });

  it('refuses a quality the offering does not serve', () => {
    const proOnly: Offering = { ...TEXT, qualities: ['pro'] };
    expect(check(proOnly, { quality: 'std' }).reasons).toEqual([
      'kling-v3 text-to-video is served at quality pro, not std',
    ]);
  });

  it('gives every reason at once', () => {
    expect(check({ ...TEXT, qualities: ['std'] }, { duration: 15, cfg_scale: 2 }).reasons).toEqual([
      'kling-v3 text-to-video is served at quality std, not pro',
      'duration 15 is not supported (allowed: 5, 10)',
      'cfg_scale must be at most 1',
    ]);
  });

  it('adds the reasons of the offering check, which sees the request and what the caller wrote', () => {
    const seen: { request?: VideoRequest; explicit?: string[] } = {};
    const offering: Offering = {
      ...TEXT,
      check(resolved, explicit) {
        seen.request = resolved;
        seen.explicit = [...explicit].sort();
        return resolved.duration === 10 && resolved.aspect_ratio === '9:16' ? ['10 s is landscape only'] : [];
      },
    };
    expect(check(offering, { duration: 10, aspect_ratio: '9:16' }).reasons).toEqual(['10 s is landscape only']);
    expect(seen.explicit).toEqual(['aspect_ratio', 'duration', 'model', 'prompt']);
    check(offering);
    // The defaults are in the request, but not among the fields the caller wrote.
    expect(seen.request?.duration).toBe(5);
    expect(seen.explicit).toEqual(['model', 'prompt']);
  });

  it('adds the warnings of the offering, which also see what the caller wrote', () => {
    const offering: Offering = {
      ...TEXT,
      warnings: (_resolved, explicit) => (explicit.has('audio') ? [] : ['audio will be generated at 24 kHz']),
    };
    expect(check(offering).warnings).toEqual(['audio will be generated at 24 kHz']);
    expect(check(offering, { audio: true }).warnings).toEqual([]);
  });
});

describe('matchOffering', () => {
  const IMAGE_TO_VIDEO: Offering = {
    model: 'kling-v3',
    qualities: ['pro'],
    operation: 'image-to-video',
    upstream: 'POST /image',
    fields: { prompt: {}, start_image_url: { required: true }, duration: { values: [5] }, aspect_ratio: {}, audio: {} },
  };

  function match(offerings: readonly Offering[], input: Partial<CreateVideoRequest> = {}) {
    return matchOffering(offerings, resolveRequest(request(input)));
  }

  it('names the operations it serves for the model when it does not serve this one', () => {
    expect(match([TEXT, IMAGE_TO_VIDEO], { video_url: VIDEO })).toEqual({
      reasons: ['does not serve video-edit with kling-v3; it serves kling-v3 for text-to-video, image-to-video'],
      warnings: [],
    });
  });

  it('says only that it does not serve the model when it serves nothing of it', () => {
    expect(match([TEXT], { model: 'kling-v1' })).toEqual({
      reasons: ['does not serve text-to-video with kling-v1'],
      warnings: [],
    });
  });

  it('picks the first offering that fits', () => {
    const second: Offering = { ...TEXT, upstream: 'POST /text-v2' };
    expect(match([TEXT, second]).offering).toBe(TEXT);
  });

  it('passes over offerings that do not fit to one that does', () => {
    const tenSeconds: Offering = { ...TEXT, upstream: 'POST /ten', fields: { ...TEXT.fields, duration: { values: [10] } } };
    const result = match([tenSeconds, TEXT]);
    expect(result.offering).toBe(TEXT);
    expect(result.reasons).toEqual([]);
  });

  it('returns the warnings of the offering it picks', () => {
    const silent: Offering = { ...TEXT, fields: { prompt: {}, duration: {}, aspect_ratio: {} } };
    expect(match([silent]).warnings).toEqual(['audio defaults to true but kling-v3 text-to-video here cannot generate it']);
  });

  it('when none fits, reports the reasons of the offering that came closest', () => {
    const far: Offering = { ...TEXT, upstream: 'POST /far', qualities: ['std'], fields: { prompt: {}, duration: { values: [10] } } };
    const near: Offering = { ...TEXT, upstream: 'POST /near', fields: { ...TEXT.fields, duration: { values: [10] } } };
    const result = match([far, near]);
    expect(result.offering).toBeUndefined();
    expect(result.reasons).toEqual(['duration 5 is not supported (allowed: 10)']);
  });

  it('prefers an offering whose required inputs are present, even with more other reasons', () => {
    // Two image-to-video routes: one wants an end frame (missing), the other takes neither the
    // duration nor the cfg_scale asked for. The caller meant the second one.
    const needsEndFrame: Offering = {
      ...IMAGE_TO_VIDEO,
      upstream: 'POST /image-end',
      fields: { ...IMAGE_TO_VIDEO.fields, end_image_url: { required: true }, duration: { values: [5, 10] }, cfg_scale: {} },
    };
    const plain: Offering = { ...IMAGE_TO_VIDEO, upstream: 'POST /image-plain' };
    const result = match([needsEndFrame, plain], { start_image_url: IMAGE, duration: 10, cfg_scale: 0.5 });
    expect(result.offering).toBeUndefined();
    expect(result.reasons).toEqual([
      'duration 10 is not supported (allowed: 5)',
      'cfg_scale is not supported for kling-v3 image-to-video',
    ]);
  });

  it('reports the first of two equally close offerings', () => {
    const a: Offering = { ...TEXT, upstream: 'POST /a', fields: { ...TEXT.fields, duration: { values: [10] } } };
    const b: Offering = { ...TEXT, upstream: 'POST /b', fields: { ...TEXT.fields, duration: { values: [15] } } };
    expect(match([a, b]).reasons).toEqual(['duration 5 is not supported (allowed: 10)']);
  });
});

describe('outputTypeOf', () => {
  it('is image for image generation and try-on, video otherwise', () => {
    expect(outputTypeOf('image-generation')).toBe('image');
    expect(outputTypeOf('virtual-try-on')).toBe('image');
    expect(outputTypeOf('text-to-video')).toBe('video');
    expect(outputTypeOf('lip-sync')).toBe('video');
  });
});

describe('reasons by field (errors[] of a capability 422)', () => {
  it('reads the field a reason is about, and none for a reason about no one field', () => {
    expect(fieldOfReason('duration 7 is not supported (allowed: 5, 10)')).toBe('duration');
    expect(fieldOfReason('camera_control on kling-v1 needs quality std')).toBe('camera_control');
    expect(fieldOfReason('kling-v3 text-to-video is served at quality pro, not std')).toBe('quality');
    expect(fieldOfReason('disabled in configuration')).toBeUndefined();
    expect(fieldOfReason('does not serve lip-sync with kling-v3')).toBeUndefined();
    expect(fieldOfReason('excluded by routing.exclude')).toBeUndefined();
  });

  it('groups every provider\'s reasons under their field, quoted as the detail quotes them', () => {
    expect(
      refusalsByField([
        { provider: 'a', reasons: ['duration 7 is not supported (allowed: 5, 10)', 'disabled in configuration'] },
        { provider: 'b', reasons: ['aspect_ratio "auto" is not supported (allowed: "16:9")', 'duration must be at most 5'] },
      ]),
    ).toEqual([
      {
        path: 'duration',
        message: 'a: duration 7 is not supported (allowed: 5, 10) | b: duration must be at most 5',
        providers: [
          { provider: 'a', reasons: ['duration 7 is not supported (allowed: 5, 10)'] },
          { provider: 'b', reasons: ['duration must be at most 5'] },
        ],
      },
      {
        path: 'aspect_ratio',
        message: 'b: aspect_ratio "auto" is not supported (allowed: "16:9")',
        providers: [{ provider: 'b', reasons: ['aspect_ratio "auto" is not supported (allowed: "16:9")'] }],
      },
    ]);
  });
});
