/**
 * An error nothing caught is logged through the scrubbing logger, without the fields of an axios
 * error that carry the request's headers, and the process is told to exit 1.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { reportCrashes } from '../../src/observability/crash-report.js';
import { createLogger } from '../../src/observability/logger.js';
import { SecretScrubber } from '../../src/observability/secret-scrubber.js';
import { capturedLogs } from '../support/captured-logs.js';

const UPSTREAM_KEY = 'fpk-live-7c1d9e0b2a4f';

/** An error shaped as axios makes one: the request's config, headers and all, as own fields. */
function upstreamError(): Error {
  const error = new Error(`Request failed with status code 500 (sent ${UPSTREAM_KEY})`);
  error.name = 'AxiosError';
  Object.assign(error, { config: { headers: { 'x-freepik-api-key': UPSTREAM_KEY, 'x-other': 'visible-elsewhere' } }, code: 'ERR_BAD_RESPONSE' });
  return error;
}

async function crash(event: 'uncaughtException' | 'unhandledRejection', reason: unknown) {
  const logs = capturedLogs();
  const logger = createLogger('info', { destination: logs.sink, secrets: new SecretScrubber([UPSTREAM_KEY]) });
  const process = new EventEmitter();
  const exits: number[] = [];
  reportCrashes(process, logger, (code) => exits.push(code));
  process.emit(event, reason);
  await new Promise((resolve) => setImmediate(resolve));
  return { text: logs.text(), exits };
}

describe('an error nothing caught', () => {
  it.each(['uncaughtException', 'unhandledRejection'] as const)('(%s) is logged without the upstream key or the request it came with, and exits 1', async (event) => {
    const { text, exits } = await crash(event, upstreamError());
    expect(exits).toEqual([1]);
    const line = JSON.parse(text.trim());
    expect(line.level).toBe('fatal');
    expect(line.error.type).toBe('AxiosError');
    expect(line.error.message).toMatch(/^Request failed with status code 500/);
    expect(text).not.toContain(UPSTREAM_KEY);
    // Not a field of the error but its message and stack: the request's headers stay out.
    expect(text).not.toContain('x-freepik-api-key');
    expect(text).not.toContain('visible-elsewhere');
  });

  it('that is not an Error is logged as text, and a second one does not exit again', async () => {
    const logs = capturedLogs();
    const logger = createLogger('info', { destination: logs.sink });
    const process = new EventEmitter();
    const exits: number[] = [];
    reportCrashes(process, logger, (code) => exits.push(code));
    process.emit('unhandledRejection', 'the store went away');
    process.emit('uncaughtException', new TypeError('then this'));
    await new Promise((resolve) => setImmediate(resolve));
    const lines = logs.text().trim().split('\n').map((line) => JSON.parse(line));
    expect(lines.map((line) => line.error.message)).toEqual(['the store went away', 'then this']);
    expect(lines[0].msg).toBe('unhandled promise rejection; the gateway exits');
    expect(exits).toEqual([1]);
  });
});
