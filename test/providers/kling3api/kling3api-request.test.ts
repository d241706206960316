/**
 * Canonical request → exact `POST /api/generate` body, for all 12 upstream types.
 * Bodies marked "seed" are the JSON examples of shared/seeds/004_*.txt; where the gateway
 * writes a resolved default the example leaves out (5 s, 16:9, sound on: the upstream's own
 * defaults), the extra field is called out.
 */
import { describe, expect, it } from 'vitest';
import { KLING3API_ALL_TASK_TYPES, kling3apiTaskTypeFor } from '../../../src/providers/kling3api/kling3api-capabilities.js';
import { toKling3apiRequest } from '../../../src/providers/kling3api/kling3api-request.js';
import type { Kling3apiGenerateRequest } from '../../../src/providers/kling3api/kling3api-schemas.js';
import { loadOpenApiContract } from '../../support/openapi-contract.js';
import { served } from './kling3api-fixtures.js';

function bodyFor(input: unknown): Kling3apiGenerateRequest {
  const { request, offering } = served(input);
  return toKling3apiRequest(request, offering);
}

const covered = new Set<string>();
function expectBody(input: unknown, expected: Kling3apiGenerateRequest): void {
  const body = bodyFor(input);
  expect(body).toStrictEqual(expected);
  covered.add(body.type);
}

describe('toKling3apiRequest', () => {
  it('pro-text-to-video: the seed example "Kling 3.0 - Text to Video", field for field', () => {
    expectBody(
      {
        model: 'kling-v3',
        quality: 'pro',
        prompt: 'A majestic eagle soaring through clouds at sunset',
        duration: 5,
        aspect_ratio: '16:9',
        audio: true,
      },
      {
        type: 'pro-text-to-video',
        prompt: 'A majestic eagle soaring through clouds at sunset',
        duration: 5,
        aspect_ratio: '16:9',
        sound: true,
      },
    );
  });

  it('pro-image-to-video: the seed example "Kling 3.0 - Image to Video" plus the written-out defaults', () => {
    expectBody(
      {
        model: 'kling-v3',
        prompt: 'The character slowly turns and smiles',
        start_image_url: 'https://example.com/my-image.jpg',
        duration: 5,
      },
      {
        type: 'pro-image-to-video',
        prompt: 'The character slowly turns and smiles',
        image: 'https://example.com/my-image.jpg',
        duration: 5,
        // Not in the seed example: the canonical defaults, equal to the upstream's.
        aspect_ratio: '16:9',
        sound: true,
      },
    );
  });

  it('std-text-to-video: negative prompt, cfg_scale, no sound, 10 s portrait', () => {
    expectBody(
      {
        model: 'kling-v3',
        quality: 'std',
        prompt: 'Rain on a neon street',
        negative_prompt: 'blur, text',
        cfg_scale: 0.7,
        audio: false,
        duration: 10,
        aspect_ratio: '9:16',
      },
      {
        type: 'std-text-to-video',
        prompt: 'Rain on a neon street',
        negative_prompt: 'blur, text',
        duration: 10,
        aspect_ratio: '9:16',
        sound: false,
        cfg_scale: 0.7,
      },
    );
  });

  it('std-image-to-video: start and end frame; cfg_scale 0 and 1 are both in range', () => {
    expectBody(
      {
        model: 'kling-v3',
        quality: 'std',
        operation: 'image-to-video',
        prompt: 'Day turns to night',
        start_image_url: 'https://example.com/day.jpg',
        end_image_url: 'https://example.com/night.jpg',
        cfg_scale: 0,
        duration: 15,
        aspect_ratio: '1:1',
      },
      {
        type: 'std-image-to-video',
        prompt: 'Day turns to night',
        duration: 15,
        aspect_ratio: '1:1',
        image: 'https://example.com/day.jpg',
        end_image: 'https://example.com/night.jpg',
        sound: true,
        cfg_scale: 0,
      },
    );
    expect(
      bodyFor({ model: 'kling-v3', prompt: 'x', start_image_url: 'https://example.com/a.jpg', cfg_scale: 1 }).cfg_scale,
    ).toBe(1);
  });

  it('o3-pro-text-to-video: defaults written out, no cfg_scale', () => {
    expectBody(
      { model: 'kling-v3-omni', prompt: 'A paper boat on a river' },
      { type: 'o3-pro-text-to-video', prompt: 'A paper boat on a river', duration: 5, aspect_ratio: '16:9', sound: true },
    );
  });

  it('o3-pro-image-to-video: end frame and negative prompt', () => {
    expectBody(
      {
        model: 'kling-v3-omni',
        quality: 'pro',
        prompt: 'The statue comes alive',
        negative_prompt: 'cartoon',
        start_image_url: 'https://example.com/statue.jpg',
        end_image_url: 'https://example.com/statue-moving.jpg',
        duration: 8,
        audio: false,
      },
      {
        type: 'o3-pro-image-to-video',
        prompt: 'The statue comes alive',
        negative_prompt: 'cartoon',
        duration: 8,
        aspect_ratio: '16:9',
        image: 'https://example.com/statue.jpg',
        end_image: 'https://example.com/statue-moving.jpg',
        sound: false,
      },
    );
  });

  it('o3-pro-reference-to-video: the seed example "Kling O3 - Reference to Video" plus sound', () => {
    expectBody(
      {
        model: 'kling-v3-omni',
        prompt: 'The character walks through a futuristic city',
        reference_images: ['https://example.com/character-reference.jpg', 'https://example.com/style-reference.jpg'],
        duration: 5,
        aspect_ratio: '16:9',
      },
      {
        type: 'o3-pro-reference-to-video',
        prompt: 'The character walks through a futuristic city',
        images: ['https://example.com/character-reference.jpg', 'https://example.com/style-reference.jpg'],
        duration: 5,
        aspect_ratio: '16:9',
        // Not in the seed example: the canonical audio default (upstream default too).
        sound: true,
      },
    );
  });

  it('o3-pro-video-edit: the seed example "Kling O3 - Video Edit", field for field (no duration: "auto")', () => {
    expectBody(
      {
        model: 'kling-v3-omni',
        prompt: 'Change the background to a snowy mountain landscape',
        video_url: 'https://example.com/original-video.mp4',
        keep_original_sound: true,
      },
      {
        type: 'o3-pro-video-edit',
        prompt: 'Change the background to a snowy mountain landscape',
        video: 'https://example.com/original-video.mp4',
        keep_original_sound: true,
      },
    );
  });

  it('o3-std-text-to-video', () => {
    expectBody(
      { model: 'kling-v3-omni', quality: 'std', prompt: 'Fireflies in a forest', duration: 3, aspect_ratio: '9:16', audio: false },
      { type: 'o3-std-text-to-video', prompt: 'Fireflies in a forest', duration: 3, aspect_ratio: '9:16', sound: false },
    );
  });

  it('o3-std-image-to-video', () => {
    expectBody(
      { model: 'kling-v3-omni', quality: 'std', prompt: 'Wind in the hair', start_image_url: 'https://example.com/p.png' },
      {
        type: 'o3-std-image-to-video',
        prompt: 'Wind in the hair',
        duration: 5,
        aspect_ratio: '16:9',
        image: 'https://example.com/p.png',
        sound: true,
      },
    );
  });

  it('o3-std-reference-to-video: a reference video alone goes to `video`, with images both go', () => {
    expectBody(
      {
        model: 'kling-v3-omni',
        quality: 'std',
        prompt: 'Same dance, new dancer @Video1',
        reference_video_url: 'https://example.com/dance.mp4',
        duration: 12,
      },
      {
        type: 'o3-std-reference-to-video',
        prompt: 'Same dance, new dancer @Video1',
        duration: 12,
        aspect_ratio: '16:9',
        video: 'https://example.com/dance.mp4',
        sound: true,
      },
    );
    const both = bodyFor({
      model: 'kling-v3-omni',
      quality: 'std',
      prompt: 'Same dance, this dancer',
      reference_video_url: 'https://example.com/dance.mp4',
      reference_images: ['https://example.com/dancer.png'],
    });
    expect(both).toMatchObject({ video: 'https://example.com/dance.mp4', images: ['https://example.com/dancer.png'] });
  });

  it('o3-std-video-edit: negative prompt, keep_original_sound false, nothing else', () => {
    expectBody(
      {
        model: 'kling-v3-omni',
        quality: 'std',
        operation: 'video-edit',
        prompt: 'Make it autumn',
        negative_prompt: 'snow',
        video_url: 'https://example.com/park.mp4',
        keep_original_sound: false,
      },
      {
        type: 'o3-std-video-edit',
        prompt: 'Make it autumn',
        negative_prompt: 'snow',
        video: 'https://example.com/park.mp4',
        keep_original_sound: false,
      },
    );
  });

  it('URLs go exactly as written (format: uri): the gateway takes only URIs, and rewrites none', () => {
    const contract = loadOpenApiContract('kling3api.yaml');
    const check = (body: Kling3apiGenerateRequest) => {
      expect(contract.requestProblems({ method: 'POST', path: '/api/generate', body })).toEqual([]);
      return body;
    };
    // The parser's `href` would lowercase the host and drop the default port and the `.` segment.
    const image = 'https://CDN.example.com:443/./my%20frame%7C1.jpg';
    expect(check(bodyFor({ model: 'kling-v3', prompt: 'p', start_image_url: image, end_image_url: 'https://xn--exmple-cua.com/end.jpg' }))).toMatchObject({
      image,
      end_image: 'https://xn--exmple-cua.com/end.jpg',
    });
    expect(check(bodyFor({ model: 'kling-v3-omni', prompt: 'p', reference_images: ['https://cdn.example.com/%5Bref%5D.jpg'] })).images).toEqual(['https://cdn.example.com/%5Bref%5D.jpg']);
    expect(check(bodyFor({ model: 'kling-v3-omni', operation: 'video-edit', prompt: 'p', video_url: 'https://cdn.example.com/100%25.mp4' })).video).toBe('https://cdn.example.com/100%25.mp4');
    // What is no URI as written never reaches the adapter.
    expect(() => bodyFor({ model: 'kling-v3', prompt: 'p', start_image_url: 'https://cdn.example.com/my frame|1.jpg' })).toThrow('%20');
  });

  it('sends an image URL ending in an empty query or fragment to the same path, not to `//<path>`', () => {
    // `?` and `#` with nothing after them are part of a URI as written: the URL goes unchanged.
    // It went as `https://cdn.example.com//frame.jpg`, another path than the image's.
    expect(bodyFor({ model: 'kling-v3', prompt: 'p', start_image_url: 'https://cdn.example.com/frame.jpg?', end_image_url: 'https://cdn.example.com/end.jpg#' })).toMatchObject({
      image: 'https://cdn.example.com/frame.jpg?',
      end_image: 'https://cdn.example.com/end.jpg#',
    });
  });

  it('covered every one of the 12 upstream types above', () => {
    expect([...covered].sort()).toEqual([...KLING3API_ALL_TASK_TYPES].sort());
  });

  it('selects the type from model × quality × operation, and none for what kling3api does not serve', () => {
    expect(kling3apiTaskTypeFor('kling-v3', 'std', 'image-to-video')).toBe('std-image-to-video');
    expect(kling3apiTaskTypeFor('kling-v3-omni', 'pro', 'video-edit')).toBe('o3-pro-video-edit');
    expect(kling3apiTaskTypeFor('kling-v3', 'pro', 'video-edit')).toBeUndefined();
    expect(kling3apiTaskTypeFor('kling-v2-6', 'pro', 'text-to-video')).toBeUndefined();
  });

  it('does not write a default the offering has no rule for', () => {
    // Video edit takes no duration/aspect ratio: a request carrying them (as a caller bypassing
    // the capability check might) still produces a body without them.
    const { offering } = served({
      model: 'kling-v3-omni',
      prompt: 'Make it autumn',
      video_url: 'https://example.com/park.mp4',
    });
    const body = toKling3apiRequest(
      {
        model: 'kling-v3-omni',
        quality: 'pro',
        operation: 'video-edit',
        prompt: 'Make it autumn',
        video_url: 'https://example.com/park.mp4',
        duration: 5,
        aspect_ratio: '16:9',
        audio: true,
      },
      offering,
    );
    expect(body).toStrictEqual({ type: 'o3-pro-video-edit', prompt: 'Make it autumn', video: 'https://example.com/park.mp4' });
  });
});
