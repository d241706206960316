/**
 * Every canonical request field is a flag named like the field, and flags become exactly the
 * request body the API takes.
 */
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { CliError } from '../../src/cli/exit-codes.js';
import { addRequestFlags, requestFromFlags } from '../../src/cli/request-flags.js';

const document = JSON.parse(readFileSync(new URL('../../openapi/gateway.json', import.meta.url), 'utf8'));
const fields = Object.keys(document.components.schemas.CreateVideoRequest.properties as object);

function parse(argv: string[]) {
  const command = new Command('generate').exitOverride().configureOutput({ writeErr: () => undefined });
  const flags = addRequestFlags(command);
  command.parse(argv, { from: 'user' });
  return requestFromFlags(flags, command.opts());
}

describe('request flags from the OpenAPI document', () => {
  it('has a flag named like every field of CreateVideoRequest', () => {
    const command = new Command('generate');
    addRequestFlags(command);
    const longFlags = command.options.map((option) => option.long);
    expect(fields.length).toBeGreaterThan(20);
    for (const field of fields) expect(longFlags, field).toContain(`--${field.replace(/_/g, '-')}`);
  });

  it('says in --help what each flag sends: a boolean field\'s flag names the value, whatever its description is about', () => {
    const command = new Command('generate');
    addRequestFlags(command);
    // Each says something: a description, or at least the values it takes.
    for (const option of command.options) expect(option.description || option.argChoices?.join(), option.long).toBeTruthy();
    const help = (long: string) => command.options.find((option) => option.long === long)?.description;
    // The field's description is about `false`: under the flag that sends `true` it must not read as what the flag does.
    expect(help('--routing-allow-fallbacks')).toBe('send allow_fallbacks: true. false pins the task to the first eligible provider: no failover.');
    expect(help('--no-routing-allow-fallbacks')).toBe('send allow_fallbacks: false');
    expect(help('--keep-original-sound')).toMatch(/^send keep_original_sound: true\. Video edit: /);
  });

  it('turns flags into the request body, typed as the schema says', () => {
    const body = parse([
      '--model', 'kling-v3-omni',
      '--prompt', 'a fox',
      '--duration', '10',
      '--cfg-scale', '0.5',
      '--no-audio',
      '--reference-images', 'https://example.com/a.png',
      '--reference-images', 'https://example.com/b,c.png',
      '--voice-ids', 'v1,v2',
      '--metadata', 'order=42',
      '--metadata', 'team=video',
      '--multi-shot', '[{"prompt":"one","duration":5}]',
      '--routing-strategy', 'cheapest',
      '--routing-providers', 'freepik,kling3api',
      '--no-routing-allow-fallbacks',
    ]);
    expect(body).toEqual({
      model: 'kling-v3-omni',
      prompt: 'a fox',
      duration: 10,
      cfg_scale: 0.5,
      audio: false,
      reference_images: ['https://example.com/a.png', 'https://example.com/b,c.png'],
      voice_ids: ['v1', 'v2'],
      metadata: { order: '42', team: 'video' },
      multi_shot: [{ prompt: 'one', duration: 5 }],
      routing: { strategy: 'cheapest', providers: ['freepik', 'kling3api'], allow_fallbacks: false },
    });
  });

  it('starts from --file and lets flags override it, routing merged field by field', () => {
    const directory = mkdtempSync(join(tmpdir(), 'kling-cli-'));
    const file = join(directory, 'request.json');
    writeFileSync(file, JSON.stringify({ model: 'kling-v3', prompt: 'from file', duration: 5, routing: { exclude: ['kling-legacy'] } }));
    expect(parse(['--file', file, '--duration', '8', '--routing-strategy', 'cheapest'])).toEqual({
      model: 'kling-v3',
      prompt: 'from file',
      duration: 8,
      routing: { exclude: ['kling-legacy'], strategy: 'cheapest' },
    });
  });

  it('refuses values the schema cannot take before anything is sent', () => {
    expect(() => parse(['--model', 'kling-v9'])).toThrow(/Allowed choices are kling-v3/);
    expect(() => parse(['--duration', 'ten'])).toThrow(/not an integer/);
    expect(() => parse(['--multi-shot', '[{'])).toThrow(/not valid JSON/);
    expect(() => parse(['--metadata', 'novalue'])).toThrow(/key=value/);
    expect(() => parse(['--file', '/nonexistent/request.json'])).toThrow(CliError);
    // The schema's limits, as the flag's help states them.
    expect(() => parse(['--duration', '99'])).toThrow("option '--duration <n>' argument '99' is invalid. must be 3–15.");
    expect(() => parse(['--cfg-scale', '2.5'])).toThrow(/must be 0–2/);
    expect(() => parse(['--cancel-after', '0'])).toThrow(/must be 1–604800/);
    expect(() => parse(['--prompt', 'x'.repeat(2501)])).toThrow(/is 2501 characters; at most 2500/);
    // Counted in characters, as the gateway counts them: 2500 emoji fit, 2501 do not.
    expect(() => parse(['--model', 'kling-v3', '--prompt', '🦊'.repeat(2500)])).not.toThrow();
    expect(() => parse(['--prompt', '🦊'.repeat(2501)])).toThrow(/is 2501 characters; at most 2500/);
    expect(() => parse(['--voice-ids', 'a,b,c'])).toThrow(/3 given; at most 2/);
    // A local file is not something the gateway can fetch.
    expect(() => parse(['--start-image-url', './fox.png'])).toThrow(/not an http\(s\) URL: the gateway fetches inputs by URL/);
    expect(() => parse(['--reference-images', 'https://example.com/a.png', '--reference-images', 'fox.png'])).toThrow(/not an http\(s\) URL/);
    // The webhook URL is where the gateway sends events, not an input it fetches.
    expect(() => parse(['--webhook-url', 'hooks.example.com/kling'])).toThrow("option '--webhook-url <url>' argument 'hooks.example.com/kling' is invalid. not an http(s) URL: the gateway posts the task's events to it.");
  });
});
