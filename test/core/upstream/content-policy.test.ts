/** The one content-policy wording rule every adapter reads upstream text with. */
import { describe, expect, it } from 'vitest';
import { looksLikeContentPolicy } from '../../../src/core/upstream/content-policy.js';

describe('looksLikeContentPolicy', () => {
  it.each([
    'Your prompt violates our content policy',
    'Content moderation rejected the image',
    'NSFW content is not allowed',
    'Blocked by the safety system',
    'The prompt was flagged by moderation',
    'The image contains sensitive content',
    'Prohibited subject',
    'Failure to pass the risk control system',
    'Blocked by platform policy',
    'Explicit content detected',
    '触发风控，请修改后重试',
    '内容违规',
  ])('reads "%s" as a refusal of the content', (text) => {
    expect(looksLikeContentPolicy(text)).toBe(true);
  });

  it.each([
    'IP whitelist policy triggered',
    'Rate limit exceeded, retry later',
    'Image could not be downloaded',
    'Image resolution too small',
    'Internal Server Error',
    '',
  ])('does not read "%s" as one', (text) => {
    expect(looksLikeContentPolicy(text)).toBe(false);
  });

  it('reads nothing into a missing message', () => {
    expect(looksLikeContentPolicy(undefined)).toBe(false);
    expect(looksLikeContentPolicy(null)).toBe(false);
  });
});
