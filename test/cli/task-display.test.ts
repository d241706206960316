/**
 * The task as `get`, `generate` and `wait` print it: the prompt row is one line, and a long prompt
 * is cut at a whole character (an emoji is two UTF-16 units: cut between them, it prints as "�").
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { Task } from '../../packages/client/src/index.js';
import { CliOutput } from '../../src/cli/cli-output.js';
import { printTask } from '../../src/cli/video-commands.js';

function printed(prompt: string): string {
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      text += chunk.toString('utf8');
      callback();
    },
  });
  const task = {
    id: 'vid_display',
    status: 'processing',
    model: 'kling-v3',
    quality: 'pro',
    operation: 'text-to-video',
    created_at: '2026-01-01T00:00:00.000Z',
    updated_at: '2026-01-01T00:00:01.000Z',
    completed_at: null,
    provider: 'freepik',
    provider_task_id: null,
    provider_status: null,
    outputs: [],
    error: null,
    cost: { credits: 56, estimated: true, currency_amount: 0.56, currency: 'USD' },
    attempts: [],
    warnings: [],
    metadata: {},
    request: { model: 'kling-v3', prompt },
  } as unknown as Task;
  printTask(new CliOutput(false, sink, sink), task);
  return /^ {2}prompt {6}(.*)$/m.exec(text)?.[1] ?? `no prompt row in:\n${text}`;
}

describe('the prompt row of a task', () => {
  it('cuts a long prompt at a whole character, never inside an emoji', () => {
    const row = printed(`${'狐'.repeat(98)}🦊🦊🦊🦊`);
    expect(row).not.toContain('\uFFFD');
    expect(row).toBe(`${'狐'.repeat(98)}🦊…`);
  });

  it('shows a prompt written over several lines on one line', () => {
    expect(printed('a fox\nin the snow,\r\n\tat dusk')).toBe('a fox in the snow, at dusk');
  });

  it('shows a short prompt as it is', () => {
    expect(printed('a red fox 🦊 in the snow')).toBe('a red fox 🦊 in the snow');
  });
});

describe('the output rows of a task', () => {
  function outputRows(outputs: Record<string, unknown>[], now = Date.parse('2026-03-01T00:00:00.000Z')): string[] {
    let text = '';
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        text += chunk.toString('utf8');
        callback();
      },
    });
    const base = {
      type: 'video',
      url_expires_at: null,
      duration: null,
      upstream_url: 'https://cdn.example/a.mp4',
      upstream_id: null,
      upstream_url_expires_at: null,
      upstream_url_gone: false,
      storage_error: null,
      sha256: null,
      bytes: null,
      content_type: null,
      stored_at: null,
      expires_at: null,
    };
    const task = {
      id: 'vid_outputs',
      status: 'succeeded',
      model: 'kling-v3',
      quality: 'pro',
      operation: 'text-to-video',
      created_at: '2026-01-01T00:00:00.000Z',
      updated_at: '2026-01-01T00:00:01.000Z',
      completed_at: '2026-01-01T00:00:01.000Z',
      provider: 'freepik',
      provider_task_id: null,
      provider_status: null,
      outputs: outputs.map((output) => ({ ...base, url: base.upstream_url, ...output })),
      error: null,
      cost: { credits: 56, estimated: false, currency_amount: 0.56, currency: 'USD' },
      attempts: [],
      warnings: [],
      metadata: {},
      request: { model: 'kling-v3', prompt: 'x' },
    } as unknown as Task;
    printTask(new CliOutput(false, sink, sink), task, now);
    return text.split('\n').filter((line) => /^ {2}output \d/.test(line));
  }

  it("shows the gateway's stored copy by its link alone", () => {
    const link = 'http://gw.example/v1/videos/vid_outputs/content?index=0&expires=1&signature=s';
    expect(outputRows([{ url: link, storage: 'stored', expires_at: '2026-04-01T00:00:00.000Z' }])).toEqual([`  output 0    video ${link}`]);
  });

  it('never shows a link that no longer leads to the file as if it did', () => {
    const [gone, expired, pastLifetime, notStored] = outputRows([
      { storage: 'not_stored', upstream_url_gone: true, storage_error: 'the provider answered 404 for the result URL on all 6 tries: its copy is gone' },
      { storage: 'expired', storage_error: 'deleted after the 2-day retention' },
      { storage: 'passthrough', upstream_url_expires_at: '2026-02-01T00:00:00.000Z', url_expires_at: '2026-02-01T00:00:00.000Z' },
      { storage: 'not_stored', storage_error: 'the provider answered 403 for the result URL (gave up after 6 tries)' },
    ]);
    expect(gone).toContain('no longer available');
    expect(gone).toContain('its copy is gone');
    expect(expired).toContain("the gateway's copy was deleted after the 2-day retention");
    expect(pastLifetime).toContain('no longer available');
    expect(pastLifetime).toContain('2026-02-01');
    expect(notStored).toContain('not stored');
    expect(notStored).toContain('gave up after 6 tries');
  });
});
