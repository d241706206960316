/**
 * A prompt past the API's 2500 characters is a command-line error (exit 2) before anything is
 * sent, given as the argument (`generate "…"`, the way the README shows) as much as `--prompt`.
 */
import { describe, expect, it } from 'vitest';
import { runCliCaptured } from '../support/cli-run.js';

/** Nothing listens here: a command that sends anything ends with exit 9, not 2. */
const NOWHERE = { KLING_GATEWAY_URL: 'http://127.0.0.1:2', KLING_GATEWAY_API_KEY: 'test-key-123' };

function run(args: string[]) {
  return runCliCaptured(args, { env: NOWHERE, pause: async () => undefined });
}

describe('a prompt longer than the API takes', () => {
  it.each([['generate'], ['quote']])('%s with the prompt as its argument exits 2 before anything is sent, as --prompt does', async (command) => {
    const prompt = 'a fox '.repeat(417); // 2502 characters
    for (const args of [[command, prompt, '--model', 'kling-v3'], [command, '--prompt', prompt, '--model', 'kling-v3']]) {
      const result = await run(args);
      expect([result.code, result.stdout]).toEqual([2, '']);
      expect(result.stderr).toContain('is 2502 characters; at most 2500.');
    }
  });

  it('the error quotes the start of a long value, not all of it', async () => {
    const prompt = `a fox ${'in the snow '.repeat(250)}`;
    for (const args of [['generate', prompt, '--model', 'kling-v3'], ['generate', '--prompt', prompt, '--model', 'kling-v3']]) {
      const result = await run(args);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/^error: (option '--prompt <text>' argument|command-argument value) 'a fox in the snow in the snow in the snow in the snow in the…' \(3006 characters\) is invalid\b.*is 3006 characters; at most 2500\.\n\(run with --help for usage\)\n$/);
    }
  });

  it('counts a long prompt of emoji in characters where it quotes it, as the limit does', async () => {
    // 3,000 characters, 6,000 UTF-16 units: both figures in the message are the same characters.
    const prompt = '🦊'.repeat(3_000);
    const result = await run(['generate', prompt, '--model', 'kling-v3']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`'${'🦊'.repeat(60)}…' (3000 characters) is invalid`);
    expect(result.stderr).toContain('is 3000 characters; at most 2500.');
  });
});
