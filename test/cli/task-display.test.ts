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
