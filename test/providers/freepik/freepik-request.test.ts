/**
 * Canonical request → Freepik create call, and every capability miss, through the same
 * `resolveRequest` + `matchOffering` the gateway uses. Expected bodies follow the request
 * schemas of seed 001/003 (`openapi/freepik.yaml`).
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CreateVideoRequest } from '../../../src/core/model/canonical.js';
import { fieldOfReason, matchOffering, resolveRequest } from '../../../src/core/model/capabilities.js';
import { FREEPIK_OFFERINGS } from '../../../src/providers/freepik/freepik-capabilities.js';
import { toFreepikDuration, toFreepikRequest } from '../../../src/providers/freepik/freepik-request.js';
import { toHttpUri } from '../../../src/core/upstream/upstream-body.js';
import { loadOpenApiContract } from '../../support/openapi-contract.js';

type Input = z.input<typeof CreateVideoRequest>;

const IMG = (name: string) => `https://cdn.example.com/${name}.jpg`;

function match(input: Input) {
  return matchOffering(FREEPIK_OFFERINGS, resolveRequest(CreateVideoRequest.parse(input)));
}

/** The upstream call for a request Freepik serves; fails the test when it is not served. */
function mapped(input: Input) {
  const resolved = resolveRequest(CreateVideoRequest.parse(input));
  const found = matchOffering(FREEPIK_OFFERINGS, resolved);
  expect(found.reasons).toEqual([]);
  if (!found.offering) throw new Error('no offering');
  return toFreepikRequest(resolved.request, found.offering);
}

function reasons(input: Input): string[] {
  return match(input).reasons;
}

describe('kling-v3 → POST /v1/ai/video/kling-v3-{pro|std} (kling-v3-request)', () => {
  it('maps a full text-to-video request field by field', () => {
    const call = mapped({
      model: 'kling-v3',
      prompt: 'A fox runs through snow, @Element1 watches <<<voice_1>>>',
      negative_prompt: 'blur',
      duration: 10,
      aspect_ratio: '9:16',
      cfg_scale: 1.5,
      audio: false,
      voice_ids: ['voice-a', 'voice-b'],
      elements: [{ frontal_image_url: IMG('fox'), reference_image_urls: [IMG('fox-side'), IMG('fox-back')] }],
    });
    expect(call).toEqual({
      path: '/v1/ai/video/kling-v3-pro',
      statusFamily: '/v1/ai/video/kling-v3',
      body: {
        prompt: 'A fox runs through snow, @Element1 watches <<<voice_1>>>',
        negative_prompt: 'blur',
        duration: '10',
        aspect_ratio: '9:16',
        cfg_scale: 1.5,
        generate_audio: false,
        voice_ids: ['voice-a', 'voice-b'],
        elements: [{ frontal_image_url: IMG('fox'), reference_image_urls: [IMG('fox-side'), IMG('fox-back')] }],
      },
    });
  });

  it('applies the canonical defaults (5 s as "5", 16:9, audio on) and picks the std path', () => {
    const call = mapped({ model: 'kling-v3', quality: 'std', prompt: 'A calm lake' });
    expect(call.path).toBe('/v1/ai/video/kling-v3-std');
    expect(call.body).toStrictEqual({ prompt: 'A calm lake', duration: '5', aspect_ratio: '16:9', generate_audio: true });
  });

  it('sends start and end frames as start_image_url / end_image_url for image-to-video', () => {
    const call = mapped({ model: 'kling-v3', prompt: 'Morph', start_image_url: IMG('a'), end_image_url: IMG('b') });
    expect(call.path).toBe('/v1/ai/video/kling-v3-pro');
    expect(call.body).toStrictEqual({
      prompt: 'Morph',
      start_image_url: IMG('a'),
      end_image_url: IMG('b'),
      duration: '5',
      aspect_ratio: '16:9',
      generate_audio: true,
    });
  });

  it('sends timed shots as multi_prompt {prompt, duration: "<n>"} with shot_type customize and their total', () => {
    const call = mapped({
      model: 'kling-v3',
      multi_shot: [
        { prompt: 'Wide shot of a city', duration: 4 },
        { prompt: 'Close-up of a face', duration: 6 },
      ],
    });
    expect(call.body).toStrictEqual({
      multi_prompt: [
        { prompt: 'Wide shot of a city', duration: '4' },
        { prompt: 'Close-up of a face', duration: '6' },
      ],
      shot_type: 'customize',
      duration: '10',
      aspect_ratio: '16:9',
      generate_audio: true,
    });
  });

  it('leaves out an element reference list that is empty', () => {
    const call = mapped({ model: 'kling-v3', prompt: 'x', elements: [{ frontal_image_url: IMG('e') }] });
    expect(call.body).toMatchObject({ elements: [{ frontal_image_url: IMG('e') }] });
    expect((call.body as { elements: object[] }).elements[0]).not.toHaveProperty('reference_image_urls');
  });

  it.each<[string, Input, string]>([
    ['auto aspect ratio', { model: 'kling-v3', prompt: 'x', aspect_ratio: 'auto' }, 'aspect_ratio "auto" is not supported'],
    ['untimed shots', { model: 'kling-v3', multi_shot: [{ prompt: 'a' }, { prompt: 'b' }] }, 'needs a duration (3-15 s) on every shot'],
    [
      'a shot under 3 s',
      { model: 'kling-v3', multi_shot: [{ prompt: 'a', duration: 2 }, { prompt: 'b', duration: 5 }] },
      'at least 3 s each',
    ],
    [
      'a duration that is not the shots total',
      { model: 'kling-v3', duration: 12, multi_shot: [{ prompt: 'a', duration: 4 }, { prompt: 'b', duration: 4 }] },
      "duration 12 differs from the shots' total of 8 s",
    ],
    ['no prompt and no shots', { model: 'kling-v3', operation: 'text-to-video' }, 'prompt or multi_shot is required for kling-v3 text-to-video'],
    [
      'an end frame on text-to-video',
      { model: 'kling-v3', operation: 'text-to-video', prompt: 'x', start_image_url: IMG('a'), end_image_url: IMG('b') },
      'end_image_url is not supported for kling-v3 text-to-video',
    ],
    [
      'a start frame on text-to-video',
      { model: 'kling-v3', operation: 'text-to-video', prompt: 'x', start_image_url: IMG('a') },
      'start_image_url is not supported for kling-v3 text-to-video',
    ],
    [
      'image-to-video without a start frame',
      { model: 'kling-v3', operation: 'image-to-video', prompt: 'x' },
      'start_image_url is required for kling-v3 image-to-video',
    ],
    ['reference images', { model: 'kling-v3', operation: 'text-to-video', prompt: 'x', reference_images: [IMG('r')] }, 'reference_images is not supported'],
    ['reference-to-video at all', { model: 'kling-v3', prompt: 'x', reference_video_url: 'https://cdn.example.com/v.mp4' }, 'does not serve reference-to-video with kling-v3'],
    ['video-edit', { model: 'kling-v3', prompt: 'x', video_url: 'https://cdn.example.com/v.mp4' }, 'does not serve video-edit with kling-v3'],
    ['an older model', { model: 'kling-v2-6', prompt: 'x' }, 'does not serve text-to-video with kling-v2-6'],
  ])('refuses %s', (_name, input, reason) => {
    expect(reasons(input).join(' | ')).toContain(reason);
  });

  it('refuses more than 2 voices (the schema description: "Maximum 2 voices per task")', () => {
    // Canonical validation already caps voices at 2; the table must hold on its own too.
    const resolved = resolveRequest({ model: 'kling-v3', prompt: 'x', voice_ids: ['a', 'b', 'c'] });
    expect(matchOffering(FREEPIK_OFFERINGS, resolved).reasons).toContain('voice_ids has 3 items; at most 2');
  });
});

describe('kling-v3-omni → POST /v1/ai/video/kling-v3-omni-{pro|std} (kling-v3-omni-request)', () => {
  it('maps text-to-video with references, elements, voices and audio', () => {
    const call = mapped({
      model: 'kling-v3-omni',
      operation: 'text-to-video',
      prompt: '@Element1 walks into @Image1',
      reference_images: [IMG('style')],
      elements: [{ frontal_image_url: IMG('hero'), reference_image_urls: [IMG('hero-side')] }],
      voice_ids: ['voice-a'],
      duration: 8,
      aspect_ratio: '1:1',
    });
    expect(call).toEqual({
      path: '/v1/ai/video/kling-v3-omni-pro',
      statusFamily: '/v1/ai/video/kling-v3-omni',
      body: {
        prompt: '@Element1 walks into @Image1',
        image_urls: [IMG('style')],
        elements: [{ frontal_image_url: IMG('hero'), reference_image_urls: [IMG('hero-side')] }],
        voice_ids: ['voice-a'],
        generate_audio: true,
        duration: '8',
        aspect_ratio: '1:1',
      },
    });
  });

  it('sends a lone start frame as image_url', () => {
    const call = mapped({ model: 'kling-v3-omni', quality: 'std', prompt: 'Animate', start_image_url: IMG('a'), aspect_ratio: 'auto' });
    expect(call.path).toBe('/v1/ai/video/kling-v3-omni-std');
    expect(call.body).toStrictEqual({
      prompt: 'Animate',
      image_url: IMG('a'),
      aspect_ratio: 'auto',
      duration: '5',
      generate_audio: true,
    });
  });

  // `image_url` is "Required for image-to-video mode"; `start_image_url` is the one to "use together
  // with end_image_url". With an end frame the start frame goes in both, so no reading of the
  // schema finds image-to-video without `image_url` or an end frame without its start.
  it('sends start and end frames as image_url + start_image_url + end_image_url', () => {
    const call = mapped({ model: 'kling-v3-omni', prompt: 'Morph', start_image_url: IMG('a'), end_image_url: IMG('b') });
    expect(call.body).toStrictEqual({
      prompt: 'Morph',
      image_url: IMG('a'),
      start_image_url: IMG('a'),
      end_image_url: IMG('b'),
      aspect_ratio: '16:9',
      duration: '5',
      generate_audio: true,
    });
  });

  it('sends shots as plain strings in multi_prompt, with the whole duration', () => {
    const call = mapped({
      model: 'kling-v3-omni',
      duration: 12,
      multi_shot: [{ prompt: 'Shot one' }, { prompt: 'Shot two' }, { prompt: 'Shot three' }],
    });
    expect(call.body).toStrictEqual({
      multi_prompt: ['Shot one', 'Shot two', 'Shot three'],
      shot_type: 'customize',
      duration: '12',
      aspect_ratio: '16:9',
      generate_audio: true,
    });
  });

  it('sends reference-to-video with only reference images to the Omni video endpoint as image_urls', () => {
    const call = mapped({ model: 'kling-v3-omni', prompt: 'In the style of @Image1 and @Image2', reference_images: [IMG('r1'), IMG('r2')] });
    expect(call).toEqual({
      path: '/v1/ai/video/kling-v3-omni-pro',
      statusFamily: '/v1/ai/video/kling-v3-omni',
      body: {
        prompt: 'In the style of @Image1 and @Image2',
        image_urls: [IMG('r1'), IMG('r2')],
        aspect_ratio: '16:9',
        duration: '5',
        generate_audio: true,
      },
    });
  });

  it.each<[string, Input, string]>([
    ['cfg_scale', { model: 'kling-v3-omni', prompt: 'x', cfg_scale: 0.5 }, 'cfg_scale is not supported for kling-v3-omni text-to-video'],
    [
      'cfg_scale on image-to-video',
      { model: 'kling-v3-omni', prompt: 'x', start_image_url: IMG('a'), cfg_scale: 1 },
      'cfg_scale is not supported for kling-v3-omni image-to-video',
    ],
    ['negative_prompt', { model: 'kling-v3-omni', prompt: 'x', negative_prompt: 'blur' }, 'negative_prompt is not supported for kling-v3-omni'],
    [
      'per-shot durations',
      { model: 'kling-v3-omni', multi_shot: [{ prompt: 'a', duration: 5 }, { prompt: 'b', duration: 5 }] },
      'takes no per-shot durations',
    ],
    ['prompt and shots together', { model: 'kling-v3-omni', prompt: 'x', multi_shot: [{ prompt: 'a' }] }, 'prompt and multi_shot together: kling-v3-omni takes one or the other, not both'],
    [
      'more than 4 images and elements together',
      {
        model: 'kling-v3-omni',
        prompt: 'x',
        reference_images: [IMG('r1'), IMG('r2')],
        elements: [{ frontal_image_url: IMG('e1') }, { frontal_image_url: IMG('e2') }, { frontal_image_url: IMG('e3') }],
      },
      'reference_images and elements together: kling-v3-omni takes at most 4; got 5',
    ],
    [
      'more than 4 reference images',
      { model: 'kling-v3-omni', prompt: 'x', reference_images: [IMG('1'), IMG('2'), IMG('3'), IMG('4'), IMG('5')] },
      'reference_images has 5 items; at most 4',
    ],
    ['auto aspect on text-to-video', { model: 'kling-v3-omni', prompt: 'x', aspect_ratio: 'auto' }, 'aspect_ratio "auto" is not supported'],
    [
      'auto aspect on reference images without a start frame',
      { model: 'kling-v3-omni', prompt: 'x', reference_images: [IMG('r')], aspect_ratio: 'auto' },
      'aspect_ratio "auto" on kling-v3-omni needs start_image_url',
    ],
    [
      'an end frame on text-to-video',
      { model: 'kling-v3-omni', operation: 'text-to-video', prompt: 'x', start_image_url: IMG('a'), end_image_url: IMG('b') },
      'end_image_url is not supported for kling-v3-omni text-to-video',
    ],
  ])('refuses %s', (_name, input, reason) => {
    expect(reasons(input).join(' | ')).toContain(reason);
  });
});

describe('kling-v3-omni reference video → POST /v1/ai/reference-to-video/kling-v3-omni-{pro|std}', () => {
  const video = 'https://cdn.example.com/dance.mp4';

  it('names what the image endpoint objects to when a reference-images request fits neither offering', () => {
    // The core reports the offering that came closest: the image endpoint, which only lacks cfg_scale.
    const found = reasons({ model: 'kling-v3-omni', prompt: 'x', reference_images: [IMG('r')], cfg_scale: 1 });
    expect(found).toEqual(['cfg_scale is not supported for kling-v3-omni reference-to-video']);
  });

  it('maps the reference video to video_url and the start frame to image_url', () => {
    const call = mapped({
      model: 'kling-v3-omni',
      quality: 'std',
      prompt: 'Follow the moves of @Video1',
      negative_prompt: 'low quality',
      reference_video_url: video,
      start_image_url: IMG('dancer'),
      cfg_scale: 0.8,
      duration: 7,
      aspect_ratio: 'auto',
    });
    expect(call).toEqual({
      path: '/v1/ai/reference-to-video/kling-v3-omni-std',
      statusFamily: '/v1/ai/reference-to-video/kling-v3-omni',
      body: {
        video_url: video,
        image_url: IMG('dancer'),
        prompt: 'Follow the moves of @Video1',
        negative_prompt: 'low quality',
        cfg_scale: 0.8,
        duration: '7',
        aspect_ratio: 'auto',
      },
    });
  });

  it('sends the reference video URL exactly as written, a URI (`format: uri`): the gateway takes no other and rewrites none', () => {
    const contract = loadOpenApiContract('freepik.yaml');
    const written = [
      'https://cdn.example.com/my%20dance.mp4',
      'https://cdn.example.com/vid%C3%A9o.mp4',
      'https://cdn.example.com/take%7C2.mp4?v=a%7Cb',
      'https://cdn.example.com/100%25.mp4#t=1%232',
      'https://xn--exmple-cua.com/v.mp4',
      'https://cdn.example.com/a%20b/clip.mp4?sig=x%2By&exp=1#t=2',
      // The parser's `href` would lowercase the host and drop the default port and the `.` segment.
      'https://CDN.example.com:443/./v.mp4',
      // RFC 3986 allows an empty query and fragment: once sent as `https://cdn.example.com//dance.mp4`.
      'https://cdn.example.com/dance.mp4?',
      'https://cdn.example.com/dance.mp4#',
      'https://cdn.example.com/dance.mp4?#',
      'https://cdn.example.com/?',
    ];
    for (const url of written) {
      const call = mapped({ model: 'kling-v3-omni', prompt: '@Video1', reference_video_url: url });
      expect(contract.requestProblems({ method: 'POST', path: call.path, body: call.body })).toEqual([]);
      expect((call.body as { video_url: string }).video_url).toBe(url);
    }
    // What is no URI as written never reaches the adapter.
    for (const url of ['https://cdn.example.com/my dance.mp4', 'https://cdn.example.com/vidéo.mp4', 'https://cdn.example.com/100%.mp4']) {
      expect(() => mapped({ model: 'kling-v3-omni', prompt: '@Video1', reference_video_url: url })).toThrow('must be a URI (RFC 3986) as written');
    }
  });

  it('still sends the URI of a URL no URI as written, should an adapter be handed one (toHttpUri)', () => {
    expect(toHttpUri('https://cdn.example.com/clips/[final]^{2} é.mp4?')).toBe('https://cdn.example.com/clips/%5Bfinal%5D%5E%7B2%7D%20%C3%A9.mp4?');
    expect(toHttpUri('https://exämple.com/100%.mp4#t=1#2')).toBe('https://xn--exmple-cua.com/100%25.mp4#t=1%232');
  });

  it('serves the defaulted audio with a warning instead of sending it (the schema has no audio field)', () => {
    const found = match({ model: 'kling-v3-omni', prompt: '@Video1', reference_video_url: video });
    expect(found.reasons).toEqual([]);
    expect(found.warnings.join(' ')).toContain('audio defaults to true');
    const call = mapped({ model: 'kling-v3-omni', prompt: '@Video1', reference_video_url: video });
    expect(call.body).toStrictEqual({ video_url: video, prompt: '@Video1', duration: '5', aspect_ratio: '16:9' });
  });

  it.each<[string, Input, string]>([
    ['audio asked for', { model: 'kling-v3-omni', prompt: 'x', reference_video_url: video, audio: true }, 'audio is not supported for kling-v3-omni reference-to-video'],
    ['elements', { model: 'kling-v3-omni', prompt: 'x', reference_video_url: video, elements: [{ frontal_image_url: IMG('e') }] }, 'elements is not supported'],
    ['reference images with the video', { model: 'kling-v3-omni', prompt: 'x', reference_video_url: video, reference_images: [IMG('r')] }, 'reference_images is not supported'],
    ['shots', { model: 'kling-v3-omni', reference_video_url: video, multi_shot: [{ prompt: 'a' }] }, 'multi_shot is not supported'],
    ['voices', { model: 'kling-v3-omni', prompt: 'x', reference_video_url: video, voice_ids: ['v'] }, 'voice_ids is not supported'],
    [
      'an end frame',
      { model: 'kling-v3-omni', prompt: 'x', reference_video_url: video, start_image_url: IMG('a'), end_image_url: IMG('b') },
      'end_image_url is not supported',
    ],
    ['neither a video nor images', { model: 'kling-v3-omni', operation: 'reference-to-video', prompt: 'x' }, 'reference_video_url is required'],
  ])('refuses %s', (_name, input, reason) => {
    expect(reasons(input).join(' | ')).toContain(reason);
  });
});

describe('toFreepikRequest guards', () => {
  it('throws rather than drop a field the offering has no rule for', () => {
    const offering = FREEPIK_OFFERINGS.find((o) => o.model === 'kling-v3-omni' && o.operation === 'text-to-video');
    if (!offering) throw new Error('missing offering');
    const { request } = resolveRequest({ model: 'kling-v3-omni', prompt: 'x', cfg_scale: 1 });
    expect(() => toFreepikRequest(request, offering)).toThrow(/cfg_scale is not taken/);
  });

  it('only takes whole durations of 3-15 s', () => {
    expect(toFreepikDuration(3)).toBe('3');
    expect(toFreepikDuration(15)).toBe('15');
    expect(() => toFreepikDuration(2)).toThrow();
    expect(() => toFreepikDuration(16)).toThrow();
    expect(() => toFreepikDuration(5.5)).toThrow();
  });

  it('declares every offering at both qualities with an upstream route', () => {
    for (const offering of FREEPIK_OFFERINGS) {
      expect(offering.qualities).toEqual(['pro', 'std']);
      expect(offering.upstream).toMatch(/^POST \/v1\/ai\/(video|reference-to-video)\/kling-v3(-omni)?-\{pro\|std\}$/);
    }
  });
});

describe('Freepik shot refusals name their field', () => {
  // A capability 422 lists under errors[] each field some provider cannot serve as asked; the
  // shot refusals opened with the model's name, so a 422 about multi_shot had no errors[] entry.
  it.each<[string, Input]>([
    ['untimed shots', { model: 'kling-v3', multi_shot: [{ prompt: 'a' }, { prompt: 'b' }] }],
    ['a shot under 3 s', { model: 'kling-v3', multi_shot: [{ prompt: 'a', duration: 2 }, { prompt: 'b', duration: 5 }] }],
    ['per-shot durations on Omni', { model: 'kling-v3-omni', multi_shot: [{ prompt: 'a', duration: 5 }, { prompt: 'b', duration: 5 }] }],
  ])('%s: every reason is about multi_shot', (_name, input) => {
    const { reasons } = match(input);
    expect(reasons.length).toBeGreaterThan(0);
    for (const reason of reasons) expect(fieldOfReason(reason), reason).toBe('multi_shot');
  });
});
